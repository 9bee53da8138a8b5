package service

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/featurestore/featurestore/internal/feature"
)

// ServiceRegistry keeps feature services: the system of record
// (*postgres.Store and *sqlite.Store satisfy it; see storetest.ServiceStore
// for the contract). Deleting a group that a service references is the
// registry's conflict, in the same transaction as the delete.
type ServiceRegistry interface {
	ListFeatureServices(ctx context.Context) ([]feature.FeatureService, error)
	GetFeatureService(ctx context.Context, name string) (feature.FeatureService, error)
	PutFeatureService(ctx context.Context, fs feature.FeatureService, now time.Time) (feature.FeatureService, error)
	DeleteFeatureService(ctx context.Context, name string) error
}

// errNoServiceRegistry is the error of feature-service operations on a
// service built without a registry (a wiring bug, not a client error).
var errNoServiceRegistry = errors.New("service: no feature service registry (the store does not keep feature services)")

// services returns the in-memory copy of the feature services.
func (s *Service) services() map[string]feature.FeatureService {
	if m := s.svcRegistry.Load(); m != nil {
		return *m
	}
	return nil
}

// reloadServicesLocked re-reads the feature services; regMu is held.
func (s *Service) reloadServicesLocked(ctx context.Context) error {
	if s.fsReg == nil {
		return nil
	}
	list, err := s.fsReg.ListFeatureServices(ctx)
	if err != nil {
		return fmt.Errorf("load feature services: %w", err)
	}
	m := make(map[string]feature.FeatureService, len(list))
	for _, fs := range list {
		m[fs.Name] = fs
	}
	s.svcRegistry.Store(&m)
	return nil
}

// setService replaces one service of the in-memory copy (deletes it when
// fs is nil); regMu is held.
func (s *Service) setService(name string, fs *feature.FeatureService) {
	cur := s.services()
	next := make(map[string]feature.FeatureService, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	if fs == nil {
		delete(next, name)
	} else {
		next[name] = *fs
	}
	s.svcRegistry.Store(&next)
}

// featureService returns a service from the in-memory copy or, for one this
// replica has not seen yet, from the registry.
func (s *Service) featureService(ctx context.Context, name string) (feature.FeatureService, error) {
	if s.fsReg == nil {
		return feature.FeatureService{}, errNoServiceRegistry
	}
	if fs, ok := s.services()[name]; ok {
		return fs, nil
	}
	return s.fsReg.GetFeatureService(ctx, name)
}

// ListFeatureServices returns the feature services ordered by name.
func (s *Service) ListFeatureServices(ctx context.Context) (out []feature.FeatureService, err error) {
	start := s.now()
	defer func() { s.instrument(feature.OpListFeatureServices, "", start, err) }()
	if s.fsReg == nil {
		return nil, errNoServiceRegistry
	}
	reg := s.services()
	out = make([]feature.FeatureService, 0, len(reg))
	for _, fs := range reg {
		out = append(out, fs)
	}
	slices.SortFunc(out, func(a, b feature.FeatureService) int { return compareStrings(a.Name, b.Name) })
	return out, nil
}

// GetFeatureService returns one feature service.
func (s *Service) GetFeatureService(ctx context.Context, name string) (fs feature.FeatureService, err error) {
	start := s.now()
	defer func() { s.instrument(feature.OpGetFeatureService, "", start, err) }()
	return s.featureService(ctx, name)
}

// PutFeatureService creates or replaces a feature service after checking
// that every feature it references exists and that all of them share one
// entity key (a read is keyed by one). created reports a new service.
func (s *Service) PutFeatureService(ctx context.Context, fs feature.FeatureService) (out feature.FeatureService, created bool, err error) {
	start := s.now()
	defer func() { s.instrument(feature.OpPutFeatureService, "", start, err) }()
	if s.fsReg == nil {
		return out, false, errNoServiceRegistry
	}
	if err := fs.Validate(); err != nil {
		return out, false, err
	}
	s.regMu.Lock()
	defer s.regMu.Unlock()
	if err := checkServiceRefs(s.groups(), fs.Features); err != nil {
		return out, false, err
	}
	out, err = s.fsReg.PutFeatureService(ctx, fs, s.now())
	if err != nil {
		return out, false, err
	}
	s.setService(out.Name, &out)
	return out, out.SchemaVersion == 1, nil
}

// checkServiceRefs resolves a service's references against the registry:
// NotFound for a group or feature that does not exist, Invalid when the
// groups do not share one entity key.
func checkServiceRefs(reg map[string]feature.Group, refs []string) error {
	var (
		fields     []feature.FieldError
		missing    bool
		key, first string
	)
	for i, ref := range refs {
		field := fmt.Sprintf("features[%d]", i)
		gname, fname, _ := feature.ParseRef(ref)
		g, ok := reg[gname]
		switch {
		case !ok:
			fields, missing = append(fields, feature.FieldError{Field: field, Problem: "no such feature group " + quote(gname)}), true
		case !hasFeature(g, fname):
			fields, missing = append(fields, feature.FieldError{Field: field, Problem: "group " + gname + " has no feature " + quote(fname)}), true
		case key == "":
			key, first = g.EntityKey, gname
		case g.EntityKey != key:
			fields = append(fields, feature.FieldError{Field: field, Problem: "group " + gname + " is keyed by " + quote(g.EntityKey) +
				", group " + first + " by " + quote(key) + ": a feature service reads one entity key"})
		}
	}
	switch {
	case missing:
		return feature.NotFound("unknown feature reference", fields...)
	case len(fields) > 0:
		return feature.Invalid("invalid feature service", fields...)
	}
	return nil
}

func hasFeature(g feature.Group, name string) bool {
	_, ok := g.Feature(name)
	return ok
}

// DeleteFeatureService removes a feature service.
func (s *Service) DeleteFeatureService(ctx context.Context, name string) (err error) {
	start := s.now()
	defer func() { s.instrument(feature.OpDeleteFeatureService, "", start, err) }()
	if s.fsReg == nil {
		return errNoServiceRegistry
	}
	s.regMu.Lock()
	defer s.regMu.Unlock()
	if err := s.fsReg.DeleteFeatureService(ctx, name); err != nil {
		if feature.ErrorCode(err) == feature.CodeNotFound {
			s.setService(name, nil)
		}
		return err
	}
	s.setService(name, nil)
	return nil
}

// servicesDropping returns a Conflict error when replacing group cur with
// next would drop or retype a feature that feature services use (the
// registry is read afresh: another replica may have added a service);
// regMu is held.
func (s *Service) servicesDropping(ctx context.Context, next feature.Group) error {
	if s.fsReg == nil {
		return nil
	}
	list, err := s.fsReg.ListFeatureServices(ctx)
	if err != nil {
		return err
	}
	var fields []feature.FieldError
	for _, fs := range list {
		for _, ref := range fs.Features {
			g, f, _ := feature.ParseRef(ref)
			if g == next.Name && !hasFeature(next, f) {
				fields = append(fields, feature.FieldError{Field: "features",
					Problem: "feature " + quote(f) + " is used by feature service " + quote(fs.Name) + "; change or delete the service first"})
			}
		}
	}
	if len(fields) > 0 {
		return feature.Conflict("feature group "+quote(next.Name)+" would drop features that feature services use", fields...)
	}
	return nil
}

// requestedFeatures returns the feature references a read asks for: its
// list, or the named feature service's. field is the request field the
// references come from, for error messages.
func (s *Service) requestedFeatures(ctx context.Context, features []string, service string) (refs []string, field string, err error) {
	switch {
	case service != "" && len(features) > 0:
		return nil, "", feature.Invalid("give features or feature_service, not both",
			feature.FieldError{Field: "feature_service", Problem: "not allowed together with features"})
	case service != "":
		fs, err := s.featureService(ctx, service)
		if err != nil {
			return nil, "", err
		}
		return fs.Features, "feature_service.features", nil
	case len(features) == 0:
		return nil, "", feature.Invalid("no features requested",
			feature.FieldError{Field: "features", Problem: "at least one feature reference group:feature (or a feature_service) is required"})
	}
	return features, "features", nil
}

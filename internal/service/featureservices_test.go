package service

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store"
	"github.com/featurestore/featurestore/internal/tmdb"
)

func wantErr(t *testing.T, what string, err error, code feature.Code, field string) {
	t.Helper()
	var fe *feature.Error
	if !errors.As(err, &fe) || fe.Code != code {
		t.Errorf("%s: error %v, want code %s", what, err, code)
		return
	}
	if field != "" && (len(fe.Fields) == 0 || fe.Fields[0].Field != field) {
		t.Errorf("%s: fields %+v, want the first on %s", what, fe.Fields, field)
	}
}

// TestFeatureServices: the registry's validation and versioning, reads
// through a service (online and historical) answering as the list would,
// and the conflicts that keep a service's features in existence.
func TestFeatureServices(t *testing.T) {
	t.Parallel()
	forEachSOR(t, func(t *testing.T, st store.Store, sor systemOfRecord) {
		ctx := context.Background()
		c := newClock()
		s := newHistoryService(t, st, sor, c, Options{})
		putUserGroup(t, s)
		if _, err := s.Ingest(ctx, realMovies(t)[:5]); err != nil {
			t.Fatal(err)
		}
		refs := []string{"movie_text:title_length", "movie_basic:popularity", "movie_temporal:release_year"}
		v1, created, err := s.PutFeatureService(ctx, feature.FeatureService{Name: "ranker", Features: refs, Description: "ranking model"})
		if err != nil || !created || v1.SchemaVersion != 1 || !v1.CreatedAt.Equal(t0) {
			t.Fatalf("PutFeatureService = %+v, created %v, %v", v1, created, err)
		}
		c.Advance(time.Minute)
		v2, created, err := s.PutFeatureService(ctx, feature.FeatureService{Name: "ranker", Features: refs, Description: "ranking model v2"})
		if err != nil || created || v2.SchemaVersion != 2 || !v2.CreatedAt.Equal(t0) || !v2.UpdatedAt.Equal(t0.Add(time.Minute)) {
			t.Fatalf("replace: %+v, created %v, %v", v2, created, err)
		}
		if got, err := s.GetFeatureService(ctx, "ranker"); err != nil || !cmp.Equal(v2, got) {
			t.Errorf("GetFeatureService = %+v, %v; want %+v", got, err, v2)
		}

		for _, tc := range []struct {
			name  string
			fs    feature.FeatureService
			code  feature.Code
			field string
		}{
			{"unknown feature", feature.FeatureService{Name: "x", Features: []string{"movie_basic:popularity", "movie_basic:nope"}}, feature.CodeNotFound, "features[1]"},
			{"unknown group", feature.FeatureService{Name: "x", Features: []string{"nope:popularity"}}, feature.CodeNotFound, "features[0]"},
			{"two entity keys", feature.FeatureService{Name: "x", Features: []string{"movie_basic:popularity", "user_profile:age"}}, feature.CodeInvalid, "features[1]"},
			{"bad name", feature.FeatureService{Name: "X-1", Features: []string{"movie_basic:popularity"}}, feature.CodeInvalid, "name"},
			{"duplicate", feature.FeatureService{Name: "x", Features: []string{"movie_basic:popularity", "movie_basic:popularity"}}, feature.CodeInvalid, "features[1]"},
		} {
			_, _, err := s.PutFeatureService(ctx, tc.fs)
			wantErr(t, tc.name, err, tc.code, tc.field)
		}
		if list, err := s.ListFeatureServices(ctx); err != nil || len(list) != 1 {
			t.Errorf("ListFeatureServices = %v, %v; want only ranker", list, err)
		}

		// Online: the service reads exactly what its list reads.
		ents := map[string][]any{"movie_id": {json.Number("552524"), json.Number("1")}}
		byList, err := s.GetOnlineFeatures(ctx, OnlineRequest{Entities: ents, Features: refs, FullFeatureNames: true})
		if err != nil {
			t.Fatal(err)
		}
		bySvc, err := s.GetOnlineFeatures(ctx, OnlineRequest{Entities: ents, FeatureService: ptr("ranker"), FullFeatureNames: true})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(byList, bySvc); diff != "" {
			t.Errorf("online by service (-list +service):\n%s", diff)
		}
		_, err = s.GetOnlineFeatures(ctx, OnlineRequest{Entities: ents, Features: refs, FeatureService: ptr("ranker")})
		wantErr(t, "online with both", err, feature.CodeInvalid, "feature_service")
		_, err = s.GetOnlineFeatures(ctx, OnlineRequest{Entities: ents, FeatureService: ptr("nope")})
		wantErr(t, "online with an unknown service", err, feature.CodeNotFound, "feature_service")

		// Historical: the same.
		hents := map[string][]any{"movie_id": {json.Number("552524")}, "event_timestamp": {t0.Format(time.RFC3339)}}
		listSink, _ := historical(t, s, HistoricalRequest{Entities: hents, Features: refs})
		svcSink, _ := historical(t, s, HistoricalRequest{Entities: hents, FeatureService: "ranker"})
		if diff := cmp.Diff(listSink.rows, svcSink.rows); diff != "" || len(svcSink.rows) != 1 || svcSink.rows[0][2] == nil {
			t.Errorf("historical by service (-list +service):\n%s", diff)
		}

		// A group a service uses cannot be deleted, nor lose a feature the
		// service reads; the service can.
		if _, _, err := s.PutFeatureService(ctx, feature.FeatureService{Name: "profile", Features: []string{"user_profile:age"}}); err != nil {
			t.Fatal(err)
		}
		err = s.DeleteGroup(ctx, "user_profile")
		wantErr(t, "delete a used group", err, feature.CodeConflict, "group")
		if err == nil || !strings.Contains(err.Error(), `"profile"`) {
			t.Errorf("conflict %v does not name the service", err)
		}
		g, _ := s.GetGroup(ctx, "user_profile")
		g.Features = withoutFeature(g.Features, "age")
		_, _, err = s.PutGroup(ctx, g)
		wantErr(t, "drop a used feature", err, feature.CodeConflict, "features")
		g.Features = withoutFeature(g.Features, "score") // unused: fine
		if _, _, err := s.PutGroup(ctx, withFeature(g, "age")); err != nil {
			t.Errorf("drop an unused feature: %v", err)
		}
		if err := s.DeleteFeatureService(ctx, "profile"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteGroup(ctx, "user_profile"); err != nil {
			t.Errorf("delete once unused: %v", err)
		}
		wantErr(t, "delete again", s.DeleteFeatureService(ctx, "profile"), feature.CodeNotFound, "feature_service")
		_, err = s.GetFeatureService(ctx, "profile")
		wantErr(t, "get deleted", err, feature.CodeNotFound, "feature_service")

		// Another replica sees a service created here at once, and after a
		// refresh lists it.
		other := newHistoryService(t, st, sor, c, Options{})
		if _, _, err := s.PutFeatureService(ctx, feature.FeatureService{Name: "late", Features: []string{tmdb.GroupBasic + ":adult"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := other.GetOnlineFeatures(ctx, OnlineRequest{Entities: ents, FeatureService: ptr("late")}); err != nil {
			t.Errorf("the other replica cannot read through a new service: %v", err)
		}
		other.Refresh(ctx)
		if list, _ := other.ListFeatureServices(ctx); len(list) != 2 || list[0].Name != "late" || list[1].Name != "ranker" {
			t.Errorf("other replica lists %v after a refresh", list)
		}
	})
}

func withoutFeature(specs []feature.Spec, name string) []feature.Spec {
	var out []feature.Spec
	for _, s := range specs {
		if s.Name != name {
			out = append(out, s)
		}
	}
	return out
}

func withFeature(g feature.Group, name string) feature.Group {
	g.Features = append(g.Features, feature.Spec{Name: name, Type: feature.Int64})
	return g
}

// TestNoServiceRegistry: a service over a store without a registry says so
// instead of pretending there are no services.
func TestNoServiceRegistry(t *testing.T) {
	t.Parallel()
	st, _ := openSOR(t, "embedded")
	s := newService(t, st, newClock(), Options{})
	if _, err := s.ListFeatureServices(context.Background()); !errors.Is(err, errNoServiceRegistry) {
		t.Errorf("ListFeatureServices = %v", err)
	}
	_, err := s.GetOnlineFeatures(context.Background(), OnlineRequest{Entities: map[string][]any{"movie_id": {json.Number("1")}}, FeatureService: ptr("x")})
	if !errors.Is(err, errNoServiceRegistry) {
		t.Errorf("GetOnlineFeatures by service = %v", err)
	}
	_, err = s.GetHistoricalFeatures(context.Background(), HistoricalRequest{}, &tableSink{})
	if err == nil || !strings.Contains(err.Error(), "history") {
		t.Errorf("GetHistoricalFeatures without a history reader = %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

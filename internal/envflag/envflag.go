// Package envflag declares command-line flags whose defaults come from
// FEATURESTORE_* environment variables (read through an injected getenv),
// so a flag wins over the environment and --help names the variable. The
// service's configuration and the verify command share it.
package envflag

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Name is the environment variable of a flag: FEATURESTORE_ and the flag
// name upper-cased with dashes as underscores.
func Name(flagName string) string {
	return "FEATURESTORE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Set declares flags on a flag.FlagSet with environment defaults.
type Set struct {
	fs     *flag.FlagSet
	getenv func(string) string
	errs   []error
}

// New returns a Set declaring on fs and reading the environment through getenv.
func New(fs *flag.FlagSet, getenv func(string) string) *Set {
	return &Set{fs: fs, getenv: getenv}
}

// String declares a string flag.
func (s *Set) String(p *string, name, def, usage string) {
	env := Name(name)
	if v := s.getenv(env); v != "" {
		def = v
	}
	s.fs.StringVar(p, name, def, usage+" ("+env+")")
}

// Secret declares a string flag holding a credential (a password, or a URL
// with one): --help shows its default through mask, never in clear.
func (s *Set) Secret(p *string, name, usage string, mask func(string) string) {
	env := Name(name)
	*p = s.getenv(env)
	s.fs.Var(secret{p, mask}, name, usage+" ("+env+")")
}

// Duration declares a duration flag; a malformed environment value is
// reported by Err.
func (s *Set) Duration(p *time.Duration, name string, def time.Duration, usage string) {
	env := Name(name)
	if v := s.getenv(env); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("%s=%q: %v", env, v, err))
		} else {
			def = d
		}
	}
	s.fs.DurationVar(p, name, def, usage+" ("+env+")")
}

// Int64 declares an integer flag; a malformed environment value is
// reported by Err.
func (s *Set) Int64(p *int64, name string, def int64, usage string) {
	env := Name(name)
	if v := s.getenv(env); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("%s=%q: not an integer", env, v))
		} else {
			def = n
		}
	}
	s.fs.Int64Var(p, name, def, usage+" ("+env+")")
}

// Err reports every malformed environment value, or nil.
func (s *Set) Err() error {
	if len(s.errs) == 0 {
		return nil
	}
	return fmt.Errorf("invalid environment: %w", errors.Join(s.errs...))
}

// secret is the flag.Value of Secret: String, which flag uses for --help,
// masks the value.
type secret struct {
	p    *string
	mask func(string) string
}

func (s secret) String() string {
	if s.p == nil || *s.p == "" {
		return ""
	}
	return s.mask(*s.p)
}

func (s secret) Set(v string) error {
	*s.p = v
	return nil
}

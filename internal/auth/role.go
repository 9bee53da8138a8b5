// Package auth decides who a request comes from and what it may do. A
// caller presents a bearer token: either an opaque token listed, by its
// SHA-256 digest, in a token file, or a JWT signed by an identity provider.
// Each identity has one role; the roles are ordered, each one granting what
// the one below grants and more:
//
//	reader  every read (entities, online features, the registry, stats, /health details)
//	writer  reader + ingest and row writes
//	admin   writer + registry changes, deletes and recomputes
//
// The route table (internal/httpapi) says which role each route needs.
package auth

import (
	"fmt"
	"strings"
)

// Role is what an identity may do. Roles are ordered: a role allows every
// route that needs it or a lower one.
type Role int

// The roles, lowest first. Anyone is no role at all: an anonymous caller
// has it, and a route that needs it is public.
const (
	Anyone Role = iota
	Reader
	Writer
	Admin
)

// Roles are the roles an identity can be given, lowest first.
func Roles() []Role { return []Role{Reader, Writer, Admin} }

func (r Role) String() string {
	switch r {
	case Anyone:
		return "anyone"
	case Reader:
		return "reader"
	case Writer:
		return "writer"
	case Admin:
		return "admin"
	}
	return fmt.Sprintf("Role(%d)", int(r))
}

// Allows reports whether an identity with role r may use a route that
// needs role need.
func (r Role) Allows(need Role) bool { return r >= need }

// ParseRole parses reader, writer or admin (case-insensitive).
func ParseRole(s string) (Role, error) {
	for _, r := range Roles() {
		if strings.EqualFold(s, r.String()) {
			return r, nil
		}
	}
	return Anyone, fmt.Errorf("unknown role %q (want reader, writer or admin)", s)
}

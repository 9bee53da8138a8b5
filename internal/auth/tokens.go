package auth

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// TokenSet is the content of a token file: named tokens with a role, each
// kept as the SHA-256 digest of the token, never the token itself.
type TokenSet struct {
	entries []tokenEntry
}

type tokenEntry struct {
	name string
	role Role
	sum  [sha256.Size]byte
}

// tokenFile is the YAML shape of a token file:
//
//	tokens:
//	  - {name: ci-ingest, role: writer, sha256: <hex SHA-256 of the token>}
type tokenFile struct {
	Tokens []struct {
		Name   string `yaml:"name"`
		Role   string `yaml:"role"`
		SHA256 string `yaml:"sha256"`
	} `yaml:"tokens"`
}

// tokenName is a token's name: it is a metric label value and a log field.
var tokenName = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)

// emptySum is the digest of the empty string: a token file listing it
// holds a mistake (the digest of an empty variable), not a token.
var emptySum = sha256.Sum256(nil)

// ParseTokenFile parses and checks a token file. Unknown keys, a missing
// or malformed field, a duplicate name or digest, and a reserved name
// (anonymous, invalid, jwt) are errors naming the entry. An empty list is
// valid: no token is accepted.
func ParseTokenFile(data []byte) (*TokenSet, error) {
	var f tokenFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("not a token file (tokens: [{name, role, sha256}]): %w", err)
	}
	set := &TokenSet{}
	var problems []string
	names := map[string]bool{}
	sums := map[[sha256.Size]byte]string{}
	for i, t := range f.Tokens {
		at := fmt.Sprintf("tokens[%d]", i)
		if t.Name != "" {
			at += " (" + t.Name + ")"
		}
		e, errs := parseEntry(t.Name, t.Role, t.SHA256)
		if e.name != "" && names[e.name] {
			errs = append(errs, "name is used twice")
		}
		if other, dup := sums[e.sum]; dup && len(errs) == 0 {
			errs = append(errs, "same sha256 as "+other+": one token cannot have two names")
		}
		if len(errs) > 0 {
			problems = append(problems, at+": "+strings.Join(errs, ", "))
			continue
		}
		names[e.name], sums[e.sum] = true, e.name
		set.entries = append(set.entries, e)
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	return set, nil
}

func parseEntry(name, role, sum string) (tokenEntry, []string) {
	var e tokenEntry
	var errs []string
	switch {
	case !tokenName.MatchString(name):
		errs = append(errs, "name must match "+tokenName.String())
	case name == LabelAnonymous || name == LabelInvalid || name == LabelJWT:
		errs = append(errs, "name "+name+" is reserved")
	default:
		e.name = name
	}
	r, err := ParseRole(role)
	if err != nil {
		errs = append(errs, err.Error())
	}
	e.role = r
	b, err := hex.DecodeString(sum)
	switch {
	case err != nil || len(b) != sha256.Size:
		errs = append(errs, "sha256 must be 64 hex digits (printf %s \"$TOKEN\" | sha256sum)")
	case [sha256.Size]byte(b) == emptySum:
		errs = append(errs, "sha256 is the digest of an empty token")
	default:
		e.sum = [sha256.Size]byte(b)
	}
	return e, errs
}

// Lookup finds the token. It hashes the token and compares the digest with
// every entry in constant time, so neither the answer's timing nor an early
// exit tells how much of a digest matched.
func (s *TokenSet) Lookup(token string) (Principal, bool) {
	sum := sha256.Sum256([]byte(token))
	found := -1
	for i := range s.entries {
		if subtle.ConstantTimeCompare(sum[:], s.entries[i].sum[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Principal{}, false
	}
	e := s.entries[found]
	return Principal{Name: e.name, Label: e.name, Role: e.role}, true
}

// Names are the token names, sorted.
func (s *TokenSet) Names() []string {
	out := make([]string, len(s.entries))
	for i, e := range s.entries {
		out[i] = e.name
	}
	slices.Sort(out)
	return out
}

// Len is the number of tokens.
func (s *TokenSet) Len() int { return len(s.entries) }

// TokenPrefix starts every token NewToken makes, so secret scanners and
// people can tell one apart.
const TokenPrefix = "fst_"

// NewToken makes a token of 256 random bits and its token file entry.
func NewToken(name string, role Role) (token, entry string, err error) {
	if _, errs := parseEntry(name, role.String(), strings.Repeat("0", 64)); len(errs) > 0 {
		return "", "", fmt.Errorf("token %s: %s", name, strings.Join(errs, ", "))
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", err
	}
	token = TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	sum := sha256.Sum256([]byte(token))
	entry = fmt.Sprintf("  - {name: %s, role: %s, sha256: %s}", name, role, hex.EncodeToString(sum[:]))
	return token, entry, nil
}

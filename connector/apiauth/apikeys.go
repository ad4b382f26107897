package apiauth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// APIKey is one key the connector accepts. Only the key's SHA-256 is kept, so a leaked configuration does
// not leak the keys; a key is rotated by adding the new hash under a new name, moving callers over, and
// removing the old entry.
type APIKey struct {
	Name  string // shows in logs and as the principal "key:<name>"
	Hash  string // "sha256:" and 64 hex digits, as HashKey returns
	Roles []Role
}

const hashPrefix = "sha256:"

// HashKey returns the value to store in APIKey.Hash for key: "sha256:" and the hex SHA-256 of key. Keys are
// long random strings, so a fast unsalted hash is enough; it is not a password hash.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hashPrefix + hex.EncodeToString(sum[:])
}

// ParseAPIKeys reads keys from a comma-separated spec of "name=role[+role]=sha256:<hex>" entries, the form
// they take in an environment variable. Roles are reader or operator (any case), or the Role values
// themselves. An empty spec means no keys. Every problem in the spec is reported in one error, each naming
// its entry by position and name; errors show no more of a hash than its first 8 hex digits, and nothing of
// a value that might be a key pasted in the wrong place.
func ParseAPIKeys(spec string) ([]APIKey, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, nil
	}
	var (
		entries []keyEntry
		errs    []error
		checker = newKeyChecker()
	)
	for i, raw := range strings.Split(spec, ",") {
		pos := i + 1
		parts := strings.Split(raw, "=")
		if len(parts) != 3 {
			if strings.TrimSpace(raw) == "" {
				errs = append(errs, fmt.Errorf("entry %d is empty", pos))
			} else {
				// Not even the name is shown: a malformed entry may be a bare key.
				errs = append(errs, fmt.Errorf("entry %d: want name=role[+role]=sha256:<hex>, got %d part(s) separated by '='", pos, len(parts)))
			}
			continue
		}
		k := APIKey{Name: strings.TrimSpace(parts[0]), Hash: strings.TrimSpace(parts[2])}
		for word := range strings.SplitSeq(parts[1], "+") {
			k.Roles = append(k.Roles, roleFromWord(strings.TrimSpace(word)))
		}
		e := keyEntry{pos: pos, key: k}
		errs = append(errs, checker.check(e)...)
		entries = append(entries, e)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("apiauth: API keys: %w", err)
	}
	keys := make([]APIKey, len(entries))
	for i, e := range entries {
		sum, _ := parseHash(e.key.Hash) // checked above
		keys[i] = APIKey{Name: e.key.Name, Hash: hashPrefix + hex.EncodeToString(sum[:]), Roles: knownRoles(e.key.Roles)}
	}
	return keys, nil
}

// roleFromWord maps the short words of a key spec onto roles; anything else is kept as given, for
// keyChecker to report.
func roleFromWord(w string) Role {
	switch {
	case strings.EqualFold(w, "reader"), strings.EqualFold(w, string(RoleReader)):
		return RoleReader
	case strings.EqualFold(w, "operator"), strings.EqualFold(w, string(RoleOperator)):
		return RoleOperator
	}
	return Role(w)
}

// keyEntry is a key with its 1-based position in the spec or in Config.Keys, for error messages.
type keyEntry struct {
	pos int
	key APIKey
}

// keyChecker finds the problems of keys one by one: bad names, hashes and roles, and names or hashes
// already used by an earlier key.
type keyChecker struct {
	names  map[string]int
	hashes map[[sha256.Size]byte]keyEntry
}

func newKeyChecker() *keyChecker {
	return &keyChecker{names: make(map[string]int), hashes: make(map[[sha256.Size]byte]keyEntry)}
}

func (c *keyChecker) check(e keyEntry) []error {
	var errs []error
	label := entryLabel(e.pos, e.key.Name)
	if !validKeyName(e.key.Name) {
		errs = append(errs, fmt.Errorf("%s: name must be 1 to 64 letters, digits, '.', '_' or '-'", label))
	} else if first, dup := c.names[e.key.Name]; dup {
		errs = append(errs, fmt.Errorf("%s: name %q is already used by entry %d", label, e.key.Name, first))
	} else {
		c.names[e.key.Name] = e.pos
	}
	if sum, ok := parseHash(e.key.Hash); !ok {
		errs = append(errs, fmt.Errorf("%s: hash must be %q and 64 hex digits (HashKey of the key, never the key itself); got %d characters", label, hashPrefix, len(e.key.Hash)))
	} else if first, dup := c.hashes[sum]; dup {
		errs = append(errs, fmt.Errorf("%s: hash %s%x… is already used by %s; every key must be different", label, hashPrefix, sum[:4], entryLabel(first.pos, first.key.Name)))
	} else {
		c.hashes[sum] = e
	}
	if len(e.key.Roles) == 0 {
		errs = append(errs, fmt.Errorf("%s: no roles; give reader, operator or reader+operator", label))
	}
	for _, r := range e.key.Roles {
		if r == RoleReader || r == RoleOperator {
			continue
		}
		if len(r) <= 20 && validKeyName(string(r)) {
			errs = append(errs, fmt.Errorf("%s: unknown role %q; want reader or operator", label, r))
		} else {
			errs = append(errs, fmt.Errorf("%s: unknown role of %d characters; want reader or operator", label, len(r)))
		}
	}
	return errs
}

// entryLabel names an entry in errors: its position, and its name when the name is well formed (a
// malformed one may be a key in the wrong place, which must not be echoed).
func entryLabel(pos int, name string) string {
	if validKeyName(name) {
		return fmt.Sprintf("entry %d (%s)", pos, name)
	}
	return fmt.Sprintf("entry %d", pos)
}

func validKeyName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

// parseHash decodes a stored hash: "sha256:" (any case) and 64 hex digits.
func parseHash(s string) (sum [sha256.Size]byte, ok bool) {
	if len(s) != len(hashPrefix)+hex.EncodedLen(sha256.Size) || !strings.EqualFold(s[:len(hashPrefix)], hashPrefix) {
		return sum, false
	}
	_, err := hex.Decode(sum[:], []byte(s[len(hashPrefix):]))
	return sum, err == nil
}

// knownRoles returns the recognised roles of rs, each once, in the order given.
func knownRoles(rs []Role) []Role {
	var out []Role
	for _, r := range rs {
		if (r == RoleReader || r == RoleOperator) && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

// storedKey is an accepted key ready for comparison.
type storedKey struct {
	name  string
	sum   [sha256.Size]byte
	roles []Role
}

func compileKeys(keys []APIKey) []storedKey {
	out := make([]storedKey, len(keys))
	for i, k := range keys {
		sum, _ := parseHash(k.Hash) // checked by New
		out[i] = storedKey{name: k.Name, sum: sum, roles: knownRoles(k.Roles)}
	}
	return out
}

// authenticateKey finds the key whose hash is the presented key's. Every stored hash is compared, in
// constant time, whatever matched before, so the time taken says nothing about which key nearly matched.
func (a *Authenticator) authenticateKey(presented string) (Principal, error) {
	sum := sha256.Sum256([]byte(presented))
	match := -1
	for i := range a.keys {
		eq := subtle.ConstantTimeCompare(sum[:], a.keys[i].sum[:])
		match = subtle.ConstantTimeSelect(eq, i, match)
	}
	if match < 0 {
		return Principal{}, apiKeyError(a.keyHeader, fmt.Sprintf("The key in the %s header is not one this connector accepts. Check the connection's API key; if the key was rotated, update the connection with the new key.", a.keyHeader))
	}
	k := a.keys[match]
	return Principal{
		ID:    "key:" + k.name,
		Kind:  KindAPIKey,
		Name:  k.name,
		Roles: append([]Role(nil), k.roles...),
	}, nil
}

package atlassian

import (
	"errors"
	"regexp"
	"strings"
)

// orderByWord finds an ORDER BY outside string literals (see CheckFilter).
var orderByWord = regexp.MustCompile(`(?i)(^|[^a-z0-9_])order\s+by([^a-z0-9_]|$)`)

// ErrFilter is why a scope filter cannot be ANDed onto a query.
var ErrFilter = errors.New("filter must be a condition with balanced parentheses and quotes, without ORDER BY")

// CheckFilter checks that a Connection's spec.scope.filter, a JQL or CQL clause, is a
// condition that stays inside the parentheses it is put in: its string literals ("…" or
// '…', with backslash escapes, in both languages) end, its parentheses balance, and it
// has no ORDER BY. Without this, a filter such as `x) OR (y` would widen a query beyond
// the containers in scope, or past the filter itself. The vendor checks the rest. It
// returns ErrFilter.
func CheckFilter(filter string) error {
	var outside strings.Builder // the filter with string literals blanked
	depth := 0
	for i := 0; i < len(filter); i++ {
		c := filter[i]
		switch c {
		case '"', '\'':
			end := -1
			for k := i + 1; k < len(filter); k++ {
				if filter[k] == '\\' {
					k++
					continue
				}
				if filter[k] == c {
					end = k
					break
				}
			}
			if end < 0 {
				return ErrFilter
			}
			outside.WriteString(` "" `)
			i = end
			continue
		case '(':
			depth++
		case ')':
			if depth--; depth < 0 {
				return ErrFilter
			}
		}
		outside.WriteByte(c)
	}
	if depth != 0 || orderByWord.MatchString(outside.String()) {
		return ErrFilter
	}
	return nil
}

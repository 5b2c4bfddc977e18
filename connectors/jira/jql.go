package jira

import (
	"errors"
	"regexp"
	"strconv"
	"strings"
)

// quote returns s as a JQL string literal. Whatever s holds, the result is one value:
// quotes and backslashes are escaped, control characters spelled as escapes, and
// invalid UTF-8 replaced, so that text a user typed can never end the literal and add
// clauses of its own (JQL injection).
func quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for _, r := range s { // an invalid byte ranges as utf8.RuneError, written as U+FFFD
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029':
			b.WriteString(`\u`)
			h := strconv.FormatInt(int64(r), 16)
			b.WriteString(strings.Repeat("0", 4-len(h)) + h)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// projectClause restricts a query to the projects with keys.
func projectClause(keys []string) string {
	if len(keys) == 1 {
		return "project = " + quote(keys[0])
	}
	quoted := make([]string, len(keys))
	for i, k := range keys {
		quoted[i] = quote(k)
	}
	return "project in (" + strings.Join(quoted, ", ") + ")"
}

// orderByWord finds an ORDER BY outside string literals (see checkFilter).
var orderByWord = regexp.MustCompile(`(?i)(^|[^a-z0-9_])order\s+by([^a-z0-9_]|$)`)

// errFilter is why a scope filter cannot be ANDed onto a query.
var errFilter = errors.New("filter must be a JQL condition with balanced parentheses and quotes, without ORDER BY")

// checkFilter checks that a Connection's spec.scope.filter is a condition that stays
// inside the parentheses it is put in: its string literals end, its parentheses
// balance, and it has no ORDER BY. Without this, a filter such as `x) OR (y` would
// widen the query beyond the containers in scope. Jira checks the rest.
func checkFilter(filter string) error {
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
				return errFilter
			}
			outside.WriteString(` "" `)
			i = end
			continue
		case '(':
			depth++
		case ')':
			if depth--; depth < 0 {
				return errFilter
			}
		}
		outside.WriteByte(c)
	}
	if depth != 0 || orderByWord.MatchString(outside.String()) {
		return errFilter
	}
	return nil
}

// issueIDPattern matches an issue id; issueKeyPattern an issue key (Data Center allows
// a wider project key syntax than Cloud's capitals).
var (
	issueIDPattern  = regexp.MustCompile(`^[0-9]{1,18}$`)
	issueKeyPattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,254}-[0-9]{1,18}$`)
)

func isIssueID(s string) bool { return issueIDPattern.MatchString(s) }

// isIssueRef reports whether s is an issue id or key, and so safe as a path segment.
func isIssueRef(s string) bool { return isIssueID(s) || issueKeyPattern.MatchString(s) }

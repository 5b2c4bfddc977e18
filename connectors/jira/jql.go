package jira

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/unified-connectors/connector-operator/connectors/atlassian"
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

// checkFilter checks that a Connection's spec.scope.filter is a condition that stays
// inside the parentheses it is put in (see atlassian.CheckFilter): without this, a
// filter such as `x) OR (y` would widen the query beyond the projects in scope.
func checkFilter(filter string) error { return atlassian.CheckFilter(filter) }

// issueIDPattern matches an issue id; issueKeyPattern an issue key (Data Center allows
// a wider project key syntax than Cloud's capitals).
var (
	issueIDPattern  = regexp.MustCompile(`^[0-9]{1,18}$`)
	issueKeyPattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,254}-[0-9]{1,18}$`)
)

func isIssueID(s string) bool { return issueIDPattern.MatchString(s) }

// isIssueRef reports whether s is an issue id or key, and so safe as a path segment.
func isIssueRef(s string) bool { return isIssueID(s) || issueKeyPattern.MatchString(s) }

package atlassiantest

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// The fake understands this subset of JQL, enough for what the connectors send and for
// scope filters in tests (keywords and field names are case-insensitive):
//
//	query    := [expr] [ORDER BY sort {, sort}]
//	expr     := and {OR and}
//	and      := unary {AND unary}
//	unary    := NOT unary | ( expr ) | clause
//	clause   := field op value | field [NOT] IN ( value {, value} )
//	sort     := field [ASC|DESC]
//
//	project                    =  != IN  NOT IN     key, id or name
//	key, issuekey, id, issue   =  != IN  NOT IN     existing issue key or id
//	                           <  <= >   >=         issue id (numbers) or number within the key's project
//	updated, created           =  != <   <= > >=    epoch milliseconds (exact), or a date string
//	                                                "yyyy/MM/dd HH:mm", "yyyy-MM-dd HH:mm", "yyyy/MM/dd",
//	                                                "yyyy-MM-dd" read in the CALLER's time zone with
//	                                                minute precision, or a relative "-2d" (w, d, h, m)
//	text                       ~  !~                summary, description and comments
//	summary, description,      ~  !~                that field
//	comment
//	issuetype, type            =  != IN  NOT IN     Task, Bug, Story
//	reporter, creator          =  != IN  NOT IN     account id
//
// "~" is a case-insensitive substring match (Jira's is a word search; the connectors do
// not depend on the difference). A query without a clause before ORDER BY is unbounded,
// which Jira Cloud's search/jql refuses. Anything else is a syntax error, answered 400
// with Jira's errorMessages body.

// jqlError is a query Jira would refuse with 400; its message is Jira's wording.
type jqlError struct{ msg string }

func (e *jqlError) Error() string { return e.msg }

func jqlErrorf(format string, args ...any) error { return &jqlError{msg: fmt.Sprintf(format, args...)} }

// jqlTokenKind classifies a token.
type jqlTokenKind int

const (
	jqlEOF jqlTokenKind = iota
	jqlWord
	jqlString // quoted; text is unescaped
	jqlOp     // = != ~ !~ < <= > >=
	jqlPunct  // ( ) ,
)

type jqlToken struct {
	kind jqlTokenKind
	text string
	pos  int // 1-based character position, for messages
}

// jqlReserved are the characters that end an unquoted word.
const jqlReserved = `()=,!~<>"'`

// jqlLex splits a query into tokens.
func jqlLex(q string) ([]jqlToken, error) {
	var toks []jqlToken
	pos := 0 // characters consumed, for positions
	for i := 0; i < len(q); {
		r, size := utf8.DecodeRuneInString(q[i:])
		start := pos + 1
		switch {
		case unicode.IsSpace(r):
			i += size
			pos++
		case r == '(' || r == ')' || r == ',':
			toks = append(toks, jqlToken{jqlPunct, string(r), start})
			i++
			pos++
		case r == '=' || r == '~':
			toks = append(toks, jqlToken{jqlOp, string(r), start})
			i++
			pos++
		case r == '!' || r == '<' || r == '>':
			op := string(r)
			if i+1 < len(q) && (q[i+1] == '=' || (r == '!' && q[i+1] == '~')) {
				op += string(q[i+1])
			}
			if op == "!" {
				return nil, jqlErrorf("Error in the JQL Query: The character '!' is a reserved JQL character. You must enclose it in a string or use the escape '\\u0021' instead. (line 1, character %d)", start)
			}
			toks = append(toks, jqlToken{jqlOp, op, start})
			i += len(op)
			pos += len(op)
		case r == '"' || r == '\'':
			text, n, chars, err := jqlUnquote(q[i:], start)
			if err != nil {
				return nil, err
			}
			toks = append(toks, jqlToken{jqlString, text, start})
			i += n
			pos += chars
		default:
			j := i
			for j < len(q) {
				r2, s2 := utf8.DecodeRuneInString(q[j:])
				if unicode.IsSpace(r2) || strings.ContainsRune(jqlReserved, r2) {
					break
				}
				j += s2
				pos++
			}
			toks = append(toks, jqlToken{jqlWord, q[i:j], start})
			i = j
		}
	}
	return append(toks, jqlToken{kind: jqlEOF, pos: pos + 1}), nil
}

// jqlUnquote reads the string literal at the start of s (quoted with " or '), with JQL's
// escapes: \" \' \\ \n \r \t, "\ " and \uXXXX. It returns the text, the bytes and the
// characters consumed.
func jqlUnquote(s string, start int) (text string, n, chars int, err error) {
	quote := s[0]
	var b strings.Builder
	chars = 1
	for i := 1; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		chars++
		switch {
		case r == rune(quote):
			return b.String(), i + 1, chars, nil
		case r == '\\':
			if i+1 >= len(s) {
				return "", 0, 0, jqlErrorf("Error in the JQL Query: The quoted string has not been completed. (line 1, character %d)", start)
			}
			chars++
			switch e := s[i+1]; e {
			case '"', '\'', '\\', ' ':
				b.WriteByte(e)
				i += 2
			case 'n':
				b.WriteByte('\n')
				i += 2
			case 'r':
				b.WriteByte('\r')
				i += 2
			case 't':
				b.WriteByte('\t')
				i += 2
			case 'u':
				if i+6 > len(s) {
					return "", 0, 0, jqlErrorf("Error in the JQL Query: Illegal Unicode escape (line 1, character %d)", start)
				}
				v, perr := strconv.ParseUint(s[i+2:i+6], 16, 16)
				if perr != nil {
					return "", 0, 0, jqlErrorf("Error in the JQL Query: Illegal Unicode escape (line 1, character %d)", start)
				}
				b.WriteRune(rune(v))
				i += 6
				chars += 4
			default:
				return "", 0, 0, jqlErrorf("Error in the JQL Query: Illegal escape sequence '\\%c' (line 1, character %d)", e, start)
			}
		default:
			b.WriteString(s[i : i+size])
			i += size
		}
	}
	return "", 0, 0, jqlErrorf("Error in the JQL Query: The quoted string has not been completed. (line 1, character %d)", start)
}

// jqlEnv is what a query is compiled against: the site (read under its lock), the
// caller's time zone, and the time "now" for relative dates.
type jqlEnv struct {
	site *jiraSite
	loc  *time.Location
	now  time.Time
}

// jqlPred decides whether an issue matches.
type jqlPred func(*jiraIssue) bool

// jqlSort is one ORDER BY term.
type jqlSort struct {
	field string
	desc  bool
}

// jqlQuery is a compiled query. where is nil for an unbounded query.
type jqlQuery struct {
	where jqlPred
	order []jqlSort
}

// jqlParser is a recursive-descent parser over the tokens of one query.
type jqlParser struct {
	toks  []jqlToken
	i     int
	env   *jqlEnv
	depth int
}

// maxJQLDepth bounds parenthesis and NOT nesting, as Jira bounds query complexity.
const maxJQLDepth = 50

// parseJQL compiles q against env. Call it with env.site's lock held.
func parseJQL(q string, env *jqlEnv) (*jqlQuery, error) {
	toks, err := jqlLex(q)
	if err != nil {
		return nil, err
	}
	p := &jqlParser{toks: toks, env: env}
	out := &jqlQuery{}
	if !p.atKeyword("order") && p.peek().kind != jqlEOF {
		if out.where, err = p.or(); err != nil {
			return nil, err
		}
	}
	if p.atKeyword("order") {
		p.next()
		if !p.atKeyword("by") {
			return nil, p.unexpected("'by'")
		}
		p.next()
		for {
			t := p.next()
			if t.kind != jqlWord && t.kind != jqlString {
				return nil, jqlErrorf("Error in the JQL Query: Expecting a field name but got '%s'. (line 1, character %d)", t.text, t.pos)
			}
			field := strings.ToLower(t.text)
			if !slices.Contains([]string{"updated", "created", "id", "key", "issuekey", "summary", "project"}, field) {
				return nil, jqlErrorf("Not able to sort using field '%s'.", t.text)
			}
			s := jqlSort{field: field}
			switch {
			case p.atKeyword("asc"):
				p.next()
			case p.atKeyword("desc"):
				p.next()
				s.desc = true
			}
			out.order = append(out.order, s)
			if p.peek().kind == jqlPunct && p.peek().text == "," {
				p.next()
				continue
			}
			break
		}
	}
	if t := p.peek(); t.kind != jqlEOF {
		return nil, p.unexpected("either 'OR' or 'AND'")
	}
	return out, nil
}

func (p *jqlParser) peek() jqlToken { return p.toks[p.i] }

func (p *jqlParser) next() jqlToken {
	t := p.toks[p.i]
	if t.kind != jqlEOF {
		p.i++
	}
	return t
}

func (p *jqlParser) atKeyword(kw string) bool {
	t := p.peek()
	return t.kind == jqlWord && strings.EqualFold(t.text, kw)
}

func (p *jqlParser) unexpected(want string) error {
	t := p.peek()
	if t.kind == jqlEOF {
		return jqlErrorf("Error in the JQL Query: Expecting %s but got the end of the query. (line 1, character %d)", want, t.pos)
	}
	return jqlErrorf("Error in the JQL Query: Expecting %s but got '%s'. (line 1, character %d)", want, t.text, t.pos)
}

func (p *jqlParser) or() (jqlPred, error) {
	left, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.atKeyword("or") {
		p.next()
		right, err := p.and()
		if err != nil {
			return nil, err
		}
		l := left
		left = func(is *jiraIssue) bool { return l(is) || right(is) }
	}
	return left, nil
}

func (p *jqlParser) and() (jqlPred, error) {
	left, err := p.unary()
	if err != nil {
		return nil, err
	}
	for p.atKeyword("and") {
		p.next()
		right, err := p.unary()
		if err != nil {
			return nil, err
		}
		l := left
		left = func(is *jiraIssue) bool { return l(is) && right(is) }
	}
	return left, nil
}

func (p *jqlParser) unary() (jqlPred, error) {
	if p.depth++; p.depth > maxJQLDepth {
		return nil, jqlErrorf("Error in the JQL Query: The query is too complex.")
	}
	defer func() { p.depth-- }()
	switch t := p.peek(); {
	case p.atKeyword("not"):
		p.next()
		inner, err := p.unary()
		if err != nil {
			return nil, err
		}
		return func(is *jiraIssue) bool { return !inner(is) }, nil
	case t.kind == jqlPunct && t.text == "(":
		p.next()
		inner, err := p.or()
		if err != nil {
			return nil, err
		}
		if t := p.peek(); t.kind != jqlPunct || t.text != ")" {
			return nil, p.unexpected("')'")
		}
		p.next()
		return inner, nil
	case t.kind == jqlWord || t.kind == jqlString:
		return p.clause()
	default:
		return nil, p.unexpected("a field name")
	}
}

// clause parses `field op value` or `field [NOT] IN (values)` and compiles it.
func (p *jqlParser) clause() (jqlPred, error) {
	fieldTok := p.next()
	field := strings.ToLower(fieldTok.text)
	var op string
	switch t := p.peek(); {
	case t.kind == jqlOp:
		op = p.next().text
	case p.atKeyword("in"):
		p.next()
		op = "in"
	case p.atKeyword("not"):
		p.next()
		if !p.atKeyword("in") {
			return nil, p.unexpected("'in'")
		}
		p.next()
		op = "not in"
	case p.atKeyword("is"):
		return nil, jqlErrorf("Error in the JQL Query: The operator 'is' is not supported by this fake. (line 1, character %d)", t.pos)
	default:
		return nil, p.unexpected("operator")
	}
	var values []jqlToken
	if op == "in" || op == "not in" {
		if t := p.peek(); t.kind != jqlPunct || t.text != "(" {
			return nil, p.unexpected("'('")
		}
		p.next()
		for {
			v := p.next()
			if v.kind != jqlWord && v.kind != jqlString {
				return nil, jqlErrorf("Error in the JQL Query: Expecting either a value, list or function but got '%s'. (line 1, character %d)", v.text, v.pos)
			}
			values = append(values, v)
			if t := p.next(); t.kind == jqlPunct && t.text == ")" {
				break
			} else if t.kind != jqlPunct || t.text != "," {
				return nil, jqlErrorf("Error in the JQL Query: Expecting ')' but got '%s'. (line 1, character %d)", t.text, t.pos)
			}
		}
	} else {
		v := p.next()
		if v.kind != jqlWord && v.kind != jqlString {
			return nil, jqlErrorf("Error in the JQL Query: Expecting either a value, list or function but got '%s'. (line 1, character %d)", v.text, v.pos)
		}
		if v.kind == jqlWord && p.peek().kind == jqlPunct && p.peek().text == "(" {
			return nil, jqlErrorf("Unable to find JQL function '%s()'.", v.text)
		}
		values = []jqlToken{v}
	}
	return p.env.compile(fieldTok.text, field, op, values)
}

// unsupportedOp is Jira's answer to an operator a field does not take.
func unsupportedOp(op, field string) error {
	return jqlErrorf("The operator '%s' is not supported by the '%s' field.", op, field)
}

// compile turns one clause into a predicate, resolving projects, issues and dates now,
// as Jira does when it validates a query.
func (env *jqlEnv) compile(name, field, op string, values []jqlToken) (jqlPred, error) {
	switch field {
	case "project":
		if !slices.Contains([]string{"=", "!=", "in", "not in"}, op) {
			return nil, unsupportedOp(op, field)
		}
		set := map[*jiraProject]bool{}
		for _, v := range values {
			pr := env.site.findProject(v.text)
			if pr == nil {
				return nil, jqlErrorf("The value '%s' does not exist for the field 'project'.", v.text)
			}
			set[pr] = true
		}
		return member(op, func(is *jiraIssue) bool { return set[is.project] }), nil

	case "key", "issuekey", "id", "issue":
		switch op {
		case "=", "!=", "in", "not in":
			// Jira checks the values against its database; the predicate runs on the
			// index's copies, so it compares ids.
			set := map[int64]bool{}
			for _, v := range values {
				is := env.site.findIssue(v.text)
				if is == nil {
					return nil, jqlErrorf("An issue with key '%s' does not exist for field '%s'.", v.text, name)
				}
				set[is.id] = true
			}
			return member(op, func(is *jiraIssue) bool { return set[is.id] }), nil
		case "<", "<=", ">", ">=":
			v := values[0].text
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				return compare(op, func(is *jiraIssue) int { return cmp.Compare(is.id, n) }), nil
			}
			ref := env.site.findIssue(v)
			if ref == nil {
				return nil, jqlErrorf("An issue with key '%s' does not exist for field '%s'.", v, name)
			}
			rel := compare(op, func(is *jiraIssue) int { return cmp.Compare(is.num, ref.num) })
			return func(is *jiraIssue) bool { return is.project == ref.project && rel(is) }, nil
		}
		return nil, unsupportedOp(op, field)

	case "updated", "created":
		if op == "in" || op == "not in" || op == "~" || op == "!~" {
			return nil, unsupportedOp(op, field)
		}
		at, err := env.date(values[0], field)
		if err != nil {
			return nil, err
		}
		ms := at.UnixMilli()
		get := func(is *jiraIssue) time.Time { return is.updated }
		if field == "created" {
			get = func(is *jiraIssue) time.Time { return is.created }
		}
		return compare(op, func(is *jiraIssue) int { return cmp.Compare(get(is).UnixMilli(), ms) }), nil

	case "text", "summary", "description", "comment":
		if op != "~" && op != "!~" {
			return nil, unsupportedOp(op, field)
		}
		needle := strings.ToLower(values[0].text)
		if strings.TrimSpace(needle) == "" {
			return nil, jqlErrorf("The field '%s' does not support searching for an empty string.", name)
		}
		match := func(is *jiraIssue) bool { return strings.Contains(is.searchable(field), needle) }
		if op == "!~" {
			return func(is *jiraIssue) bool { return !match(is) }, nil
		}
		return match, nil

	case "issuetype", "type":
		if !slices.Contains([]string{"=", "!=", "in", "not in"}, op) {
			return nil, unsupportedOp(op, field)
		}
		set := map[string]bool{}
		for _, v := range values {
			t, ok := jiraIssueTypeNamed(v.text)
			if !ok {
				return nil, jqlErrorf("The value '%s' does not exist for the field '%s'.", v.text, name)
			}
			set[t.name] = true
		}
		return member(op, func(is *jiraIssue) bool { return set[is.issueType] }), nil

	case "reporter", "creator":
		if !slices.Contains([]string{"=", "!=", "in", "not in"}, op) {
			return nil, unsupportedOp(op, field)
		}
		set := map[string]bool{}
		for _, v := range values {
			set[v.text] = true
		}
		get := func(is *jiraIssue) string { return is.reporter.accountID }
		if field == "creator" {
			get = func(is *jiraIssue) string { return is.creator.accountID }
		}
		return member(op, func(is *jiraIssue) bool { return set[get(is)] }), nil
	}
	return nil, jqlErrorf("Field '%s' does not exist or you do not have permission to view it.", name)
}

// member builds =, !=, IN and NOT IN from a membership test.
func member(op string, in jqlPred) jqlPred {
	if op == "!=" || op == "not in" {
		return func(is *jiraIssue) bool { return !in(is) }
	}
	return in
}

// compare builds a relational predicate from a three-way comparison with the value.
func compare(op string, c func(*jiraIssue) int) jqlPred {
	return func(is *jiraIssue) bool {
		switch d := c(is); op {
		case "=":
			return d == 0
		case "!=":
			return d != 0
		case "<":
			return d < 0
		case "<=":
			return d <= 0
		case ">":
			return d > 0
		default: // ">="
			return d >= 0
		}
	}
}

// jqlDateLayouts are the absolute date formats JQL accepts, read in the caller's zone.
var jqlDateLayouts = []string{"2006/01/02 15:04", "2006-01-02 15:04", "2006/01/02", "2006-01-02"}

// jqlRelative is a relative date such as -2d or 4h.
var jqlRelative = regexp.MustCompile(`^([+-]?)(\d{1,6})([wdhm])$`)

// date reads a date value: epoch milliseconds are an exact instant; a date string is
// the start of that minute (or day) IN THE CALLER'S TIME ZONE, which is why a UTC
// cursor sent as a string skips or repeats issues for an account elsewhere.
func (env *jqlEnv) date(v jqlToken, field string) (time.Time, error) {
	s := v.text
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.UnixMilli(n), nil
	}
	for _, layout := range jqlDateLayouts {
		if t, err := time.ParseInLocation(layout, s, env.loc); err == nil {
			return t, nil
		}
	}
	if m := jqlRelative.FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[2])
		unit := map[string]time.Duration{"w": 7 * 24 * time.Hour, "d": 24 * time.Hour, "h": time.Hour, "m": time.Minute}[m[3]]
		d := time.Duration(n) * unit
		if m[1] == "-" {
			d = -d
		}
		return env.now.Add(d).Truncate(time.Minute), nil
	}
	return time.Time{}, jqlErrorf("Date value '%s' for field '%s' is invalid. Valid formats include: 'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'.", s, field)
}

// sortIssues orders issues by the query's ORDER BY, then by id ascending so that every
// answer is deterministic (without ORDER BY: by id ascending).
func sortIssues(issues []*jiraIssue, order []jqlSort) {
	slices.SortStableFunc(issues, func(a, b *jiraIssue) int {
		for _, o := range order {
			var c int
			switch o.field {
			case "updated":
				c = a.updated.Compare(b.updated)
			case "created":
				c = a.created.Compare(b.created)
			case "id":
				c = cmp.Compare(a.id, b.id)
			case "key", "issuekey":
				c = cmp.Or(strings.Compare(a.project.key, b.project.key), cmp.Compare(a.num, b.num))
			case "summary":
				c = strings.Compare(a.summary, b.summary)
			case "project":
				c = strings.Compare(a.project.name, b.project.name)
			}
			if o.desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return cmp.Compare(a.id, b.id)
	})
}

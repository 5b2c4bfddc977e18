package atlassiantest

import (
	"fmt"
	"slices"
	"strings"
	"time"
	_ "time/tzdata" // account zones must not depend on the machine
	"unicode"
)

// The fake's CQL: the subset of Confluence Query Language that connectors use, with the
// trap real sites set: date literals are read in the time zone of the account that runs
// the search, with minute precision.
//
//	query    = [or] ["ORDER BY" order {"," order}]
//	or       = and {"OR" and}
//	and      = not {"AND" not}
//	not      = "NOT" not | "(" or ")" | clause
//	clause   = field op value | field ["NOT"] "IN" "(" value {"," value} ")"
//	order    = field ["ASC" | "DESC"]
//
// Fields: space (also space.key), type, id, title, text, lastmodified, created. Text and
// title take ~ and !~ (case-insensitive; every word of the value must occur); dates take
// = != > >= < <= with "yyyy-MM-dd HH:mm", "yyyy/MM/dd HH:mm", "yyyy-MM-dd" or
// "yyyy/MM/dd". A date names a period (its minute, or its day): = is within it, >= from
// its start, > after it, < before it, <= up to its end. Keywords and fields are
// case-insensitive; strings are "…" or '…' with backslash escapes. Anything else is a
// parse error, answered 400 as Confluence does.
//
// Only pages are indexed: type = page matches them, any other type nothing. Without
// ORDER BY, results come by relevance (more matches of the text first), then newest
// first. Ties under ORDER BY come in the index's order, which the fake makes descending
// id, so that clients cannot take id order for granted.

// cqlQuery is a parsed query.
type cqlQuery struct {
	where cqlExpr // nil matches everything
	order []cqlOrder
	terms []string // the words of every text ~ clause, for relevance
}

type cqlOrder struct {
	field string
	desc  bool
}

// cqlDoc is what a clause is evaluated against.
type cqlDoc struct {
	page  *cfPage
	space *cfSpace
	text  string // lower-cased title and body text
}

type cqlExpr func(d *cqlDoc) bool

// cqlSyntaxError is a query the fake cannot parse; Detail says why.
type cqlSyntaxError struct{ Detail string }

func (e *cqlSyntaxError) Error() string { return "could not parse cql: " + e.Detail }

// message is the message Confluence answers a query it cannot parse with.
func (e *cqlSyntaxError) message() string { return "Could not parse cql : " + e.Detail }

func cqlErrorf(format string, args ...any) error {
	return &cqlSyntaxError{Detail: fmt.Sprintf(format, args...)}
}

// parseCQL parses q, reading date literals in loc.
func parseCQL(q string, loc *time.Location) (*cqlQuery, error) {
	toks, err := lexCQL(q)
	if err != nil {
		return nil, err
	}
	p := &cqlParser{toks: toks, loc: loc, query: &cqlQuery{}}
	if !p.atKeyword("ORDER") && !p.done() {
		if p.query.where, err = p.or(); err != nil {
			return nil, err
		}
	}
	if p.atKeyword("ORDER") {
		p.pos++
		if !p.atKeyword("BY") {
			return nil, cqlErrorf("expected BY after ORDER")
		}
		p.pos++
		for {
			t := p.next()
			field := strings.ToLower(t.text)
			if t.kind != tokWord || !slices.Contains([]string{"lastmodified", "created", "title", "id"}, field) {
				return nil, cqlErrorf("cannot order by %q", t.text)
			}
			o := cqlOrder{field: field}
			if p.atKeyword("DESC") {
				o.desc = true
				p.pos++
			} else if p.atKeyword("ASC") {
				p.pos++
			}
			p.query.order = append(p.query.order, o)
			if p.peek().kind != tokComma {
				break
			}
			p.pos++
		}
	}
	if !p.done() {
		return nil, cqlErrorf("unexpected %q", p.peek().text)
	}
	return p.query, nil
}

type tokKind int

const (
	tokEOF tokKind = iota
	tokWord
	tokString
	tokOp
	tokLParen
	tokRParen
	tokComma
)

type cqlToken struct {
	kind tokKind
	text string
}

func lexCQL(q string) ([]cqlToken, error) {
	var toks []cqlToken
	rs := []rune(q)
	for i := 0; i < len(rs); {
		r := rs[i]
		switch {
		case unicode.IsSpace(r):
			i++
		case r == '(':
			toks = append(toks, cqlToken{tokLParen, "("})
			i++
		case r == ')':
			toks = append(toks, cqlToken{tokRParen, ")"})
			i++
		case r == ',':
			toks = append(toks, cqlToken{tokComma, ","})
			i++
		case r == '"' || r == '\'':
			var b strings.Builder
			j := i + 1
			for ; j < len(rs) && rs[j] != r; j++ {
				if rs[j] == '\\' && j+1 < len(rs) {
					j++
				}
				b.WriteRune(rs[j])
			}
			if j >= len(rs) {
				return nil, cqlErrorf("unterminated string")
			}
			toks = append(toks, cqlToken{tokString, b.String()})
			i = j + 1
		case strings.ContainsRune("=!~<>", r):
			op := string(r)
			if i+1 < len(rs) && (rs[i+1] == '=' || (r == '!' && rs[i+1] == '~')) {
				op += string(rs[i+1])
			}
			if op == "!" {
				return nil, cqlErrorf("unexpected !")
			}
			toks = append(toks, cqlToken{tokOp, op})
			i += len(op)
		case unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("_.~-:@", r):
			j := i
			for j < len(rs) && (unicode.IsLetter(rs[j]) || unicode.IsDigit(rs[j]) || strings.ContainsRune("_.~-:@", rs[j])) {
				j++
			}
			toks = append(toks, cqlToken{tokWord, string(rs[i:j])})
			i = j
		default:
			return nil, cqlErrorf("unexpected %q", string(r))
		}
	}
	return toks, nil
}

type cqlParser struct {
	toks  []cqlToken
	pos   int
	loc   *time.Location
	query *cqlQuery
}

func (p *cqlParser) peek() cqlToken {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return cqlToken{kind: tokEOF}
}

func (p *cqlParser) next() cqlToken {
	t := p.peek()
	if p.pos < len(p.toks) {
		p.pos++
	}
	return t
}

func (p *cqlParser) done() bool { return p.pos >= len(p.toks) }

func (p *cqlParser) atKeyword(k string) bool {
	t := p.peek()
	return t.kind == tokWord && strings.EqualFold(t.text, k)
}

func (p *cqlParser) or() (cqlExpr, error) {
	left, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.atKeyword("OR") {
		p.pos++
		right, err := p.and()
		if err != nil {
			return nil, err
		}
		l := left
		left = func(d *cqlDoc) bool { return l(d) || right(d) }
	}
	return left, nil
}

func (p *cqlParser) and() (cqlExpr, error) {
	left, err := p.not()
	if err != nil {
		return nil, err
	}
	for p.atKeyword("AND") {
		p.pos++
		right, err := p.not()
		if err != nil {
			return nil, err
		}
		l := left
		left = func(d *cqlDoc) bool { return l(d) && right(d) }
	}
	return left, nil
}

func (p *cqlParser) not() (cqlExpr, error) {
	switch {
	case p.atKeyword("NOT"):
		p.pos++
		e, err := p.not()
		if err != nil {
			return nil, err
		}
		return func(d *cqlDoc) bool { return !e(d) }, nil
	case p.peek().kind == tokLParen:
		p.pos++
		e, err := p.or()
		if err != nil {
			return nil, err
		}
		if p.next().kind != tokRParen {
			return nil, cqlErrorf("expected )")
		}
		return e, nil
	}
	return p.clause()
}

func (p *cqlParser) clause() (cqlExpr, error) {
	f := p.next()
	if f.kind != tokWord {
		return nil, cqlErrorf("expected a field, found %q", f.text)
	}
	field := strings.ToLower(f.text)
	if field == "space.key" {
		field = "space"
	}
	// [NOT] IN (…)
	negate := false
	if p.atKeyword("NOT") {
		negate = true
		p.pos++
		if !p.atKeyword("IN") {
			return nil, cqlErrorf("expected IN after NOT")
		}
	}
	if p.atKeyword("IN") {
		p.pos++
		values, err := p.list()
		if err != nil {
			return nil, err
		}
		get, err := exactField(field)
		if err != nil {
			return nil, err
		}
		return func(d *cqlDoc) bool { return slices.Contains(values, get(d)) != negate }, nil
	}
	op := p.next()
	if op.kind != tokOp {
		return nil, cqlErrorf("expected an operator after %s", f.text)
	}
	v := p.next()
	if v.kind != tokWord && v.kind != tokString {
		return nil, cqlErrorf("expected a value after %s %s", f.text, op.text)
	}
	if p.peek().kind == tokLParen {
		return nil, cqlErrorf("functions are not supported: %s()", v.text)
	}
	switch field {
	case "text", "title":
		if op.text == "~" || op.text == "!~" {
			terms := cqlTerms(v.text)
			if field == "text" && op.text == "~" {
				p.query.terms = append(p.query.terms, terms...)
			}
			want := op.text == "~"
			return func(d *cqlDoc) bool {
				hay := d.text
				if field == "title" {
					hay = strings.ToLower(d.page.title)
				}
				return containsAll(hay, terms) == want
			}, nil
		}
		if field == "text" {
			return nil, cqlErrorf("text supports only ~ and !~")
		}
	case "lastmodified", "created":
		return p.dateClause(field, op.text, v.text)
	}
	get, err := exactField(field)
	if err != nil {
		return nil, err
	}
	switch op.text {
	case "=":
		return func(d *cqlDoc) bool { return get(d) == v.text }, nil
	case "!=":
		return func(d *cqlDoc) bool { return get(d) != v.text }, nil
	}
	return nil, cqlErrorf("operator %s is not supported for %s", op.text, f.text)
}

// exactField returns the value = and IN compare for field.
func exactField(field string) (func(d *cqlDoc) string, error) {
	switch field {
	case "space":
		return func(d *cqlDoc) string { return d.space.key }, nil
	case "type":
		return func(*cqlDoc) string { return "page" }, nil
	case "id":
		return func(d *cqlDoc) string { return d.page.id }, nil
	case "title":
		return func(d *cqlDoc) string { return d.page.title }, nil
	}
	return nil, cqlErrorf("field %q is not supported", field)
}

func (p *cqlParser) list() ([]string, error) {
	if p.next().kind != tokLParen {
		return nil, cqlErrorf("expected ( after IN")
	}
	var values []string
	for {
		v := p.next()
		if v.kind != tokWord && v.kind != tokString {
			return nil, cqlErrorf("expected a value in the list")
		}
		values = append(values, v.text)
		switch p.next().kind {
		case tokComma:
			continue
		case tokRParen:
			return values, nil
		default:
			return nil, cqlErrorf("expected , or ) in the list")
		}
	}
}

// cqlDateLayouts are the date literals CQL accepts, with the period each names.
var cqlDateLayouts = []struct {
	layout string
	period time.Duration
}{
	{"2006-01-02 15:04", time.Minute},
	{"2006/01/02 15:04", time.Minute},
	{"2006-01-02", 24 * time.Hour},
	{"2006/01/02", 24 * time.Hour},
}

// dateClause compares field with the period that value names in the account's zone.
func (p *cqlParser) dateClause(field, op, value string) (cqlExpr, error) {
	var from, to time.Time
	parsed := false
	for _, l := range cqlDateLayouts {
		if t, err := time.ParseInLocation(l.layout, value, p.loc); err == nil {
			from = t
			if l.period == 24*time.Hour {
				to = from.AddDate(0, 0, 1) // a calendar day, 23 or 25 hours at DST changes
			} else {
				to = from.Add(l.period)
			}
			parsed = true
			break
		}
	}
	if !parsed {
		return nil, cqlErrorf("%q is not a date (yyyy-MM-dd HH:mm)", value)
	}
	get := func(d *cqlDoc) time.Time { return d.page.modifiedAt }
	if field == "created" {
		get = func(d *cqlDoc) time.Time { return d.page.createdAt }
	}
	var cmp func(t time.Time) bool
	switch op {
	case "=":
		cmp = func(t time.Time) bool { return !t.Before(from) && t.Before(to) }
	case "!=":
		cmp = func(t time.Time) bool { return t.Before(from) || !t.Before(to) }
	case ">=":
		cmp = func(t time.Time) bool { return !t.Before(from) }
	case ">":
		cmp = func(t time.Time) bool { return !t.Before(to) }
	case "<":
		cmp = func(t time.Time) bool { return t.Before(from) }
	case "<=":
		cmp = func(t time.Time) bool { return t.Before(to) }
	default:
		return nil, cqlErrorf("operator %s is not supported for %s", op, field)
	}
	return func(d *cqlDoc) bool { return cmp(get(d)) }, nil
}

// cqlTerms splits a text search into lower-case words, dropping wildcards.
func cqlTerms(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
}

func containsAll(hay string, terms []string) bool {
	for _, t := range terms {
		if !strings.Contains(hay, t) {
			return false
		}
	}
	return true
}

// score is the relevance of d to the text terms: matches in the title count more.
func (q *cqlQuery) score(d *cqlDoc) int {
	n := 0
	title := strings.ToLower(d.page.title)
	for _, t := range q.terms {
		n += 5*strings.Count(title, t) + strings.Count(d.text, t)
	}
	return n
}

// runLocked evaluates q over the pages as the search index has them (index.go), in q's
// order; call it with c.mu held.
func (c *confluenceSite) runLocked(q *cqlQuery) []*cqlDoc {
	c.index.catchUp(time.Now())
	var docs []*cqlDoc
	for _, p := range c.index.docs {
		d := &cqlDoc{page: p, space: c.spaceByIDLocked(p.spaceID), text: p.searchText}
		if q.where == nil || q.where(d) {
			docs = append(docs, d)
		}
	}
	if len(q.order) == 0 {
		scores := make(map[*cqlDoc]int, len(docs))
		for _, d := range docs {
			scores[d] = q.score(d)
		}
		slices.SortStableFunc(docs, func(a, b *cqlDoc) int {
			if scores[a] != scores[b] {
				return scores[b] - scores[a]
			}
			if c := b.page.modifiedAt.Compare(a.page.modifiedAt); c != 0 {
				return c
			}
			return compareIDs(a.page.id, b.page.id)
		})
		return docs
	}
	slices.SortStableFunc(docs, func(a, b *cqlDoc) int {
		for _, o := range q.order {
			var c int
			switch o.field {
			case "lastmodified":
				c = a.page.modifiedAt.Compare(b.page.modifiedAt)
			case "created":
				c = a.page.createdAt.Compare(b.page.createdAt)
			case "title":
				c = strings.Compare(strings.ToLower(a.page.title), strings.ToLower(b.page.title))
			case "id":
				c = compareIDs(a.page.id, b.page.id)
			}
			if o.desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return compareIDs(b.page.id, a.page.id) // the index's order: see above
	})
	return docs
}

package salesforcetest

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The SOQL subset the fake runs:
//
//	SELECT field, ... FROM Type
//	  [WHERE cond]  cond := cmp | (cond) | NOT cond | cond AND cond ... | cond OR cond ...
//	                cmp  := field (= | != | <> | < | <= | > | >=) literal
//	                      | field [NOT] IN (literal, ...) | field LIKE 'pattern'
//	  [ORDER BY field [ASC|DESC] [NULLS FIRST|LAST], ...] [LIMIT n] [OFFSET n]
//
// As in Salesforce: keywords and names are case-insensitive; AND and OR may not be mixed
// at one level without parentheses; string comparisons and LIKE ignore case; string
// literals are single-quoted with the escapes \n \r \t \b \f \" \' \\ \uXXXX (and \_ \%
// in LIKE only; any other backslash is an error); datetime literals are unquoted
// (2026-01-02T03:04:05Z, with an optional fraction, or an offset +hh:mm); a literal must
// fit its field's type; long text areas can be neither filtered nor sorted. Rows that tie
// on the ORDER BY keys, or every row without ORDER BY, come in an order that is neither Id
// nor creation order, since Salesforce promises none.

type soqlQuery struct {
	src    string
	fields []string // canonical names, in SELECT order
	typ    *sobject
	where  cond
	order  []orderKey
	limit  int // -1 without LIMIT
	offset int
}

type orderKey struct {
	field      Field
	desc       bool
	nullsFirst bool
}

// cond is a WHERE condition.
type cond interface {
	eval(Fields) bool
}

type andCond []cond
type orCond []cond
type notCond struct{ c cond }

func (a andCond) eval(f Fields) bool {
	for _, c := range a {
		if !c.eval(f) {
			return false
		}
	}
	return true
}

func (o orCond) eval(f Fields) bool {
	for _, c := range o {
		if c.eval(f) {
			return true
		}
	}
	return false
}

func (n notCond) eval(f Fields) bool { return !n.c.eval(f) }

// cmpCond is one comparison, checked against its field's type at parse time.
type cmpCond struct {
	field Field
	op    string // = != < <= > >= IN NOTIN LIKE
	vals  []any  // one for comparisons, many for IN; nil for null
	like  []likeElem
}

func (c cmpCond) eval(f Fields) bool {
	v := f[c.field.Name]
	switch c.op {
	case "LIKE":
		s, ok := v.(string)
		return ok && likeMatch(c.like, []rune(strings.ToLower(s)))
	case "IN":
		return slices.ContainsFunc(c.vals, func(x any) bool { return compare(c.field, v, x) == 0 && v != nil && x != nil })
	case "NOTIN":
		return !slices.ContainsFunc(c.vals, func(x any) bool { return compare(c.field, v, x) == 0 && v != nil && x != nil })
	}
	x := c.vals[0]
	switch c.op {
	case "=":
		return equalValues(c.field, v, x)
	case "!=":
		return !equalValues(c.field, v, x)
	}
	if v == nil || x == nil {
		return false
	}
	n := compare(c.field, v, x)
	switch c.op {
	case "<":
		return n < 0
	case "<=":
		return n <= 0
	case ">":
		return n > 0
	case ">=":
		return n >= 0
	}
	return false
}

// equalValues is SOQL's = (null equals only null).
func equalValues(f Field, v, x any) bool {
	if v == nil || x == nil {
		return v == nil && x == nil
	}
	return compare(f, v, x) == 0
}

// compare orders two non-nil values of field f: text ignoring case, Ids by their
// case-sensitive 15 characters.
func compare(f Field, a, b any) int {
	switch x := a.(type) {
	case string:
		y, _ := b.(string)
		if f.Type == TypeID || f.Type == TypeReference {
			return strings.Compare(x[:min(15, len(x))], y[:min(15, len(y))])
		}
		return strings.Compare(strings.ToLower(x), strings.ToLower(y))
	case bool:
		y, _ := b.(bool)
		return cmp.Compare(b2i(x), b2i(y))
	case time.Time:
		y, _ := b.(time.Time)
		return x.Compare(y)
	case float64:
		return cmp.Compare(x, toFloat(b))
	case int:
		return cmp.Compare(float64(x), toFloat(b))
	}
	return 0
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func toFloat(v any) float64 {
	switch n := v.(type) {
	case float64:
		return n
	case int:
		return float64(n)
	}
	return 0
}

// likeElem is one element of a LIKE pattern: a literal rune (lower case) or a wildcard.
type likeElem struct {
	r        rune
	any, one bool // % and _
}

func likeMatch(p []likeElem, s []rune) bool {
	if len(p) == 0 {
		return len(s) == 0
	}
	switch {
	case p[0].any:
		for i := 0; i <= len(s); i++ {
			if likeMatch(p[1:], s[i:]) {
				return true
			}
		}
		return false
	case len(s) == 0:
		return false
	case p[0].one || p[0].r == s[0]:
		return likeMatch(p[1:], s[1:])
	}
	return false
}

// parser reads tokens; every method reports a *queryError through p.err and returns
// zero values once one is set.
type parser struct {
	src    string
	toks   []token
	i      int
	lookup func(string) (*sobject, bool)
	typ    *sobject
	err    *queryError
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token {
	t := p.toks[p.i]
	if p.i < len(p.toks)-1 {
		p.i++
	}
	return t
}

func (p *parser) fail(t token, what string) {
	if p.err == nil {
		p.err = syntaxError(p.src, t.pos, what)
	}
}

func (p *parser) unexpected(t token) { p.fail(t, "unexpected token: "+t.describe()) }

func (p *parser) expectKeyword(kw string) {
	if t := p.next(); !t.is(kw) {
		p.unexpected(t)
	}
}

func (p *parser) expectPunct(s string) {
	if t := p.next(); t.kind != tokPunct || t.text != s {
		p.unexpected(t)
	}
}

// reserved are keywords that cannot be field names.
var reserved = map[string]bool{
	"select": true, "from": true, "where": true, "and": true, "or": true, "not": true,
	"order": true, "by": true, "limit": true, "offset": true, "in": true, "like": true,
	"asc": true, "desc": true, "nulls": true, "null": true, "true": true, "false": true,
}

// parseSOQL parses and checks src against the org's types.
func parseSOQL(src string, lookup func(string) (*sobject, bool)) (*soqlQuery, *queryError) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{src: src, toks: toks, lookup: lookup}
	q := p.query()
	if p.err != nil {
		return nil, p.err
	}
	return q, nil
}

func (p *parser) query() *soqlQuery {
	q := &soqlQuery{src: p.src, limit: -1}
	p.expectKeyword("SELECT")
	var selected []token
	for p.err == nil {
		t := p.next()
		if t.kind != tokIdent || reserved[strings.ToLower(t.text)] {
			p.unexpected(t)
			break
		}
		selected = append(selected, t)
		if n := p.peek(); n.kind != tokPunct || n.text != "," {
			break
		}
		p.next()
	}
	p.expectKeyword("FROM")
	typTok := p.next()
	if p.err != nil {
		return nil
	}
	if typTok.kind != tokIdent || reserved[strings.ToLower(typTok.text)] {
		p.unexpected(typTok)
		return nil
	}
	typ, ok := p.lookup(typTok.text)
	if !ok {
		p.err = &queryError{codeInvalidType, located(p.src, typTok.pos, fmt.Sprintf("sObject type '%s' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.", typTok.text))}
		return nil
	}
	p.typ, q.typ = typ, typ
	seen := map[string]bool{}
	for _, t := range selected {
		f := p.field(t)
		if p.err != nil {
			return nil
		}
		if seen[f.Name] {
			p.fail(t, "duplicate field selected: "+f.Name)
			return nil
		}
		seen[f.Name] = true
		q.fields = append(q.fields, f.Name)
	}
	if p.peek().is("WHERE") {
		p.next()
		q.where = p.condition()
	}
	if p.peek().is("ORDER") {
		p.next()
		p.expectKeyword("BY")
		for p.err == nil {
			t := p.next()
			f := p.field(t)
			if p.err == nil && f.Type == TypeTextArea {
				p.err = &queryError{codeInvalidField, located(p.src, t.pos, fmt.Sprintf("field '%s' can not be sorted in a query call", f.Name))}
			}
			k := orderKey{field: f, nullsFirst: true}
			if p.peek().is("ASC") {
				p.next()
			} else if p.peek().is("DESC") {
				p.next()
				k.desc, k.nullsFirst = true, false
			}
			if p.peek().is("NULLS") {
				p.next()
				switch t := p.next(); {
				case t.is("FIRST"):
					k.nullsFirst = true
				case t.is("LAST"):
					k.nullsFirst = false
				default:
					p.unexpected(t)
				}
			}
			q.order = append(q.order, k)
			if n := p.peek(); n.kind != tokPunct || n.text != "," {
				break
			}
			p.next()
		}
	}
	if p.peek().is("LIMIT") {
		p.next()
		q.limit = p.count()
	}
	if p.peek().is("OFFSET") {
		p.next()
		q.offset = p.count()
		if p.err == nil && q.offset > 2000 {
			p.err = &queryError{"NUMBER_OUTSIDE_VALID_RANGE", "Maximum SOQL offset allowed is 2000"}
		}
	}
	if t := p.next(); p.err == nil && t.kind != tokEOF {
		p.unexpected(t)
	}
	return q
}

func (p *parser) count() int {
	t := p.next()
	n, err := strconv.Atoi(t.text)
	if t.kind != tokNumber || err != nil || n < 0 {
		p.unexpected(t)
	}
	return n
}

// field resolves a field name of the query's type.
func (p *parser) field(t token) Field {
	if p.err != nil {
		return Field{}
	}
	if t.kind != tokIdent || reserved[strings.ToLower(t.text)] {
		p.unexpected(t)
		return Field{}
	}
	f, ok := p.typ.field(t.text)
	if !ok {
		p.err = &queryError{codeInvalidField, located(p.src, t.pos, fmt.Sprintf("No such column '%s' on entity '%s'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.", t.text, p.typ.name))}
	}
	return f
}

// condition parses conditions joined by one of AND and OR; mixing them needs parentheses.
func (p *parser) condition() cond {
	first := p.term()
	var joiner string
	list := []cond{first}
	for p.err == nil {
		t := p.peek()
		if !t.is("AND") && !t.is("OR") {
			break
		}
		kw := strings.ToUpper(t.text)
		if joiner != "" && kw != joiner {
			p.unexpected(t)
			return nil
		}
		joiner = kw
		p.next()
		if n := p.peek(); n.is("NOT") {
			// Salesforce takes NOT only first in a group: a AND (NOT b), not a AND NOT b.
			p.unexpected(n)
			return nil
		}
		list = append(list, p.term())
	}
	switch joiner {
	case "AND":
		return andCond(list)
	case "OR":
		return orCond(list)
	}
	return first
}

func (p *parser) term() cond {
	if p.err != nil {
		return nil
	}
	t := p.peek()
	switch {
	case t.kind == tokPunct && t.text == "(":
		p.next()
		c := p.condition()
		p.expectPunct(")")
		return c
	case t.is("NOT"):
		p.next()
		return notCond{p.term()}
	}
	return p.comparison()
}

func (p *parser) comparison() cond {
	ft := p.next()
	f := p.field(ft)
	if p.err != nil {
		return nil
	}
	if f.Type == TypeTextArea {
		p.err = &queryError{codeInvalidField, located(p.src, ft.pos, fmt.Sprintf("field '%s' can not be filtered in a query call", f.Name))}
		return nil
	}
	op := p.next()
	c := cmpCond{field: f}
	switch {
	case op.kind == tokPunct && slices.Contains([]string{"=", "!=", "<>", "<", "<=", ">", ">="}, op.text):
		c.op = op.text
		if c.op == "<>" {
			c.op = "!="
		}
		v := p.literal(f, c.op)
		c.vals = []any{v}
	case op.is("LIKE"):
		c.op = "LIKE"
		t := p.next()
		if t.kind != tokString {
			p.unexpected(t)
			return nil
		}
		if !f.textual() {
			p.err = &queryError{codeInvalidQueryFilter, located(p.src, op.pos, fmt.Sprintf("invalid operator on %s field", f.Type))}
			return nil
		}
		c.like = p.likePattern(t)
	case op.is("IN"), op.is("NOT"):
		c.op = "IN"
		if op.is("NOT") {
			p.expectKeyword("IN")
			c.op = "NOTIN"
		}
		p.expectPunct("(")
		for p.err == nil {
			c.vals = append(c.vals, p.literal(f, "IN"))
			t := p.next()
			if t.kind == tokPunct && t.text == ")" {
				break
			}
			if t.kind != tokPunct || t.text != "," {
				p.unexpected(t)
			}
		}
	default:
		p.unexpected(op)
	}
	return c
}

// literal reads a value and checks it against f's type, as Salesforce does when it
// compiles the query.
func (p *parser) literal(f Field, op string) any {
	t := p.next()
	if p.err != nil {
		return nil
	}
	mismatch := func() any {
		want, quoted := string(f.Type), "should not be enclosed in quotes"
		switch {
		case f.stringy():
			want, quoted = "string", "should be enclosed in quotes"
		case f.Type == TypeDateTime:
			want = "dateTime"
		}
		p.err = &queryError{codeInvalidField, located(p.src, t.pos, fmt.Sprintf("value of filter criterion for field '%s' must be of type %s and %s", f.Name, want, quoted))}
		return nil
	}
	if t.is("null") {
		if op == "IN" {
			return nil
		}
		if op != "=" && op != "!=" {
			p.unexpected(t)
		}
		return nil
	}
	switch t.kind {
	case tokString:
		if !f.stringy() {
			return mismatch()
		}
		s, ok := p.decodeString(t)
		if !ok {
			return nil
		}
		if f.Type == TypeID || f.Type == TypeReference {
			id, valid := canonicalID(s)
			if !valid {
				p.err = &queryError{codeInvalidQueryFilter, located(p.src, t.pos, "invalid ID field: "+s)}
				return nil
			}
			return id
		}
		return s
	case tokNumber:
		switch f.Type {
		case TypeDouble, TypeCurrency, TypeInt:
			n, _ := strconv.ParseFloat(t.text, 64)
			return n
		}
		return mismatch()
	case tokDateTime:
		if f.Type != TypeDateTime {
			return mismatch()
		}
		tm, _ := parseDateTimeLiteral(t.text)
		return tm
	case tokDate:
		return mismatch() // the fake has no date fields; a date does not match a datetime
	case tokIdent:
		if t.is("true") || t.is("false") {
			if f.Type != TypeBoolean {
				return mismatch()
			}
			return t.is("true")
		}
	}
	p.unexpected(t)
	return nil
}

// decodeString turns a string literal's raw body into its value.
func (p *parser) decodeString(t token) (string, bool) {
	elems, ok := p.decode(t, false)
	var b strings.Builder
	for _, e := range elems {
		b.WriteRune(e.r)
	}
	return b.String(), ok
}

// likePattern turns a LIKE literal into its pattern, lower-cased (LIKE ignores case).
func (p *parser) likePattern(t token) []likeElem {
	elems, _ := p.decode(t, true)
	for i := range elems {
		elems[i].r = []rune(strings.ToLower(string(elems[i].r)))[0]
	}
	return elems
}

// decode reads the escapes of a string body; in LIKE, unescaped % and _ are wildcards
// and \% \_ their literal selves.
func (p *parser) decode(t token, like bool) ([]likeElem, bool) {
	raw := t.text
	var out []likeElem
	for i := 0; i < len(raw); {
		r, size := utf8.DecodeRuneInString(raw[i:])
		if r != '\\' {
			switch {
			case like && r == '%':
				out = append(out, likeElem{any: true})
			case like && r == '_':
				out = append(out, likeElem{one: true})
			default:
				out = append(out, likeElem{r: r})
			}
			i += size
			continue
		}
		if i+1 >= len(raw) {
			p.badEscape(t, raw, `\`)
			return nil, false
		}
		e := raw[i+1]
		i += 2
		switch e {
		case 'n', 'N':
			out = append(out, likeElem{r: '\n'})
		case 'r', 'R':
			out = append(out, likeElem{r: '\r'})
		case 't', 'T':
			out = append(out, likeElem{r: '\t'})
		case 'b', 'B':
			out = append(out, likeElem{r: '\b'})
		case 'f', 'F':
			out = append(out, likeElem{r: '\f'})
		case '"', '\'', '\\':
			out = append(out, likeElem{r: rune(e)})
		case '_', '%':
			if !like {
				p.badEscape(t, raw, `\`+string(e))
				return nil, false
			}
			out = append(out, likeElem{r: rune(e)})
		case 'u':
			if i+4 > len(raw) {
				p.badEscape(t, raw, `\u`)
				return nil, false
			}
			n, err := strconv.ParseUint(raw[i:i+4], 16, 32)
			if err != nil {
				p.badEscape(t, raw, `\u`+raw[i:i+4])
				return nil, false
			}
			out = append(out, likeElem{r: rune(n)})
			i += 4
		default:
			p.badEscape(t, raw, `\`+string(e))
			return nil, false
		}
	}
	return out, true
}

func (p *parser) badEscape(t token, raw, seq string) {
	if p.err == nil {
		p.err = &queryError{codeMalformedQuery, located(p.src, t.pos, fmt.Sprintf("Invalid string literal '%s'. Illegal character sequence '%s' in string literal.", raw, seq))}
	}
}

// parseDateTimeLiteral reads YYYY-MM-DDThh:mm:ss[.fff](Z|±hh:mm|±hhmm) into UTC.
func parseDateTimeLiteral(s string) (time.Time, bool) {
	for _, layout := range []string{"2006-01-02T15:04:05Z07:00", "2006-01-02T15:04:05.999999999Z07:00", "2006-01-02T15:04:05Z0700", "2006-01-02T15:04:05.999999999Z0700"} {
		if t, err := time.Parse(layout, s); err == nil && len(s) >= 20 {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// run evaluates q over rows (visible versions), in its order, with OFFSET and LIMIT.
func (q *soqlQuery) run(rows []Fields) []Fields {
	var out []Fields
	for _, r := range rows {
		if q.where == nil || q.where.eval(r) {
			out = append(out, r)
		}
	}
	sortRows(out, q.order)
	out = out[min(q.offset, len(out)):]
	if q.limit >= 0 && len(out) > q.limit {
		out = out[:q.limit]
	}
	return out
}

// sortRows orders rows by the ORDER BY keys and then, as Salesforce promises no order
// for ties, by a scramble of the Ids: neither Id nor creation order. Keys are read once.
func sortRows(rows []Fields, order []orderKey) {
	type sortRow struct {
		row  Fields
		keys []any
		scr  uint64
		id   string
	}
	tmp := make([]sortRow, len(rows))
	for i, r := range rows {
		id, _ := r["Id"].(string)
		keys := make([]any, len(order))
		for k, o := range order {
			keys[k] = r[o.field.Name]
		}
		tmp[i] = sortRow{row: r, keys: keys, scr: scramble(id), id: id}
	}
	slices.SortFunc(tmp, func(a, b sortRow) int {
		for k, o := range order {
			va, vb := a.keys[k], b.keys[k]
			switch {
			case va == nil && vb == nil:
				continue
			case va == nil || vb == nil:
				if (va == nil) == o.nullsFirst {
					return -1
				}
				return 1
			}
			n := compare(o.field, va, vb)
			if o.desc {
				n = -n
			}
			if n != 0 {
				return n
			}
		}
		if c := cmp.Compare(a.scr, b.scr); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	for i := range tmp {
		rows[i] = tmp[i].row
	}
}

// scramble is a stable key that is neither Id nor creation order.
func scramble(id string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	return h.Sum64()
}

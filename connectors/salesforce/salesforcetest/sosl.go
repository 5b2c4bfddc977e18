package salesforcetest

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"unicode"
)

// The SOSL subset the fake runs (GET /search?q=):
//
//	FIND {term} [IN ALL FIELDS | NAME FIELDS | EMAIL FIELDS]
//	  [RETURNING Type [(field, ... [WHERE cond] [ORDER BY ...] [LIMIT n])], ...] [LIMIT n]
//
// Inside the braces, words are matched without case against the words of the searched
// fields; * and ? are wildcards, "…" a phrase, AND / OR / AND NOT and parentheses combine,
// and words side by side must all match. The reserved characters
// ? & | ! { } [ ] ( ) ^ ~ * : \ " ' + - must be preceded by a backslash to be searched as
// themselves; any of them unescaped outside its role above is refused with 400
// MALFORMED_SEARCH, as is a term of fewer than two characters. The answer is
// {"searchRecords":[{attributes, fields...}]}.

const soslReserved = `?&|!{}[]()^~*:\"'+-`

type soslQuery struct {
	expr    searchExpr
	scope   string // ALL, NAME, EMAIL
	returns []soslReturn
	limit   int
}

type soslReturn struct {
	typ    *sobject
	fields []string
	where  cond
	order  []orderKey
	limit  int
}

// searchExpr matches a record's words.
type searchExpr interface {
	match(words []string) bool
}

type searchAnd []searchExpr
type searchOr []searchExpr
type searchNot struct{ e searchExpr }

// searchPhrase is consecutive word patterns (one for a single word).
type searchPhrase [][]rune

func (a searchAnd) match(w []string) bool {
	for _, e := range a {
		if !e.match(w) {
			return false
		}
	}
	return true
}

func (o searchOr) match(w []string) bool {
	for _, e := range o {
		if e.match(w) {
			return true
		}
	}
	return false
}

func (n searchNot) match(w []string) bool { return !n.e.match(w) }

func (p searchPhrase) match(w []string) bool {
	if len(p) == 0 {
		return false
	}
	for i := 0; i+len(p) <= len(w); i++ {
		ok := true
		for j, pat := range p {
			if !wildMatch(pat, []rune(w[i+j])) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// wildMatch matches a word against a pattern where '*' is any run and '?' one rune;
// escaped wildcards were turned into private-use runes by the term lexer.
func wildMatch(p, s []rune) bool {
	if len(p) == 0 {
		return len(s) == 0
	}
	switch p[0] {
	case '*':
		for i := 0; i <= len(s); i++ {
			if wildMatch(p[1:], s[i:]) {
				return true
			}
		}
		return false
	case '?':
		return len(s) > 0 && wildMatch(p[1:], s[1:])
	}
	return len(s) > 0 && unescapeRune(p[0]) == s[0] && wildMatch(p[1:], s[1:])
}

// Escaped '*' and '?' become these, so that they match themselves.
const (
	litStar     = '\uE000'
	litQuestion = '\uE001'
)

func unescapeRune(r rune) rune {
	switch r {
	case litStar:
		return '*'
	case litQuestion:
		return '?'
	}
	return r
}

// words splits text into lower-case words as the search index does.
func words(text string) []string {
	return strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
}

func malformedSearch(msg string) *queryError { return &queryError{codeMalformedSearch, msg} }

// parseSOSL parses and checks a SOSL text against the org's types.
func parseSOSL(src string, lookup func(string) (*sobject, bool), searchable []string) (*soslQuery, *queryError) {
	trimmed := strings.TrimLeft(src, " \t\r\n")
	if len(trimmed) < 4 || !strings.EqualFold(trimmed[:4], "FIND") {
		return nil, malformedSearch("No search term found. The search term must be enclosed in braces.")
	}
	rest := strings.TrimLeft(trimmed[4:], " \t\r\n")
	if !strings.HasPrefix(rest, "{") {
		return nil, malformedSearch("No search term found. The search term must be enclosed in braces.")
	}
	// The term runs to the first unescaped closing brace.
	end := -1
	for i := 1; i < len(rest); i++ {
		if rest[i] == '\\' {
			i++
			continue
		}
		if rest[i] == '}' {
			end = i
			break
		}
	}
	if end < 0 {
		return nil, malformedSearch("No search term found. The search term must be enclosed in braces.")
	}
	expr, err := parseTerm(rest[1:end])
	if err != nil {
		return nil, err
	}
	q := &soslQuery{expr: expr, scope: "ALL", limit: 2000}
	tail := rest[end+1:]
	toks, lerr := lex(tail)
	if lerr != nil {
		return nil, malformedSearch(lerr.msg)
	}
	p := &parser{src: tail, toks: toks, lookup: lookup}
	if p.peek().is("IN") {
		p.next()
		switch t := p.next(); {
		case t.is("ALL"), t.is("NAME"), t.is("EMAIL"):
			q.scope = strings.ToUpper(t.text)
		default:
			p.unexpected(t)
		}
		p.expectKeyword("FIELDS")
	}
	if p.peek().is("RETURNING") {
		p.next()
		for p.err == nil {
			q.returns = append(q.returns, p.soslReturn(searchable))
			if n := p.peek(); n.kind != tokPunct || n.text != "," {
				break
			}
			p.next()
		}
	} else if p.err == nil {
		for _, name := range searchable {
			o, _ := lookup(name)
			q.returns = append(q.returns, soslReturn{typ: o, fields: []string{"Id"}, limit: -1})
		}
	}
	if p.peek().is("LIMIT") {
		p.next()
		q.limit = p.count()
	}
	if t := p.next(); p.err == nil && t.kind != tokEOF {
		p.unexpected(t)
	}
	if p.err != nil {
		if p.err.code == codeMalformedQuery {
			p.err.code = codeMalformedSearch
		}
		return nil, p.err
	}
	return q, nil
}

func (p *parser) soslReturn(searchable []string) soslReturn {
	t := p.next()
	if p.err != nil {
		return soslReturn{}
	}
	if t.kind != tokIdent {
		p.unexpected(t)
		return soslReturn{}
	}
	o, ok := p.lookup(t.text)
	if !ok || !slices.Contains(searchable, o.name) {
		p.err = &queryError{codeInvalidType, located(p.src, t.pos, fmt.Sprintf("sObject type '%s' is not supported.", t.text))}
		return soslReturn{}
	}
	p.typ = o
	ret := soslReturn{typ: o, fields: []string{"Id"}, limit: -1}
	if n := p.peek(); n.kind != tokPunct || n.text != "(" {
		return ret
	}
	p.next()
	ret.fields = nil
	for p.err == nil {
		f := p.field(p.next())
		ret.fields = append(ret.fields, f.Name)
		if n := p.peek(); n.kind != tokPunct || n.text != "," {
			break
		}
		p.next()
	}
	if p.peek().is("WHERE") {
		p.next()
		ret.where = p.condition()
	}
	if p.peek().is("ORDER") {
		p.next()
		p.expectKeyword("BY")
		for p.err == nil {
			f := p.field(p.next())
			k := orderKey{field: f, nullsFirst: true}
			if p.peek().is("DESC") {
				p.next()
				k.desc, k.nullsFirst = true, false
			} else if p.peek().is("ASC") {
				p.next()
			}
			ret.order = append(ret.order, k)
			if n := p.peek(); n.kind != tokPunct || n.text != "," {
				break
			}
			p.next()
		}
	}
	if p.peek().is("LIMIT") {
		p.next()
		ret.limit = p.count()
	}
	p.expectPunct(")")
	return ret
}

// termLexer reads the text between the braces.
type termLexer struct {
	src   []rune
	i     int
	chars int // searchable characters seen, for the two-character minimum
}

type termTok struct {
	kind   int // 0 EOF, 1 word, 2 phrase, 3 (, 4 ), 5 AND, 6 OR, 7 NOT
	phrase searchPhrase
}

func parseTerm(src string) (searchExpr, *queryError) {
	l := &termLexer{src: []rune(src)}
	var toks []termTok
	for {
		t, err := l.next()
		if err != nil {
			return nil, err
		}
		if t.kind == 0 {
			break
		}
		toks = append(toks, t)
	}
	if l.chars < 2 {
		return nil, malformedSearch("search term must be longer than one character: " + strings.TrimSpace(src))
	}
	tp := &termParser{toks: toks}
	e := tp.or()
	if tp.err != nil {
		return nil, tp.err
	}
	if tp.i != len(toks) {
		return nil, malformedSearch("mismatched character in search term: " + src)
	}
	return e, nil
}

func (l *termLexer) next() (termTok, *queryError) {
	for l.i < len(l.src) && unicode.IsSpace(l.src[l.i]) {
		l.i++
	}
	if l.i >= len(l.src) {
		return termTok{}, nil
	}
	switch c := l.src[l.i]; c {
	case '(':
		l.i++
		return termTok{kind: 3}, nil
	case ')':
		l.i++
		return termTok{kind: 4}, nil
	case '"':
		l.i++
		var b []rune
		for l.i < len(l.src) && l.src[l.i] != '"' {
			r, err := l.char(true)
			if err != nil {
				return termTok{}, err
			}
			b = append(b, r)
		}
		if l.i >= len(l.src) {
			return termTok{}, malformedSearch("unterminated phrase in search term")
		}
		l.i++
		return termTok{kind: 2, phrase: phraseOf(b)}, nil
	}
	var b []rune
	for l.i < len(l.src) && !unicode.IsSpace(l.src[l.i]) && l.src[l.i] != '(' && l.src[l.i] != ')' && l.src[l.i] != '"' {
		r, err := l.char(false)
		if err != nil {
			return termTok{}, err
		}
		b = append(b, r)
	}
	switch string(b) {
	case "AND", "and":
		return termTok{kind: 5}, nil
	case "OR", "or":
		return termTok{kind: 6}, nil
	case "NOT", "not":
		return termTok{kind: 7}, nil
	}
	return termTok{kind: 1, phrase: phraseOf(b)}, nil
}

// char reads one character of a word or phrase: an escape gives the character itself; an
// unescaped reserved character other than the wildcards is refused.
func (l *termLexer) char(inPhrase bool) (rune, *queryError) {
	c := l.src[l.i]
	l.i++
	if c == '\\' {
		if l.i >= len(l.src) {
			return 0, malformedSearch("search term ends with an escape character")
		}
		e := l.src[l.i]
		l.i++
		l.chars++
		switch e {
		case '*':
			return litStar, nil
		case '?':
			return litQuestion, nil
		}
		return e, nil
	}
	if c == '*' || c == '?' {
		return c, nil
	}
	if strings.ContainsRune(soslReserved, c) {
		return 0, malformedSearch(fmt.Sprintf("mismatched character '%c' in search term: the reserved characters %s must be escaped with a backslash", c, soslReserved))
	}
	l.chars++
	return c, nil
}

// phraseOf lower-cases and splits a word or phrase the way records are split, keeping
// wildcards inside words.
func phraseOf(b []rune) searchPhrase {
	var out searchPhrase
	var cur []rune
	for _, r := range b {
		switch {
		case r == '*' || r == '?' || r == litStar || r == litQuestion || unicode.IsLetter(r) || unicode.IsDigit(r):
			cur = append(cur, unicode.ToLower(r))
		case len(cur) > 0:
			out, cur = append(out, cur), nil
		}
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

type termParser struct {
	toks []termTok
	i    int
	err  *queryError
}

func (p *termParser) peek() int {
	if p.i < len(p.toks) {
		return p.toks[p.i].kind
	}
	return 0
}

func (p *termParser) or() searchExpr {
	list := searchOr{p.and()}
	for p.err == nil && p.peek() == 6 {
		p.i++
		list = append(list, p.and())
	}
	if len(list) == 1 {
		return list[0]
	}
	return list
}

func (p *termParser) and() searchExpr {
	list := searchAnd{p.unit()}
	for p.err == nil {
		switch p.peek() {
		case 5:
			p.i++
			if p.peek() == 7 {
				p.i++
				list = append(list, searchNot{p.unit()})
				continue
			}
			list = append(list, p.unit())
		case 1, 2, 3:
			list = append(list, p.unit()) // words side by side: all must match
		default:
			if len(list) == 1 {
				return list[0]
			}
			return list
		}
	}
	return list
}

func (p *termParser) unit() searchExpr {
	if p.err != nil {
		return nil
	}
	if p.i >= len(p.toks) {
		p.err = malformedSearch("search term ends with an operator")
		return nil
	}
	t := p.toks[p.i]
	p.i++
	switch t.kind {
	case 1, 2:
		return t.phrase
	case 3:
		e := p.or()
		if p.peek() != 4 {
			p.err = malformedSearch("mismatched parentheses in search term")
			return nil
		}
		p.i++
		return e
	}
	p.err = malformedSearch("unexpected operator in search term")
	return nil
}

// searchableTypes are the types SOSL may return.
func (s *Server) searchableTypesLocked() []string {
	var out []string
	for _, name := range s.typeOrder {
		if name != "CaseComment" {
			out = append(out, name)
		}
	}
	return out
}

// searchFields are the fields a scope searches in o.
func searchFields(o *sobject, scope string) []string {
	var out []string
	for _, f := range o.fields {
		switch {
		case scope == "NAME" && (f.NameField || (o.name == "Case" && f.Name == "Subject")):
			out = append(out, f.Name)
		case scope == "EMAIL" && f.Type == TypeEmail:
			out = append(out, f.Name)
		case scope == "ALL" && f.textual():
			out = append(out, f.Name)
		}
	}
	return out
}

// search answers GET /search?q=.
func (s *Server) search(w http.ResponseWriter, r *http.Request, v string) {
	src := r.URL.Query().Get("q")
	s.mu.Lock()
	q, qerr := parseSOSL(src, s.typeLocked, s.searchableTypesLocked())
	if qerr != nil {
		s.mu.Unlock()
		writeErrors(w, http.StatusBadRequest, qerr.code, qerr.msg)
		return
	}
	out := []*ordered{}
	for _, ret := range q.returns {
		fields := searchFields(ret.typ, q.scope)
		var hits []Fields
		for _, row := range s.visibleRowsLocked(ret.typ, false) {
			var text []string
			for _, f := range fields {
				if sv, ok := row[f].(string); ok {
					text = append(text, sv)
				}
			}
			if q.expr.match(words(strings.Join(text, " "))) && (ret.where == nil || ret.where.eval(row)) {
				hits = append(hits, row)
			}
		}
		sortRows(hits, ret.order)
		if ret.limit >= 0 && len(hits) > ret.limit {
			hits = hits[:ret.limit]
		}
		for _, h := range hits {
			if len(out) < q.limit {
				out = append(out, render(v, ret.typ, h, ret.fields))
			}
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"searchRecords": out})
}

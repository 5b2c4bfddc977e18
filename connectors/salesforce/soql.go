package salesforce

import (
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// Every SOQL and SOSL text the connector sends is built from three kinds of part:
//
//   - names (sObject and field API names) that match identPattern, checked before use
//     and in practice taken from describe;
//   - values: Ids (checked by validID, then quoted), datetimes (formatted here, UTC) and
//     strings, always through quoteSOQL;
//   - the tenant's spec.scope.filter, a SOQL condition checked by checkFilter to be one
//     balanced boolean expression of comparisons, and always wrapped in parentheses.
//
// Free search text goes into SOSL braces through escapeSOSL only.

// identPattern is an sObject or field API name: a letter, then letters, digits and
// underscores (a custom suffix such as __c, __r, __x, __mdt or __e included), at most 80
// characters (40 for the name, a 15-character namespace prefix, the suffix).
var identPattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*(__c|__r|__x|__mdt|__e)?$`)

const maxIdentLen = 80

// validIdent reports whether s may be used as an sObject or field name in SOQL.
func validIdent(s string) bool {
	return len(s) <= maxIdentLen && identPattern.MatchString(s) && !soqlKeywords[strings.ToUpper(s)]
}

// idPattern is a 15- or 18-character record Id: base-62.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9]{15}([A-Za-z0-9]{3})?$`)

func validID(s string) bool { return idPattern.MatchString(s) }

// quoteSOQL returns s as a SOQL string literal: single-quoted, with backslash, both
// quotes, newline, carriage return, tab, backspace and form feed escaped as the SOQL
// reference's "Quoted String Escape Sequences" list them, any other control character
// as \uXXXX, and invalid UTF-8 replaced by U+FFFD (Salesforce would not store it). The
// result can neither end the literal early nor carry a sequence SOQL refuses.
func quoteSOQL(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for _, r := range s {
		switch r {
		case '\\':
			b.WriteString(`\\`)
		case '\'':
			b.WriteString(`\'`)
		case '"':
			b.WriteString(`\"`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(&b, `\u%04x`, r)
				continue
			}
			b.WriteRune(r)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// soqlTime is a SOQL datetime literal: UTC, to the second (Salesforce stores seconds).
func soqlTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

// soslReserved are the characters SOSL reserves inside FIND {…}; each must be preceded
// by a backslash to be searched as itself.
const soslReserved = `?&|!{}[]()^~*:\"'+-`

// maxSearchText bounds a search text (SOSL's whole text may be 100,000 characters).
const maxSearchText = 1000

// escapeSOSL returns text for FIND {…}: every reserved character backslash-escaped, so
// that none can close the braces, start a group, a phrase or a wildcard; control
// characters become spaces and invalid UTF-8 U+FFFD. Words such as AND, OR and NOT keep
// their SOSL meaning: they combine the words, they cannot leave the braces.
func escapeSOSL(text string) string {
	text = strings.ToValidUTF8(text, "\uFFFD")
	var b strings.Builder
	b.Grow(len(text) + 8)
	for _, r := range text {
		switch {
		case strings.ContainsRune(soslReserved, r):
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// soqlKeywords may not be names: they would change the statement around a name.
var soqlKeywords = map[string]bool{
	"SELECT": true, "FROM": true, "WHERE": true, "AND": true, "OR": true, "NOT": true,
	"ORDER": true, "BY": true, "LIMIT": true, "OFFSET": true, "GROUP": true, "HAVING": true,
	"IN": true, "LIKE": true, "INCLUDES": true, "EXCLUDES": true, "NULL": true, "TRUE": true,
	"FALSE": true, "FOR": true, "WITH": true, "UPDATE": true, "USING": true, "TYPEOF": true,
	"ALL": true, "ASC": true, "DESC": true, "NULLS": true, "FIND": true, "RETURNING": true,
	"VIEW": true, "REFERENCE": true, "TRACKING": true, "VIEWSTAT": true, "END": true,
	"WHEN": true, "ELSE": true, "THEN": true, "ROLLUP": true, "CUBE": true, "FORMAT": true,
}

// clauseKeywords end a WHERE clause or open a subquery; a filter holding one is refused
// outright, whatever its position.
var clauseKeywords = []string{"SELECT", "FROM", "WHERE", "LIMIT", "ORDER", "GROUP", "HAVING", "OFFSET",
	"FOR", "WITH", "UPDATE", "USING", "TYPEOF", "ALL", "FIND", "RETURNING"}

// maxFilterLen bounds spec.scope.filter (the CRD allows 4,096 characters).
const maxFilterLen = 4096

// checkFilter reports whether filter (spec.scope.filter) is one SOQL condition that can
// be ANDed onto a WHERE clause in parentheses:
//
//	cond  := term {AND term} | term {OR term}      (mixing needs parentheses, as in SOQL)
//	term  := NOT term | ( cond ) | cmp
//	cmp   := field op value | field [NOT] IN ( value, … ) | field LIKE 'text'
//	       | field INCLUDES|EXCLUDES ( 'text', … )
//	field := name[.name…] | function ( name[.name…] )     (for example CALENDAR_YEAR(CreatedDate))
//	value := 'string' | number | datetime | date | null | true | false | DATE_LITERAL[:n]
//
// with op one of = != <> < <= > >=. Subqueries are refused (SELECT), as is every
// keyword that ends the WHERE clause (LIMIT, ORDER, GROUP, HAVING, OFFSET, FOR, WITH,
// UPDATE, USING, ALL …), bind variables, semicolons, double quotes, a string literal with
// an escape SOQL refuses, and unbalanced parentheses or quotes. Errors give a position,
// never the filter's text.
func checkFilter(filter string) error {
	if len(filter) > maxFilterLen {
		return fmt.Errorf("spec.scope.filter is longer than %d characters", maxFilterLen)
	}
	toks, err := lexFilter(filter)
	if err != nil {
		return err
	}
	for _, t := range toks {
		if t.kind == ftIdent {
			for _, seg := range strings.Split(t.text, ".") {
				for _, kw := range clauseKeywords {
					if strings.EqualFold(seg, kw) {
						return fmt.Errorf("spec.scope.filter may not use %s (at offset %d): it must be a single condition", kw, t.pos)
					}
				}
			}
		}
	}
	p := &filterParser{toks: toks}
	p.cond()
	if p.err == nil && p.peek().kind != ftEOF {
		p.fail("unexpected token")
	}
	return p.err
}

type ftKind int

const (
	ftEOF ftKind = iota
	ftIdent
	ftString
	ftNumber
	ftDateTime
	ftPunct
)

type ftoken struct {
	kind ftKind
	text string
	pos  int
}

func (t ftoken) is(kw string) bool { return t.kind == ftIdent && strings.EqualFold(t.text, kw) }

func isLetter(c byte) bool { return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }

// lexFilter splits a filter into tokens, refusing anything outside the grammar's alphabet.
func lexFilter(s string) ([]ftoken, error) {
	var out []ftoken
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '\'':
			j := i + 1
			for ; j < len(s) && s[j] != '\''; j++ {
				if s[j] == '\\' {
					j++
					if j >= len(s) {
						break
					}
					switch s[j] {
					case 'n', 'N', 'r', 'R', 't', 'T', 'b', 'B', 'f', 'F', '"', '\'', '\\', '_', '%':
					case 'u':
						if j+4 >= len(s) || !isHex(s[j+1:j+5]) {
							return nil, fmt.Errorf("spec.scope.filter: bad \\u escape in the string at offset %d", i)
						}
						j += 4
					default:
						return nil, fmt.Errorf("spec.scope.filter: the string at offset %d holds an escape SOQL refuses", i)
					}
				}
			}
			if j >= len(s) {
				return nil, fmt.Errorf("spec.scope.filter: the string at offset %d is not closed", i)
			}
			if !utf8.ValidString(s[i+1 : j]) {
				return nil, fmt.Errorf("spec.scope.filter: the string at offset %d is not UTF-8", i)
			}
			out = append(out, ftoken{ftString, s[i+1 : j], i})
			i = j + 1
		case isDigit(c) || (c == '-' || c == '+') && i+1 < len(s) && isDigit(s[i+1]):
			j := i + 1
			for j < len(s) && (isDigit(s[j]) || strings.IndexByte(".-:TZ+", s[j]) >= 0) {
				j++
			}
			text := s[i:j]
			kind := ftNumber
			if strings.ContainsAny(text[1:], "-:TZ") {
				kind = ftDateTime
				if !dateLiteralPattern.MatchString(text) {
					return nil, fmt.Errorf("spec.scope.filter: bad date or datetime at offset %d", i)
				}
			} else if !numberPattern.MatchString(text) {
				return nil, fmt.Errorf("spec.scope.filter: bad number at offset %d", i)
			}
			out = append(out, ftoken{kind, text, i})
			i = j
		case isLetter(c):
			j := i + 1
			for j < len(s) && (isLetter(s[j]) || isDigit(s[j]) || s[j] == '_' || s[j] == '.') {
				j++
			}
			text := s[i:j]
			for _, seg := range strings.Split(text, ".") {
				if !identPattern.MatchString(seg) || len(seg) > maxIdentLen {
					return nil, fmt.Errorf("spec.scope.filter: bad name at offset %d", i)
				}
			}
			out = append(out, ftoken{ftIdent, text, i})
			i = j
		case strings.HasPrefix(s[i:], "!=") || strings.HasPrefix(s[i:], "<>") || strings.HasPrefix(s[i:], "<=") || strings.HasPrefix(s[i:], ">="):
			out = append(out, ftoken{ftPunct, s[i : i+2], i})
			i += 2
		case strings.IndexByte("(),=<>:", c) >= 0:
			out = append(out, ftoken{ftPunct, s[i : i+1], i})
			i++
		default:
			return nil, fmt.Errorf("spec.scope.filter: character not allowed at offset %d", i)
		}
	}
	return append(out, ftoken{ftEOF, "", len(s)}), nil
}

var (
	numberPattern      = regexp.MustCompile(`^[+-]?[0-9]+(\.[0-9]+)?$`)
	dateLiteralPattern = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,3})?(Z|[+-][0-9]{2}:?[0-9]{2}))?$`)
	// dateWordPattern are SOQL date literals: TODAY, LAST_N_DAYS (with :n), THIS_FISCAL_YEAR.
	dateWordPattern = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)
)

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isDigit(c) && (c < 'a' || c > 'f') && (c < 'A' || c > 'F') {
			return false
		}
	}
	return len(s) > 0
}

// maxFilterDepth bounds nesting, so a hostile filter cannot exhaust the stack.
const maxFilterDepth = 32

type filterParser struct {
	toks  []ftoken
	i     int
	depth int
	err   error
}

func (p *filterParser) peek() ftoken { return p.toks[p.i] }

func (p *filterParser) next() ftoken {
	t := p.toks[p.i]
	if p.i < len(p.toks)-1 {
		p.i++
	}
	return t
}

func (p *filterParser) fail(what string) {
	if p.err == nil {
		p.err = fmt.Errorf("spec.scope.filter: %s at offset %d", what, p.peek().pos)
	}
}

func (p *filterParser) punct(s string) bool {
	if t := p.peek(); t.kind == ftPunct && t.text == s {
		p.next()
		return true
	}
	return false
}

func (p *filterParser) cond() {
	if p.depth++; p.depth > maxFilterDepth {
		p.fail("nested too deeply")
		return
	}
	defer func() { p.depth-- }()
	p.term()
	joiner := ""
	for p.err == nil {
		t := p.peek()
		if !t.is("AND") && !t.is("OR") {
			return
		}
		kw := strings.ToUpper(t.text)
		if joiner != "" && kw != joiner {
			p.fail("AND and OR mixed without parentheses")
			return
		}
		joiner = kw
		p.next()
		p.term()
	}
}

func (p *filterParser) term() {
	if p.err != nil {
		return
	}
	switch t := p.peek(); {
	case t.kind == ftPunct && t.text == "(":
		p.next()
		p.cond()
		if p.err == nil && !p.punct(")") {
			p.fail("unbalanced parentheses")
		}
	case t.is("NOT"):
		p.next()
		if p.depth++; p.depth > maxFilterDepth {
			p.fail("nested too deeply")
			return
		}
		p.term()
		p.depth--
	default:
		p.comparison()
	}
}

func (p *filterParser) field() {
	t := p.next()
	if t.kind != ftIdent || soqlKeywords[strings.ToUpper(t.text)] {
		p.fail("a field name was expected")
		return
	}
	if p.punct("(") {
		if a := p.next(); a.kind != ftIdent || soqlKeywords[strings.ToUpper(a.text)] {
			p.fail("a field name was expected")
			return
		}
		if !p.punct(")") {
			p.fail("unbalanced parentheses")
		}
	}
}

func (p *filterParser) comparison() {
	p.field()
	if p.err != nil {
		return
	}
	op := p.next()
	switch {
	case op.kind == ftPunct && strings.Contains(" = != <> < <= > >= ", " "+op.text+" "):
		p.value()
	case op.is("LIKE"):
		if p.next().kind != ftString {
			p.fail("LIKE takes a string")
		}
	case op.is("NOT"):
		if !p.next().is("IN") {
			p.fail("NOT IN expected")
			return
		}
		p.list(false)
	case op.is("IN"):
		p.list(false)
	case op.is("INCLUDES"), op.is("EXCLUDES"):
		p.list(true)
	default:
		p.fail("a comparison operator was expected")
	}
}

func (p *filterParser) list(stringsOnly bool) {
	if !p.punct("(") {
		p.fail("( expected")
		return
	}
	for p.err == nil {
		if stringsOnly {
			if p.next().kind != ftString {
				p.fail("a string was expected")
			}
		} else {
			p.value()
		}
		if p.punct(")") {
			return
		}
		if !p.punct(",") {
			p.fail("unbalanced parentheses")
		}
	}
}

func (p *filterParser) value() {
	t := p.next()
	switch {
	case t.kind == ftString, t.kind == ftNumber, t.kind == ftDateTime:
	case t.is("null"), t.is("true"), t.is("false"):
	case t.kind == ftIdent && dateWordPattern.MatchString(t.text) && !soqlKeywords[t.text]:
		if p.punct(":") {
			if n := p.next(); n.kind != ftNumber {
				p.fail("a number was expected")
			}
		}
	default:
		p.fail("a value was expected")
	}
}

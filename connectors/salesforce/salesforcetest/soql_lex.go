package salesforcetest

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The SOQL (and SOSL condition) lexer. Keywords are case-insensitive identifiers; string
// literals are single-quoted and keep their raw body, decoded by the parser as a value or
// a LIKE pattern; datetime literals are unquoted.

type tokKind int

const (
	tokEOF tokKind = iota
	tokIdent
	tokNumber
	tokString
	tokDateTime
	tokDate
	tokPunct // ( ) , = != <> < <= > >= :
)

type token struct {
	kind tokKind
	text string // identifier, number, punctuation, literal as written; string: raw body
	pos  int    // byte offset in the input
}

func (t token) is(kw string) bool { return t.kind == tokIdent && strings.EqualFold(t.text, kw) }

// describe is how an error message names the token.
func (t token) describe() string {
	if t.kind == tokEOF {
		return "<EOF>"
	}
	if t.kind == tokString {
		return "'" + t.text + "'"
	}
	return t.text
}

// lex splits src into tokens; a bad character or an unterminated string is an error.
func lex(src string) ([]token, *queryError) {
	var out []token
	i := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '\'':
			j := i + 1
			for j < len(src) && src[j] != '\'' {
				if src[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(src) {
				return nil, syntaxError(src, i, "unexpected token: "+strings.TrimSpace(src[i:min(i+20, len(src))]))
			}
			out = append(out, token{tokString, src[i+1 : j], i})
			i = j + 1
		case isDigit(c) || (c == '-' || c == '+') && i+1 < len(src) && isDigit(src[i+1]):
			j := i + 1
			if looksLikeDate(src[i:]) {
				// A date or datetime literal runs on through its time and offset.
				for j < len(src) && (isDigit(src[j]) || strings.IndexByte("-:.TZ+", src[j]) >= 0) {
					j++
				}
			} else {
				for j < len(src) && (isDigit(src[j]) || src[j] == '.') {
					j++
				}
			}
			text := src[i:j]
			kind := tokNumber
			switch {
			case isDateTimeLiteral(text):
				kind = tokDateTime
			case isDateLiteral(text):
				kind = tokDate
			case !isNumber(text):
				return nil, syntaxError(src, i, "unexpected token: "+text)
			}
			out = append(out, token{kind, text, i})
			i = j
		case isIdentStart(c):
			j := i + 1
			for j < len(src) && isIdentPart(src[j]) {
				j++
			}
			out = append(out, token{tokIdent, src[i:j], i})
			i = j
		case strings.HasPrefix(src[i:], "!=") || strings.HasPrefix(src[i:], "<>") || strings.HasPrefix(src[i:], "<=") || strings.HasPrefix(src[i:], ">="):
			out = append(out, token{tokPunct, src[i : i+2], i})
			i += 2
		case strings.IndexByte("(),=<>:", c) >= 0:
			out = append(out, token{tokPunct, src[i : i+1], i})
			i++
		default:
			r, _ := utf8.DecodeRuneInString(src[i:])
			return nil, syntaxError(src, i, fmt.Sprintf("unexpected token: '%c'", r))
		}
	}
	return append(out, token{tokEOF, "", len(src)}), nil
}

func looksLikeDate(s string) bool {
	return len(s) >= 10 && isDigit(s[0]) && isDigit(s[1]) && isDigit(s[2]) && isDigit(s[3]) && s[4] == '-'
}

func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isIdentStart(c byte) bool { return c == '_' || c < utf8.RuneSelf && unicode.IsLetter(rune(c)) }
func isIdentPart(c byte) bool  { return isIdentStart(c) || isDigit(c) || c == '.' }

func isNumber(s string) bool {
	s = strings.TrimLeft(s, "+-")
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" || !allDigits(whole) {
		return false
	}
	return !hasDot || (frac != "" && allDigits(frac))
}

func allDigits(s string) bool {
	for i := range len(s) {
		if !isDigit(s[i]) {
			return false
		}
	}
	return s != ""
}

func isDateLiteral(s string) bool {
	return len(s) == 10 && allDigits(s[:4]) && s[4] == '-' && allDigits(s[5:7]) && s[7] == '-' && allDigits(s[8:])
}

func isDateTimeLiteral(s string) bool {
	_, ok := parseDateTimeLiteral(s)
	return ok
}

// syntaxError is MALFORMED_QUERY with Salesforce's layout: the query, a caret under the
// offending column, the row and column, then what went wrong.
func syntaxError(src string, pos int, what string) *queryError {
	return &queryError{codeMalformedQuery, located(src, pos, what)}
}

// located formats msg as Salesforce does for errors at a place in a query.
func located(src string, pos int, what string) string {
	pos = min(max(pos, 0), len(src))
	row := strings.Count(src[:pos], "\n") + 1
	lineStart := strings.LastIndexByte(src[:pos], '\n') + 1
	col := pos - lineStart + 1
	line, _, _ := strings.Cut(src[lineStart:], "\n")
	return fmt.Sprintf("\n%s\n%s^\nERROR at Row:%d:Column:%d\n%s", line, strings.Repeat(" ", col-1), row, col, what)
}

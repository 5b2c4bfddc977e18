package jira

import (
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// unquoteJQL reads a JQL string literal as Jira's grammar does: \" \' \\ \n \r \t,
// "\ " and \uXXXX escapes. ok is false when s is not exactly one literal.
func unquoteJQL(s string) (string, bool) {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return "", false
	}
	var b strings.Builder
	for i := 1; i < len(s)-1; i++ {
		switch c := s[i]; c {
		case '"':
			return "", false // an unescaped quote would end the literal early
		case '\\':
			if i+1 >= len(s)-1 {
				return "", false
			}
			i++
			switch e := s[i]; e {
			case '"', '\'', '\\', ' ':
				b.WriteByte(e)
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'u':
				if i+4 >= len(s)-1 {
					return "", false
				}
				v, err := strconv.ParseUint(s[i+1:i+5], 16, 16)
				if err != nil {
					return "", false
				}
				b.WriteRune(rune(v))
				i += 4
			default:
				return "", false
			}
		default:
			if c < 0x20 {
				return "", false // raw control characters are not part of a literal
			}
			b.WriteByte(c)
		}
	}
	return b.String(), true
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		``:                         `""`,
		`plain`:                    `"plain"`,
		`say "hi"`:                 `"say \"hi\""`,
		`C:\temp`:                  `"C:\\temp"`,
		`x" OR project = SECRET`:   `"x\" OR project = SECRET"`,
		"line\nbreak\ttab\r":       `"line\nbreak\ttab\r"`,
		"bell\x07 del\x7f":         `"bell\u0007 del\u007f"`,
		"sep\u2028":                `"sep\u2028"`,
		"ünïcödé 😄 'single'":       `"ünïcödé 😄 'single'"`,
		"bad\xffbyte":              "\"bad\uFFFDbyte\"",
		`trailing backslash\`:      `"trailing backslash\\"`,
		`\" escaped quote attempt`: `"\\\" escaped quote attempt"`,
	} {
		if got := quote(in); got != want {
			t.Errorf("quote(%q) = %s, want %s", in, got, want)
		}
	}
}

func FuzzQuote(f *testing.F) {
	for _, s := range []string{"", `"`, `\`, `\"`, "a\nb", "\x00", "😄", "\xff", "\xc2\xe2", `x" OR project = A OR text ~ "`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q := quote(s)
		got, ok := unquoteJQL(q)
		if !ok {
			t.Fatalf("quote(%q) = %s is not one JQL literal", s, q)
		}
		// Each invalid byte reads back as one U+FFFD, as ranging over s gives it.
		var want strings.Builder
		for _, r := range s {
			want.WriteRune(r)
		}
		if got != want.String() {
			t.Fatalf("quote(%q) reads back as %q", s, got)
		}
		if !utf8.ValidString(q) {
			t.Fatalf("quote(%q) is not valid UTF-8", s)
		}
	})
}

func TestCheckFilter(t *testing.T) {
	for _, ok := range []string{
		"project = PRJA",
		"issuetype = Bug AND (labels = x OR labels = y)",
		`summary ~ "(unbalanced in a string"`,
		`summary ~ "order by created"`,
		`summary ~ 'it\'s )'`,
		`reporter in (a, b) AND created >= -30d`,
		"recorder = x", // "order" inside a word
		"ordered by = 1",
	} {
		if err := checkFilter(ok); err != nil {
			t.Errorf("checkFilter(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{
		"project = A) OR (project = B",
		"(project = A",
		"project = A)",
		`summary ~ "unterminated`,
		`summary ~ 'unterminated`,
		`summary ~ "escaped at the end\"`,
		"project = A ORDER BY created",
		"project = A order\n by key",
		"(project = A ORDER BY key)",
	} {
		if err := checkFilter(bad); err == nil {
			t.Errorf("checkFilter(%q) accepted it", bad)
		}
	}
}

func TestIssueRefs(t *testing.T) {
	for _, ok := range []string{"10000", "PRJA-1", "prja-12", "A_B2-3"} {
		if !isIssueRef(ok) {
			t.Errorf("isIssueRef(%q) = false", ok)
		}
	}
	for _, bad := range []string{"", "..", "PRJA-", "-1", "PRJA-1/comment", "1?x", "PRJA 1", "1e5", "Ä-1", strings.Repeat("1", 19)} {
		if isIssueRef(bad) {
			t.Errorf("isIssueRef(%q) = true", bad)
		}
	}
}

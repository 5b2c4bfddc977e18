package salesforcetest

import "testing"

// FuzzParseSOSL feeds arbitrary text to the SOSL parser and matcher: they may refuse it,
// never panic.
func FuzzParseSOSL(f *testing.F) {
	for _, seed := range []string{
		"FIND {acme} RETURNING Account(Id, Name WHERE Name LIKE 'a%' ORDER BY Name LIMIT 2), Case LIMIT 5",
		`FIND {"acme corp" AND NOT (x\-y OR z\*)} IN NAME FIELDS`,
		`FIND {a\}b} RETURNING Contact`,
		`FIND {ab\`,
		"FIND {??} RETURNING Account(Id",
	} {
		f.Add(seed)
	}
	s := New()
	searchable := s.searchableTypesLocked()
	rows := [][]string{{"acme", "corp"}, nil, {"x", "y"}}
	f.Fuzz(func(t *testing.T, src string) {
		q, err := parseSOSL(src, s.typeLocked, searchable)
		if err != nil {
			if err.code == "" {
				t.Fatalf("empty error code for %q", src)
			}
			return
		}
		for _, w := range rows {
			_ = q.expr.match(w)
		}
	})
}

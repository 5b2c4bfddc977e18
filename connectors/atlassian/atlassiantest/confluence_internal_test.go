package atlassiantest

import (
	"testing"
	"time"
)

// One server has one Confluence site, whoever asks.
func TestConfluenceSiteIsPerServer(t *testing.T) {
	s := New()
	s.SeedConfluence(ConfluenceSeed{Spaces: 1, PagesPerSpace: 1})
	first := s.confluence()
	if again := s.confluence(); again != first {
		t.Error("two sites for one server")
	}
	if New().confluence() == s.confluence() {
		t.Error("two servers share a site")
	}
}

func FuzzParseCQL(f *testing.F) {
	for _, s := range []string{
		`space = SPA AND type = page AND lastmodified >= "2024-01-31 10:00" ORDER BY lastmodified ASC`,
		`space in ("A", 'B') OR NOT (text ~ "x\"y")`,
		`id not in (1,2) AND created <= "2024/01/31"`,
		`ORDER BY id DESC, title`,
		`((((`, `"`, `a ~`, `x = y(`,
	} {
		f.Add(s)
	}
	loc, _ := time.LoadLocation("Australia/Sydney")
	site := newConfluenceSite()
	sp := &cfSpace{id: "1", key: "SPA", name: "A"}
	site.spaces = append(site.spaces, sp)
	if _, err := site.addPageLocked(sp, "Title", "<p>body</p>", "u", time.Unix(1700000000, 0)); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, cql string) {
		q, err := parseCQL(cql, loc)
		if err != nil {
			if _, ok := err.(*cqlSyntaxError); !ok {
				t.Fatalf("parseCQL(%q): error of type %T", cql, err)
			}
			return
		}
		site.runLocked(q) // must not panic either
	})
}

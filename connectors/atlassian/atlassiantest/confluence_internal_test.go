package atlassiantest

import (
	"runtime"
	"testing"
	"time"
)

// A fake that is no longer used takes its Confluence content with it.
func TestConfluenceSiteIsCollected(t *testing.T) {
	count := func() int {
		n := 0
		confluenceSites.Range(func(any, any) bool { n++; return true })
		return n
	}
	before := count()
	func() {
		s := New()
		s.SeedConfluence(ConfluenceSeed{Spaces: 1, PagesPerSpace: 1})
		first := s.confluence()
		if again := s.confluence(); again != first {
			t.Error("two sites for one server")
		}
	}()
	if count() != before+1 {
		t.Fatalf("sites: %d, want %d", count(), before+1)
	}
	deadline := time.Now().Add(10 * time.Second)
	for count() > before && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if n := count(); n > before {
		t.Errorf("sites: %d after the server was dropped, want %d", n, before)
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

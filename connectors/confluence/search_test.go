package confluence_test

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/unified-connectors/connector-operator/connectors"
)

func searchAll(t *testing.T, c connectors.Client, q connectors.SearchQuery) []connectors.Item {
	t.Helper()
	return all(t, func(cur string) (connectors.Page[connectors.Item], error) {
		q.Cursor = cur
		return c.Search(t.Context(), q)
	})
}

func ids(items []connectors.Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.ID
	}
	return out
}

func TestSearch(t *testing.T) {
	fake := seededFake(t)
	// The vendor's answer in one go, in its relevance order.
	want := searchIDs(t, fake, `type = page AND text ~ "runbook"`)
	if len(want) < 5 {
		t.Fatalf("the seed has %d pages about runbooks; the test wants more", len(want))
	}
	for name, cfg := range map[string]connectors.Config{"api token": cloudConfig(fake), "gateway": gatewayConfig(fake), "datacenter": dcConfig(fake)} {
		t.Run(name, func(t *testing.T) {
			c := newClient(t, cfg)
			items := searchAll(t, c, connectors.SearchQuery{Text: "Runbook", Limit: 2})
			if got := ids(items); !slices.Equal(got, want) {
				t.Errorf("results %v, want the vendor's order %v", got, want)
			}
			for _, it := range items {
				checkItem(t, it, cfg, it.Container)
				if !strings.Contains(strings.ToLower(it.Text), "runbook") && !strings.Contains(strings.ToLower(it.Title), "runbook") {
					t.Errorf("result %s: text %q does not show the match", it.ID, it.Text)
				}
				if strings.Contains(it.Text, "@@@") {
					t.Errorf("result %s: highlight markers left in %q", it.ID, it.Text)
				}
			}

			inB := searchAll(t, c, connectors.SearchQuery{Text: "runbook", Containers: []string{"SPB"}})
			filtered := searchAll(t, c, connectors.SearchQuery{Text: "runbook", Filter: `space = "SPB" OR space = SPB`})
			if len(inB) == 0 || len(inB) >= len(items) || !slices.Equal(ids(inB), ids(filtered)) {
				t.Errorf("in SPB: %v; filtered to SPB: %v; all: %d", ids(inB), ids(filtered), len(items))
			}
			for _, it := range inB {
				if it.Container != "SPB" {
					t.Errorf("result %s is in %s, not SPB", it.ID, it.Container)
				}
			}
		})
	}
}

func TestSearchKinds(t *testing.T) {
	fake := seededFake(t)
	c := newClient(t, cloudConfig(fake))
	fake.ResetRequests()
	page, err := c.Search(t.Context(), connectors.SearchQuery{Text: "runbook", Kind: connectors.KindIssue})
	if err != nil || len(page.Items) != 0 || page.NextCursor != "" {
		t.Errorf("issues: %+v, %v; want nothing", page, err)
	}
	if n := len(fake.Requests()); n != 0 {
		t.Errorf("searching for issues sent %d requests", n)
	}
	if page, err := c.Search(t.Context(), connectors.SearchQuery{Text: "runbook", Kind: connectors.KindPage}); err != nil || len(page.Items) == 0 {
		t.Errorf("pages: %+v, %v", page, err)
	}
}

// The user's text stays one CQL string whatever it holds.
func TestSearchTextCannotInjectCQL(t *testing.T) {
	fake := seededFake(t)
	for name, cfg := range map[string]connectors.Config{"cloud": cloudConfig(fake), "datacenter": dcConfig(fake)} {
		c := newClient(t, cfg)
		for _, text := range []string{
			`zzqq" OR type = "page`,
			`zzqq") OR (type = page`,
			`zzqq\" OR type = page OR text ~ \"`,
			`zzqq\`,
			"zzqq\n\" OR type = page",
			`zzqq' OR type = 'page`,
		} {
			page, err := c.Search(t.Context(), connectors.SearchQuery{Text: text})
			if err != nil {
				t.Errorf("%s: Search(%q): %v", name, text, err)
				continue
			}
			if len(page.Items) != 0 {
				t.Errorf("%s: Search(%q) found %d pages: the text escaped its string", name, text, len(page.Items))
			}
		}
	}
}

// A cursor is the connector's own: a forged one is refused before any request, and a
// vendor token planted in one is sent only as a parameter of the same search.
func TestSearchCursors(t *testing.T) {
	fake := seededFake(t)
	c := newClient(t, cloudConfig(fake))
	q := connectors.SearchQuery{Text: "runbook", Limit: 2}
	first, err := c.Search(t.Context(), q)
	if err != nil || first.NextCursor == "" {
		t.Fatalf("Search: %+v %v", first, err)
	}

	fake.ResetRequests()
	for name, cur := range map[string]string{
		"garbage":         "!!not a cursor!!",
		"not JSON":        base64.RawURLEncoding.EncodeToString([]byte("hello")),
		"a URL":           "https://evil.example/wiki/rest/api/search?cql=type%3Dpage",
		"another query":   first.NextCursor + "",
		"padded":          first.NextCursor + "==",
		"too long":        strings.Repeat("A", 5000),
		"unknown field":   rewriteCursor(t, first.NextCursor, func(m map[string]any) { m["url"] = "https://evil.example/" }),
		"other call":      rewriteCursor(t, first.NextCursor, func(m map[string]any) { m["op"] = "containers" }),
		"future version":  rewriteCursor(t, first.NextCursor, func(m map[string]any) { m["v"] = 2 }),
		"negative offset": rewriteCursor(t, first.NextCursor, func(m map[string]any) { m["s"] = -5 }),
	} {
		query := q
		if name == "another query" {
			query.Text = "sprint"
		}
		query.Cursor = cur
		_, err := c.Search(t.Context(), query)
		var ve *connectors.Error
		if connectors.KindOf(err) != connectors.KindInvalid || !asError(err, &ve) || ve.Reason != "invalid cursor" {
			t.Errorf("%s: %v, want KindInvalid invalid cursor", name, err)
		}
	}
	if n := len(fake.Requests()); n != 0 {
		t.Errorf("invalid cursors sent %d requests", n)
	}

	// A token that looks like a URL goes nowhere but to the search, as a parameter (the
	// fake refuses it as a cursor it did not issue).
	planted := rewriteCursor(t, first.NextCursor, func(m map[string]any) { m["c"] = "//evil.example/rest/api/search?x=1" })
	_, err = c.Search(t.Context(), connectors.SearchQuery{Text: "runbook", Limit: 2, Cursor: planted})
	if connectors.KindOf(err) != connectors.KindInvalid {
		t.Errorf("planted token: %v, want the vendor's refusal", err)
	}
	reqs := fake.Requests()
	if len(reqs) != 1 || reqs[0].Path != "/wiki/rest/api/search" {
		t.Errorf("planted token led to %+v, want one request to /wiki/rest/api/search", reqs)
	}
}

// rewriteCursor decodes a cursor, lets edit change it, and encodes it again.
func rewriteCursor(t *testing.T, cur string, edit func(map[string]any)) string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(cur)
	if err != nil {
		t.Fatalf("cursor %q is not base64url: %v", cur, err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("cursor %q is not JSON: %v", raw, err)
	}
	edit(m)
	raw, _ = json.Marshal(m)
	return base64.RawURLEncoding.EncodeToString(raw)
}

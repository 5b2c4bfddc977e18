package api

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestLimits(t *testing.T) {
	for raw, want := range map[string]int{"": 25, "1": 1, "100": 100, "0": -1, "-1": -1, "101": -1, "1e3": -1, "99999999999999999999": -1, " 5": -1} {
		q, err := newQuery("limit="+strings.ReplaceAll(raw, " ", "%20"), "limit")
		if err != nil {
			t.Fatal(err)
		}
		got, aerr := q.limit(defaultLimit, maxLimit)
		if want < 0 {
			if aerr == nil || aerr.code != CodeValidation {
				t.Errorf("limit=%q accepted as %d", raw, got)
			}
		} else if aerr != nil || got != want {
			t.Errorf("limit=%q = %d, %v; want %d", raw, got, aerr, want)
		}
	}
}

func TestSearchCursorRoundTrip(t *testing.T) {
	sr, aerr := parseSearch("q=needle&namespaces=b,a&connections=a/x,y", "")
	if aerr != nil {
		t.Fatal(aerr)
	}
	c := searchCursor{Query: sr.fingerprint(), Sources: []sourceCursor{
		{Source: "a/x", Vendor: "vendor-cursor", Skip: 3, Size: 7},
		{Source: "b/y"},
	}}
	raw := encodeSearchCursor(c)
	got, aerr := decodeSearchCursor(raw, sr.fingerprint())
	if aerr != nil || fmt.Sprint(got) != fmt.Sprint(c) {
		t.Fatalf("round trip = %+v, %v; want %+v", got, aerr, c)
	}
	// The same search with its lists in another order has the same fingerprint.
	same, _ := parseSearch("q=needle&namespaces=a,b&connections=y,a/x", "")
	if same.fingerprint() != sr.fingerprint() {
		t.Error("fingerprint depends on list order")
	}
	other, _ := parseSearch("q=needles&namespaces=a,b&connections=y,a/x", "")
	if _, aerr := decodeSearchCursor(raw, other.fingerprint()); aerr == nil {
		t.Error("a cursor resumed another search")
	}
	for _, bad := range []searchCursor{
		{Query: sr.fingerprint(), Sources: []sourceCursor{{Source: "no-slash"}}},
		{Query: sr.fingerprint(), Sources: []sourceCursor{{Source: "a/x", Skip: -1}}},
		{Query: sr.fingerprint(), Sources: []sourceCursor{{Source: "a/x", Skip: 5, Size: 2}}},
		{Query: sr.fingerprint(), Sources: []sourceCursor{{Source: "a/x"}, {Source: "a/x"}}},
		{Query: sr.fingerprint(), Sources: []sourceCursor{{Source: "A/x"}}},
		{Query: sr.fingerprint(), Sources: []sourceCursor{{Source: "a/x", Vendor: "bad\x00"}}},
	} {
		if _, aerr := decodeSearchCursor(encodeSearchCursor(bad), sr.fingerprint()); aerr == nil {
			t.Errorf("decoded a bad cursor %+v", bad)
		}
	}
}

func TestListCursorScope(t *testing.T) {
	raw := encodeListCursor("team/jira/uid/items\x00PRJA", "vendor")
	if v, aerr := decodeListCursor(raw, "team/jira/uid/items\x00PRJA"); aerr != nil || v != "vendor" {
		t.Fatalf("decode = %q, %v", v, aerr)
	}
	if _, aerr := decodeListCursor(raw, "team/jira/uid/items\x00PRJB"); aerr == nil {
		t.Error("a cursor of one container paged another")
	}
	if encodeListCursor("scope", "") != "" {
		t.Error("an empty vendor cursor must mean no next page")
	}
}

func item(ns, name, id, title string, updated time.Time) connectors.Item {
	return connectors.Item{ID: id, Title: title, UpdatedAt: updated, Connection: connectors.ConnectionRef{Namespace: ns, Name: name}}
}

// TestMergeCursor: the merged page takes each source's items in order, and the cursor
// resumes each source where its returned items end.
func TestMergeCursor(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	conn := func(ns, name string) *v1alpha1.Connection {
		return &v1alpha1.Connection{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	}
	a := &source{conn: conn("ns", "a"), at: sourceCursor{Source: "ns/a"}, size: 3, next: "a-next",
		view:  sourceView{Status: sourceOK},
		items: []connectors.Item{item("ns", "a", "1", "needle", t0), item("ns", "a", "2", "needle", t0.Add(-time.Hour)), item("ns", "a", "3", "hay", t0)}}
	b := &source{conn: conn("ns", "b"), at: sourceCursor{Source: "ns/b", Vendor: "b-cur", Skip: 1, Size: 3}, size: 3,
		view:  sourceView{Status: sourceOK},
		items: []connectors.Item{item("ns", "b", "9", "needle", t0.Add(time.Minute)), item("ns", "b", "8", "hay", t0.Add(time.Hour))}}
	c := &source{conn: conn("ns", "c"), at: sourceCursor{Source: "ns/c", Vendor: "c-cur"}, view: sourceView{Status: sourceTimeout, Code: CodeTimeout}}
	sr := searchRequest{text: "needle", limit: 3}
	for _, src := range []*source{a, b, c} {
		for i := range src.items {
			src.scores = append(src.scores, relevance(searchTerms(sr.text), &src.items[i]))
		}
	}
	out := merge(sr, []*source{a, b, c})
	var ids []string
	for _, it := range out.Items {
		ids = append(ids, it.Connection.Name+it.ID)
	}
	if got := strings.Join(ids, ","); got != "b9,a1,a2" {
		t.Errorf("merged %s, want b9,a1,a2 (title matches, newest first)", got)
	}
	next, aerr := decodeSearchCursor(out.NextCursor, sr.fingerprint())
	if aerr != nil {
		t.Fatal(aerr)
	}
	want := []sourceCursor{
		{Source: "ns/a", Skip: 2, Size: 3},                  // a3 is still to come from a's first page
		{Source: "ns/b", Vendor: "b-cur", Skip: 2, Size: 3}, // b8 too, on b's page at b-cur
		{Source: "ns/c", Vendor: "c-cur"},                   // timed out: asked again from where it was
	}
	if fmt.Sprint(next.Sources) != fmt.Sprint(want) {
		t.Errorf("next cursor %+v, want %+v", next.Sources, want)
	}
	if out.Sources[0].Count != 2 || out.Sources[1].Count != 1 || out.Sources[2].Count != 0 {
		t.Errorf("counts %+v", out.Sources)
	}
	// A page that only failed sources could continue has no next cursor.
	a.items, a.scores, a.next, b.items, b.scores = nil, nil, "", nil, nil
	if out := merge(sr, []*source{a, b, c}); out.NextCursor != "" {
		t.Errorf("next cursor %q with only a failed source left", out.NextCursor)
	}
}

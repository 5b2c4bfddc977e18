package jira_test

import (
	"context"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
)

func TestContainers(t *testing.T) {
	fake := newSeededFake(t, 5, 0, 0)
	for name, cfg := range map[string]connectors.Config{
		"api token":      cloudConfig(fake, alice),
		"oauth2 gateway": gatewayConfig(fake),
	} {
		t.Run(name, func(t *testing.T) {
			c := newClient(t, cfg)
			got := collect(t, 10, func(cur string) (connectors.Page[connectors.Container], error) {
				return c.Containers(t.Context(), cur, 2)
			})
			want := []connectors.Container{
				{ID: "10000", Key: "PRJA", Name: "Project A"}, {ID: "10001", Key: "PRJB", Name: "Project B"},
				{ID: "10002", Key: "PRJC", Name: "Project C"}, {ID: "10003", Key: "PRJD", Name: "Project D"},
				{ID: "10004", Key: "PRJE", Name: "Project E"},
			}
			if !slices.Equal(got, want) {
				t.Errorf("Containers = %+v, want %+v", got, want)
			}
		})
	}
}

func TestItems(t *testing.T) {
	fake := newSeededFake(t, 2, 30, 1)
	c := newClient(t, cloudConfig(fake, alice))
	items := collect(t, 20, func(cur string) (connectors.Page[connectors.Item], error) {
		return c.Items(t.Context(), connectors.ItemQuery{Container: "PRJA", Cursor: cur, Limit: 7})
	})
	keys := fake.JiraIssueKeys("PRJA")
	if len(items) != len(keys) {
		t.Fatalf("Items listed %d issues, PRJA has %d", len(items), len(keys))
	}
	seen := map[string]bool{}
	for i, it := range items {
		info, ok := fake.JiraIssue(it.Key)
		switch {
		case !ok:
			t.Fatalf("item %+v is not an issue of the fake", it)
		case seen[it.ID]:
			t.Errorf("issue %s listed twice", it.Key)
		case it.ID != info.ID || it.Container != "PRJA" || it.Kind != connectors.KindIssue || it.Type != "jira":
			t.Errorf("item %+v does not match issue %+v", it, info)
		case !it.CreatedAt.Equal(info.Created) || !it.UpdatedAt.Equal(info.Updated):
			t.Errorf("%s: times %v/%v, want %v/%v", it.Key, it.CreatedAt, it.UpdatedAt, info.Created, info.Updated)
		case it.URL != fake.URL()+"/browse/"+it.Key:
			t.Errorf("%s: URL %q", it.Key, it.URL)
		case it.Title == "" || it.Author.ID == "" || it.Author.DisplayName == "":
			t.Errorf("%s: missing title or author: %+v", it.Key, it)
		case i > 0 && it.UpdatedAt.After(items[i-1].UpdatedAt):
			t.Errorf("%s is newer than the item before it: not newest first", it.Key)
		}
		seen[it.ID] = true
	}

	// UpdatedSince keeps the issues updated at or after it, to the millisecond.
	since := items[len(items)/2].UpdatedAt
	recent := collect(t, 20, func(cur string) (connectors.Page[connectors.Item], error) {
		return c.Items(t.Context(), connectors.ItemQuery{Container: "PRJA", UpdatedSince: since, Cursor: cur, Limit: 7})
	})
	want := 0
	for _, it := range items {
		if !it.UpdatedAt.Before(since) {
			want++
		}
	}
	if len(recent) != want {
		t.Errorf("UpdatedSince %v gave %d issues, want %d", since, len(recent), want)
	}

	_, err := c.Items(t.Context(), connectors.ItemQuery{})
	wantKind(t, err, connectors.KindInvalid)
}

func TestItemNormalization(t *testing.T) {
	fake := newSeededFake(t, 1, 3, 0)
	c := newClient(t, cloudConfig(fake, alice))
	created, err := c.Create(t.Context(), connectors.NewItem{Container: "PRJA", Title: "Rotate the signing key",
		Text: "The key expires on Friday.\n\nSteps:\nrevoke\nreissue"})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	for _, ref := range []string{created.Key, created.ID, strings.ToLower(created.Key)} {
		it, err := c.Item(t.Context(), ref)
		if err != nil {
			t.Fatalf("Item(%q): %v", ref, err)
		}
		info, _ := fake.JiraIssue(created.Key)
		want := connectors.Item{
			ID: info.ID, Key: info.Key, Kind: "issue", Title: "Rotate the signing key",
			Text: "The key expires on Friday.\n\nSteps:\nrevoke\nreissue",
			URL:  fake.URL() + "/browse/" + info.Key, Container: "PRJA",
			Author:    connectors.Person{ID: alice.ID, DisplayName: alice.DisplayName},
			CreatedAt: it.CreatedAt, UpdatedAt: it.UpdatedAt, Type: "jira",
		}
		if !reflect.DeepEqual(it, want) || !reflect.DeepEqual(it, created) {
			t.Errorf("Item(%q) = %+v\nwant %+v\nCreate gave %+v", ref, it, want, created)
		}
		if !it.CreatedAt.Equal(info.Created) || !it.UpdatedAt.Equal(info.Updated) {
			t.Errorf("times %v %v, want %v %v", it.CreatedAt, it.UpdatedAt, info.Created, info.Updated)
		}
	}

	// A seeded description: ADF with a mention, emoji, lists, code and links.
	it, err := c.Item(t.Context(), "PRJA-1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(it.Text, "@") || strings.Contains(it.Text, `"type"`) {
		t.Errorf("PRJA-1 text is not the plain text of its ADF description: %q", it.Text)
	}
}

// TestItemURLUsesTheSite: calls go through the OAuth2 gateway, links go to the site.
func TestItemURLUsesTheSite(t *testing.T) {
	fake := newSeededFake(t, 1, 2, 1)
	c := newClient(t, gatewayConfig(fake))
	it, err := c.Item(t.Context(), "PRJA-1")
	if err != nil {
		t.Fatal(err)
	}
	if it.URL != "https://acme.atlassian.net/browse/PRJA-1" {
		t.Errorf("URL = %q, want the site's browse link", it.URL)
	}
	comments, err := c.Comments(t.Context(), "PRJA-1", "", 10)
	if err != nil || len(comments.Items) != 1 {
		t.Fatalf("Comments: %v, %+v", err, comments)
	}
	if u := comments.Items[0].URL; !strings.HasPrefix(u, "https://acme.atlassian.net/browse/PRJA-1?focusedCommentId=") {
		t.Errorf("comment URL = %q", u)
	}
	for _, r := range fake.Requests() {
		if !strings.HasPrefix(r.Path, "/ex/jira/"+fake.CloudID()+"/rest/api/3/") {
			t.Errorf("call to %s did not go through the gateway", r.Path)
		}
	}
}

func TestItemErrors(t *testing.T) {
	fake := newSeededFake(t, 1, 2, 0)
	c := newClient(t, cloudConfig(fake, alice))
	_, err := c.Item(t.Context(), "PRJA-999")
	wantKind(t, err, connectors.KindNotFound)

	fake.ResetRequests()
	for _, ref := range []string{"", "..", "../myself", "PRJA-1/comment", "10000?fields=*all", "PRJA-1#x", "PRJA 1", "-1"} {
		_, err := c.Item(t.Context(), ref)
		wantKind(t, err, connectors.KindInvalid)
	}
	if n := len(fake.Requests()); n != 0 {
		t.Errorf("invalid references reached Jira: %+v", fake.Requests())
	}
}

func TestComments(t *testing.T) {
	fake := newSeededFake(t, 1, 3, 5)
	c := newClient(t, cloudConfig(fake, alice))
	info, _ := fake.JiraIssue("PRJA-2")
	var byKey []connectors.Comment
	for _, ref := range []string{"PRJA-2", info.ID} {
		got := collect(t, 10, func(cur string) (connectors.Page[connectors.Comment], error) {
			return c.Comments(t.Context(), ref, cur, 2)
		})
		if len(got) != 5 {
			t.Fatalf("Comments(%s) = %d comments, want 5", ref, len(got))
		}
		for i, cm := range got {
			if cm.ItemID != info.ID || cm.ID == "" || cm.Text == "" || cm.Author.ID == "" || cm.CreatedAt.IsZero() {
				t.Errorf("comment %+v", cm)
			}
			if cm.URL != fake.URL()+"/browse/PRJA-2?focusedCommentId="+cm.ID {
				t.Errorf("comment URL %q", cm.URL)
			}
			if i > 0 && cm.CreatedAt.Before(got[i-1].CreatedAt) {
				t.Error("comments are not oldest first")
			}
		}
		if byKey == nil {
			byKey = got
		} else if !slices.Equal(byKey, got) {
			t.Error("comments by key and by id differ")
		}
	}

	page, err := c.Comments(t.Context(), "PRJA-2", "", 2)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Comments(t.Context(), "PRJA-3", page.NextCursor, 2)
	wantKind(t, err, connectors.KindInvalid) // a cursor of another issue's comments
	_, err = c.Comments(t.Context(), "PRJA-404", "", 2)
	wantKind(t, err, connectors.KindNotFound)
}

func TestSearch(t *testing.T) {
	fake := newSeededFake(t, 3, 5, 0)
	t0 := seedStart.Add(24 * time.Hour)
	a := fake.CreateIssue("PRJA", "Quarterly kumquat report", "Numbers for the board.", t0)
	b := fake.CreateIssue("PRJB", "Kumquat supply", "Order more.", t0.Add(time.Minute))
	quoted := fake.CreateIssue("PRJC", `Path C:\temp\"quoted" it's`, "", t0.Add(2*time.Minute))
	c := newClient(t, cloudConfig(fake, alice))

	search := func(q connectors.SearchQuery) []string {
		t.Helper()
		items := collect(t, 10, func(cur string) (connectors.Page[connectors.Item], error) {
			q.Cursor, q.Limit = cur, 1
			return c.Search(t.Context(), q)
		})
		var keys []string
		for _, it := range items {
			keys = append(keys, it.Key)
		}
		return keys
	}
	for _, tc := range []struct {
		name string
		q    connectors.SearchQuery
		want []string
	}{
		{"text, newest first", connectors.SearchQuery{Text: "KUMQUAT"}, []string{b, a}},
		{"in a container", connectors.SearchQuery{Text: "kumquat", Containers: []string{"PRJB"}}, []string{b}},
		{"in containers", connectors.SearchQuery{Text: "kumquat", Containers: []string{"PRJA", "PRJC"}}, []string{a}},
		{"description", connectors.SearchQuery{Text: "for the board"}, []string{a}},
		{"within the filter", connectors.SearchQuery{Text: "kumquat", Filter: "project = PRJA OR summary ~ \"nothing\""}, []string{a}},
		{"kind issue", connectors.SearchQuery{Text: "kumquat", Kind: "issue", Filter: "issuetype = Task"}, []string{b, a}},
		{"quotes and backslashes", connectors.SearchQuery{Text: `C:\temp\"quoted" it's`}, []string{quoted}},
		// JQL injection: the whole text is one literal, never clauses of its own.
		{"injection", connectors.SearchQuery{Text: `kumquat" OR project = PRJB OR text ~ "kumquat`, Containers: []string{"PRJA"}}, nil},
		{"injection with escapes", connectors.SearchQuery{Text: `kumquat\" OR project = PRJB OR summary ~ \"`, Containers: []string{"PRJA"}}, nil},
		{"injection with a newline", connectors.SearchQuery{Text: "kumquat\"\nOR project = PRJB", Containers: []string{"PRJA"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := search(tc.q); !slices.Equal(got, tc.want) {
				t.Errorf("Search(%+v) = %v, want %v", tc.q, got, tc.want)
			}
		})
	}

	fake.ResetRequests()
	page, err := c.Search(t.Context(), connectors.SearchQuery{Text: "kumquat", Kind: "page"})
	if err != nil || len(page.Items) != 0 || page.NextCursor != "" {
		t.Errorf("kind page: %+v, %v; want nothing", page, err)
	}
	for _, q := range []connectors.SearchQuery{
		{Text: "  "},
		{Text: "x", Kind: "wiki"},
		{Text: strings.Repeat("long ", 300)},
		{Text: "x", Filter: "project = PRJA) OR (project = PRJB"},
		{Text: "x", Filter: "project = PRJA ORDER BY created"},
		{Text: "x", Filter: `summary ~ "unterminated`},
		{Text: "x", Filter: "(project = PRJA"},
	} {
		_, err := c.Search(t.Context(), q)
		wantKind(t, err, connectors.KindInvalid)
	}
	if n := len(fake.Requests()); n != 0 {
		t.Errorf("refused searches reached Jira: %+v", fake.Requests())
	}
	// A filter that quotes parentheses and the words ORDER BY is fine.
	if got := search(connectors.SearchQuery{Text: "kumquat", Filter: `summary !~ "(order by)"`}); len(got) != 2 {
		t.Errorf("filter with quoted parentheses: %v", got)
	}
}

// idempotencyRecorder records, for every request, whether its context marks it safe
// to retry (connectors.WithIdempotent), which the vendor HTTP client obeys.
type idempotencyRecorder struct {
	next connectors.Doer
	mu   sync.Mutex
	seen map[string][]bool // "METHOD path" → marks
}

func (r *idempotencyRecorder) Do(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.seen[req.Method+" "+req.URL.Path] = append(r.seen[req.Method+" "+req.URL.Path], connectors.IsIdempotent(req.Context()))
	r.mu.Unlock()
	return r.next.Do(req)
}

func TestCreate(t *testing.T) {
	fake := newSeededFake(t, 1, 1, 0)
	cfg := cloudConfig(fake, alice)
	rec := &idempotencyRecorder{next: newContractChecker(t, false, http.DefaultClient), seen: map[string][]bool{}}
	cfg.HTTP = rec
	c := newClient(t, cfg)

	it, err := c.Create(t.Context(), connectors.NewItem{Container: "PRJA", Title: "Ship it", Text: "Line one\nline two\n\nNext paragraph."})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	info, ok := fake.JiraIssue(it.Key)
	if !ok || it.ID != info.ID || it.Key != "PRJA-2" || it.Title != "Ship it" || it.Text != "Line one\nline two\n\nNext paragraph." ||
		it.Author.ID != alice.ID || it.Container != "PRJA" || it.CreatedAt.IsZero() {
		t.Errorf("Create = %+v (fake has %+v)", it, info)
	}
	if _, err := c.Create(t.Context(), connectors.NewItem{Container: "PRJA", Title: "No description"}); err != nil {
		t.Errorf("Create without text: %v", err)
	}
	if got := rec.seen["POST /rest/api/3/issue"]; len(got) != 2 || got[0] || got[1] {
		t.Errorf("issue creation marks %v: it must be sent once and never marked retryable", got)
	}

	// Jira refuses; so does the connector, before calling, for what it can tell.
	for _, n := range []connectors.NewItem{
		{Container: "PRJA", Title: "two\nlines"},
		{Container: "NOPE", Title: "Somewhere"},
		{Container: "PRJA", Title: strings.Repeat("x", 300)},
		{Container: "", Title: "x"},
		{Container: "PRJA", Title: " "},
	} {
		_, err := c.Create(t.Context(), n)
		wantKind(t, err, connectors.KindInvalid)
	}

	// Searches are POSTs too, but reads: marked retryable.
	if _, err := c.Search(t.Context(), connectors.SearchQuery{Text: "ship"}); err != nil {
		t.Fatal(err)
	}
	if got := rec.seen["POST /rest/api/3/search/jql"]; len(got) != 1 || !got[0] {
		t.Errorf("search marks %v, want one retryable call", got)
	}
}

// TestErrorKinds runs every method against an answer that fails, and checks the kind
// of error, the pause asked for, and that no message holds a credential or the
// search text.
func TestErrorKinds(t *testing.T) {
	fake := newSeededFake(t, 1, 3, 1)
	const secretText = "CONFIDENTIAL-merger-plan"
	ctx := t.Context()
	calls := func(c connectors.Client) map[string]func() error {
		return map[string]func() error{
			"Containers": func() error { _, err := c.Containers(ctx, "", 10); return err },
			"Items":      func() error { _, err := c.Items(ctx, connectors.ItemQuery{Container: "PRJA"}); return err },
			"Item":       func() error { _, err := c.Item(ctx, "PRJA-1"); return err },
			"Comments":   func() error { _, err := c.Comments(ctx, "PRJA-1", "", 10); return err },
			"Search":     func() error { _, err := c.Search(ctx, connectors.SearchQuery{Text: secretText}); return err },
			"Create": func() error {
				_, err := c.Create(ctx, connectors.NewItem{Container: "PRJA", Title: secretText})
				return err
			},
			"Changes": func() error {
				_, err := c.Changes(ctx, connectors.ChangeQuery{Container: connectors.Container{Key: "PRJA"}})
				return err
			},
			"LiveIDs": func() error { _, err := c.LiveIDs(ctx, connectors.Container{Key: "PRJA"}, ""); return err },
		}
	}
	for _, tc := range []struct {
		name       string
		creds      connectors.Credentials
		fault      atlassiantest.Fault
		kind       connectors.ErrorKind
		retryAfter time.Duration
	}{
		{name: "401", creds: apiTokenCreds("wrong-" + apiToken), kind: connectors.KindAuth},
		{name: "429 with Retry-After", fault: atlassiantest.Fault{Status: 429, RetryAfter: 7 * time.Second}, kind: connectors.KindRateLimited, retryAfter: 7 * time.Second},
		{name: "500", fault: atlassiantest.Fault{Status: 500}, kind: connectors.KindUnavailable},
		{name: "503 with Retry-After", fault: atlassiantest.Fault{Status: 503, RetryAfter: 2 * time.Second}, kind: connectors.KindUnavailable, retryAfter: 2 * time.Second},
		{name: "malformed answer", fault: atlassiantest.Fault{Malformed: true}, kind: connectors.KindUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake.SetFault(tc.fault)
			defer fake.ClearFault()
			cfg := cloudConfig(fake, alice)
			if tc.creds.Method != "" {
				cfg.Credentials = tc.creds
			}
			if tc.fault.Malformed {
				cfg.HTTP = http.DefaultClient // the answer breaks the contract on purpose
			}
			for method, call := range calls(newClient(t, cfg)) {
				err := call()
				if k := connectors.KindOf(err); k != tc.kind {
					t.Errorf("%s: error %v, want kind %s", method, err, tc.kind)
					continue
				}
				if ra := connectors.RetryAfterOf(err); ra != tc.retryAfter {
					t.Errorf("%s: RetryAfter %s, want %s", method, ra, tc.retryAfter)
				}
				if !strings.HasPrefix(err.Error(), "jira ") {
					t.Errorf("%s: error %q does not name the vendor", method, err)
				}
				assertNoSecrets(t, err, secretText, "project =")
			}
		})
	}
}

func TestCallsHonourTheContext(t *testing.T) {
	fake := newSeededFake(t, 1, 3, 1)
	fake.SetFault(atlassiantest.Fault{Latency: 5 * time.Second})
	c := newClient(t, cloudConfig(fake, alice))
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Changes(ctx, connectors.ChangeQuery{Container: connectors.Container{Key: "PRJA"}})
	wantKind(t, err, connectors.KindUnavailable)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Changes returned after %s; the deadline was 100ms", d)
	}
}

// TestForgedCursors: a cursor is the caller's to hand back, and may be anything.
func TestForgedCursors(t *testing.T) {
	fake := newSeededFake(t, 2, 5, 1)
	c := newClient(t, cloudConfig(fake, alice))
	items, err := c.Items(t.Context(), connectors.ItemQuery{Container: "PRJA", Limit: 2})
	if err != nil || items.NextCursor == "" {
		t.Fatalf("Items: %v, %+v", err, items)
	}
	changes, err := c.Changes(t.Context(), connectors.ChangeQuery{Container: connectors.Container{Key: "PRJA"}, Limit: 2})
	if err != nil || changes.NextCursor == "" {
		t.Fatalf("Changes: %v, %+v", err, changes)
	}
	fake.ResetRequests()
	ctx := t.Context()
	for name, call := range map[string]func() error{
		"garbage": func() error {
			_, err := c.Items(ctx, connectors.ItemQuery{Container: "PRJA", Cursor: "https://evil.example/?x"})
			return err
		},
		"another project's": func() error {
			_, err := c.Items(ctx, connectors.ItemQuery{Container: "PRJB", Cursor: items.NextCursor})
			return err
		},
		"another query's": func() error {
			_, err := c.Items(ctx, connectors.ItemQuery{Container: "PRJA", UpdatedSince: seedStart, Cursor: items.NextCursor})
			return err
		},
		"another listing's": func() error {
			_, err := c.Items(ctx, connectors.ItemQuery{Container: "PRJA", Cursor: changes.NextCursor})
			return err
		},
		"items cursor for changes": func() error {
			_, err := c.Changes(ctx, connectors.ChangeQuery{Container: connectors.Container{Key: "PRJA"}, Cursor: items.NextCursor})
			return err
		},
		"truncated": func() error {
			_, err := c.Changes(ctx, connectors.ChangeQuery{Container: connectors.Container{Key: "PRJA"}, Cursor: changes.NextCursor[:len(changes.NextCursor)-3]})
			return err
		},
		"containers": func() error { _, err := c.Containers(ctx, "v1.e30", 10); return err },
		"search": func() error {
			_, err := c.Search(ctx, connectors.SearchQuery{Text: "x", Cursor: items.NextCursor})
			return err
		},
		"comments": func() error { _, err := c.Comments(ctx, "PRJA-1", changes.NextCursor, 10); return err },
		"live ids": func() error {
			_, err := c.LiveIDs(ctx, connectors.Container{Key: "PRJA"}, changes.NextCursor)
			return err
		},
	} {
		err := call()
		if connectors.KindOf(err) != connectors.KindInvalid || !strings.Contains(err.Error(), "invalid cursor") {
			t.Errorf("%s cursor: %v, want an invalid cursor error", name, err)
		}
	}
	if n := len(fake.Requests()); n != 0 {
		t.Errorf("forged cursors reached Jira: %+v", fake.Requests())
	}
}

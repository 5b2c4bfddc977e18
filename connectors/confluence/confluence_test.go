package confluence_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/connectors/atlassian"
	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
	"github.com/unified-connectors/connector-operator/connectors/confluence"
	"github.com/unified-connectors/connector-operator/internal/vendorspec"
)

const (
	email    = "alice@example.com"
	apiToken = "s3cret-wiki-token-a41f"
	pat      = "s3cret-wiki-pat-0e77"
)

var alice = atlassiantest.Account{
	ID: "5b10a2844c20165700ede21g", DisplayName: "Alice Example", Email: email,
	TimeZone: "America/New_York", APIToken: apiToken, PAT: pat,
}

// seedStart is when seeded pages start being modified.
var seedStart = time.Date(2024, 1, 31, 10, 0, 0, 0, time.UTC)

func newFake(t *testing.T) *atlassiantest.Server {
	t.Helper()
	fake := atlassiantest.NewServer()
	t.Cleanup(fake.Close)
	fake.AddAccount(alice)
	return fake
}

// seededFake is a fake with two spaces (SPA, SPB) of 30 pages with 3 comments each.
func seededFake(t *testing.T) *atlassiantest.Server {
	t.Helper()
	fake := newFake(t)
	fake.SeedConfluence(atlassiantest.ConfluenceSeed{Spaces: 2, PagesPerSpace: 30, CommentsPerPage: 3, Seed: 42, Start: seedStart})
	return fake
}

func apiTokenCreds(token string) connectors.Credentials {
	return atlassian.APITokenCredentials(email, token)
}

func cloudConfig(fake *atlassiantest.Server) connectors.Config {
	return connectors.Config{BaseURL: fake.URL(), Credentials: apiTokenCreds(apiToken)}
}

func gatewayConfig(fake *atlassiantest.Server) connectors.Config {
	return connectors.Config{BaseURL: "https://acme.atlassian.net", Connector: atlassian.ConnectorSpec("", fake.CloudID(), fake.URL()),
		Credentials: connectors.Credentials{Method: connectors.AuthOAuth2, Token: pat}}
}

func dcConfig(fake *atlassiantest.Server) connectors.Config {
	return connectors.Config{BaseURL: fake.URL(), Connector: atlassian.ConnectorSpec(atlassian.DeploymentDataCenter, "", ""),
		Credentials: atlassian.PATCredentials(pat)}
}

// isDataCenter reports whether cfg's Connector says datacenter.
func isDataCenter(cfg connectors.Config) bool {
	return cfg.Connector != nil && cfg.Connector.Deployment == atlassian.DeploymentDataCenter
}

// newClient builds a client whose every exchange goes through the Confluence contract
// checker: v2 requests and answers against Atlassian's OpenAPI document, v1 and Data
// Center ones against the hand-kept rules. Any violation fails the test at cleanup.
func newClient(t *testing.T, cfg connectors.Config) connectors.Client {
	t.Helper()
	p, ok := connectors.Get("confluence")
	if !ok {
		t.Fatal(`provider "confluence" is not registered`)
	}
	if _, err := p.Validate(cfg); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	checker, err := vendorspec.NewConfluenceDoer(cfg.HTTP)
	if err != nil {
		t.Fatalf("contract checker: %v", err)
	}
	cfg.HTTP = checker
	t.Cleanup(func() {
		for _, err := range checker.Errors() {
			t.Errorf("contract violation: %v", err)
		}
	})
	c, err := p.NewClient(cfg)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return c
}

func assertNoSecrets(t *testing.T, err error) {
	t.Helper()
	for _, text := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
		for _, s := range []string{apiToken, pat} {
			if strings.Contains(text, s) {
				t.Errorf("error text %q contains a token", text)
			}
		}
	}
}

// all drains a paged listing, failing the test on an error or a runaway.
func all[T any](t *testing.T, list func(cursor string) (connectors.Page[T], error)) []T {
	t.Helper()
	var out []T
	cursor := ""
	for range 1000 {
		page, err := list(cursor)
		if err != nil {
			t.Fatalf("listing after cursor %q: %v", cursor, err)
		}
		out = append(out, page.Items...)
		if page.NextCursor == "" {
			return out
		}
		cursor = page.NextCursor
	}
	t.Fatal("listing did not end")
	return nil
}

func TestIdentity(t *testing.T) {
	fake := newFake(t)
	tests := []struct {
		name     string
		cfg      connectors.Config
		wantPath string
		want     connectors.Identity
	}{
		{
			name:     "cloud, API token",
			cfg:      cloudConfig(fake),
			wantPath: "/wiki/rest/api/user/current",
			want:     connectors.Identity{AccountID: alice.ID, DisplayName: alice.DisplayName, TimeZone: alice.TimeZone},
		},
		{
			name:     "cloud, OAuth2 through the gateway",
			cfg:      gatewayConfig(fake),
			wantPath: "/ex/confluence/" + fake.CloudID() + "/wiki/rest/api/user/current",
			want:     connectors.Identity{AccountID: alice.ID, DisplayName: alice.DisplayName, TimeZone: alice.TimeZone},
		},
		{
			// Data Center: no /wiki prefix, the user key stands in for the account id, and
			// no time zone is reported.
			name:     "datacenter, PAT",
			cfg:      dcConfig(fake),
			wantPath: "/rest/api/user/current",
			want:     connectors.Identity{AccountID: alice.ID, DisplayName: alice.DisplayName},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake.ResetRequests()
			id, err := newClient(t, tt.cfg).Identity(t.Context())
			if err != nil {
				t.Fatalf("Identity: %v", err)
			}
			if id != tt.want {
				t.Errorf("Identity = %+v, want %+v", id, tt.want)
			}
			if n := fake.CountRequests(tt.wantPath); n != 1 {
				t.Errorf("fake saw %d calls to %s, want 1 (saw %+v)", n, tt.wantPath, fake.Requests())
			}
		})
	}
}

func TestIdentityFailures(t *testing.T) {
	fake := newFake(t)
	tests := []struct {
		name       string
		creds      connectors.Credentials
		fault      atlassiantest.Fault
		ctxTimeout time.Duration
		kind       connectors.ErrorKind
		retryAfter time.Duration
	}{
		{name: "wrong API token", creds: apiTokenCreds("nope-" + apiToken), kind: connectors.KindAuth},
		{name: "wrong PAT", creds: atlassian.PATCredentials("old-" + pat), kind: connectors.KindAuth},
		{name: "429 with Retry-After", fault: atlassiantest.Fault{Status: 429, RetryAfter: 30 * time.Second}, kind: connectors.KindRateLimited, retryAfter: 30 * time.Second},
		{name: "503", fault: atlassiantest.Fault{Status: 503}, kind: connectors.KindUnavailable},
		{name: "slower than the deadline", fault: atlassiantest.Fault{Latency: 5 * time.Second}, ctxTimeout: 150 * time.Millisecond, kind: connectors.KindUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake.SetFault(tt.fault)
			defer fake.ClearFault()
			creds := tt.creds
			if creds.Method == "" {
				creds = apiTokenCreds(apiToken)
			}
			ctx := t.Context()
			if tt.ctxTimeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.ctxTimeout)
				defer cancel()
			}
			start := time.Now()
			_, err := newClient(t, connectors.Config{BaseURL: fake.URL(), Credentials: creds}).Identity(ctx)
			if err == nil {
				t.Fatal("Identity succeeded")
			}
			if tt.ctxTimeout > 0 && time.Since(start) > tt.ctxTimeout+time.Second {
				t.Errorf("Identity returned after %s, the deadline was %s", time.Since(start), tt.ctxTimeout)
			}
			if k := connectors.KindOf(err); k != tt.kind {
				t.Errorf("kind = %q (%v), want %q", k, err, tt.kind)
			}
			if ra := connectors.RetryAfterOf(err); ra != tt.retryAfter {
				t.Errorf("RetryAfter = %s, want %s", ra, tt.retryAfter)
			}
			if !strings.HasPrefix(err.Error(), "confluence GET /wiki/rest/api/user/current") {
				t.Errorf("error %q does not name the vendor and the call", err)
			}
			assertNoSecrets(t, err)
		})
	}
}

// Some Confluence sites answer a credential they cannot use with the anonymous user and
// 200 rather than 401; that must not pass for a valid credential.
func TestIdentityAnonymousIsAuthFailure(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"type":"anonymous","profilePicture":{"path":"/wiki/s/anon.svg","width":48,"height":48,"isDefault":true},"displayName":"Anonymous","_links":{}}`))
	}))
	defer srv.Close()
	_, err := newClient(t, connectors.Config{BaseURL: srv.URL, Credentials: apiTokenCreds(apiToken)}).Identity(t.Context())
	if k := connectors.KindOf(err); k != connectors.KindAuth {
		t.Fatalf("kind = %q (%v), want Auth", k, err)
	}
	assertNoSecrets(t, err)
}

func TestProvider(t *testing.T) {
	p, ok := connectors.Get(confluence.Type)
	if !ok || p.Type() != "confluence" {
		t.Fatalf("Get(%q) = %v, %v", confluence.Type, p, ok)
	}
	_, err := p.Validate(connectors.Config{BaseURL: "https://wiki.example.com", Connector: atlassian.ConnectorSpec(atlassian.DeploymentDataCenter, "abc", ""),
		Credentials: connectors.Credentials{Method: connectors.AuthOAuth2}})
	if err == nil {
		t.Error("Validate accepted oauth2 on Data Center")
	}
}

func TestContainers(t *testing.T) {
	fake := newFake(t)
	fake.SeedConfluence(atlassiantest.ConfluenceSeed{Spaces: 7, PagesPerSpace: 1, Seed: 1})
	for name, cfg := range map[string]connectors.Config{"api token": cloudConfig(fake), "gateway": gatewayConfig(fake), "datacenter": dcConfig(fake)} {
		t.Run(name, func(t *testing.T) {
			c := newClient(t, cfg)
			spaces := all(t, func(cur string) (connectors.Page[connectors.Container], error) {
				return c.Containers(t.Context(), cur, 3)
			})
			var keys []string
			for _, sp := range spaces {
				keys = append(keys, sp.Key)
				if sp.ID != fake.ConfluenceSpaceID(sp.Key) || sp.Name != "Space "+strings.TrimPrefix(sp.Key, "SP") {
					t.Errorf("container %+v, want id %s and name Space %s", sp, fake.ConfluenceSpaceID(sp.Key), strings.TrimPrefix(sp.Key, "SP"))
				}
			}
			if want := []string{"SPA", "SPB", "SPC", "SPD", "SPE", "SPF", "SPG"}; !slices.Equal(keys, want) {
				t.Errorf("keys %v, want %v", keys, want)
			}
		})
	}
}

func TestItems(t *testing.T) {
	fake := seededFake(t)
	for name, cfg := range map[string]connectors.Config{"api token": cloudConfig(fake), "gateway": gatewayConfig(fake), "datacenter": dcConfig(fake)} {
		t.Run(name, func(t *testing.T) {
			c := newClient(t, cfg)
			items := all(t, func(cur string) (connectors.Page[connectors.Item], error) {
				return c.Items(t.Context(), connectors.ItemQuery{Container: "SPB", Cursor: cur, Limit: 7})
			})
			var ids []string
			for _, it := range items {
				ids = append(ids, it.ID)
				checkItem(t, it, cfg, "SPB")
				checkSeededText(t, it)
			}
			slices.SortFunc(ids, compareIDs)
			if want := fake.ConfluencePageIDs("SPB"); !slices.Equal(ids, want) {
				t.Errorf("ids %v, want %v", ids, want)
			}
		})
	}
}

// checkItem checks the normalization every page must have.
func checkItem(t *testing.T, it connectors.Item, cfg connectors.Config, space string) {
	t.Helper()
	site := cfg.BaseURL
	wantURL := site + "/wiki/spaces/" + space + "/pages/" + it.ID
	if isDataCenter(cfg) {
		wantURL = site + "/pages/viewpage.action?pageId=" + it.ID
	}
	switch {
	case it.ID == "" || it.Key != it.ID || it.Kind != connectors.KindPage || it.Type != "confluence":
		t.Errorf("item %s: id/key/kind/type %q %q %q %q", it.ID, it.ID, it.Key, it.Kind, it.Type)
	case it.Title == "" || it.Container != space:
		t.Errorf("item %s: title %q container %q, want a title and %s", it.ID, it.Title, it.Container, space)
	case it.URL != wantURL:
		t.Errorf("item %s: URL %q, want %q", it.ID, it.URL, wantURL)
	case it.Author.ID == "":
		t.Errorf("item %s: no author", it.ID)
	case it.CreatedAt.IsZero() || it.UpdatedAt.Before(it.CreatedAt):
		t.Errorf("item %s: created %v updated %v", it.ID, it.CreatedAt, it.UpdatedAt)
	case it.Text == "":
		t.Errorf("item %s: no text", it.ID)
	}
}

// checkSeededText checks that a seeded page's text is plain: its body has markup,
// entities, a code macro whose parameters must not show and whose CDATA must, and panel
// macros.
func checkSeededText(t *testing.T, it connectors.Item) {
	t.Helper()
	text := strings.ReplaceAll(it.Text, " < ", " ") // the code's own comparison
	for _, bad := range []string{"<", "&amp;", "&nbsp;", "CDATA", "ac:", "language", "Note"} {
		if strings.Contains(text, bad) {
			t.Errorf("item %s: text %q holds %q", it.ID, it.Text, bad)
		}
	}
	if strings.Contains(it.Text, "&&") != strings.Contains(it.Text, " < ") {
		t.Errorf("item %s: code macro text mangled: %q", it.ID, it.Text)
	}
}

func compareIDs(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}

func TestItemsUpdatedSince(t *testing.T) {
	fake := seededFake(t)
	since := seedStart.Add(3 * time.Minute)
	for name, cfg := range map[string]connectors.Config{"cloud": cloudConfig(fake), "datacenter": dcConfig(fake)} {
		t.Run(name, func(t *testing.T) {
			c := newClient(t, cfg)
			items := all(t, func(cur string) (connectors.Page[connectors.Item], error) {
				return c.Items(t.Context(), connectors.ItemQuery{Container: "SPA", UpdatedSince: since, Cursor: cur, Limit: 4})
			})
			want := pagesSince(t, fake, "SPA", since)
			got := map[string]bool{}
			for i, it := range items {
				got[it.ID] = true
				if it.UpdatedAt.Before(since) {
					t.Errorf("item %s updated %v, before %v", it.ID, it.UpdatedAt, since)
				}
				if !isDataCenter(cfg) && i > 0 && it.UpdatedAt.After(items[i-1].UpdatedAt) {
					t.Errorf("cloud items not newest first at %d", i)
				}
			}
			if len(got) != len(want) || len(items) != len(want) {
				t.Errorf("got %d items (%d distinct), want %d", len(items), len(got), len(want))
			}
			for id := range want {
				if !got[id] {
					t.Errorf("page %s updated since %v is missing", id, since)
				}
			}
		})
	}
}

func TestItem(t *testing.T) {
	fake := seededFake(t)
	id := fake.ConfluencePageIDs("SPB")[4]
	for name, cfg := range map[string]connectors.Config{"api token": cloudConfig(fake), "gateway": gatewayConfig(fake), "datacenter": dcConfig(fake)} {
		t.Run(name, func(t *testing.T) {
			it, err := newClient(t, cfg).Item(t.Context(), id)
			if err != nil {
				t.Fatalf("Item: %v", err)
			}
			if it.ID != id {
				t.Errorf("Item(%s) = %s", id, it.ID)
			}
			checkItem(t, it, cfg, "SPB")
			checkSeededText(t, it)
		})
	}
}

func TestCreatedPageReadsBack(t *testing.T) {
	fake := seededFake(t)
	at := time.Date(2024, 3, 1, 9, 30, 15, 0, time.UTC)
	id := fake.CreatePage("SPA", "Hand written", "First line & more\n<b>not bold</b>", at)
	it, err := newClient(t, cloudConfig(fake)).Item(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if it.Title != "Hand written" || it.Text != "First line & more\n<b>not bold</b>" || !it.UpdatedAt.Equal(at) || !it.CreatedAt.Equal(at) {
		t.Errorf("Item = %+v", it)
	}
	fake.UpdatePage(id, at.Add(time.Hour))
	if it, err = newClient(t, cloudConfig(fake)).Item(t.Context(), id); err != nil || !it.UpdatedAt.Equal(at.Add(time.Hour)) || !it.CreatedAt.Equal(at) {
		t.Errorf("after UpdatePage: %+v, %v", it, err)
	}
}

func TestComments(t *testing.T) {
	fake := seededFake(t)
	id := fake.ConfluencePageIDs("SPA")[2]
	at := time.Date(2024, 2, 2, 8, 0, 0, 0, time.UTC)
	extra := fake.AddFooterComment(id, alice.ID, "Looks <good> & done", at)
	for name, cfg := range map[string]connectors.Config{"api token": cloudConfig(fake), "gateway": gatewayConfig(fake), "datacenter": dcConfig(fake)} {
		t.Run(name, func(t *testing.T) {
			c := newClient(t, cfg)
			comments := all(t, func(cur string) (connectors.Page[connectors.Comment], error) {
				return c.Comments(t.Context(), id, cur, 2)
			})
			if len(comments) != 4 {
				t.Fatalf("got %d comments, want 4", len(comments))
			}
			for _, cm := range comments {
				if cm.ItemID != id || cm.Author.ID == "" || cm.Text == "" || strings.Contains(cm.Text, "<p>") ||
					cm.UpdatedAt.IsZero() || !strings.HasPrefix(cm.URL, cfg.BaseURL+"/") || !strings.Contains(cm.URL, "focusedCommentId="+cm.ID) {
					t.Errorf("comment %+v", cm)
				}
			}
			last := comments[3]
			if last.ID != extra || last.Text != "Looks <good> & done" || last.Author.ID != alice.ID || !last.CreatedAt.Equal(at) || !last.UpdatedAt.Equal(at) {
				t.Errorf("added comment = %+v", last)
			}
		})
	}
}

func TestCreate(t *testing.T) {
	fake := seededFake(t)
	for name, cfg := range map[string]connectors.Config{"api token": cloudConfig(fake), "gateway": gatewayConfig(fake), "datacenter": dcConfig(fake)} {
		t.Run(name, func(t *testing.T) {
			fake.ResetRequests()
			c := newClient(t, cfg)
			title := "Created via " + name
			text := "Hello <world> & \"friends\"\n\n<ac:structured-macro ac:name=\"html\"/>"
			it, err := c.Create(t.Context(), connectors.NewItem{Container: "SPB", Title: title, Text: text})
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			checkItem(t, it, cfg, "SPB")
			if it.Title != title || it.Text != strings.ReplaceAll(text, "\n\n", "\n") || it.Author.ID != alice.ID {
				t.Errorf("created %+v", it)
			}
			if !slices.Contains(fake.ConfluencePageIDs("SPB"), it.ID) {
				t.Errorf("page %s is not in the space", it.ID)
			}
			back, err := c.Item(t.Context(), it.ID)
			if err != nil || back.Text != it.Text {
				t.Errorf("read back %q, %v; want %q (markup escaped, not interpreted)", back.Text, err, it.Text)
			}
			// A duplicate title is refused by Confluence; the connector does not retry.
			fake.ResetRequests()
			_, err = c.Create(t.Context(), connectors.NewItem{Container: "SPB", Title: title, Text: "again"})
			if connectors.KindOf(err) != connectors.KindInvalid {
				t.Errorf("duplicate: %v, want KindInvalid", err)
			}
			posts := 0
			for _, r := range fake.Requests() {
				if r.Method == http.MethodPost {
					posts++
				}
			}
			if posts != 1 {
				t.Errorf("%d POSTs for one refused create, want 1", posts)
			}
		})
	}
	if _, err := newClient(t, cloudConfig(fake)).Create(t.Context(), connectors.NewItem{Container: "SPB", Title: " "}); connectors.KindOf(err) != connectors.KindInvalid {
		t.Errorf("blank title: %v, want KindInvalid", err)
	}
	if _, err := newClient(t, cloudConfig(fake)).Create(t.Context(), connectors.NewItem{Container: "NOPE", Title: "x"}); connectors.KindOf(err) != connectors.KindNotFound {
		t.Errorf("unknown space: %v, want KindNotFound", err)
	}
}

func TestLiveIDs(t *testing.T) {
	fake := seededFake(t)
	gone := fake.ConfluencePageIDs("SPA")[5]
	fake.DeletePage(gone)
	for name, cfg := range map[string]connectors.Config{"api token": cloudConfig(fake), "datacenter": dcConfig(fake)} {
		t.Run(name, func(t *testing.T) {
			c := newClient(t, cfg)
			spaces, err := c.Containers(t.Context(), "", 10)
			if err != nil {
				t.Fatal(err)
			}
			for _, sp := range spaces.Items {
				ids := all(t, func(cur string) (connectors.Page[string], error) { return c.LiveIDs(t.Context(), sp, cur) })
				slices.SortFunc(ids, compareIDs)
				if want := fake.ConfluencePageIDs(sp.Key); !slices.Equal(ids, want) {
					t.Errorf("LiveIDs(%s) = %v, want %v", sp.Key, ids, want)
				}
				if slices.Contains(ids, gone) {
					t.Errorf("deleted page %s is live", gone)
				}
			}
			// By key alone, as well.
			ids := all(t, func(cur string) (connectors.Page[string], error) {
				return c.LiveIDs(t.Context(), connectors.Container{Key: "SPB"}, cur)
			})
			if len(ids) != 30 {
				t.Errorf("LiveIDs by key: %d ids, want 30", len(ids))
			}
		})
	}
}

// bearerOnly fails the test unless every request carries the PAT as Bearer and goes to
// Data Center's paths (no /wiki).
type bearerOnly struct {
	t    *testing.T
	next connectors.Doer
}

func (b bearerOnly) Do(r *http.Request) (*http.Response, error) {
	if got := r.Header.Get("Authorization"); got != "Bearer "+pat {
		b.t.Errorf("%s %s: Authorization is not the PAT as Bearer", r.Method, r.URL.Path)
	}
	if !strings.HasPrefix(r.URL.Path, "/rest/api/") {
		b.t.Errorf("%s %s: not a Data Center REST path", r.Method, r.URL.Path)
	}
	return b.next.Do(r)
}

func TestDataCenterSendsPATAsBearer(t *testing.T) {
	fake := seededFake(t)
	cfg := dcConfig(fake)
	cfg.HTTP = bearerOnly{t: t, next: http.DefaultClient}
	c := newClient(t, cfg)
	ctx := t.Context()
	if id, err := c.Identity(ctx); err != nil || id.AccountID != alice.ID {
		t.Errorf("Identity: %+v %v", id, err)
	}
	if spaces, err := c.Containers(ctx, "", 10); err != nil || len(spaces.Items) != 2 || spaces.Items[0].ID != fake.ConfluenceSpaceID("SPA") {
		t.Errorf("Containers: %+v %v", spaces, err)
	}
	if items, err := c.Items(ctx, connectors.ItemQuery{Container: "SPA", Limit: 5}); err != nil || len(items.Items) != 5 || items.NextCursor == "" {
		t.Errorf("Items: %d %v", len(items.Items), err)
	}
	if found, err := c.Search(ctx, connectors.SearchQuery{Text: "runbook", Limit: 3}); err != nil || len(found.Items) == 0 {
		t.Errorf("Search: %+v %v", found, err)
	} else if it := found.Items[0]; it.Author.DisplayName == "" || it.Text == "" {
		t.Errorf("Data Center search result %+v lacks the author's name or the text", it)
	}
}

// TestDefaultLookback: the registered provider tells the sync engine to re-read five
// minutes behind its cursor, for page versions that reach the CQL index late.
func TestDefaultLookback(t *testing.T) {
	p, _ := connectors.Get(confluence.Type)
	lb, ok := p.(connectors.Lookbacker)
	if !ok || lb.DefaultLookback() != 5*time.Minute {
		t.Fatalf("confluence provider: Lookbacker %v, want a 5m default look-back", ok)
	}
}

package confluence_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/connectors/atlassian"
	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
	"github.com/unified-connectors/connector-operator/connectors/confluence"
)

func asError(err error, target **connectors.Error) bool { return errors.As(err, target) }

// calls are every method that talks to Confluence, on content that exists.
func calls(fake *atlassiantest.Server) map[string]func(context.Context, connectors.Client) error {
	page := fake.ConfluencePageIDs("SPA")[0]
	return map[string]func(context.Context, connectors.Client) error{
		"Containers": func(ctx context.Context, c connectors.Client) error { _, err := c.Containers(ctx, "", 10); return err },
		"Items": func(ctx context.Context, c connectors.Client) error {
			_, err := c.Items(ctx, connectors.ItemQuery{Container: "SPA"})
			return err
		},
		"Item": func(ctx context.Context, c connectors.Client) error { _, err := c.Item(ctx, page); return err },
		"Comments": func(ctx context.Context, c connectors.Client) error {
			_, err := c.Comments(ctx, page, "", 10)
			return err
		},
		"Search": func(ctx context.Context, c connectors.Client) error {
			_, err := c.Search(ctx, connectors.SearchQuery{Text: "runbook"})
			return err
		},
		"Create": func(ctx context.Context, c connectors.Client) error {
			_, err := c.Create(ctx, connectors.NewItem{Container: "SPA", Title: "t " + time.Now().String()})
			return err
		},
		"Changes": func(ctx context.Context, c connectors.Client) error {
			_, err := c.Changes(ctx, connectors.ChangeQuery{Container: connectors.Container{Key: "SPA"}, Since: seedStart})
			return err
		},
		"LiveIDs": func(ctx context.Context, c connectors.Client) error {
			_, err := c.LiveIDs(ctx, connectors.Container{Key: "SPA"}, "")
			return err
		},
	}
}

// TestVendorErrors maps the vendor's failures for every call: 401 to KindAuth, 429 to
// KindRateLimited with its Retry-After, 5xx to KindUnavailable, and a deadline to
// KindUnavailable in time; no error text holds a credential.
func TestVendorErrors(t *testing.T) {
	fake := seededFake(t)
	for _, tc := range []struct {
		name       string
		cfg        func() connectors.Config
		fault      atlassiantest.Fault
		timeout    time.Duration
		kind       connectors.ErrorKind
		retryAfter time.Duration
	}{
		{name: "wrong API token", cfg: func() connectors.Config {
			cfg := cloudConfig(fake)
			cfg.Credentials = apiTokenCreds("wrong-" + apiToken)
			return cfg
		}, kind: connectors.KindAuth},
		{name: "wrong PAT on Data Center", cfg: func() connectors.Config {
			cfg := dcConfig(fake)
			cfg.Credentials = atlassian.PATCredentials("old-" + pat)
			return cfg
		}, kind: connectors.KindAuth},
		{name: "429", fault: atlassiantest.Fault{Status: 429, RetryAfter: 7 * time.Second}, kind: connectors.KindRateLimited, retryAfter: 7 * time.Second},
		{name: "500", fault: atlassiantest.Fault{Status: 500}, kind: connectors.KindUnavailable},
		{name: "503", fault: atlassiantest.Fault{Status: 503, RetryAfter: 2 * time.Second}, kind: connectors.KindUnavailable, retryAfter: 2 * time.Second},
		{name: "deadline", fault: atlassiantest.Fault{Latency: 3 * time.Second}, timeout: 100 * time.Millisecond, kind: connectors.KindUnavailable},
	} {
		for name, call := range calls(fake) {
			t.Run(tc.name+"/"+name, func(t *testing.T) {
				cfg := cloudConfig(fake)
				if tc.cfg != nil {
					cfg = tc.cfg()
				}
				c := newClient(t, cfg)
				fake.SetFault(tc.fault)
				defer fake.ClearFault()
				ctx := t.Context()
				if tc.timeout > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tc.timeout)
					defer cancel()
				}
				start := time.Now()
				err := call(ctx, c)
				if k := connectors.KindOf(err); k != tc.kind {
					t.Fatalf("%v: kind %q, want %q", err, k, tc.kind)
				}
				if ra := connectors.RetryAfterOf(err); ra != tc.retryAfter {
					t.Errorf("RetryAfter %s, want %s", ra, tc.retryAfter)
				}
				if tc.timeout > 0 && time.Since(start) > tc.timeout+time.Second {
					t.Errorf("returned after %s with a %s deadline", time.Since(start), tc.timeout)
				}
				if !strings.HasPrefix(err.Error(), "confluence ") {
					t.Errorf("error %q does not name the vendor", err)
				}
				assertNoSecrets(t, err)
				if strings.Contains(err.Error(), "runbook") || strings.Contains(err.Error(), "cql") {
					t.Errorf("error %q shows the query", err)
				}
			})
		}
	}
}

func TestNotFound(t *testing.T) {
	fake := seededFake(t)
	for name, cfg := range map[string]connectors.Config{"cloud": cloudConfig(fake), "datacenter": dcConfig(fake)} {
		t.Run(name, func(t *testing.T) {
			c := newClient(t, cfg)
			for what, err := range map[string]error{
				"Item":     second(c.Item(t.Context(), "999999")),
				"Comments": second(c.Comments(t.Context(), "999999", "", 10)),
				"Items":    second(c.Items(t.Context(), connectors.ItemQuery{Container: "NOPE"})),
			} {
				if connectors.KindOf(err) != connectors.KindNotFound {
					t.Errorf("%s of what does not exist: %v, want KindNotFound", what, err)
				}
			}
			// Ids that cannot exist are refused without a call.
			if _, err := c.Item(t.Context(), "../../rest/api/space"); connectors.KindOf(err) != connectors.KindInvalid {
				t.Errorf("Item(path): %v, want KindInvalid", err)
			}
		})
	}
}

func second[T any](_ T, err error) error { return err }

// Every listing refuses a cursor that is not its own, before sending anything.
func TestInvalidCursors(t *testing.T) {
	fake := seededFake(t)
	page := fake.ConfluencePageIDs("SPA")[0]
	for name, cfg := range map[string]connectors.Config{"cloud": cloudConfig(fake), "datacenter": dcConfig(fake)} {
		t.Run(name, func(t *testing.T) {
			c := newClient(t, cfg)
			ctx := t.Context()
			containers, err := c.Containers(ctx, "", 1)
			if err != nil || containers.NextCursor == "" {
				t.Fatalf("Containers: %+v %v", containers, err)
			}
			foreign := containers.NextCursor // a valid cursor, of another call
			fake.ResetRequests()
			for _, cur := range []string{foreign, "x", "eyJ2IjoxfQ", strings.Repeat("e", 3000)} {
				for what, err := range map[string]error{
					"Items":    second(c.Items(ctx, connectors.ItemQuery{Container: "SPA", Cursor: cur})),
					"Comments": second(c.Comments(ctx, page, cur, 10)),
					"Search":   second(c.Search(ctx, connectors.SearchQuery{Text: "x", Cursor: cur})),
					"Changes":  second(c.Changes(ctx, connectors.ChangeQuery{Container: connectors.Container{ID: fake.ConfluenceSpaceID("SPA"), Key: "SPA"}, Cursor: cur})),
					"LiveIDs":  second(c.LiveIDs(ctx, connectors.Container{ID: fake.ConfluenceSpaceID("SPA"), Key: "SPA"}, cur)),
				} {
					var ve *connectors.Error
					if !asError(err, &ve) || ve.Kind != connectors.KindInvalid || ve.Reason != "invalid cursor" {
						t.Errorf("%s(cursor %.20q): %v, want KindInvalid invalid cursor", what, cur, err)
					}
				}
				if _, err := c.Containers(ctx, cur+"x", 1); connectors.KindOf(err) != connectors.KindInvalid {
					t.Errorf("Containers(bad cursor): %v", err)
				}
			}
			for _, r := range fake.Requests() {
				// Resolving the space key is the only call allowed before the cursor check.
				if r.Path != "/wiki/api/v2/spaces" {
					t.Errorf("an invalid cursor led to %s %s", r.Method, r.Path)
				}
			}
		})
	}
}

// Answers the connector cannot use are KindUnavailable, not a panic or a silent end.
// They break the contract on purpose, so the client is built without the checker.
func TestMalformedAnswers(t *testing.T) {
	answers := map[string]string{
		"/wiki/api/v2/spaces":                  `{"results":[{"id":"1","key":"A","name":"A"}],"_links":{"next":"/wiki/api/v2/spaces?limit=25"}}`,
		"/wiki/api/v2/pages/7":                 `{"id":"7","title":"T","spaceId":"1","createdAt":"yesterday","version":{"createdAt":"today","number":1}}`,
		"/wiki/api/v2/pages/8":                 `{"id":"8","title":"T","spaceId":"1","createdAt":`,
		"/wiki/api/v2/pages/9/footer-comments": `{"results":[{"id":"1","version":{"createdAt":"soon"}}]}`,
		"/wiki/rest/api/search":                `{"results":[{"content":{"id":"x/../1","type":"page","title":"T"},"lastModified":"2024-01-31T10:00:00.000Z"}],"_links":{}}`,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := answers[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	}))
	defer srv.Close()
	c, err := confluence.New(connectors.Config{BaseURL: srv.URL, Credentials: apiTokenCreds(apiToken)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for name, err := range map[string]error{
		"next link without a cursor": second(c.Containers(ctx, "", 10)),
		"unreadable timestamps":      second(c.Item(ctx, "7")),
		"truncated JSON":             second(c.Item(ctx, "8")),
		"unreadable comment":         second(c.Comments(ctx, "9", "", 10)),
		"hit with a bad id":          second(c.Changes(ctx, connectors.ChangeQuery{Container: connectors.Container{Key: "A"}, Since: seedStart})),
	} {
		if connectors.KindOf(err) != connectors.KindUnavailable {
			t.Errorf("%s: %v, want KindUnavailable", name, err)
		} else {
			assertNoSecrets(t, err)
		}
	}
}

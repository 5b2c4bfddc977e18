package confluence_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
	"github.com/unified-connectors/connector-operator/connectors/confluence"
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

func newFake(t *testing.T) *atlassiantest.Server {
	t.Helper()
	fake := atlassiantest.NewServer()
	t.Cleanup(fake.Close)
	fake.AddAccount(alice)
	return fake
}

func apiTokenCreds(token string) connectors.Credentials {
	return connectors.Credentials{Method: connectors.AuthAPIToken, Email: email, APIToken: token}
}

func newClient(t *testing.T, cfg connectors.Config) connectors.Client {
	t.Helper()
	p, ok := connectors.Get("confluence")
	if !ok {
		t.Fatal(`provider "confluence" is not registered`)
	}
	if _, err := p.Validate(cfg); err != nil {
		t.Fatalf("Validate: %v", err)
	}
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
			cfg:      connectors.Config{BaseURL: fake.URL(), Credentials: apiTokenCreds(apiToken)},
			wantPath: "/wiki/rest/api/user/current",
			want:     connectors.Identity{AccountID: alice.ID, DisplayName: alice.DisplayName, TimeZone: alice.TimeZone},
		},
		{
			name:     "cloud, OAuth2 through the gateway",
			cfg:      connectors.Config{BaseURL: "https://acme.atlassian.net", CloudID: fake.CloudID(), APIBaseURL: fake.URL(), Credentials: connectors.Credentials{Method: connectors.AuthOAuth2, Token: pat}},
			wantPath: "/ex/confluence/" + fake.CloudID() + "/wiki/rest/api/user/current",
			want:     connectors.Identity{AccountID: alice.ID, DisplayName: alice.DisplayName, TimeZone: alice.TimeZone},
		},
		{
			// Data Center: no /wiki prefix, the user key stands in for the account id, and
			// no time zone is reported.
			name:     "datacenter, PAT",
			cfg:      connectors.Config{BaseURL: fake.URL(), Deployment: connectors.DeploymentDataCenter, Credentials: connectors.Credentials{Method: connectors.AuthPAT, Token: pat}},
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
		{name: "wrong PAT", creds: connectors.Credentials{Method: connectors.AuthPAT, Token: "old-" + pat}, kind: connectors.KindAuth},
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

func TestUnimplementedMethodsSayUnsupported(t *testing.T) {
	c := newClient(t, connectors.Config{BaseURL: "https://acme.atlassian.net", Credentials: apiTokenCreds(apiToken)})
	ctx := t.Context()
	calls := map[string]func() error{
		"Containers": func() error { _, err := c.Containers(ctx, "", 10); return err },
		"Items":      func() error { _, err := c.Items(ctx, connectors.ItemQuery{}); return err },
		"Item":       func() error { _, err := c.Item(ctx, "1"); return err },
		"Comments":   func() error { _, err := c.Comments(ctx, "1", "", 10); return err },
		"Search":     func() error { _, err := c.Search(ctx, connectors.SearchQuery{}); return err },
		"Create":     func() error { _, err := c.Create(ctx, connectors.NewItem{}); return err },
		"Changes":    func() error { _, err := c.Changes(ctx, connectors.ChangeQuery{}); return err },
		"LiveIDs":    func() error { _, err := c.LiveIDs(ctx, connectors.Container{}, ""); return err },
	}
	for name, call := range calls {
		err := call()
		if !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), "confluence: "+name+" is not implemented yet") {
			t.Errorf("%s: error %v, want confluence: %s is not implemented yet (ErrUnsupported)", name, err, name)
		}
	}
}

func TestProvider(t *testing.T) {
	p, ok := connectors.Get(confluence.Type)
	if !ok || p.Type() != "confluence" {
		t.Fatalf("Get(%q) = %v, %v", confluence.Type, p, ok)
	}
	_, err := p.Validate(connectors.Config{BaseURL: "https://wiki.example.com", Deployment: connectors.DeploymentDataCenter,
		CloudID: "abc", Credentials: connectors.Credentials{Method: connectors.AuthOAuth2}})
	if err == nil {
		t.Error("Validate accepted oauth2 on Data Center")
	}
}

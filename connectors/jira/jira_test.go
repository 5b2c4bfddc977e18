package jira_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
	"github.com/unified-connectors/connector-operator/connectors/jira"
)

const (
	email    = "alice@example.com"
	apiToken = "s3cret-jira-token-71d0"
	pat      = "s3cret-jira-pat-c3e9"
)

var alice = atlassiantest.Account{
	ID: "5b10a2844c20165700ede21g", DisplayName: "Alice Example", Email: email,
	TimeZone: "Australia/Sydney", APIToken: apiToken, PAT: pat,
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
	p, ok := connectors.Get("jira")
	if !ok {
		t.Fatal(`provider "jira" is not registered`)
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

// assertNoSecrets fails when the error text holds a credential.
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
		wantID   string
	}{
		{
			name:     "cloud, API token",
			cfg:      connectors.Config{BaseURL: fake.URL(), Credentials: apiTokenCreds(apiToken)},
			wantPath: "/rest/api/3/myself", wantID: alice.ID,
		},
		{
			name:     "cloud, OAuth2 through the gateway",
			cfg:      connectors.Config{BaseURL: "https://acme.atlassian.net", CloudID: fake.CloudID(), APIBaseURL: fake.URL(), Credentials: connectors.Credentials{Method: connectors.AuthOAuth2, Token: pat}},
			wantPath: "/ex/jira/" + fake.CloudID() + "/rest/api/3/myself", wantID: alice.ID,
		},
		{
			name:     "datacenter, PAT",
			cfg:      connectors.Config{BaseURL: fake.URL(), Deployment: connectors.DeploymentDataCenter, Credentials: connectors.Credentials{Method: connectors.AuthPAT, Token: pat}},
			wantPath: "/rest/api/2/myself", wantID: alice.ID, // the user key
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake.ResetRequests()
			id, err := newClient(t, tt.cfg).Identity(t.Context())
			if err != nil {
				t.Fatalf("Identity: %v", err)
			}
			want := connectors.Identity{AccountID: tt.wantID, DisplayName: alice.DisplayName, TimeZone: alice.TimeZone}
			if id != want {
				t.Errorf("Identity = %+v, want %+v", id, want)
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
		cfg        connectors.Config
		fault      atlassiantest.Fault
		ctxTimeout time.Duration
		kind       connectors.ErrorKind
		retryAfter time.Duration
	}{
		{name: "wrong API token", cfg: connectors.Config{Credentials: apiTokenCreds("wrong-" + apiToken)}, kind: connectors.KindAuth},
		{name: "wrong PAT on datacenter", cfg: connectors.Config{Deployment: connectors.DeploymentDataCenter, Credentials: connectors.Credentials{Method: connectors.AuthPAT, Token: pat + "-revoked"}}, kind: connectors.KindAuth},
		{name: "403 on the identity call", fault: atlassiantest.Fault{Status: 403}, kind: connectors.KindAuth},
		{name: "429 with Retry-After", fault: atlassiantest.Fault{Status: 429, RetryAfter: 7 * time.Second}, kind: connectors.KindRateLimited, retryAfter: 7 * time.Second},
		{name: "503", fault: atlassiantest.Fault{Status: 503}, kind: connectors.KindUnavailable},
		{name: "slower than the deadline", fault: atlassiantest.Fault{Latency: 5 * time.Second}, ctxTimeout: 150 * time.Millisecond, kind: connectors.KindUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake.SetFault(tt.fault)
			defer fake.ClearFault()
			cfg := tt.cfg
			cfg.BaseURL = fake.URL()
			if cfg.Credentials.Method == "" {
				cfg.Credentials = apiTokenCreds(apiToken)
			}
			ctx := t.Context()
			if tt.ctxTimeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.ctxTimeout)
				defer cancel()
			}

			start := time.Now()
			_, err := newClient(t, cfg).Identity(ctx)
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
			if !strings.HasPrefix(err.Error(), "jira GET /rest/api/") {
				t.Errorf("error %q does not name the vendor and the call", err)
			}
			assertNoSecrets(t, err)
		})
	}
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
		if !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), "jira: "+name+" is not implemented yet") {
			t.Errorf("%s: error %v, want jira: %s is not implemented yet (ErrUnsupported)", name, err, name)
		}
	}
}

func TestProvider(t *testing.T) {
	p, ok := connectors.Get(jira.Type)
	if !ok || p.Type() != "jira" {
		t.Fatalf("Get(%q) = %v, %v", jira.Type, p, ok)
	}
	if _, err := p.Validate(connectors.Config{BaseURL: "https://acme.atlassian.net", Credentials: connectors.Credentials{Method: connectors.AuthOAuth2}}); err == nil {
		t.Error("Validate accepted oauth2 without a cloud id")
	}
	if _, err := p.NewClient(connectors.Config{BaseURL: "https://acme.atlassian.net", Credentials: connectors.Credentials{Method: connectors.AuthPAT}}); err == nil {
		t.Error("NewClient accepted a PAT config without a token")
	}
}

package jira_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/connectors/atlassian"
	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
	"github.com/unified-connectors/connector-operator/connectors/jira"
)

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
			cfg:      gatewayConfig(fake),
			wantPath: "/ex/jira/" + fake.CloudID() + "/rest/api/3/myself", wantID: alice.ID,
		},
		{
			name:     "datacenter, PAT",
			cfg:      dcConfig(fake),
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
		{name: "wrong PAT on datacenter", cfg: connectors.Config{Connector: atlassian.ConnectorSpec(atlassian.DeploymentDataCenter, "", ""), Credentials: atlassian.PATCredentials(pat + "-revoked")}, kind: connectors.KindAuth},
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

// TestDefaultLookback: the registered provider tells the sync engine to re-read five
// minutes behind its cursor, for issues that reach Jira's search index late.
func TestDefaultLookback(t *testing.T) {
	p, _ := connectors.Get(jira.Type)
	lb, ok := p.(connectors.Lookbacker)
	if !ok || lb.DefaultLookback() != 5*time.Minute {
		t.Fatalf("jira provider: Lookbacker %v, want a 5m default look-back", ok)
	}
}

package atlassian_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/connectors/atlassian"
	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
)

const (
	email    = "alice@example.com"
	apiToken = "s3cret-api-token-4f8a"
	pat      = "s3cret-pat-9b2c"
	// querySecret stands for sensitive data in a query string (a JQL clause, a cursor).
	querySecret = "project=CONFIDENTIAL"
)

// secrets are every form a credential could leak in.
var secrets = []string{apiToken, pat, base64.StdEncoding.EncodeToString([]byte(email + ":" + apiToken)), "CONFIDENTIAL"}

func newFake(t *testing.T) *atlassiantest.Server {
	t.Helper()
	fake := atlassiantest.NewServer()
	t.Cleanup(fake.Close)
	fake.AddAccount(atlassiantest.Account{ID: "acc-1", DisplayName: "Alice", Email: email, TimeZone: "Europe/Berlin", APIToken: apiToken, PAT: pat})
	return fake
}

func apiTokenConfig(baseURL string) connectors.Config {
	return connectors.Config{BaseURL: baseURL, Credentials: atlassian.APITokenCredentials(email, apiToken)}
}

func newClient(t *testing.T, p atlassian.Product, cfg connectors.Config) *atlassian.Client {
	t.Helper()
	c, err := atlassian.New(p, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// assertNoSecrets fails when any rendering of err, or of an error it wraps, holds a secret.
func assertNoSecrets(t *testing.T, err error) {
	t.Helper()
	for e := err; e != nil; e = errors.Unwrap(e) {
		for _, text := range []string{e.Error(), fmt.Sprintf("%+v", e), fmt.Sprintf("%#v", e)} {
			for _, s := range secrets {
				if strings.Contains(text, s) {
					t.Errorf("error text %q contains the secret %q", text, s)
				}
			}
		}
	}
}

type user struct {
	AccountID string `json:"accountId"`
}

func TestGetAuthenticates(t *testing.T) {
	fake := newFake(t)
	for _, tc := range []struct {
		name  string
		creds connectors.Credentials
	}{
		{"apiToken as Basic", atlassian.APITokenCredentials(email, apiToken)},
		{"pat as Bearer", atlassian.PATCredentials(pat)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, atlassian.Jira, connectors.Config{BaseURL: fake.URL(), Credentials: tc.creds})
			var u user
			if err := c.Get(t.Context(), "/rest/api/3/myself", nil, &u); err != nil {
				t.Fatalf("Get: %v", err)
			}
			if u.AccountID != "acc-1" {
				t.Fatalf("accountId = %q, want acc-1", u.AccountID)
			}
		})
	}
}

func TestRequestHeaders(t *testing.T) {
	var got http.Header
	var gotURL *url.URL
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, gotURL = r.Header.Clone(), r.URL
		_, _ = w.Write([]byte(`{}`))
	}))
	defer srv.Close()

	c := newClient(t, atlassian.Jira, apiTokenConfig(srv.URL+"/jira/")) // Data Center context path, trailing slash
	if err := c.Get(t.Context(), "/rest/api/2/myself", url.Values{"expand": {"groups"}}, &struct{}{}); err != nil {
		t.Fatalf("Get: %v", err)
	}
	if gotURL.Path != "/jira/rest/api/2/myself" || gotURL.RawQuery != "expand=groups" {
		t.Errorf("request went to %s, want /jira/rest/api/2/myself?expand=groups", gotURL)
	}
	if a := got.Get("Accept"); a != "application/json" {
		t.Errorf("Accept = %q", a)
	}
	if u, p, ok := (&http.Request{Header: got}).BasicAuth(); !ok || u != email || p != apiToken {
		t.Errorf("Authorization is not Basic email:token")
	}
}

func TestOAuth2GoesThroughGateway(t *testing.T) {
	fake := newFake(t)
	for _, tc := range []struct {
		product atlassian.Product
		path    string
	}{
		{atlassian.Jira, "/rest/api/3/myself"},
		{atlassian.Confluence, "/wiki/rest/api/user/current"},
	} {
		t.Run(string(tc.product), func(t *testing.T) {
			cfg := connectors.Config{
				BaseURL:     "https://acme.atlassian.net", // never called: Bearer tokens go to the gateway
				Connector:   atlassian.ConnectorSpec("", fake.CloudID(), fake.URL()+"/"),
				Credentials: connectors.Credentials{Method: connectors.AuthOAuth2, Token: pat},
			}
			c := newClient(t, tc.product, cfg)
			var u user
			if err := c.Get(t.Context(), tc.path, nil, &u); err != nil {
				t.Fatalf("Get: %v", err)
			}
			want := "/ex/" + string(tc.product) + "/" + fake.CloudID() + tc.path
			if n := fake.CountRequests(want); n != 1 {
				t.Fatalf("fake saw %d requests at %s, want 1; saw %+v", n, want, fake.Requests())
			}
			if got := c.SiteURL("/browse/X-1"); got != "https://acme.atlassian.net/browse/X-1" {
				t.Errorf("SiteURL = %q: links must point at the site, not the gateway", got)
			}
		})
	}

	t.Run("default gateway", func(t *testing.T) {
		c := newClient(t, atlassian.Jira, connectors.Config{
			BaseURL: "https://acme.atlassian.net", Connector: atlassian.ConnectorSpec(atlassian.DeploymentCloud, "1234-abcd", ""),
			Credentials: connectors.Credentials{Method: connectors.AuthOAuth2, Token: pat},
		})
		if got := c.String(); !strings.Contains(got, "https://api.atlassian.com/ex/jira/1234-abcd") {
			t.Errorf("String() = %q, want the api.atlassian.com gateway", got)
		}
		if got, want := c.Op(http.MethodGet, "/rest/api/3/myself"), "GET /ex/jira/1234-abcd/rest/api/3/myself"; got != want {
			t.Errorf("Op = %q, want %q", got, want)
		}
	})
}

func TestStatusErrors(t *testing.T) {
	fake := newFake(t)
	tests := []struct {
		name       string
		fault      atlassiantest.Fault
		creds      *connectors.Credentials
		path       string
		kind       connectors.ErrorKind
		status     int
		retryAfter time.Duration
	}{
		{name: "wrong api token", creds: new(atlassian.APITokenCredentials(email, apiToken+"x")),
			kind: connectors.KindAuth, status: 401},
		{name: "unknown pat", creds: new(atlassian.PATCredentials(pat + "x")), kind: connectors.KindAuth, status: 401},
		{name: "not found", path: "/rest/api/3/nothing-here", kind: connectors.KindNotFound, status: 404},
		{name: "forbidden", fault: atlassiantest.Fault{Status: 403}, kind: connectors.KindInvalid, status: 403},
		{name: "rate limited", fault: atlassiantest.Fault{Status: 429, RetryAfter: 1500 * time.Millisecond},
			kind: connectors.KindRateLimited, status: 429, retryAfter: 2 * time.Second},
		{name: "unavailable with retry-after", fault: atlassiantest.Fault{Status: 503, RetryAfter: 3 * time.Second},
			kind: connectors.KindUnavailable, status: 503, retryAfter: 3 * time.Second},
		{name: "server error", fault: atlassiantest.Fault{Status: 500}, kind: connectors.KindUnavailable, status: 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake.SetFault(tt.fault)
			defer fake.ClearFault()
			cfg := apiTokenConfig(fake.URL())
			if tt.creds != nil {
				cfg.Credentials = *tt.creds
			}
			path := tt.path
			if path == "" {
				path = "/rest/api/3/myself"
			}
			err := newClient(t, atlassian.Jira, cfg).Get(t.Context(), path, url.Values{"jql": {querySecret}}, &user{})

			var ve *connectors.Error
			if !errors.As(err, &ve) {
				t.Fatalf("error %v (%T) is not a *connectors.Error", err, err)
			}
			if ve.Kind != tt.kind || ve.Status != tt.status || ve.RetryAfter != tt.retryAfter {
				t.Errorf("got kind %s status %d retryAfter %s, want %s %d %s", ve.Kind, ve.Status, ve.RetryAfter, tt.kind, tt.status, tt.retryAfter)
			}
			if want := "GET " + path; ve.Op != want || ve.Vendor != "jira" {
				t.Errorf("vendor %q op %q, want jira %q", ve.Vendor, ve.Op, want)
			}
			assertNoSecrets(t, err)
		})
	}
}

func TestDeadlineIsUnavailableAndQuick(t *testing.T) {
	fake := newFake(t)
	fake.SetFault(atlassiantest.Fault{Latency: 10 * time.Second})
	c := newClient(t, atlassian.Jira, apiTokenConfig(fake.URL()))

	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := c.Get(ctx, "/rest/api/3/myself", url.Values{"jql": {querySecret}}, &user{})
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Fatalf("Get took %s; the context deadline was 200ms", elapsed)
	}
	if k := connectors.KindOf(err); k != connectors.KindUnavailable {
		t.Fatalf("kind = %q (%v), want Unavailable", k, err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v does not wrap context.DeadlineExceeded", err)
	}
	if !strings.Contains(err.Error(), "timed out") {
		t.Errorf("error %q does not say it timed out", err)
	}
	var ue *url.Error
	if errors.As(err, &ue) && ue.URL != "/rest/api/3/myself" {
		t.Errorf("wrapped url.Error names %q, want the path only", ue.URL)
	}
	assertNoSecrets(t, err)
}

func TestTransportErrorShowsPathOnly(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close() // nothing listens there any more

	err := newClient(t, atlassian.Jira, apiTokenConfig(base)).Get(t.Context(), "/rest/api/3/search/jql", url.Values{"jql": {querySecret}}, &user{})
	if k := connectors.KindOf(err); k != connectors.KindUnavailable {
		t.Fatalf("kind = %q (%v), want Unavailable", k, err)
	}
	var ue *url.Error
	if !errors.As(err, &ue) {
		t.Fatalf("error %v does not wrap the *url.Error", err)
	}
	if ue.URL != "/rest/api/3/search/jql" {
		t.Errorf("url.Error URL = %q, want the path only", ue.URL)
	}
	if strings.Contains(err.Error(), base) || strings.Contains(ue.Error(), "?") {
		t.Errorf("error %q / %q shows the URL or its query", err, ue)
	}
	assertNoSecrets(t, err)
}

func TestMalformedAnswerIsUnavailable(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<html>Down for maintenance</html>"))
	}))
	defer srv.Close()
	err := newClient(t, atlassian.Jira, apiTokenConfig(srv.URL)).Get(t.Context(), "/rest/api/3/myself", nil, &user{})
	var ve *connectors.Error
	if !errors.As(err, &ve) || ve.Kind != connectors.KindUnavailable || !strings.Contains(ve.Reason, "malformed JSON") {
		t.Fatalf("error = %v, want Unavailable: malformed JSON", err)
	}
}

func TestAuthOnForbidden(t *testing.T) {
	fake := newFake(t)
	fake.SetFault(atlassiantest.Fault{Status: http.StatusForbidden})
	err := atlassian.AuthOnForbidden(newClient(t, atlassian.Jira, apiTokenConfig(fake.URL())).Get(t.Context(), "/rest/api/3/myself", nil, &user{}))
	if k := connectors.KindOf(err); k != connectors.KindAuth {
		t.Fatalf("kind = %q, want Auth for a 403 on the identity call", k)
	}
	other := errors.New("boom")
	if got := atlassian.AuthOnForbidden(other); got != other {
		t.Fatalf("AuthOnForbidden changed a non-vendor error")
	}
}

func TestClientStringRedacts(t *testing.T) {
	c := newClient(t, atlassian.Jira, apiTokenConfig("https://acme.atlassian.net"))
	for _, text := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c)} {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("%q contains a secret", text)
			}
		}
	}
}

package atlassian_test

import (
	"strings"
	"testing"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/connectors/atlassian"
)

// spec returns c's Connector spec, giving c one if it has none.
func spec(c *connectors.Config) *v1alpha1.ConnectorSpec {
	if c.Connector == nil {
		c.Connector = &v1alpha1.ConnectorSpec{}
	}
	return c.Connector
}

// gateway sets the Connector's spec.cloudID and spec.oauth2.apiBaseURL.
func gateway(cloudID, apiBaseURL string) func(*connectors.Config) {
	return func(c *connectors.Config) {
		s := spec(c)
		s.CloudID = cloudID
		if apiBaseURL != "" {
			s.OAuth2 = &v1alpha1.OAuth2Spec{APIBaseURL: v1alpha1.URL(apiBaseURL)}
		}
	}
}

func TestValidate(t *testing.T) {
	cloud := func(m connectors.AuthMethod) connectors.Config {
		return connectors.Config{BaseURL: "https://acme.atlassian.net", Credentials: connectors.Credentials{Method: m}}
	}
	dc := func(m connectors.AuthMethod) connectors.Config {
		c := cloud(m)
		c.BaseURL, c.Connector = "https://jira.example.com/jira", atlassian.ConnectorSpec(atlassian.DeploymentDataCenter, "", "")
		return c
	}
	with := func(c connectors.Config, f func(*connectors.Config)) connectors.Config { f(&c); return c }

	tests := []struct {
		name    string
		cfg     connectors.Config
		wantErr string // substring; "" means valid
		warning string // substring of a warning; "" means none expected
	}{
		{name: "cloud apiToken", cfg: cloud(connectors.AuthAPIToken)},
		{name: "no method checks the site only", cfg: cloud("")},
		{name: "datacenter pat", cfg: dc(connectors.AuthPAT)},
		{name: "cloud oauth2 with cloud id", cfg: with(cloud(connectors.AuthOAuth2), gateway("0a1b-2c", ""))},
		{name: "oauth2 gateway override", cfg: with(cloud(connectors.AuthOAuth2), gateway("abc", "https://gateway.example.com/root"))},
		{name: "explicit cloud deployment", cfg: with(cloud(connectors.AuthAPIToken), func(c *connectors.Config) { spec(c).Deployment = atlassian.DeploymentCloud })},
		{name: "plain http warns", cfg: with(cloud(connectors.AuthAPIToken), func(c *connectors.Config) { c.BaseURL = "http://127.0.0.1:8090" }), warning: "plain http"},
		{name: "pat on cloud warns", cfg: cloud(connectors.AuthPAT), warning: "no personal access tokens"},
		{name: "apiToken on datacenter warns", cfg: dc(connectors.AuthAPIToken), warning: "prefer pat"},

		{name: "missing baseURL", cfg: with(cloud(""), func(c *connectors.Config) { c.BaseURL = "" }), wantErr: "baseURL is required"},
		{name: "relative baseURL", cfg: with(cloud(""), func(c *connectors.Config) { c.BaseURL = "acme.atlassian.net" }), wantErr: "https"},
		{name: "ftp baseURL", cfg: with(cloud(""), func(c *connectors.Config) { c.BaseURL = "ftp://acme.atlassian.net" }), wantErr: "https"},
		{name: "unparsable baseURL", cfg: with(cloud(""), func(c *connectors.Config) { c.BaseURL = "https://acme .net/%zz" }), wantErr: "not a URL"},
		{name: "userinfo", cfg: with(cloud(""), func(c *connectors.Config) { c.BaseURL = "https://bob:hunter2@acme.atlassian.net" }), wantErr: "credentials"},
		{name: "query", cfg: with(cloud(""), func(c *connectors.Config) { c.BaseURL = "https://acme.atlassian.net/?x=1" }), wantErr: "query"},
		{name: "fragment", cfg: with(cloud(""), func(c *connectors.Config) { c.BaseURL = "https://acme.atlassian.net/#x" }), wantErr: "fragment"},
		{name: "unknown deployment", cfg: with(cloud(""), func(c *connectors.Config) { spec(c).Deployment = "server" }), wantErr: "deployment"},
		{name: "unknown method", cfg: cloud("kerberos"), wantErr: "unknown auth method"},
		{name: "oauth2 without cloud id", cfg: cloud(connectors.AuthOAuth2), wantErr: "needs cloudID"},
		{name: "oauth2 on datacenter", cfg: with(dc(connectors.AuthOAuth2), gateway("abc", "")), wantErr: "only supported on Atlassian Cloud"},
		{name: "cloud id with a slash", cfg: with(cloud(connectors.AuthOAuth2), gateway("abc/../x", "")), wantErr: "cloudID"},
		{name: "apiBaseURL with query", cfg: with(cloud(connectors.AuthOAuth2), gateway("abc", "https://gw.example.com/?a=b")), wantErr: "apiBaseURL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			warnings, err := atlassian.Validate(atlassian.Jira, tt.cfg)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("Validate: unexpected error %v", err)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Validate error = %v, want it to mention %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Fatalf("Validate error %q shows the password from the URL", err)
				}
				return
			}
			joined := strings.Join(warnings, "\n")
			if tt.warning == "" && len(warnings) > 0 {
				t.Fatalf("unexpected warnings %q", warnings)
			}
			if !strings.Contains(joined, tt.warning) {
				t.Fatalf("warnings %q, want one mentioning %q", warnings, tt.warning)
			}
		})
	}
}

func TestNewNeedsCredentialValues(t *testing.T) {
	base := connectors.Config{BaseURL: "https://acme.atlassian.net", Connector: atlassian.ConnectorSpec("", "abc", "")}
	for _, creds := range []connectors.Credentials{
		{},
		{Method: connectors.AuthAPIToken, Values: map[string]string{atlassian.KeyEmail: "a@example.com"}},
		{Method: connectors.AuthAPIToken, Values: map[string]string{atlassian.KeyAPIToken: "t"}},
		// The Secret's keys are in Values; Token is only the operator's access token.
		{Method: connectors.AuthAPIToken, Token: "t"},
		{Method: connectors.AuthPAT},
		{Method: connectors.AuthPAT, Token: "t"},
		{Method: connectors.AuthOAuth2},
		// oauth2 authenticates with the access token, never with a Secret key.
		{Method: connectors.AuthOAuth2, Values: map[string]string{atlassian.KeyToken: "t"}},
	} {
		cfg := base
		cfg.Credentials = creds
		if _, err := atlassian.New(atlassian.Jira, cfg); err == nil {
			t.Errorf("New(%v) succeeded, want an error for missing credential values", creds)
		}
	}
}

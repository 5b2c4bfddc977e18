package atlassian

import (
	"net/url"
	"strings"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors"
)

// Atlassian's OAuth 2.0 (3LO) endpoints and rules.
const (
	// DefaultAuthorizeURL and DefaultTokenURL are Atlassian's authorization server.
	DefaultAuthorizeURL = "https://auth.atlassian.com/authorize"
	DefaultTokenURL     = "https://auth.atlassian.com/oauth/token"
	// authHost documents no PKCE support; every other authorization server (a private
	// gateway, a test fake) gets an S256 challenge, which servers that do not know it
	// ignore.
	authHost = "auth.atlassian.com"
	// audience is the only audience Atlassian's authorize accepts.
	audience = "api.atlassian.com"
)

// Secret keys of the Atlassian auth methods (DESIGN.md).
const (
	KeyEmail    = "email"
	KeyAPIToken = "apiToken"
	KeyToken    = "token"
)

// Describe is the Description of Jira or Confluence: apiToken, pat and oauth2 (3LO with
// rotating refresh tokens and expiring access tokens), every capability but reporting
// deletions itself (snapshots serve deletions); only Confluence ranks its search.
func Describe(product Product) connectors.Description {
	kind := connectors.KindIssue
	if product == Confluence {
		kind = connectors.KindPage
	}
	return connectors.Description{
		Auth: []connectors.AuthSpec{
			{Method: connectors.AuthAPIToken, SecretKeys: []string{KeyEmail, KeyAPIToken}},
			{Method: connectors.AuthOAuth2, Grant: connectors.GrantAuthorizationCode},
			{Method: connectors.AuthPAT, SecretKeys: []string{KeyToken}},
		},
		OAuth: &connectors.OAuthRules{
			Endpoints: func(*v1alpha1.ConnectorSpec) (string, string) {
				return DefaultAuthorizeURL, DefaultTokenURL
			},
			PKCE: func(authorizeURL string) bool {
				u, err := url.Parse(authorizeURL)
				return err == nil && !strings.EqualFold(u.Hostname(), authHost)
			},
			AuthorizeParams:      map[string]string{"audience": audience, "prompt": "consent"},
			RotatesRefreshTokens: true,
			AccessTokensExpire:   true,
		},
		ItemKinds: []string{kind},
		Capabilities: connectors.Capabilities{
			Create: true, Comments: true, ChangeFeed: true, Search: true, Snapshots: true,
			// CQL orders by relevance; JQL cannot.
			RankedSearch: product == Confluence,
		},
	}
}

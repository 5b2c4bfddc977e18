package vendorclient

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/connectors/atlassian"
	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
	_ "github.com/unified-connectors/connector-operator/connectors/jira"
	"github.com/unified-connectors/connector-operator/internal/oauth"
	"github.com/unified-connectors/connector-operator/internal/outcome"
)

// keysProvider is a vendor the operator knows nothing about but its Description: one
// method with a required and an optional Secret key, one with a client-credentials grant.
type keysProvider struct{}

const keysType = "vendorclient-keys-test"

func (keysProvider) Type() string { return keysType }
func (keysProvider) Validate(connectors.Config) ([]string, error) {
	return nil, nil
}
func (keysProvider) NewClient(connectors.Config) (connectors.Client, error) {
	return nil, errors.ErrUnsupported
}
func (keysProvider) Describe() connectors.Description {
	return connectors.Description{Auth: []connectors.AuthSpec{
		{Method: "password", SecretKeys: []string{"username", "password"}, OptionalKeys: []string{"tls.crt", "tls.key"}},
		{Method: connectors.AuthClientCredentials, SecretKeys: []string{KeyClientID, KeyClientSecret}, Grant: connectors.GrantClientCredentials},
	}}
}

func init() { connectors.Register(keysProvider{}) }

func secretOf(data map[string]string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "creds"}, Data: map[string][]byte{}}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	return s
}

// TestCredentialsFromSecret: the keys a Connection's Secret must hold, and what the
// provider gets, come from the provider's Description alone.
func TestCredentialsFromSecret(t *testing.T) {
	const (
		email    = "alice@example.com"
		apiToken = "s3cret-api-token-77a1"
		pat      = "s3cret-pat-91c0"
		refresh  = "s3cret-refresh-5d2e"
		password = "s3cret-password-3f19"
		cert     = "s3cret-cert-body"
	)
	tests := []struct {
		name       string
		typ        string
		method     v1alpha1.AuthMethod
		data       map[string]string
		wantValues map[string]string
		wantReason string // a *Problem with this reason; "" means success
		wantNames  []string
	}{
		{name: "jira apiToken", typ: "jira", method: v1alpha1.AuthMethodAPIToken,
			data:       map[string]string{"email": " " + email + "\n", "apiToken": apiToken, "unrelated": "x"},
			wantValues: map[string]string{atlassian.KeyEmail: email, atlassian.KeyAPIToken: apiToken}},
		{name: "jira pat", typ: "jira", method: v1alpha1.AuthMethodPAT,
			data: map[string]string{"token": pat}, wantValues: map[string]string{atlassian.KeyToken: pat}},
		{name: "jira oauth2 needs only the refresh token", typ: "jira", method: v1alpha1.AuthMethodOAuth2,
			data: map[string]string{oauth.KeyRefreshToken: refresh}},
		{name: "jira apiToken missing a key", typ: "jira", method: v1alpha1.AuthMethodAPIToken,
			data: map[string]string{"email": email, "apiToken": "  "}, wantReason: v1alpha1.SecretInvalidReason, wantNames: []string{"team-a/creds", "apiToken"}},
		{name: "jira oauth2 without a refresh token", typ: "jira", method: v1alpha1.AuthMethodOAuth2,
			data: map[string]string{oauth.KeyAccessToken: "at"}, wantReason: v1alpha1.SecretInvalidReason, wantNames: []string{oauth.KeyRefreshToken}},
		{name: "a method jira does not offer", typ: "jira", method: v1alpha1.AuthMethodClientCredentials,
			data: map[string]string{KeyClientID: "id", KeyClientSecret: "s"}, wantReason: v1alpha1.AuthMethodNotAllowedReason, wantNames: []string{`"jira"`, `"clientCredentials"`}},
		{name: "an unregistered type", typ: "nosuchvendor", method: v1alpha1.AuthMethodPAT,
			data: map[string]string{"token": pat}, wantReason: v1alpha1.ConnectorNotReadyReason, wantNames: []string{"nosuchvendor"}},
		{name: "other vendor: optional key present", typ: keysType, method: "password",
			data:       map[string]string{"username": "app", "password": password, "tls.crt": cert},
			wantValues: map[string]string{"username": "app", "password": password, "tls.crt": cert}},
		{name: "other vendor: client credentials", typ: keysType, method: v1alpha1.AuthMethodClientCredentials,
			data:       map[string]string{KeyClientID: "id", KeyClientSecret: "shh"},
			wantValues: map[string]string{KeyClientID: "id", KeyClientSecret: "shh"}},
		{name: "other vendor: missing required keys", typ: keysType, method: "password",
			data: map[string]string{"tls.key": "k"}, wantReason: v1alpha1.SecretInvalidReason, wantNames: []string{"username, password"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			creds, _, err := credentialsFromSecret(tt.typ, tt.method, secretOf(tt.data))
			if tt.wantReason == "" {
				if err != nil {
					t.Fatalf("credentialsFromSecret: %v", err)
				}
				if creds.Method != connectors.AuthMethod(tt.method) {
					t.Errorf("Method = %q, want %q", creds.Method, tt.method)
				}
				if !maps.Equal(creds.Values, tt.wantValues) {
					t.Errorf("Values hold keys %v, want %v", slices.Sorted(maps.Keys(creds.Values)), slices.Sorted(maps.Keys(tt.wantValues)))
				}
				if creds.Token != "" {
					t.Error("Token set from the Secret: it is the access token the operator obtains, never a Secret key")
				}
				for _, v := range tt.data {
					if v = strings.TrimSpace(v); len(v) > 3 && (strings.Contains(creds.String(), v) || strings.Contains(fmt.Sprintf("%v %+v %#v", creds, creds, creds), v)) {
						t.Errorf("Credentials print a Secret value")
					}
				}
				return
			}
			var p *outcome.Error
			if !errors.As(err, &p) || p.Reason != tt.wantReason || !p.Stalled() {
				t.Fatalf("err = %v, want a stalling problem with reason %s", err, tt.wantReason)
			}
			for _, n := range tt.wantNames {
				if !strings.Contains(p.Message, n) {
					t.Errorf("message %q does not name %s", p.Message, n)
				}
			}
			for _, v := range tt.data {
				if v = strings.TrimSpace(v); len(v) > 3 && strings.Contains(p.Message, v) {
					t.Errorf("message %q holds a Secret value", p.Message)
				}
			}
		})
	}
}

// TestConfigReachesTheVendor: the Config built for a Connector carries its Atlassian
// settings only inside Connector, and the Jira provider still finds the site, the Data
// Center API and the OAuth2 gateway from it, with the Secret's keys as read above.
func TestConfigReachesTheVendor(t *testing.T) {
	fake := atlassiantest.NewServer()
	t.Cleanup(fake.Close)
	alice := atlassiantest.Account{ID: "acc-1", DisplayName: "Alice", Email: "alice@example.com", APIToken: "s3cret-api-token", PAT: "s3cret-pat"}
	fake.AddAccount(alice)

	tests := []struct {
		name     string
		spec     v1alpha1.ConnectorSpec
		method   v1alpha1.AuthMethod
		data     map[string]string
		token    string // the access token the operator obtained (oauth2)
		wantPath string
	}{
		{name: "cloud apiToken (deployment unset)", spec: v1alpha1.ConnectorSpec{Type: "jira", BaseURL: v1alpha1.EndpointURL(fake.URL())},
			method: v1alpha1.AuthMethodAPIToken, data: map[string]string{"email": alice.Email, "apiToken": alice.APIToken}, wantPath: "/rest/api/3/myself"},
		{name: "datacenter pat", spec: v1alpha1.ConnectorSpec{Type: "jira", BaseURL: v1alpha1.EndpointURL(fake.URL()), Deployment: atlassian.DeploymentDataCenter},
			method: v1alpha1.AuthMethodPAT, data: map[string]string{"token": alice.PAT}, wantPath: "/rest/api/2/myself"},
		{name: "cloud oauth2 through the gateway", spec: v1alpha1.ConnectorSpec{Type: "jira", BaseURL: "https://acme.atlassian.net", CloudID: fake.CloudID(),
			OAuth2: &v1alpha1.OAuth2Spec{APIBaseURL: v1alpha1.URL(fake.URL())}},
			method: v1alpha1.AuthMethodOAuth2, data: map[string]string{oauth.KeyRefreshToken: "r"}, token: alice.PAT,
			wantPath: "/ex/jira/" + fake.CloudID() + "/rest/api/3/myself"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			connector := &v1alpha1.Connector{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Spec: tt.spec}
			creds, _, err := credentialsFromSecret(string(tt.spec.Type), tt.method, secretOf(tt.data))
			if err != nil {
				t.Fatalf("credentialsFromSecret: %v", err)
			}
			creds.Token = tt.token
			cfg := Config(connector, creds, nil)
			if cfg.Connector != &connector.Spec || cfg.BaseURL != string(tt.spec.BaseURL) {
				t.Fatalf("Config does not carry the Connector's spec and baseURL")
			}
			p, _ := connectors.Get("jira")
			if _, err := p.Validate(cfg); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			c, err := p.NewClient(cfg)
			if err != nil {
				t.Fatalf("NewClient: %v", err)
			}
			fake.ResetRequests()
			id, err := c.Identity(t.Context())
			if err != nil {
				t.Fatalf("Identity: %v", err)
			}
			if id.DisplayName != alice.DisplayName {
				t.Errorf("Identity = %+v, want Alice", id)
			}
			if n := fake.CountRequests(tt.wantPath); n != 1 {
				t.Errorf("fake saw %d calls to %s, want 1 (saw %+v)", n, tt.wantPath, fake.Requests())
			}
		})
	}
}

func TestConnectorAllowsOnlyOfferedMethods(t *testing.T) {
	desc, _ := connectors.Describe("jira")
	cnr := &v1alpha1.Connector{Spec: v1alpha1.ConnectorSpec{Type: "jira",
		AuthMethods: []v1alpha1.AuthMethod{v1alpha1.AuthMethodAPIToken, v1alpha1.AuthMethodClientCredentials}}}
	err := offersAuthMethods(desc, cnr)
	if err == nil || !strings.Contains(err.Error(), `does not offer auth method "clientCredentials"`) {
		t.Fatalf("jira allowing clientCredentials: %v", err)
	}
	cnr.Spec.AuthMethods = []v1alpha1.AuthMethod{v1alpha1.AuthMethodPAT}
	if err := offersAuthMethods(desc, cnr); err != nil {
		t.Fatalf("jira allowing pat: %v", err)
	}
}

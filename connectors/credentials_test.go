package connectors_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/unified-connectors/connector-operator/connectors"
)

// TestCredentialsRedact: however a Credentials value is printed, alone or inside a
// Config, neither its Token nor any of its Values shows.
func TestCredentialsRedact(t *testing.T) {
	const token, value, key = "s3cret-access-token", "s3cret-secret-value", "s3cretKeyName"
	creds := connectors.Credentials{Method: connectors.AuthPAT, Token: token, Values: map[string]string{key: value}}
	cfg := connectors.Config{BaseURL: "https://example.com", Credentials: creds}
	for _, format := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		for _, x := range []any{creds, &creds, cfg, &cfg} {
			out := fmt.Sprintf(format, x)
			for _, secret := range []string{token, value} {
				if strings.Contains(out, secret) {
					t.Errorf("Sprintf(%q, %T) = %q: shows a secret", format, x, out)
				}
			}
		}
	}
	if got := creds.String(); !strings.Contains(got, "pat") {
		t.Errorf("String() = %q, want the method named", got)
	}
}

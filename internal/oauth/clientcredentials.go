package oauth

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// ErrClientRejected means the token endpoint refused a Connection's own client
// (invalid_client, unauthorized_client): its clientID or clientSecret is wrong or revoked.
var ErrClientRejected = errors.New("the token endpoint rejected the client credentials (invalid_client); check the Secret's clientID and clientSecret")

// ClientCredentials runs the OAuth 2.0 client credentials grant (RFC 6749 section 4.4)
// for oc, here a Connection's own client. Nothing rotates and nothing is stored: a token
// lost to a cancelled caller is simply asked for again. Errors carry the vendor's error
// code only, never its body.
func ClientCredentials(ctx context.Context, oc Client) (Token, error) {
	cfg := clientcredentials.Config{
		ClientID: oc.ClientID, ClientSecret: oc.ClientSecret, TokenURL: oc.TokenURL,
		AuthStyle: oauth2.AuthStyleInParams,
	}
	if oc.HTTP != nil {
		ctx = context.WithValue(ctx, oauth2.HTTPClient, oc.HTTP)
	}
	nt, err := cfg.Token(ctx)
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && (re.ErrorCode == "invalid_client" || re.ErrorCode == "unauthorized_client" || re.ErrorCode == "invalid_grant") {
			return Token{}, fmt.Errorf("%w (%s)", ErrClientRejected, re.ErrorCode)
		}
		return Token{}, classify(err)
	}
	tok := Token{AccessToken: nt.AccessToken, Expiry: nt.Expiry}
	for _, f := range oc.Fields {
		if v, ok := nt.Extra(f).(string); ok && strings.TrimSpace(v) != "" {
			if tok.Fields == nil {
				tok.Fields = map[string]string{}
			}
			tok.Fields[f] = strings.TrimSpace(v)
		}
	}
	return tok, nil
}

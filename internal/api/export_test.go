package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
)

// SealState makes an OAuth2 state with the operator's key as the authorize route would,
// for a Connection (namespace, name, uid), expiring at expires: for tests of the
// callback's refusals (an expired state cannot be waited for).
func SealState(ctx context.Context, c client.Client, operatorNamespace, namespace, name, uid, redirectURI string, expires time.Time) (string, error) {
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	st := &stateStore{client: c, reader: c, namespace: operatorNamespace, ttl: DefaultStateTTL}
	return st.seal(ctx, statePayload{
		Namespace: namespace, Name: name, UID: uid, Expires: expires.Unix(),
		Nonce: hex.EncodeToString(nonce[:]), RedirectURI: redirectURI, User: "test",
	})
}

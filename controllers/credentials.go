package controllers

import (
	"context"
	"strings"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors"
)

// Secret keys, per auth method (DESIGN.md).
const (
	keyEmail        = "email"
	keyAPIToken     = "apiToken"
	keyToken        = "token"
	keyAccessToken  = "accessToken"
	keyClientID     = "clientID"
	keyClientSecret = "clientSecret"
)

// readSecret GETs a Secret live from the API server: the operator does not cache Secret
// data, only Secret metadata (for the watch).
func readSecret(ctx context.Context, r client.Reader, namespace, name string) (*corev1.Secret, error) {
	// client-go logs whole response bodies at high verbosity with the context's logger; a
	// Secret's body is credentials, so this one call logs nothing at any level.
	quiet := logr.NewContext(ctx, logr.Discard())
	var s corev1.Secret
	if err := r.Get(quiet, types.NamespacedName{Namespace: namespace, Name: name}, &s); err != nil {
		if apierrors.IsNotFound(err) {
			// No requeue: the Secret watch wakes us when it appears.
			return nil, stalled(v1alpha1.SecretNotFoundReason, "Secret %s/%s not found", namespace, name)
		}
		return nil, err
	}
	return &s, nil
}

// requireKeys fails with SecretInvalid naming the missing or empty keys (never values).
func requireKeys(s *corev1.Secret, keys ...string) error {
	var missing []string
	for _, k := range keys {
		if len(strings.TrimSpace(string(s.Data[k]))) == 0 {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		// No requeue: the Secret watch wakes us when it is fixed.
		return stalled(v1alpha1.SecretInvalidReason, "Secret %s/%s is missing key(s) %s", s.Namespace, s.Name, strings.Join(missing, ", "))
	}
	return nil
}

// credentialsFromSecret reads the keys method needs out of s.
func credentialsFromSecret(method v1alpha1.AuthMethod, s *corev1.Secret) (connectors.Credentials, error) {
	value := func(k string) string { return strings.TrimSpace(string(s.Data[k])) }
	switch method {
	case v1alpha1.AuthMethodAPIToken:
		if err := requireKeys(s, keyEmail, keyAPIToken); err != nil {
			return connectors.Credentials{}, err
		}
		return connectors.Credentials{Method: connectors.AuthAPIToken, Email: value(keyEmail), APIToken: value(keyAPIToken)}, nil
	case v1alpha1.AuthMethodPAT:
		if err := requireKeys(s, keyToken); err != nil {
			return connectors.Credentials{}, err
		}
		return connectors.Credentials{Method: connectors.AuthPAT, Token: value(keyToken)}, nil
	case v1alpha1.AuthMethodOAuth2:
		if err := requireKeys(s, keyAccessToken); err != nil {
			return connectors.Credentials{}, err
		}
		return connectors.Credentials{Method: connectors.AuthOAuth2, Token: value(keyAccessToken)}, nil
	default:
		return connectors.Credentials{}, stalled(v1alpha1.AuthMethodNotAllowedReason, "unknown auth method %q", method)
	}
}

// vendorConfig builds a connectors.Config for a Connection of connector.
func vendorConfig(connector *v1alpha1.Connector, creds connectors.Credentials, http connectors.Doer) connectors.Config {
	cfg := connectors.Config{
		BaseURL:     string(connector.Spec.BaseURL),
		Deployment:  connector.Spec.Deployment,
		CloudID:     connector.Spec.CloudID,
		Credentials: creds,
		HTTP:        http,
	}
	if cfg.Deployment == "" {
		cfg.Deployment = connectors.DeploymentCloud
	}
	if connector.Spec.OAuth2 != nil {
		cfg.APIBaseURL = string(connector.Spec.OAuth2.APIBaseURL)
	}
	return cfg
}

// checkVendorURL applies the run-time scheme rule: plain http only with
// --allow-insecure-vendor-urls.
func checkVendorURL(raw string, allowInsecure bool) error {
	if strings.HasPrefix(strings.ToLower(raw), "http://") && !allowInsecure {
		// No requeue: only a spec change (or the operator's flag) fixes this.
		return stalled(v1alpha1.EgressDeniedReason, "plain http vendor URL %s is refused; use https (http is allowed only with --allow-insecure-vendor-urls, for development)", raw)
	}
	return nil
}

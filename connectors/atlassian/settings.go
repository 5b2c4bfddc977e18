package atlassian

import (
	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors"
)

// Deployment flavours, matching the Connector's spec.deployment.
const (
	DeploymentCloud      = "cloud"
	DeploymentDataCenter = "datacenter"
)

// settings are what Jira and Confluence read from their Connector's spec beyond baseURL.
type settings struct {
	// deployment is DeploymentCloud or DeploymentDataCenter as spec.deployment says
	// (cloud when empty, as the CRD defaults it); anything else is left for Validate
	// to refuse.
	deployment string
	// cloudID is spec.cloudID, the site's id in the OAuth2 gateway path.
	cloudID string
	// apiBaseURL is spec.oauth2.apiBaseURL, the OAuth2 gateway root; empty means
	// DefaultAPIBaseURL.
	apiBaseURL string
}

// settingsOf reads cfg.Connector. A nil Connector means cloud, no cloudID and the
// default gateway.
func settingsOf(cfg connectors.Config) settings {
	s := settings{deployment: DeploymentCloud}
	spec := cfg.Connector
	if spec == nil {
		return s
	}
	if spec.Deployment != "" {
		s.deployment = spec.Deployment
	}
	s.cloudID = spec.CloudID
	if spec.OAuth2 != nil {
		s.apiBaseURL = string(spec.OAuth2.APIBaseURL)
	}
	return s
}

// ConnectorSpec returns a Connector spec holding the Atlassian settings a Config carries:
// deployment (empty means cloud), cloudID and spec.oauth2.apiBaseURL (empty means the
// default gateway). Callers that build a Config without a Connector object (tests, the
// fake site's tooling) use it; the operator hands the Connector's own spec.
func ConnectorSpec(deployment, cloudID, apiBaseURL string) *v1alpha1.ConnectorSpec {
	spec := &v1alpha1.ConnectorSpec{Deployment: deployment, CloudID: cloudID}
	if apiBaseURL != "" {
		spec.OAuth2 = &v1alpha1.OAuth2Spec{APIBaseURL: v1alpha1.URL(apiBaseURL)}
	}
	return spec
}

// APITokenCredentials returns apiToken Credentials as the operator hands them over from a
// Connection's Secret (keys KeyEmail and KeyAPIToken).
func APITokenCredentials(email, apiToken string) connectors.Credentials {
	return connectors.Credentials{
		Method: connectors.AuthAPIToken,
		Values: map[string]string{KeyEmail: email, KeyAPIToken: apiToken},
	}
}

// PATCredentials returns pat Credentials as the operator hands them over from a
// Connection's Secret (key KeyToken).
func PATCredentials(token string) connectors.Credentials {
	return connectors.Credentials{Method: connectors.AuthPAT, Values: map[string]string{KeyToken: token}}
}

package atlassian

import (
	"fmt"
	"net/url"
	"regexp"

	"github.com/unified-connectors/connector-operator/connectors"
)

// cloudIDPattern matches an Atlassian cloud id (a UUID in practice). It is interpolated
// into the gateway path, so nothing that could add a segment or a query may pass.
var cloudIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,63}$`)

// Validate checks cfg without I/O and returns warnings for odd but legal settings.
//
// Rules:
//   - BaseURL is an absolute http(s) URL with a host and no userinfo, query or fragment
//     (plain http is a warning: the operator refuses it at run time unless it runs with
//     --allow-insecure-vendor-urls);
//   - the Connector's spec.deployment is empty (meaning cloud), cloud or datacenter (a nil
//     Connector is cloud);
//   - when Credentials.Method is set: oauth2 needs cloud and spec.cloudID, and
//     spec.oauth2.apiBaseURL, when set, must be an absolute http(s) URL. Data Center has no OAuth2 gateway and
//     takes a personal access token as Bearer (pat) or Basic username:password (apiToken,
//     a warning: Data Center issues no API tokens, prefer pat). pat on cloud is a warning:
//     Atlassian Cloud issues no personal access tokens.
//
// Validate does not require the credential values themselves, so that a Connector can be
// checked before any Connection exists; New does.
func Validate(product Product, cfg connectors.Config) (warnings []string, err error) {
	u, err := url.Parse(cfg.BaseURL)
	switch {
	case cfg.BaseURL == "":
		return nil, fmt.Errorf("%s: baseURL is required", product)
	case err != nil:
		return nil, fmt.Errorf("%s: baseURL is not a URL", product)
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, fmt.Errorf("%s: baseURL must use https", product)
	case u.Host == "":
		return nil, fmt.Errorf("%s: baseURL has no host", product)
	case u.User != nil:
		// Never echo the URL: its userinfo may hold a password.
		return nil, fmt.Errorf("%s: baseURL must not contain credentials", product)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return nil, fmt.Errorf("%s: baseURL must not have a query or fragment", product)
	}
	if u.Scheme == "http" {
		warnings = append(warnings, fmt.Sprintf("%s: baseURL uses plain http; the operator refuses it unless it runs with --allow-insecure-vendor-urls", product))
	}

	set := settingsOf(cfg)
	dep := set.deployment
	if dep != DeploymentCloud && dep != DeploymentDataCenter {
		return nil, fmt.Errorf("%s: deployment must be %q or %q, not %q", product,
			DeploymentCloud, DeploymentDataCenter, dep)
	}

	switch cfg.Credentials.Method {
	case "":
	case connectors.AuthAPIToken:
		if dep == DeploymentDataCenter {
			warnings = append(warnings, fmt.Sprintf("%s: Data Center issues no API tokens; apiToken credentials are sent as Basic username:password, prefer pat", product))
		}
	case connectors.AuthPAT:
		if dep == DeploymentCloud {
			warnings = append(warnings, fmt.Sprintf("%s: Atlassian Cloud issues no personal access tokens; pat is meant for Data Center", product))
		}
	case connectors.AuthOAuth2:
		if dep != DeploymentCloud {
			return nil, fmt.Errorf("%s: oauth2 is only supported on Atlassian Cloud; use pat on Data Center", product)
		}
		if set.cloudID == "" {
			return nil, fmt.Errorf("%s: oauth2 on Atlassian Cloud needs cloudID", product)
		}
		if !cloudIDPattern.MatchString(set.cloudID) {
			return nil, fmt.Errorf("%s: cloudID must be letters, digits and dashes", product)
		}
		if set.apiBaseURL != "" {
			a, err := url.Parse(set.apiBaseURL)
			if err != nil || (a.Scheme != "https" && a.Scheme != "http") || a.Host == "" ||
				a.User != nil || a.RawQuery != "" || a.Fragment != "" {
				return nil, fmt.Errorf("%s: apiBaseURL must be an absolute https URL without credentials, query or fragment", product)
			}
		}
	default:
		return nil, fmt.Errorf("%s: unknown auth method %q", product, cfg.Credentials.Method)
	}
	return warnings, nil
}

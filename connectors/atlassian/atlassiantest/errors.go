package atlassiantest

import (
	"encoding/json"
	"net/http"
	"strings"
)

// writeError answers status with the error body of the API family r addresses:
//
//	Jira (/rest/api/2|3/...)         {"errorMessages":[msg],"errors":{}} (ErrorCollection)
//	Confluence v1 (/wiki/rest/api/..., and /rest/api/user/... on Data Center)
//	                                 {"statusCode":401,"data":{...},"message":msg,"reason":"Unauthorized"}
//	Confluence v2 (/wiki/api/v2/...) {"errors":[{"status":401,"code":"UNAUTHORIZED","title":"Unauthorized","detail":msg}]}
//	accessible-resources (api.atlassian.com)
//	                                 {"code":401,"message":msg}
//	authorization server (/authorize, /oauth/token)
//	                                 {"error":"invalid_request","error_description":msg} (RFC 6749 §5.2)
func writeError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	var body any
	switch p := r.URL.Path; {
	case p == "/oauth/token/accessible-resources":
		body = map[string]any{"code": status, "message": msg}
	case targetOf(p) == oauthTarget:
		writeOAuthError(w, status, oauthErrorCode(status), msg)
		return
	case strings.HasPrefix(p, "/wiki/api/v2/"):
		body = map[string]any{"errors": []any{map[string]any{
			"status": status,
			"code":   strings.ToUpper(strings.ReplaceAll(http.StatusText(status), " ", "_")),
			"title":  http.StatusText(status),
			"detail": msg,
		}}}
	case strings.HasPrefix(p, "/wiki/"), strings.HasPrefix(p, "/rest/api/user/"):
		body = map[string]any{
			"statusCode": status,
			"data": map[string]any{
				"authorized": status != http.StatusUnauthorized && status != http.StatusForbidden,
				"valid":      true,
				"errors":     []any{},
				"successful": false,
			},
			"message": msg,
			"reason":  http.StatusText(status),
		}
	default:
		body = map[string]any{"errorMessages": []string{msg}, "errors": map[string]string{}}
	}
	writeJSON(w, status, body)
}

// writeJSON answers status with v as JSON, the way Atlassian does (UTF-8, no HTML escaping).
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the client may have gone; nothing to do about it
}

// writeOAuthError answers an authorization-server error (RFC 6749 §5.2). Descriptions are
// fixed texts: they never echo a code, token or secret back.
func writeOAuthError(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, map[string]string{"error": code, "error_description": description})
}

// oauthErrorCode is the RFC 6749 error code that best names a fault's status.
func oauthErrorCode(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return "invalid_client"
	case status == http.StatusForbidden:
		return "access_denied"
	case status == http.StatusTooManyRequests, status == http.StatusServiceUnavailable:
		return "temporarily_unavailable"
	case status >= 500:
		return "server_error"
	default:
		return "invalid_request"
	}
}

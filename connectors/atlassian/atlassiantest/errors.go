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
func writeError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	var body any
	switch p := r.URL.Path; {
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

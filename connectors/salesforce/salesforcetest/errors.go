package salesforcetest

import (
	"encoding/json"
	"net/http"
)

// apiError is one element of the REST API's error body: a JSON array of
// {"message","errorCode"} (and "fields" for record errors), whatever the status.
type apiError struct {
	Message   string   `json:"message"`
	ErrorCode string   `json:"errorCode"`
	Fields    []string `json:"fields,omitempty"`
}

// Error codes the fake answers with, as Salesforce spells them.
const (
	codeInvalidSession     = "INVALID_SESSION_ID"
	codeRequestLimit       = "REQUEST_LIMIT_EXCEEDED"
	codeMalformedQuery     = "MALFORMED_QUERY"
	codeMalformedSearch    = "MALFORMED_SEARCH"
	codeInvalidField       = "INVALID_FIELD"
	codeInvalidType        = "INVALID_TYPE"
	codeInvalidLocator     = "INVALID_QUERY_LOCATOR"
	codeNotFound           = "NOT_FOUND"
	codeEntityDeleted      = "ENTITY_IS_DELETED"
	codeServerUnavailable  = "SERVER_UNAVAILABLE"
	codeUnableToLockRow    = "UNABLE_TO_LOCK_ROW"
	codeRequiredMissing    = "REQUIRED_FIELD_MISSING"
	codeJSONParser         = "JSON_PARSER_ERROR"
	codeInvalidInsert      = "INVALID_FIELD_FOR_INSERT_UPDATE"
	codeReplicationDate    = "INVALID_REPLICATION_DATE"
	codeMethodNotAllowed   = "METHOD_NOT_ALLOWED"
	codeMalformedID        = "MALFORMED_ID"
	codeInvalidCrossRef    = "INVALID_CROSS_REFERENCE_KEY"
	codeFieldIntegrity     = "FIELD_INTEGRITY_EXCEPTION"
	codeInvalidQueryFilter = "INVALID_QUERY_FILTER_OPERATOR"
)

// Messages Salesforce answers with for a few fixed errors.
const (
	msgSessionExpired = "Session expired or invalid"
	msgRequestLimit   = "TotalRequests Limit exceeded."
	msgNotFound       = "The requested resource does not exist"
	msgUnavailable    = "Server is temporarily unavailable"
	msgInvalidLocator = "invalid query locator"
	msgEntityDeleted  = "entity is deleted"
)

// writeErrors answers status with the REST API's error array holding one error.
func writeErrors(w http.ResponseWriter, status int, code, msg string, fields ...string) {
	writeJSON(w, status, []apiError{{Message: msg, ErrorCode: code, Fields: fields}})
}

// writeJSON answers status with v as JSON, with the Content-Type Salesforce sends.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeOAuthError answers the OAuth endpoints' error body {"error","error_description"}.
func writeOAuthError(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, map[string]string{"error": code, "error_description": description})
}

// queryError is a refusal of a SOQL or SOSL text: the error code and message the API
// answers with 400.
type queryError struct {
	code, msg string
}

func (e *queryError) Error() string { return e.code + ": " + e.msg }

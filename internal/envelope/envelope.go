// Package envelope writes the HTTP API's answers (DESIGN.md "HTTP API"):
// {"status":"ok","data":…} or {"status":"error","code":…,"message":…,"requestId":…}. The
// API server and the webhook receiver both answer through it, so every route of the
// listener speaks the same shape.
package envelope

import (
	"encoding/json"
	"net/http"
)

// Envelope statuses.
const (
	StatusOK    = "ok"
	StatusError = "error"
)

// OKBody is every successful answer.
type OKBody struct {
	Status string `json:"status"`
	Data   any    `json:"data"`
}

// ErrorBody is every failed answer.
type ErrorBody struct {
	Status    string `json:"status"`
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"requestId"`
}

// OK writes {"status":"ok","data":data} with status.
func OK(w http.ResponseWriter, status int, data any) {
	JSON(w, status, OKBody{Status: StatusOK, Data: data})
}

// Error writes an error envelope with status. message must never hold a credential.
func Error(w http.ResponseWriter, status int, code, message, requestID string) {
	JSON(w, status, ErrorBody{Status: StatusError, Code: code, Message: message, RequestID: requestID})
}

// JSON writes v with status. Encoding errors cannot be reported any more: the status
// line is gone.
func JSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

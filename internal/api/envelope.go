package api

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/unified-connectors/connector-operator/internal/envelope"
)

// Error codes of the envelope (DESIGN.md "HTTP API"). They are API: clients match on
// them, so they never change. Each has exactly one HTTP status (statusOf).
const (
	CodeValidation         = "VALIDATION"
	CodeUnauthenticated    = "UNAUTHENTICATED"
	CodeForbidden          = "FORBIDDEN"
	CodeNotFound           = "NOT_FOUND"
	CodeConflict           = "CONFLICT"
	CodeConnectionNotReady = "CONNECTION_NOT_READY"
	CodeVendorRateLimited  = "VENDOR_RATE_LIMITED"
	CodeVendorAuthFailed   = "VENDOR_AUTH_FAILED"
	CodeVendorUnavailable  = "VENDOR_UNAVAILABLE"
	CodeTimeout            = "TIMEOUT"
	CodeNotSupported       = "NOT_SUPPORTED"
	CodeInternal           = "INTERNAL"
)

// statusOf is the HTTP status of each code.
var statusOf = map[string]int{
	CodeValidation:         http.StatusBadRequest,
	CodeUnauthenticated:    http.StatusUnauthorized,
	CodeForbidden:          http.StatusForbidden,
	CodeNotFound:           http.StatusNotFound,
	CodeConflict:           http.StatusConflict,
	CodeConnectionNotReady: http.StatusConflict,
	CodeVendorRateLimited:  http.StatusTooManyRequests,
	CodeVendorAuthFailed:   http.StatusBadGateway,
	CodeVendorUnavailable:  http.StatusBadGateway,
	CodeTimeout:            http.StatusGatewayTimeout,
	CodeNotSupported:       http.StatusNotImplemented,
	CodeInternal:           http.StatusInternalServerError,
}

// Envelope statuses.
const (
	statusOK    = envelope.StatusOK
	statusError = envelope.StatusError
)

// apiError is a failure a handler returns; the server writes it as an errorEnvelope.
// Its message is shown to the caller and logged, so it must never hold a credential:
// build it from names, codes and connectors.Error texts, which carry none.
type apiError struct {
	code    string
	message string
	// retryAfter, when positive, is sent as Retry-After (whole seconds, rounded up).
	retryAfter time.Duration
	// allow, when set, is sent as Allow (a known path asked with another method).
	allow string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func errorf(code, format string, args ...any) *apiError {
	return &apiError{code: code, message: fmt.Sprintf(format, args...)}
}

func validationf(format string, args ...any) *apiError {
	return errorf(CodeValidation, format, args...)
}

// writeOK writes {"status":"ok","data":data}.
func writeOK(w http.ResponseWriter, status int, data any) { envelope.OK(w, status, data) }

// writeError writes e as an error envelope carrying requestID.
func writeError(w http.ResponseWriter, requestID string, e *apiError) {
	status, ok := statusOf[e.code]
	if !ok {
		status = http.StatusInternalServerError
	}
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(int64((e.retryAfter+time.Second-1)/time.Second), 10))
	}
	if e.allow != "" {
		w.Header().Set("Allow", e.allow)
	}
	if e.code == CodeUnauthenticated {
		w.Header().Set("WWW-Authenticate", `Bearer realm="connector-operator"`)
	}
	envelope.Error(w, status, e.code, e.message, requestID)
}

package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
)

// request is what the middleware and the handlers share about one request.
type request struct {
	id     string
	caller *caller
	// user is the caller's username for the access log (for the OAuth2 callback, the
	// user who started the flow).
	user string
	// namespace is the namespace the request is about, for the access log.
	namespace string
	// code is the error code answered, for the access log.
	code string
}

type requestKey struct{}

func requestOf(ctx context.Context) *request {
	rq, _ := ctx.Value(requestKey{}).(*request)
	if rq == nil {
		rq = &request{}
	}
	return rq
}

// statusWriter remembers the status and error code written through it.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// maxRequestIDLen bounds an incoming X-Request-Id; longer or odd ones are replaced.
const maxRequestIDLen = 128

// requestID honours a well-formed X-Request-Id, or makes one.
func requestID(in string) string {
	if in != "" && len(in) <= maxRequestIDLen {
		if strings.IndexFunc(in, func(c rune) bool { return !requestIDChar(c) }) < 0 {
			return in
		}
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func requestIDChar(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_.:", c)
}

// middleware gives every request an id, recovers panics into INTERNAL envelopes, and
// writes the access log and metrics. The log names the route pattern and the path,
// never the query string (an OAuth2 callback's holds the authorization code) nor a
// header (the bearer token).
func (s *Server) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rq := &request{id: requestID(r.Header.Get("X-Request-Id"))}
		sw := &statusWriter{ResponseWriter: w}
		sw.Header().Set("X-Request-Id", rq.id)
		sw.Header().Set("Cache-Control", "no-store")
		r = r.WithContext(context.WithValue(r.Context(), requestKey{}, rq))

		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.Error(errors.New("panic in handler"), "recovered", "requestId", rq.id, "route", r.Pattern)
				if sw.status == 0 {
					writeError(sw, rq.id, errorf(CodeInternal, "internal error"))
				}
			}
			route := r.Pattern
			if route == "" || route == "/" {
				route = "unmatched"
			}
			latency := time.Since(start)
			status := sw.status
			if status == 0 {
				status = http.StatusOK
			}
			observe(route, status, latency)
			kv := []any{
				"requestId", rq.id, "method", r.Method, "route", route, "path", r.URL.EscapedPath(),
				"status", status, "latencyMillis", float64(latency.Microseconds()) / 1000,
			}
			if rq.code != "" {
				kv = append(kv, "code", rq.code)
			}
			if rq.namespace != "" {
				kv = append(kv, "namespace", rq.namespace)
			}
			if rq.user != "" {
				kv = append(kv, "user", rq.user)
			}
			s.log.Info("api request", kv...)
		}()
		next.ServeHTTP(sw, r)
	})
}

// handler is a route's handler: it writes a success itself or returns the error to write.
type handler func(w http.ResponseWriter, r *http.Request, rq *request) error

// serve runs h and writes the error it returns.
func (s *Server) serve(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rq := requestOf(r.Context())
		if err := h(w, r, rq); err != nil {
			s.fail(w, r, rq, err)
		}
	})
}

// fail writes err as an envelope. Anything but an *apiError is logged and answered as
// INTERNAL, without its text: only apiError messages are meant for callers.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, rq *request, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		s.log.Error(err, "request failed", "requestId", rq.id, "route", r.Pattern)
		ae = errorf(CodeInternal, "internal error (request %s)", rq.id)
	}
	rq.code = ae.code
	writeError(w, rq.id, ae)
}

// authenticated runs h for a caller with a valid Kubernetes bearer token.
func (s *Server) authenticated(h handler) handler {
	return func(w http.ResponseWriter, r *http.Request, rq *request) error {
		token, ok := bearerToken(r.Header.Get("Authorization"))
		if !ok {
			return errorf(CodeUnauthenticated, "an Authorization: Bearer <Kubernetes token> header is required")
		}
		c, err := s.auth.authenticate(r.Context(), token)
		if err != nil {
			return err
		}
		if c == nil {
			return errorf(CodeUnauthenticated, "the token was not accepted")
		}
		rq.caller, rq.user = c, c.Username
		return h(w, r, rq)
	}
}

// authorize answers FORBIDDEN unless the caller may perform a. It never looks at the
// object: the answer is the same whether it exists or not, so a refusal tells nothing
// about what is in a namespace the caller may not see.
func (s *Server) authorize(ctx context.Context, rq *request, a access) error {
	ok, err := s.auth.allowed(ctx, rq.caller, a)
	if err != nil {
		return err
	}
	if !ok {
		return errorf(CodeForbidden, "%s", describeAccess(rq.caller.Username, a))
	}
	return nil
}

// describeAccess names what was refused, as kubectl does: only what the caller asked.
func describeAccess(user string, a access) string {
	res := a.resource
	if a.subresource != "" {
		res += "/" + a.subresource
	}
	msg := strconv.Quote(user) + " may not " + a.verb + " " + res
	if a.name != "" {
		msg += " " + strconv.Quote(a.name)
	}
	if a.namespace != "" {
		msg += " in namespace " + strconv.Quote(a.namespace)
	}
	return msg
}

// quiet silences client-go's request and body logging for calls whose bodies carry a
// token or Secret data.
func quiet(ctx context.Context) context.Context { return logr.NewContext(ctx, logr.Discard()) }

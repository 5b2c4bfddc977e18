package atlassiantest

import (
	"bytes"
	"cmp"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Fault makes the fake misbehave: on every request from SetFault until cleared, or on
// the next n requests from FailNext. When several fields are set, Hang or else Latency
// comes first, then the first of RedirectTo, Status and Malformed answers instead of the
// real answer; Truncate cuts the real answer.
type Fault struct {
	// Status, when not 0, is answered instead of the real answer, with the API family's
	// JSON error body.
	Status int
	// RetryAfter is sent as Retry-After, in whole seconds rounded up, with a 429 or 503.
	RetryAfter time.Duration
	// Latency is waited before answering (or before the fault's answer). A client that
	// gives up meanwhile gets no answer.
	Latency time.Duration
	// Hang holds the request and never answers: the client gets nothing until it gives
	// up, or until Close drops the connection.
	Hang bool
	// Truncate sends the real answer's status, headers and full Content-Length but only
	// the first half of its body, then drops the connection: the client reads JSON cut
	// mid-value and then io.ErrUnexpectedEOF, as from a connection that breaks.
	Truncate bool
	// Malformed answers 200 with a JSON Content-Type and a body that is not JSON.
	Malformed bool
	// RedirectTo, when not "", answers 302 with that Location (for example
	// http://169.254.169.254/latest/meta-data/), for the egress guard's redirect tests.
	RedirectTo string
	// OAuth aims the fault at the authorization server (/authorize and /oauth/token)
	// instead of the API (every other path, /oauth/token/accessible-resources included).
	// The two keep separate faults, so a test can break token refreshes while the API
	// works, or the reverse.
	OAuth bool
}

// SetFault applies f to every request of its target (the API, or the authorization
// server when f.OAuth is set) from now until ClearFault or the next SetFault for that
// target. Requests owed a fault by FailNext get that one first.
func (s *Server) SetFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[targetOfFault(f)].always = f
}

// FailNext applies f to the next n requests of its target (the API, or the authorization
// server when f.OAuth is set), then lets the fake behave as before: for retry tests. It
// replaces any earlier FailNext for that target that is not used up.
func (s *Server) FailNext(n int, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[targetOfFault(f)].next, s.faults[targetOfFault(f)].n = f, max(n, 0)
}

// ClearFault makes the fake answer normally again: it drops the faults of both targets
// and what FailNext still owed. It leaves the rate limit alone.
func (s *Server) ClearFault() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = [targets]faultSlot{}
}

// target is what a fault aims at.
type target int

const (
	apiTarget   target = iota // the REST APIs and the gateway (api.atlassian.com)
	oauthTarget               // the authorization server (auth.atlassian.com)
	targets
)

// targetOf tells the authorization server's paths from the API's. Only these two are
// auth.atlassian.com: accessible-resources is on api.atlassian.com.
func targetOf(path string) target {
	if path == "/authorize" || path == "/oauth/token" {
		return oauthTarget
	}
	return apiTarget
}

func targetOfFault(f Fault) target {
	if f.OAuth {
		return oauthTarget
	}
	return apiTarget
}

// faultSlot is one target's faults.
type faultSlot struct {
	always Fault // from SetFault
	next   Fault // from FailNext, for n more requests
	n      int
}

// take is the fault for one request; call it with s.mu held.
func (f *faultSlot) take() Fault {
	if f.n > 0 {
		f.n--
		return f.next
	}
	return f.always
}

// hold waits as f asks (forever for Hang) and reports whether to go on answering: false
// when the client went away. When Close is called meanwhile it drops the connection with
// no answer (http.ErrAbortHandler, which net/http neither logs nor answers), so that
// closing a test server never waits for a held request.
func (s *Server) hold(r *http.Request, f Fault) bool {
	if !f.Hang && f.Latency <= 0 {
		return true
	}
	var elapsed <-chan time.Time // nil, never ready, for Hang
	if !f.Hang {
		t := time.NewTimer(f.Latency)
		defer t.Stop()
		elapsed = t.C
	}
	select {
	case <-elapsed:
		return true
	case <-r.Context().Done():
		return false
	case <-s.closed:
		panic(http.ErrAbortHandler)
	}
}

// injectFault answers in place of the real answer as f says, and reports whether it did.
func injectFault(w http.ResponseWriter, r *http.Request, f Fault) bool {
	switch {
	case f.RedirectTo != "":
		// Not http.Redirect: it would rewrite a relative target, and the Location must
		// be exactly what the test asked for.
		w.Header().Set("Location", f.RedirectTo)
		w.WriteHeader(http.StatusFound)
	case f.Status != 0:
		if f.RetryAfter > 0 && (f.Status == http.StatusTooManyRequests || f.Status == http.StatusServiceUnavailable) {
			w.Header().Set("Retry-After", strconv.FormatInt(int64(ceilSeconds(f.RetryAfter)), 10))
		}
		writeError(w, r, f.Status, faultMessage(f.Status))
	case f.Malformed:
		// What a misconfigured proxy's error page looks like to a JSON client.
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "{\"errorMessages\": <html><body>Service maintenance</body></html>\n")
	default:
		return false
	}
	return true
}

// ceilSeconds is d in whole seconds, rounded up.
func ceilSeconds(d time.Duration) time.Duration {
	return (d + time.Second - 1) / time.Second
}

func faultMessage(status int) string {
	switch status {
	case http.StatusTooManyRequests:
		return "Rate limit exceeded."
	case http.StatusServiceUnavailable:
		return "Service temporarily unavailable."
	default:
		return http.StatusText(status)
	}
}

// truncatingWriter buffers the real answer so that finish can send it cut in half.
type truncatingWriter struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (t *truncatingWriter) WriteHeader(status int) {
	if t.status == 0 {
		t.status = status
	}
}

func (t *truncatingWriter) Write(b []byte) (int, error) { return t.body.Write(b) }

// finish sends the status, a Content-Length for the whole body and half of the body.
// net/http closes a connection whose handler wrote less than its Content-Length, so the
// client sees the connection break mid-body.
func (t *truncatingWriter) finish() {
	full := t.body.Bytes()
	t.Header().Set("Content-Length", strconv.Itoa(len(full)))
	t.ResponseWriter.WriteHeader(cmp.Or(t.status, http.StatusOK))
	_, _ = t.ResponseWriter.Write(full[:len(full)/2])
}

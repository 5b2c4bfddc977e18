package salesforcetest

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Fault makes the fake misbehave: on every request of its target from SetFault until
// cleared, or on the next n from FailNext. Hang or else Latency comes first, then Status
// answers instead of the real answer.
type Fault struct {
	// Status, when not 0, is answered instead of the real answer with the REST API's
	// error array: 503 carries SERVER_UNAVAILABLE unless ErrorCode says otherwise.
	Status int
	// ErrorCode and Message override the error body's errorCode and message.
	ErrorCode, Message string
	// RetryAfter is sent as Retry-After in whole seconds rounded up, when set.
	RetryAfter time.Duration
	// Latency is waited before answering. A client that gives up meanwhile gets nothing.
	Latency time.Duration
	// Hang holds the request until the client gives up or Close.
	Hang bool
	// OAuth aims the fault at the OAuth endpoints (/services/oauth2/..., /id/...) instead
	// of the data API; the two keep separate faults.
	OAuth bool
}

// SetFault applies f to every request of its target from now until ClearFault or the
// next SetFault for that target.
func (s *Server) SetFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[targetOfFault(f)].always = f
}

// FailNext applies f to the next n requests of its target, then lets the fake behave as
// before.
func (s *Server) FailNext(n int, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	slot := &s.faults[targetOfFault(f)]
	slot.next, slot.n = f, max(n, 0)
}

// ClearFault drops the faults of both targets, what FailNext still owed and what
// LockRowsNext still owed. It leaves the API limit alone.
func (s *Server) ClearFault() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = [targets]faultSlot{}
	s.lockRows = 0
}

// LockRowsNext makes the next n record writes through the API (create, update, delete)
// fail with 400 UNABLE_TO_LOCK_ROW, as when another transaction holds the row, without
// writing anything.
func (s *Server) LockRowsNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lockRows = max(n, 0)
}

// takeLockFault reports whether this write is owed UNABLE_TO_LOCK_ROW.
func (s *Server) takeLockFault() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lockRows > 0 {
		s.lockRows--
		return true
	}
	return false
}

type target int

const (
	apiTarget target = iota
	oauthTarget
	targets
)

func targetOf(path string) target {
	if strings.HasPrefix(path, "/services/oauth2/") || strings.HasPrefix(path, "/id/") {
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

type faultSlot struct {
	always Fault
	next   Fault
	n      int
}

func (f *faultSlot) take() Fault {
	if f.n > 0 {
		f.n--
		return f.next
	}
	return f.always
}

// hold waits as f asks and reports whether to go on: false when the client went away.
// Close drops a held request with no answer.
func (s *Server) hold(r *http.Request, f Fault) bool {
	if !f.Hang && f.Latency <= 0 {
		return true
	}
	var elapsed <-chan time.Time
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
func injectFault(w http.ResponseWriter, f Fault) bool {
	if f.Status == 0 {
		return false
	}
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(int64((f.RetryAfter+time.Second-1)/time.Second), 10))
	}
	code, msg := f.ErrorCode, f.Message
	if code == "" {
		code = codeForStatus(f.Status)
	}
	if msg == "" {
		msg = http.StatusText(f.Status)
		if f.Status == http.StatusServiceUnavailable {
			msg = msgUnavailable
		}
	}
	writeErrors(w, f.Status, code, msg)
	return true
}

func codeForStatus(status int) string {
	switch status {
	case http.StatusServiceUnavailable:
		return codeServerUnavailable
	case http.StatusUnauthorized:
		return codeInvalidSession
	case http.StatusNotFound:
		return codeNotFound
	case http.StatusForbidden:
		return "INSUFFICIENT_ACCESS"
	default:
		return "UNKNOWN_EXCEPTION"
	}
}

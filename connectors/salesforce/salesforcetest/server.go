// Package salesforcetest is a fake Salesforce org for tests and local development, named
// like the standard library's httptest. One server plays the org's My Domain over real
// HTTP:
//
//	/services/oauth2/authorize, /token, /userinfo, /revoke   OAuth 2.0 (oauth.go)
//	/id/{orgId}/{userId}                                      the identity URL
//	/services/data/                                           API versions
//	/services/data/vNN.N/sobjects[/{type}[/describe|/{id}]]  describe and records (records_api.go)
//	/services/data/vNN.N/sobjects/{type}/deleted|updated/    getDeleted, getUpdated (replication.go)
//	/services/data/vNN.N/query, /queryAll [/{locator}]       SOQL (soql.go, query.go)
//	/services/data/vNN.N/search                              SOSL (sosl.go)
//	/services/data/vNN.N/limits                              org limits (limits.go)
//
// The quirks a connector must survive are modelled after Salesforce's documents (see
// docs/vendors/salesforce.md): errors are a JSON array of {message, errorCode}; access
// tokens carry no expiry and die when the session does (ExpireSessions), answered 401
// INVALID_SESSION_ID; refresh tokens rotate when the connected app says so
// (SetRefreshTokenRotation); every API answer carries Sforce-Limit-Info and a spent daily
// allowance answers 403 REQUEST_LIMIT_EXCEEDED; datetimes are stored to the second, so
// records touched in one second tie; query locators expire; getDeleted refuses windows
// over 30 days or older than the delete log; and SetCommitDelay makes a write visible
// only some time after its SystemModstamp, as commit order differs from stamp order.
// Faults (faults.go), a request log and an AfterRequest hook let tests provoke and watch.
//
// The fake writes no logs, and its request log keeps no query string of the OAuth
// endpoints, so no credential it sees can leak through it.
package salesforcetest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// Request is one request the fake received.
type Request struct {
	// Time is when it arrived (wall clock).
	Time time.Time
	// Method and Path are as received.
	Method, Path string
	// Query is the decoded q parameter of /query, /queryAll and /search (the SOQL or SOSL
	// text), "" elsewhere.
	Query string
	// Status is what the fake answered, 0 when it never answered.
	Status int
}

// Server is a fake Salesforce org. It is safe for concurrent use.
type Server struct {
	srv     *httptest.Server
	handler http.Handler

	closed    chan struct{}
	closeOnce sync.Once

	mu          sync.Mutex
	clock       func() time.Time
	commitDelay time.Duration
	orgID       string
	users       []User
	types       map[string]*sobject // by lower-case name
	typeOrder   []string
	customTypes int
	nextID      uint64
	caseNumber  int

	oauth    oauthState
	limits   limitState
	faults   [targets]faultSlot
	lockRows int // writes still owed UNABLE_TO_LOCK_ROW
	requests []*Request
	hooks    []*afterHook

	query queryState
	// earliestDeleted is the earliestDateAvailable getDeleted answers at least.
	earliestDeleted time.Time
}

// New returns a fake that is not listening: serve Handler yourself (as a dev command
// does). The org has the standard types Account, Contact, Case and CaseComment, one user
// (DefaultUser) and no records.
func New() *Server {
	s := &Server{
		closed:  make(chan struct{}),
		clock:   time.Now,
		orgID:   WithChecksum(PrefixOrg + instance + "000000001"),
		types:   map[string]*sobject{},
		oauth:   newOAuthState(),
		limits:  limitState{max: defaultAPILimit},
		query:   newQueryState(),
		handler: nil,
	}
	for _, o := range standardTypes() {
		s.addTypeLocked(o)
	}
	s.users = append(s.users, DefaultUser())
	s.handler = s.middleware(s.routes())
	return s
}

// NewServer returns a started fake listening on http://127.0.0.1 at a free port. Call
// Close when done.
func NewServer() *Server {
	s := New()
	s.srv = httptest.NewServer(s.handler)
	return s
}

// URL is the org's My Domain root (also its instance_url), for example
// http://127.0.0.1:41234, without a trailing slash; "" for a Server from New.
func (s *Server) URL() string {
	if s.srv == nil {
		return ""
	}
	return s.srv.URL
}

// Close shuts a started server down. Requests held by a Hang or Latency fault are dropped
// first, so Close never waits for them.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closed) })
	if s.srv != nil {
		s.srv.Close()
	}
}

// Handler serves the fake org.
func (s *Server) Handler() http.Handler { return s.handler }

// OrgID is the 18-character organization Id.
func (s *Server) OrgID() string { return s.orgID }

// Requests returns a copy of every request received since the start or the last
// ResetRequests, in order of arrival.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		out[i] = *r
	}
	return out
}

// CountRequests counts the requests received whose Path starts with prefix.
func (s *Server) CountRequests(prefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.requests {
		if strings.HasPrefix(r.Path, prefix) {
			n++
		}
	}
	return n
}

// ResetRequests forgets the requests received so far.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	s.oauthRoutes(mux)
	mux.HandleFunc("GET /services/data", s.versions)
	mux.HandleFunc("GET /services/data/{$}", s.versions)
	mux.HandleFunc("/services/data/", s.api)
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeErrors(w, http.StatusNotFound, codeNotFound, msgNotFound)
	})
	return mux
}

// middleware records every request and applies faults and AfterRequest hooks.
func (s *Server) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		tgt := targetOf(r.URL.Path)
		entry := &Request{Time: time.Now(), Method: r.Method, Path: r.URL.Path}
		if isSOQLorSOSL(r.URL.Path) {
			entry.Query = r.URL.Query().Get("q")
		}
		s.mu.Lock()
		s.requests = append(s.requests, entry)
		f := s.faults[tgt].take()
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			entry.Status = rec.status
		}()
		if !s.hold(r, f) {
			return
		}
		if injectFault(rec, f) {
			return
		}
		if hook := s.takeHook(r.URL.Path); hook != nil {
			buf := httptest.NewRecorder()
			next.ServeHTTP(buf, r)
			hook()
			for k, v := range buf.Header() {
				rec.Header()[k] = v
			}
			rec.WriteHeader(buf.Code)
			_, _ = rec.Write(buf.Body.Bytes())
			return
		}
		next.ServeHTTP(rec, r)
	})
}

func isSOQLorSOSL(path string) bool {
	_, rest, ok := splitVersion(path)
	if !ok {
		return false
	}
	head, _, _ := strings.Cut(rest, "/")
	return head == "query" || head == "queryAll" || head == "search"
}

// afterHook is a function to run after the n-th answer to path.
type afterHook struct {
	path string
	n    int
	fn   func()
}

// AfterRequest runs fn once, when the fake has answered the n-th request from now (n ≥ 1)
// whose path starts with prefix (for example /services/data/v67.0/query/): after the
// answer is made and before the client receives it, so that fn changes the org between
// two pages of a walk, deterministically. fn must not call the fake over HTTP; its helpers
// (Touch, Delete, …) are fine.
func (s *Server) AfterRequest(prefix string, n int, fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hooks = append(s.hooks, &afterHook{path: prefix, n: max(n, 1), fn: fn})
}

func (s *Server) takeHook(path string) func() {
	s.mu.Lock()
	defer s.mu.Unlock()
	var due []func()
	keep := s.hooks[:0]
	for _, h := range s.hooks {
		if strings.HasPrefix(path, h.path) {
			if h.n--; h.n == 0 {
				due = append(due, h.fn)
				continue
			}
		}
		keep = append(keep, h)
	}
	s.hooks = keep
	if len(due) == 0 {
		return nil
	}
	return func() {
		for _, fn := range due {
			fn()
		}
	}
}

// statusRecorder remembers the status written through it.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// base is the org root as the client addressed it, for instance_url and links.
func base(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// userKey carries the authenticated user through an API request.
type userKey struct{}

func withUser(r *http.Request, u User) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), userKey{}, u))
}

func userOf(r *http.Request) User {
	u, _ := r.Context().Value(userKey{}).(User)
	return u
}

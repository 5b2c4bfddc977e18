// Package atlassiantest is a fake Atlassian site for tests and local development, named
// like the standard library's httptest. One server plays a whole site over real HTTP:
//
//	/rest/api/3/...                        Jira Cloud
//	/rest/api/2/...                        Jira Data Center
//	/wiki/rest/api/..., /wiki/api/v2/...   Confluence Cloud
//	/rest/api/user/current                 Confluence Data Center (context path /)
//	/ex/{jira|confluence}/{CloudID}/...    the OAuth2 gateway in front of the above
//	/authorize, /oauth/token               the OAuth 2.0 (3LO) authorization server (oauth.go)
//	/oauth/token/accessible-resources      the cloud ids an OAuth2 access token reaches
//
// Answers follow the vendor documents in shared/vendor-specs: the identity answers
// validate against the Jira OpenAPI document, errors carry the JSON body each API family
// uses, and 401 answers any request without a known credential. Faults (faults.go: an
// error status, Retry-After, latency, hanging, truncated or malformed bodies, redirects,
// once or for the next n requests), a rate-limit mode (ratelimit.go) and a log of every
// request let tests provoke and observe what a real site does under load. Search (JQL and
// CQL) answers from an eventually consistent index, as on the real sites, while reads by
// id see every write at once; SetIndexLag and the Hold*Index helpers (index.go) make it lag.
//
// The fake writes no logs, so no credential or token it sees can leak through it.
//
// Identity is in identity.go; each product's content routes are in its own files
// (jira*.go, confluence*.go), registered on the same mux (see routes).
package atlassiantest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// CloudID is the cloud id of the fake site: the OAuth2 gateway paths
// /ex/jira/{CloudID}/... and /ex/confluence/{CloudID}/... reach it; any other id is 404.
const CloudID = "f4ce0000-0000-4000-8000-000000000001"

// Account is a user of the fake site and the credentials that authenticate as them.
type Account struct {
	// ID is the Atlassian account id (Cloud), also answered as the user key (Data Center).
	ID string
	// DisplayName is shown by the identity endpoints.
	DisplayName string
	// Email is the login for API-token (Basic) authentication, and its local part is the
	// Data Center username.
	Email string
	// TimeZone is the account's IANA zone; empty answers "UTC", the site default.
	TimeZone string
	// APIToken, with Email, authenticates as HTTP Basic; empty disables Basic for the account.
	APIToken string
	// PAT authenticates as Bearer (a Data Center personal access token, or an OAuth2
	// access token through the gateway); empty disables Bearer for the account.
	PAT string
}

// Request is one request the fake received.
type Request struct {
	// Time is when it arrived.
	Time time.Time
	// Method and Path are as received: Path has no query string and keeps a gateway prefix.
	Method, Path string
	// Status is what the fake answered, 0 when it never answered (the client went away
	// first, or Close dropped a held request) or is still answering.
	Status int
}

// Server is a fake Atlassian site. It is safe for concurrent use.
type Server struct {
	srv     *httptest.Server // nil when the caller serves Handler itself
	handler http.Handler

	// closed is closed by Close, to release requests held by Hang or Latency: otherwise
	// httptest.Server.Close would wait for them.
	closed    chan struct{}
	closeOnce sync.Once

	mu       sync.Mutex
	accounts []Account // in the order added; replaced in place by ID
	faults   [targets]faultSlot
	limiter  *rate.Limiter // nil when rate limiting is off
	oauth    oauthState
	requests []*Request   // pointers, so an answer can fill in its own entry after a reset
	hooks    []*afterHook // from AfterRequest, not fired yet

	// Each product's content, created on first use (jira_site.go, confluence_data.go).
	jiraOnce        sync.Once
	jiraState       *jiraSite
	confluenceOnce  sync.Once
	confluenceState *confluenceSite
}

// New returns a fake that is not listening: serve Handler yourself (as the fake-atlassian
// command does). URL is for servers from NewServer.
func New() *Server {
	s := &Server{closed: make(chan struct{}), oauth: newOAuthState()}
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

// URL is the site root, for example http://127.0.0.1:41234, without a trailing slash.
// It is "" for a Server from New.
func (s *Server) URL() string {
	if s.srv == nil {
		return ""
	}
	return s.srv.URL
}

// Close shuts a started server down, waiting for requests in flight. Requests held by a
// Hang or Latency fault are dropped without an answer first, so Close never waits for
// them. For a Server from New it only does that (and later held requests are dropped at
// once).
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closed) })
	if s.srv != nil {
		s.srv.Close()
	}
}

// Handler serves the fake site.
func (s *Server) Handler() http.Handler { return s.handler }

// CloudID is the fake site's cloud id (the constant CloudID), for OAuth2 gateway URLs.
func (s *Server) CloudID() string { return CloudID }

// AddAccount adds a, replacing the account with the same ID if there is one.
func (s *Server) AddAccount(a Account) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.accounts {
		if s.accounts[i].ID == a.ID {
			s.accounts[i] = a
			return
		}
	}
	s.accounts = append(s.accounts, a)
}

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

// CountRequests counts the requests received whose Path is exactly path.
func (s *Server) CountRequests(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.requests {
		if r.Path == path {
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

// routes registers the API. Handlers that need a user are wrapped with s.authenticated;
// product routes go in the product hooks below, the OAuth2 ones in oauthRoutes.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	// Identity: see identity.go.
	mux.Handle("GET /rest/api/3/myself", s.authenticated(s.jiraMyselfCloud))
	mux.Handle("GET /rest/api/2/myself", s.authenticated(s.jiraMyselfDataCenter))
	mux.Handle("GET /wiki/rest/api/user/current", s.authenticated(s.confluenceCurrentUserCloud))
	mux.Handle("GET /rest/api/user/current", s.authenticated(s.confluenceCurrentUserDataCenter))
	// Each product's content routes live in its own files.
	s.jiraRoutes(mux)
	s.confluenceRoutes(mux)
	s.oauthRoutes(mux)
	// Anything else: authenticate first (as Atlassian does), then 404 in the family's style.
	mux.Handle("/", s.authenticated(func(w http.ResponseWriter, r *http.Request, _ Account) {
		writeError(w, r, http.StatusNotFound, "No resource found at this path.")
	}))
	return mux
}

// middleware records every request, applies faults and the rate limit, and strips a
// gateway prefix. Faults come before authentication, as an overloaded edge's would.
func (s *Server) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		tgt := targetOf(r.URL.Path)
		s.mu.Lock()
		entry := &Request{Time: time.Now(), Method: r.Method, Path: r.URL.Path}
		s.requests = append(s.requests, entry)
		f := s.faults[tgt].take()
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			entry.Status = rec.status
		}()

		if !s.hold(r, f) {
			return // the client went away: no answer, Status stays 0
		}
		r, ok := stripGateway(r)
		if !ok {
			writeError(rec, r, http.StatusNotFound, "Unknown cloud id.")
			return
		}
		if injectFault(rec, r, f) {
			return
		}
		if tgt == apiTarget && !s.admit(rec, r) {
			return
		}
		if hook := s.takeHook(r.URL.Path); hook != nil {
			// The whole answer waits for the hook, so that the client sees the content
			// change only after this answer, and before it can ask again.
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
		if f.Truncate {
			tw := &truncatingWriter{ResponseWriter: rec}
			next.ServeHTTP(tw, r)
			tw.finish()
			return
		}
		next.ServeHTTP(rec, r)
	})
}

// afterHook is a function to run after the n-th answer to path.
type afterHook struct {
	path string
	n    int
	fn   func()
}

// AfterRequest runs fn once, when the fake has answered the n-th request from now (n ≥ 1)
// whose path, without a gateway prefix, is path (for example /rest/api/content/scan):
// after the answer is made and before the client receives it, so that fn changes the
// content between two pages of a walk, deterministically. fn must not call back into
// the fake through HTTP; its helpers (DeletePage, UpdateIssue, …) are fine.
func (s *Server) AfterRequest(path string, n int, fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hooks = append(s.hooks, &afterHook{path: path, n: max(n, 1), fn: fn})
}

// takeHook counts a request to path against the hooks and returns the functions due
// after its answer (nil when none).
func (s *Server) takeHook(path string) func() {
	s.mu.Lock()
	defer s.mu.Unlock()
	var due []func()
	keep := s.hooks[:0]
	for _, h := range s.hooks {
		if h.path == path {
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

// gatewayKey carries the gateway prefix (for example /ex/jira/{id}) of a request that came
// through it, so that links in answers point back through the gateway as Atlassian's do.
type gatewayKey struct{}

// stripGateway turns /ex/{jira|confluence}/{CloudID}/rest/... into /rest/...; ok is false
// for a gateway path with an unknown product or cloud id.
func stripGateway(r *http.Request) (_ *http.Request, ok bool) {
	rest, isGateway := strings.CutPrefix(r.URL.Path, "/ex/")
	if !isGateway {
		return r, true
	}
	product, rest, _ := strings.Cut(rest, "/")
	id, rest, _ := strings.Cut(rest, "/")
	if (product != "jira" && product != "confluence") || id != CloudID {
		return r, false
	}
	prefix := "/ex/" + product + "/" + id
	r2 := r.Clone(context.WithValue(r.Context(), gatewayKey{}, prefix))
	r2.URL.Path = "/" + rest
	r2.URL.RawPath = ""
	return r2, true
}

// siteBase is the root that links in an answer start with: the site as the client
// addressed it, plus the gateway prefix when the request came through the gateway.
func siteBase(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	base := scheme + "://" + r.Host
	if p, ok := r.Context().Value(gatewayKey{}).(string); ok {
		base += p
	}
	return base
}

// statusRecorder remembers the status written through it, and adds the rate limiter's
// warning to a successful answer.
type statusRecorder struct {
	http.ResponseWriter
	status    int
	nearLimit bool // set X-RateLimit-NearLimit on a 2xx answer
}

func (r *statusRecorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
		if r.nearLimit && status >= 200 && status < 300 {
			r.Header().Set("X-RateLimit-NearLimit", "true")
		}
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.WriteHeader(http.StatusOK) // through our WriteHeader, for the headers it adds
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

package api

import (
	_ "embed"
	"net/http"
	"strings"
)

// Route patterns. The OpenAPI document (openapi.json) describes exactly these; a test
// keeps the two in step.
const (
	routeConnectors  = "GET /api/v1/connectors"
	routeConnections = "GET /api/v1/namespaces/{ns}/connections"
	routeConnection  = "GET /api/v1/namespaces/{ns}/connections/{name}"
	routeContainers  = "GET /api/v1/namespaces/{ns}/connections/{name}/containers"
	routeItems       = "GET /api/v1/namespaces/{ns}/connections/{name}/items"
	routeCreateItem  = "POST /api/v1/namespaces/{ns}/connections/{name}/items"
	routeItem        = "GET /api/v1/namespaces/{ns}/connections/{name}/items/{id}"
	routeComments    = "GET /api/v1/namespaces/{ns}/connections/{name}/items/{id}/comments"
	routeSearch      = "GET /api/v1/search"
	routeAuthorize   = "GET /oauth/v1/namespaces/{ns}/connections/{name}/authorize"
	routeCallback    = "GET /oauth/v1/callback"
	routeOpenAPI     = "GET /openapi.json"
	routeDocs        = "GET /docs"
	routeWebhook     = "POST /webhooks/v1/namespaces/{ns}/connections/{name}"
)

//go:embed openapi.json
var openAPIDocument []byte

//go:embed docs.html
var docsPage []byte

// Routes lists the route patterns the server serves ("METHOD /path/{param}").
func Routes() []string {
	return []string{
		routeConnectors, routeConnections, routeConnection, routeContainers, routeItems, routeCreateItem,
		routeItem, routeComments, routeSearch, routeAuthorize, routeCallback, routeOpenAPI, routeDocs,
		routeWebhook,
	}
}

// OpenAPI returns the OpenAPI 3 document of the API.
func OpenAPI() []byte { return append([]byte(nil), openAPIDocument...) }

func (s *Server) newMux() *http.ServeMux {
	mux := http.NewServeMux()
	authed := func(h handler) http.Handler { return s.serve(s.authenticated(h)) }
	mux.Handle(routeConnectors, authed(s.listConnectors))
	mux.Handle(routeConnections, authed(s.listConnections))
	mux.Handle(routeConnection, authed(s.getConnection))
	mux.Handle(routeContainers, authed(s.listContainers))
	mux.Handle(routeItems, authed(s.listItems))
	mux.Handle(routeCreateItem, authed(s.createItem))
	mux.Handle(routeItem, authed(s.getItem))
	mux.Handle(routeComments, authed(s.listComments))
	mux.Handle(routeSearch, authed(s.search))
	mux.Handle(routeAuthorize, authed(s.authorizeFlow))
	// The vendor sends the browser here: the signed state is the credential.
	mux.Handle(routeCallback, s.serve(s.callback))
	// Webhooks carry no bearer token: their signature is checked by the receiver.
	if s.deps.Webhooks != nil {
		mux.Handle(routeWebhook, s.deps.Webhooks)
	} else {
		mux.Handle(routeWebhook, s.serve(func(w http.ResponseWriter, r *http.Request, rq *request) error {
			return errorf(CodeNotFound, "webhooks are not enabled on this server")
		}))
	}
	mux.Handle(routeOpenAPI, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openAPIDocument)
	}))
	mux.Handle(routeDocs, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		// The page loads nothing from elsewhere: it renders /openapi.json itself.
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		_, _ = w.Write(docsPage)
	}))
	mux.Handle("/", s.serve(func(w http.ResponseWriter, r *http.Request, rq *request) error {
		return s.noRoute(mux, r)
	}))
	return mux
}

// noRoute answers a request no pattern matched: NOT_FOUND, naming the methods the path
// has when it has some (the table of codes in DESIGN.md has no 405).
func (s *Server) noRoute(mux *http.ServeMux, r *http.Request) error {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		if m == r.Method || (m == http.MethodGet && r.Method == http.MethodHead) {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := mux.Handler(probe); pattern != "/" && pattern != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		e := errorf(CodeNotFound, "no route for %s %s; the path takes %s", r.Method, clip(r.URL.EscapedPath()), strings.Join(allow, ", "))
		e.allow = strings.Join(allow, ", ")
		return e
	}
	return errorf(CodeNotFound, "no route for %s %s", clip(r.Method), clip(r.URL.EscapedPath()))
}

// cleanPaths answers NOT_FOUND for paths with empty, "." or ".." segments, which
// http.ServeMux would otherwise answer with a plain-text redirect to the cleaned path.
func cleanPaths(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if p == "" || p[0] != '/' || strings.Contains(p, "//") || strings.Contains(p, "/./") || strings.Contains(p, "/../") ||
			strings.HasSuffix(p, "/.") || strings.HasSuffix(p, "/..") || r.Method == http.MethodConnect {
			writeError(w, requestOf(r.Context()).id, errorf(CodeNotFound, "no route for %s %s", clip(r.Method), clip(r.URL.EscapedPath())))
			return
		}
		next.ServeHTTP(w, r)
	})
}

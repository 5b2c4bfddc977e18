package atlassiantest

import "net/http"

// confluenceRoutes registers Confluence's content routes (spaces, pages, comments, search):
//
//	Cloud v2 (see confluence_v2.go)
//	  GET  /wiki/api/v2/spaces                        keys, ids, type, status, sort, cursor, limit
//	  GET  /wiki/api/v2/spaces/{id}
//	  GET  /wiki/api/v2/spaces/{id}/pages             body-format, sort, title, cursor, limit
//	  GET  /wiki/api/v2/pages                         id, space-id, body-format, sort, title, cursor, limit
//	  GET  /wiki/api/v2/pages/{id}                    body-format
//	  GET  /wiki/api/v2/pages/{id}/footer-comments    body-format, sort, cursor, limit
//	  POST /wiki/api/v2/pages                         answers 200
//	Cloud v1 (see confluence_v1.go; CQL in confluence_cql.go)
//	  GET  /wiki/rest/api/search                      cql, limit, start, cursor, expand
//	Data Center
//	  GET  /rest/api/space                            start, limit, spaceKey
//	  GET  /rest/api/content                          spaceKey, type=page, expand, start, limit
//	  GET  /rest/api/content/scan                     spaceKey, type=page, status, expand, cursor, limit (7.18+)
//	  GET  /rest/api/content/{id}                     expand
//	  GET  /rest/api/content/{id}/child/comment       expand, location, start, limit
//	  GET  /rest/api/content/search                   cql, expand, start, limit, cursor
//	  POST /rest/api/content                          answers 200
//
// Content comes from SeedConfluence and the helpers in confluence_data.go; every route
// needs a credential.
func (s *Server) confluenceRoutes(mux *http.ServeMux) {
	v2 := "/wiki/api/v2"
	mux.Handle("GET "+v2+"/spaces", s.authenticated(s.v2Spaces))
	mux.Handle("GET "+v2+"/spaces/{id}", s.authenticated(s.v2SpaceByID))
	mux.Handle("GET "+v2+"/spaces/{id}/pages", s.authenticated(s.v2Pages))
	mux.Handle("GET "+v2+"/pages", s.authenticated(s.v2Pages))
	mux.Handle("POST "+v2+"/pages", s.authenticated(s.v2CreatePage))
	mux.Handle("GET "+v2+"/pages/{id}", s.authenticated(s.v2PageByID))
	mux.Handle("GET "+v2+"/pages/{id}/footer-comments", s.authenticated(s.v2FooterComments))

	mux.Handle("GET /wiki/rest/api/search", s.authenticated(s.searchCloud))

	mux.Handle("GET /rest/api/space", s.authenticated(s.dcSpaces))
	mux.Handle("GET /rest/api/content", s.authenticated(s.dcContent))
	mux.Handle("POST /rest/api/content", s.authenticated(s.dcCreate))
	mux.Handle("GET /rest/api/content/search", s.authenticated(s.dcSearch))
	mux.Handle("GET /rest/api/content/scan", s.authenticated(s.dcScan))
	mux.Handle("GET /rest/api/content/{id}", s.authenticated(s.dcContentByID))
	mux.Handle("GET /rest/api/content/{id}/child/comment", s.authenticated(s.dcComments))
}

// Package api is the operator's aggregated HTTP API (DESIGN.md "HTTP API"): one place
// where a person or service holding an ordinary Kubernetes token lists Connectors and
// Connections, reads and creates vendor items through a Connection, searches across
// every Connection it may read, and runs the OAuth2 authorization of a Connection.
//
// Every request is authenticated with TokenReview and authorized with
// SubjectAccessReview against resources of group connectors.unified.dev (list
// connectors; list/get connections; get and create connections/data; update
// connections/credentials), both cached briefly in bounded caches keyed by digests.
// Authorization is decided before any object is looked up, so a caller learns nothing
// about namespaces it may not read: it gets FORBIDDEN whether or not the object exists,
// and NOT_FOUND only where it may look. Search silently leaves out Connections the
// caller may not read.
//
// The server reads Connectors and Connections from the manager's cache and calls
// vendors through vendorclient (rate limit, Retry-After, egress guard), so it runs on
// every replica. Only Ready Connections are served.
//
// Files: server.go (runnable, TLS), middleware.go (request id, access log, auth
// wrappers), routes.go, resources.go (Connectors, Connections), data.go (items,
// vendor error mapping), search.go (fan-out and merge), oauth.go and state.go (OAuth2
// authorize/callback), params.go (request parsing and cursors), openapi.json, docs.html.
package api

// RBAC of the manager for the API: reviews, and the Secrets of the OAuth2 flow (the
// state key and used states in the operator's namespace, tokens in the Connection's).
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;create;update

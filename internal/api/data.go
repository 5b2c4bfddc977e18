package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/internal/oauth"
	"github.com/unified-connectors/connector-operator/internal/policy"
	"github.com/unified-connectors/connector-operator/internal/vendorclient"
)

// pageView is one page of a listing.
type pageView[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"nextCursor,omitempty"`
}

// ready returns the vendor client of a Connection the API may serve (notReady). One it
// may not serve (or whose Connector is gone) is CONNECTION_NOT_READY: the API serves only
// what the reconciler has vouched for.
func (s *Server) ready(ctx context.Context, conn *v1alpha1.Connection) (*vendorClient, error) {
	if err := notReady(conn); err != nil {
		return nil, err
	}
	connector := &v1alpha1.Connector{}
	if err := s.deps.Reader.Get(ctx, client.ObjectKey{Name: conn.Spec.ConnectorRef.Name}, connector); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, errorf(CodeConnectionNotReady, "connection %q: Connector %q not found", conn.Name, conn.Spec.ConnectorRef.Name)
		}
		return nil, err
	}
	vc, err := s.vendorClient(ctx, conn, connector)
	if err != nil {
		return nil, vendorError(ctx, err)
	}
	return vc, nil
}

// clientTTL bounds how long a built vendor client is reused.
const clientTTL = time.Minute

// vendorClient is a Connection's vendor client and the cache key it is kept under.
type vendorClient struct {
	connectors.Client
	key string
}

// vendorClient returns conn's vendor client. Building one reads the Connection's Secret
// live (vendorclient never caches Secret data), which costs an API server round trip per
// request; so a built client is reused for at most clientTTL, keyed by the Connection's
// and Connector's UIDs and generations and the Secret's resourceVersion as the metadata
// watch (which the reconciler runs anyway) last saw it. A changed Secret, Connection or
// Connector therefore takes effect at once; only Connections this replica serves are
// kept, and no Secret data is ever listed or cached cluster-wide.
func (s *Server) vendorClient(ctx context.Context, conn *v1alpha1.Connection, connector *v1alpha1.Connector) (*vendorClient, error) {
	secret := &metav1.PartialObjectMetadata{}
	secret.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	key := ""
	if err := s.deps.Reader.Get(ctx, client.ObjectKey{Namespace: conn.Namespace, Name: conn.Spec.Auth.SecretRef.Name}, secret); err == nil {
		key = digest(conn.Namespace, conn.Name, string(conn.UID), strconv.FormatInt(conn.Generation, 10),
			string(connector.UID), strconv.FormatInt(connector.Generation, 10), secret.ResourceVersion)
		if v, ok := s.clients.Get(key); ok {
			return &vendorClient{Client: v.(connectors.Client), key: key}, nil
		}
	}
	res, err := s.deps.Vendors.ClientFor(ctx, conn, connector)
	if err != nil {
		return nil, err
	}
	if key == "" || res.SecretVersion != secret.ResourceVersion {
		// Built from another version of the Secret than the key names: do not keep it.
		return &vendorClient{Client: res.Client}, nil
	}
	ttl := clientTTL
	if res.OAuth != nil && !res.OAuth.Expiry.IsZero() {
		// Never past the point where the access token needs refreshing.
		ttl = min(ttl, time.Until(res.OAuth.Expiry)-oauth.RefreshBefore)
	}
	if ttl > 0 {
		s.clients.Add(key, res.Client, ttl)
	}
	return &vendorClient{Client: res.Client, key: key}, nil
}

// forgetOnAuthFailure drops a kept client the vendor refused: the next request builds
// it again from the Secret as it is now.
func (s *Server) forgetOnAuthFailure(vc *vendorClient, err error) {
	if vc != nil && vc.key != "" && connectors.KindOf(err) == connectors.KindAuth {
		s.clients.Remove(vc.key)
	}
}

// notReady is CONNECTION_NOT_READY with the reason conn is not served, or nil. Reads
// and search need a valid credential of an admitted Connection, not a healthy sink: a
// Connection whose only problem is its sink (Ready=False SinkUnavailable, say) is
// served (policy.Servable).
func notReady(conn *v1alpha1.Connection) *apiError {
	if err := policy.Servable(conn); err != nil {
		return errorf(CodeConnectionNotReady, "%s", err.Error())
	}
	return nil
}

// vendorError maps a failure to reach or use the vendor to the API's stable codes.
// connectors.Error and vendorclient.Problem texts name the vendor, method, path and
// reason only, never a credential, so they are shown as they are.
func vendorError(ctx context.Context, err error) error {
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return errorf(CodeTimeout, "the vendor did not answer in time")
	}
	var p *vendorclient.Problem
	if errors.As(err, &p) {
		switch {
		case p.Reason == v1alpha1.RefreshFailedReason && p.Transient:
			return errorf(CodeVendorUnavailable, "%s", p.Message)
		case p.Reason == v1alpha1.RefreshFailedReason:
			return errorf(CodeVendorAuthFailed, "%s", p.Message)
		default:
			return errorf(CodeConnectionNotReady, "%s: %s", p.Reason, p.Message)
		}
	}
	var ve *connectors.Error
	if !errors.As(err, &ve) {
		if errors.Is(err, errors.ErrUnsupported) {
			return errorf(CodeNotSupported, "not supported by this connector")
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return errorf(CodeTimeout, "the vendor did not answer in time")
		}
		return err // an API server error: INTERNAL, logged
	}
	msg := ve.Error()
	switch ve.Kind {
	case connectors.KindRateLimited:
		return &apiError{code: CodeVendorRateLimited, message: msg, retryAfter: max(ve.RetryAfter, time.Second)}
	case connectors.KindAuth:
		return errorf(CodeVendorAuthFailed, "%s", msg)
	case connectors.KindNotFound:
		return errorf(CodeNotFound, "%s", msg)
	case connectors.KindInvalid:
		switch ve.Status {
		case http.StatusForbidden:
			return errorf(CodeForbidden, "%s", msg)
		case http.StatusConflict:
			return errorf(CodeConflict, "%s", msg)
		}
		return errorf(CodeValidation, "%s", msg)
	case connectors.KindUnsupported:
		return errorf(CodeNotSupported, "%s", msg)
	case connectors.KindUnavailable:
		if strings.Contains(ve.Reason, "timed out") {
			return errorf(CodeTimeout, "%s", msg)
		}
		return errorf(CodeVendorUnavailable, "%s", msg)
	default: // KindEgressDenied and anything new
		return errorf(CodeVendorUnavailable, "%s", msg)
	}
}

// dataRoute authorizes verb on connections/data for {ns}/{name} and returns the
// Connection, if it may be served (notReady), and its vendor client, with a context
// bounded by VendorTimeout.
func (s *Server) dataRoute(r *http.Request, rq *request, verb string) (context.Context, context.CancelFunc, *v1alpha1.Connection, *vendorClient, error) {
	ns, name, aerr := connectionPath(r, rq)
	if aerr != nil {
		return nil, nil, nil, nil, aerr
	}
	if err := s.authorize(r.Context(), rq, access{verb: verb, resource: resourceConnections, subresource: subresourceData, namespace: ns, name: name}); err != nil {
		return nil, nil, nil, nil, err
	}
	conn, err := s.connection(r.Context(), ns, name)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.VendorTimeout)
	vc, err := s.ready(ctx, conn)
	if err != nil {
		cancel()
		return nil, nil, nil, nil, err
	}
	return ctx, cancel, conn, vc, nil
}

// scopeOf names a listing for its cursors.
func scopeOf(conn *v1alpha1.Connection, parts ...string) string {
	return conn.Namespace + "/" + conn.Name + "/" + string(conn.UID) + "/" + strings.Join(parts, "\x00")
}

// stamp says which Connection an item was read through.
func stamp(conn *v1alpha1.Connection, it *connectors.Item) {
	it.Connection = connectors.ConnectionRef{Namespace: conn.Namespace, Name: conn.Name}
}

// listContainers answers GET …/connections/{name}/containers.
func (s *Server) listContainers(w http.ResponseWriter, r *http.Request, rq *request) error {
	pr, aerr := parsePage(r.URL.RawQuery)
	if aerr != nil {
		return aerr
	}
	ctx, cancel, conn, vc, err := s.dataRoute(r, rq, "get")
	if err != nil {
		return err
	}
	defer cancel()
	scope := scopeOf(conn, "containers")
	vcur, aerr := decodeListCursor(pr.cursor, scope)
	if aerr != nil {
		return aerr
	}
	page, err := vc.Containers(ctx, vcur, pr.limit)
	if err != nil {
		s.forgetOnAuthFailure(vc, err)
		return vendorError(ctx, err)
	}
	if keys := conn.Spec.Scope.Containers; len(keys) > 0 {
		// Only the containers in spec.scope.containers, even if the credential sees more.
		// The vendor cannot filter its listing by key: walk its pages until one holds a
		// container in scope, for at most a few pages a request (a page may then come
		// back empty, with a cursor to go on), and stop once every one has been found.
		const maxVendorPages = 10
		var found []connectors.Container
		for pages := 1; ; pages++ {
			for _, c := range page.Items {
				if inScope(conn, c.Key) {
					found = append(found, c)
				}
			}
			if len(found) > 0 || page.NextCursor == "" || pages >= maxVendorPages {
				break
			}
			if page, err = vc.Containers(ctx, page.NextCursor, pr.limit); err != nil {
				s.forgetOnAuthFailure(vc, err)
				return vendorError(ctx, err)
			}
		}
		page.Items = found
		if len(found) >= len(keys) {
			page.NextCursor = "" // every one of them is on this page: nothing more to find
		}
	}
	out := pageView[connectors.Container]{Items: nonNil(page.Items), NextCursor: encodeListCursor(scope, page.NextCursor)}
	writeOK(w, http.StatusOK, out)
	return nil
}

// listItems answers GET …/connections/{name}/items.
func (s *Server) listItems(w http.ResponseWriter, r *http.Request, rq *request) error {
	ir, aerr := parseItems(r.URL.RawQuery)
	if aerr != nil {
		return aerr
	}
	ctx, cancel, conn, vc, err := s.dataRoute(r, rq, "get")
	if err != nil {
		return err
	}
	defer cancel()
	if !inScope(conn, ir.container) {
		return errorf(CodeNotFound, "container %q is outside connection %q's scope", clip(ir.container), conn.Name)
	}
	// The filter is part of the listing: a cursor from before the filter changed is not
	// one of this listing.
	filter := conn.Spec.Scope.Filter
	scope := scopeOf(conn, "items", ir.container, ir.updatedSince.UTC().Format(time.RFC3339Nano), filter)
	vcur, aerr := decodeListCursor(ir.cursor, scope)
	if aerr != nil {
		return aerr
	}
	page, err := vc.Items(ctx, connectors.ItemQuery{Container: ir.container, UpdatedSince: ir.updatedSince, Filter: filter, Cursor: vcur, Limit: ir.limit})
	if err != nil {
		s.forgetOnAuthFailure(vc, err)
		return vendorError(ctx, err)
	}
	for i := range page.Items {
		stamp(conn, &page.Items[i])
	}
	writeOK(w, http.StatusOK, pageView[connectors.Item]{Items: nonNil(page.Items), NextCursor: encodeListCursor(scope, page.NextCursor)})
	return nil
}

// inScope reports whether a container is within spec.scope.containers (empty: all).
func inScope(conn *v1alpha1.Connection, container string) bool {
	if len(conn.Spec.Scope.Containers) == 0 {
		return true
	}
	for _, c := range conn.Spec.Scope.Containers {
		if strings.EqualFold(c, container) {
			return true
		}
	}
	return false
}

// getItem answers GET …/connections/{name}/items/{id}.
func (s *Server) getItem(w http.ResponseWriter, r *http.Request, rq *request) error {
	id := r.PathValue("id")
	if err := checkKey("item id", id); err != nil {
		return err
	}
	if _, err := newQuery(r.URL.RawQuery); err != nil {
		return err
	}
	ctx, cancel, conn, vc, err := s.dataRoute(r, rq, "get")
	if err != nil {
		return err
	}
	defer cancel()
	// Outside the Connection's scope (its containers and its filter) is as if absent,
	// with the same answer as a missing item: the scope is what the tenant was given,
	// even if the credential reaches further.
	it, err := connectors.ItemInFilter(ctx, vc.Client, id, conn.Spec.Scope.Filter)
	if err != nil {
		s.forgetOnAuthFailure(vc, err)
		if connectors.KindOf(err) == connectors.KindNotFound && ctx.Err() == nil {
			return errorf(CodeNotFound, "item %q not found through connection %q", clip(id), conn.Name)
		}
		return vendorError(ctx, err)
	}
	if !inScope(conn, it.Container) {
		return errorf(CodeNotFound, "item %q not found through connection %q", clip(id), conn.Name)
	}
	stamp(conn, &it)
	writeOK(w, http.StatusOK, it)
	return nil
}

// listComments answers GET …/connections/{name}/items/{id}/comments.
func (s *Server) listComments(w http.ResponseWriter, r *http.Request, rq *request) error {
	id := r.PathValue("id")
	if err := checkKey("item id", id); err != nil {
		return err
	}
	pr, aerr := parsePage(r.URL.RawQuery)
	if aerr != nil {
		return aerr
	}
	ctx, cancel, conn, vc, err := s.dataRoute(r, rq, "get")
	if err != nil {
		return err
	}
	defer cancel()
	if err := supports(conn, "comments", func(c connectors.Capabilities) bool { return c.Comments }); err != nil {
		return err
	}
	if len(conn.Spec.Scope.Containers) > 0 || strings.TrimSpace(conn.Spec.Scope.Filter) != "" {
		// The comments call says neither which container the item is in nor whether
		// the filter admits it: read the item within the scope first. Outside it is
		// as if absent (see getItem).
		it, err := connectors.ItemInFilter(ctx, vc.Client, id, conn.Spec.Scope.Filter)
		if err != nil {
			s.forgetOnAuthFailure(vc, err)
			if connectors.KindOf(err) == connectors.KindNotFound && ctx.Err() == nil {
				return errorf(CodeNotFound, "item %q not found through connection %q", clip(id), conn.Name)
			}
			return vendorError(ctx, err)
		}
		if !inScope(conn, it.Container) {
			return errorf(CodeNotFound, "item %q not found through connection %q", clip(id), conn.Name)
		}
	}
	scope := scopeOf(conn, "comments", id)
	vcur, aerr := decodeListCursor(pr.cursor, scope)
	if aerr != nil {
		return aerr
	}
	page, err := vc.Comments(ctx, id, vcur, pr.limit)
	if err != nil {
		s.forgetOnAuthFailure(vc, err)
		return vendorError(ctx, err)
	}
	writeOK(w, http.StatusOK, pageView[connectors.Comment]{Items: nonNil(page.Items), NextCursor: encodeListCursor(scope, page.NextCursor)})
	return nil
}

// createItem answers POST …/connections/{name}/items: a Jira issue or a Confluence page.
// It is never retried: a repeat would create a second item.
func (s *Server) createItem(w http.ResponseWriter, r *http.Request, rq *request) error {
	if _, err := newQuery(r.URL.RawQuery); err != nil {
		return err
	}
	var body newItemRequest
	if err := decodeJSON(w, r, &body); err != nil {
		return err
	}
	if err := body.check(); err != nil {
		return err
	}
	ctx, cancel, conn, vc, err := s.dataRoute(r, rq, "create")
	if err != nil {
		return err
	}
	defer cancel()
	if err := supports(conn, "creating items", func(c connectors.Capabilities) bool { return c.Create }); err != nil {
		return err
	}
	container := strings.TrimSpace(body.Container)
	if !inScope(conn, container) {
		return errorf(CodeNotFound, "container %q is outside connection %q's scope", clip(container), conn.Name)
	}
	it, err := vc.Create(ctx, connectors.NewItem{Container: container, Title: strings.TrimSpace(body.Title), Text: body.Text})
	if err != nil {
		s.forgetOnAuthFailure(vc, err)
		return vendorError(ctx, err)
	}
	stamp(conn, &it)
	writeOK(w, http.StatusCreated, it)
	return nil
}

// supports answers NOT_SUPPORTED (501) when conn's connector type does not serve what
// has asks for (connectors.Capabilities), before any vendor call.
func supports(conn *v1alpha1.Connection, what string, has func(connectors.Capabilities) bool) error {
	if desc, ok := connectors.Describe(string(conn.Status.Type)); ok && !has(desc.Capabilities) {
		return errorf(CodeNotSupported, "%s is not supported by %s connections", what, conn.Status.Type)
	}
	return nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

package api

import (
	"context"
	"net/http"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors"
)

// connectorView is a Connector as the API shows it: what a tenant needs to choose one.
// The OAuth2 client Secret is not named.
type connectorView struct {
	Name             string   `json:"name"`
	Type             string   `json:"type"`
	BaseURL          string   `json:"baseURL"`
	Deployment       string   `json:"deployment"`
	AuthMethods      []string `json:"authMethods"`
	Ready            bool     `json:"ready"`
	Reason           string   `json:"reason,omitempty"`
	Message          string   `json:"message,omitempty"`
	Connections      int32    `json:"connections"`
	ReadyConnections int32    `json:"readyConnections"`
	// ItemKinds and Capabilities are what the connector type serves (its provider's
	// Description); a route outside them answers NOT_SUPPORTED.
	ItemKinds    []string                `json:"itemKinds"`
	Capabilities connectors.Capabilities `json:"capabilities"`
}

func viewConnector(c *v1alpha1.Connector) connectorView {
	v := connectorView{
		Name: c.Name, Type: string(c.Spec.Type), BaseURL: string(c.Spec.BaseURL), Deployment: c.Spec.Deployment,
		Connections: c.Status.Connections, ReadyConnections: c.Status.ReadyConnections, AuthMethods: []string{},
	}
	if v.Deployment == "" {
		v.Deployment = "cloud"
	}
	v.ItemKinds = []string{}
	if desc, ok := connectors.Describe(v.Type); ok {
		v.ItemKinds, v.Capabilities = append(v.ItemKinds, desc.ItemKinds...), desc.Capabilities
	}
	methods := c.Spec.AuthMethods
	if len(methods) == 0 {
		methods = []v1alpha1.AuthMethod{v1alpha1.AuthMethodAPIToken}
	}
	for _, m := range methods {
		v.AuthMethods = append(v.AuthMethods, string(m))
	}
	if cond := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ReadyCondition); cond != nil {
		v.Ready, v.Reason, v.Message = cond.Status == metav1.ConditionTrue, cond.Reason, cond.Message
	}
	return v
}

// connectionView is a Connection as the API shows it: its spec's public parts and
// status, never its Secrets' names or contents.
type connectionView struct {
	Namespace  string             `json:"namespace"`
	Name       string             `json:"name"`
	Connector  string             `json:"connector"`
	Type       string             `json:"type,omitempty"`
	AuthMethod string             `json:"authMethod"`
	Containers []string           `json:"containers"`
	Ready      bool               `json:"ready"`
	Reason     string             `json:"reason,omitempty"`
	Message    string             `json:"message,omitempty"`
	Identity   *identityView      `json:"identity,omitempty"`
	LastProbe  *time.Time         `json:"lastProbeTime,omitempty"`
	LastSync   *time.Time         `json:"lastSyncTime,omitempty"`
	Items      int64              `json:"itemsDelivered,omitempty"`
	Created    time.Time          `json:"createdAt"`
	Conditions []metav1.Condition `json:"conditions"`
}

type identityView struct {
	AccountID   string `json:"accountID"`
	DisplayName string `json:"displayName"`
}

func viewConnection(c *v1alpha1.Connection) connectionView {
	v := connectionView{
		Namespace: c.Namespace, Name: c.Name, Connector: c.Spec.ConnectorRef.Name, Type: string(c.Status.Type),
		AuthMethod: string(c.Spec.Auth.Method), Containers: append([]string{}, c.Spec.Scope.Containers...),
		Created: c.CreationTimestamp.UTC(), Conditions: append([]metav1.Condition{}, c.Status.Conditions...),
	}
	if cond := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ReadyCondition); cond != nil {
		v.Ready, v.Reason, v.Message = cond.Status == metav1.ConditionTrue, cond.Reason, cond.Message
	}
	if id := c.Status.Identity; id != nil {
		v.Identity = &identityView{AccountID: id.AccountID, DisplayName: id.DisplayName}
	}
	if p := c.Status.Probe; p != nil && p.LastTime != nil {
		t := p.LastTime.UTC()
		v.LastProbe = &t
	}
	if sy := c.Status.Sync; sy != nil {
		if sy.LastSyncTime != nil {
			t := sy.LastSyncTime.UTC()
			v.LastSync = &t
		}
		v.Items = sy.ItemsDelivered
	}
	return v
}

type listView[T any] struct {
	Items []T `json:"items"`
}

// listConnectors answers GET /api/v1/connectors. With X-Tenant-Id, only the Connectors
// whose allowedNamespaces admit that namespace.
func (s *Server) listConnectors(w http.ResponseWriter, r *http.Request, rq *request) error {
	if _, err := newQuery(r.URL.RawQuery); err != nil {
		return err
	}
	tenant, aerr := tenantOf(r)
	if aerr != nil {
		return aerr
	}
	rq.namespace = tenant
	if err := s.authorize(r.Context(), rq, access{verb: "list", resource: resourceConnectors}); err != nil {
		return err
	}
	var list v1alpha1.ConnectorList
	if err := s.deps.Reader.List(r.Context(), &list); err != nil {
		return err
	}
	var nsLabels labels.Set
	if tenant != "" {
		var err error
		if nsLabels, err = s.namespaceLabels(r.Context(), tenant); err != nil {
			return err
		}
	}
	out := listView[connectorView]{Items: []connectorView{}}
	for i := range list.Items {
		c := &list.Items[i]
		if tenant != "" && !admits(c, nsLabels) {
			continue
		}
		out.Items = append(out.Items, viewConnector(c))
	}
	sort.Slice(out.Items, func(i, j int) bool { return out.Items[i].Name < out.Items[j].Name })
	writeOK(w, http.StatusOK, out)
	return nil
}

// tenantOf reads X-Tenant-Id, the namespace of routes that have none in their path.
func tenantOf(r *http.Request) (string, *apiError) {
	t := r.Header.Get("X-Tenant-Id")
	if t == "" {
		return "", nil
	}
	if err := checkNamespace(t); err != nil {
		return "", validationf("X-Tenant-Id %q is not a valid namespace name", clip(t))
	}
	return t, nil
}

// namespaceLabels reads a namespace's labels from the metadata cache; a namespace that
// does not exist has none (and so matches only an empty selector).
func (s *Server) namespaceLabels(ctx context.Context, name string) (labels.Set, error) {
	ns := &metav1.PartialObjectMetadata{}
	ns.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	if err := s.deps.Reader.Get(ctx, client.ObjectKey{Name: name}, ns); err != nil {
		if apierrors.IsNotFound(err) {
			return labels.Set{}, nil
		}
		return nil, err
	}
	return labels.Set(ns.Labels), nil
}

// admits reports whether connector accepts Connections in a namespace with nsLabels.
func admits(c *v1alpha1.Connector, nsLabels labels.Set) bool {
	if c.Spec.AllowedNamespaces == nil {
		return true
	}
	sel, err := metav1.LabelSelectorAsSelector(c.Spec.AllowedNamespaces)
	return err == nil && sel.Matches(nsLabels)
}

// listConnections answers GET /api/v1/namespaces/{ns}/connections.
func (s *Server) listConnections(w http.ResponseWriter, r *http.Request, rq *request) error {
	ns := r.PathValue("ns")
	rq.namespace = ns
	if err := checkNamespace(ns); err != nil {
		return err
	}
	if _, err := newQuery(r.URL.RawQuery); err != nil {
		return err
	}
	if err := s.authorize(r.Context(), rq, access{verb: "list", resource: resourceConnections, namespace: ns}); err != nil {
		return err
	}
	var list v1alpha1.ConnectionList
	// Read only (viewConnection copies what it shows): no copy of the cache's objects.
	if err := s.deps.Reader.List(r.Context(), &list, client.InNamespace(ns), client.UnsafeDisableDeepCopy); err != nil {
		return err
	}
	out := listView[connectionView]{Items: make([]connectionView, 0, len(list.Items))}
	for i := range list.Items {
		out.Items = append(out.Items, viewConnection(&list.Items[i]))
	}
	sort.Slice(out.Items, func(i, j int) bool { return out.Items[i].Name < out.Items[j].Name })
	writeOK(w, http.StatusOK, out)
	return nil
}

// getConnection answers GET /api/v1/namespaces/{ns}/connections/{name}.
func (s *Server) getConnection(w http.ResponseWriter, r *http.Request, rq *request) error {
	ns, name, aerr := connectionPath(r, rq)
	if aerr != nil {
		return aerr
	}
	if _, err := newQuery(r.URL.RawQuery); err != nil {
		return err
	}
	if err := s.authorize(r.Context(), rq, access{verb: "get", resource: resourceConnections, namespace: ns, name: name}); err != nil {
		return err
	}
	conn, err := s.connection(r.Context(), ns, name)
	if err != nil {
		return err
	}
	writeOK(w, http.StatusOK, viewConnection(conn))
	return nil
}

// connectionPath reads and checks {ns} and {name}.
func connectionPath(r *http.Request, rq *request) (ns, name string, _ *apiError) {
	ns, name = r.PathValue("ns"), r.PathValue("name")
	rq.namespace = ns
	if err := checkNamespace(ns); err != nil {
		return "", "", err
	}
	if err := checkName("connection", name); err != nil {
		return "", "", err
	}
	return ns, name, nil
}

// connection reads a Connection from the cache. Call it only after authorizing: its
// NOT_FOUND must be told only to callers allowed to know.
func (s *Server) connection(ctx context.Context, ns, name string) (*v1alpha1.Connection, error) {
	conn := &v1alpha1.Connection{}
	if err := s.deps.Reader.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, conn); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, errorf(CodeNotFound, "connection %q not found in namespace %q", name, ns)
		}
		return nil, err
	}
	return conn, nil
}

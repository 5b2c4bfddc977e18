package chart_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"maps"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
	"github.com/unified-connectors/connector-operator/controllers"
	"github.com/unified-connectors/connector-operator/internal/api"
	"github.com/unified-connectors/connector-operator/internal/leakcheck"
	"github.com/unified-connectors/connector-operator/internal/logging"
	"github.com/unified-connectors/connector-operator/internal/manager"
	"github.com/unified-connectors/connector-operator/internal/syncer"
	"github.com/unified-connectors/connector-operator/internal/syncer/sinktest"
	"github.com/unified-connectors/connector-operator/internal/testenv"
)

const (
	// fieldOwner is the field manager of the server-side applies, as `helm` would be.
	fieldOwner = "helm-test"
	// defaultsRelease is a second installation, with the default values, beside the one
	// with every option.
	defaultsRelease   = "plain"
	defaultsNamespace = "connectors-plain"
	tenantNamespace   = "team-chart"
	// waitFor bounds every wait of the scenario: generous, the machine is shared.
	waitFor = 60 * time.Second
)

// TestChartOnAPIServer applies the chart to a real kube-apiserver and runs the operator
// as the chart installs it: its ServiceAccount, with nothing but the chart's RBAC.
func TestChartOnAPIServer(t *testing.T) {
	e, err := testenv.Start(testenv.Options{Scheme: manager.Scheme,
		Namespaces: []string{releaseNamespace, defaultsNamespace, tenantNamespace}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Stop() })
	// The Prometheus Operator's and cert-manager's CRDs (testdata/crds/README.md), so
	// that their objects are validated against the real schemas.
	if _, err := envtest.InstallCRDs(e.Config, envtest.CRDInstallOptions{
		Paths: []string{filepath.Join("testdata", "crds")}, ErrorIfPathMissing: true,
	}); err != nil {
		t.Fatalf("installing the CRDs of testdata/crds: %v", err)
	}
	// The release namespaces enforce the restricted Pod Security Standard, and warn on
	// pod templates (Deployments) that break it: the API server's PodSecurity admission
	// then judges the chart's pods.
	for _, ns := range []string{releaseNamespace, defaultsNamespace} {
		var n corev1.Namespace
		must(t, e.Client.Get(context.Background(), client.ObjectKey{Name: ns}, &n))
		n.Labels["pod-security.kubernetes.io/enforce"] = "restricted"
		n.Labels["pod-security.kubernetes.io/warn"] = "restricted"
		must(t, e.Client.Update(context.Background(), &n))
	}
	warnings := &warningRecorder{}
	applyCfg := rest.CopyConfig(e.Config)
	applyCfg.WarningHandler = warnings
	dyn, err := dynamic.NewForConfig(applyCfg)
	if err != nil {
		t.Fatal(err)
	}

	full := render(t, everyOption())
	plain, err := renderAs(t, defaultsRelease, defaultsNamespace, nil)
	if err != nil {
		t.Fatal(err)
	}
	crds := []*unstructured.Unstructured{}
	files, _ := filepath.Glob(filepath.Join(chartDir(t), "crds", "*.yaml"))
	for _, f := range files {
		crds = append(crds, readObjects(t, f)...)
	}
	if len(crds) != 2 {
		t.Fatalf("the chart holds %d CRDs, want Connector and Connection", len(crds))
	}

	applied := t.Run("server-side apply", func(t *testing.T) {
		ctx := context.Background()
		all := slices.Concat(crds, full.objects, plain.objects)
		for _, o := range all {
			if err := apply(ctx, dyn, e.Client.RESTMapper(), o); err != nil {
				t.Errorf("%s %s/%s refused: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
			}
		}
		if w := warnings.take(); len(w) > 0 {
			t.Errorf("the API server warned about the chart's objects: %q", w)
		}
		// Read back: every object exists, and helm-test manages it.
		for _, o := range all {
			got := &unstructured.Unstructured{}
			got.SetGroupVersionKind(o.GroupVersionKind())
			if err := e.Client.Get(ctx, client.ObjectKeyFromObject(o), got); err != nil {
				t.Errorf("%s %s: %v", o.GetKind(), o.GetName(), err)
				continue
			}
			if !slices.ContainsFunc(got.GetManagedFields(), func(m metav1.ManagedFieldsEntry) bool { return m.Manager == fieldOwner }) {
				t.Errorf("%s %s is not managed by %s", o.GetKind(), o.GetName(), fieldOwner)
			}
		}
		if n := len(full.find("Certificate", "")) + len(full.find("ServiceMonitor", "")) + len(full.find("PrometheusRule", "")); n != 3 {
			t.Errorf("the render with every option holds %d Certificate/ServiceMonitor/PrometheusRule objects, want 3", n)
		}
	})

	// The check above can fail: the API server refuses what the schemas do not know, the
	// CRDs of testdata/crds included.
	t.Run("a wrong field is refused", func(t *testing.T) {
		ctx := context.Background()
		// A pod template breaking the restricted standard draws PodSecurity's warning.
		d := full.find("Deployment", "")[0].DeepCopy()
		d.SetName(d.GetName() + "-privileged")
		must(t, unstructured.SetNestedField(d.Object, false, "spec", "template", "spec", "securityContext", "runAsNonRoot"))
		must(t, apply(ctx, dyn, e.Client.RESTMapper(), d))
		if w := warnings.take(); !slices.ContainsFunc(w, func(s string) bool { return strings.Contains(s, "PodSecurity") }) {
			t.Errorf("a Deployment running as root drew no PodSecurity warning (warnings %q): the check of the chart's pods proves nothing", w)
		}
		for kind, path := range map[string][]string{
			"Deployment":     {"spec", "template", "spec", "securityContext", "runAsNonroot"},
			"ServiceMonitor": {"spec", "endpoints"},
			"Certificate":    {"spec", "issuerRef", "name"},
		} {
			o := full.find(kind, "")[0].DeepCopy()
			o.SetName(o.GetName() + "-broken")
			switch kind {
			case "Deployment": // unknown field
				must(t, unstructured.SetNestedField(o.Object, true, path...))
			case "ServiceMonitor": // a string where a list belongs
				must(t, unstructured.SetNestedField(o.Object, "metrics", path...))
			case "Certificate": // a required field gone
				unstructured.RemoveNestedField(o.Object, path...)
			}
			if err := apply(ctx, dyn, e.Client.RESTMapper(), o); err == nil {
				t.Errorf("a %s with %v broken was accepted", kind, path)
			}
		}
	})

	if !applied {
		t.Fatal("the chart did not apply; the scenario needs its RBAC")
	}
	t.Run("operator as the chart's ServiceAccount", func(t *testing.T) { runScenario(t, e, full) })
}

// apply server-side applies o with fieldOwner, refusing unknown fields (as `kubectl
// apply --server-side` does).
func apply(ctx context.Context, dyn dynamic.Interface, mapper meta.RESTMapper, o *unstructured.Unstructured) error {
	gvk := o.GroupVersionKind()
	m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return err
	}
	var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		ri = dyn.Resource(m.Resource).Namespace(o.GetNamespace())
	}
	body, err := json.Marshal(o.Object)
	if err != nil {
		return err
	}
	_, err = ri.Patch(ctx, o.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{
		FieldManager: fieldOwner, Force: ptr.To(true), FieldValidation: metav1.FieldValidationStrict,
	})
	return err
}

// warningRecorder keeps the API server's warnings (Warning headers).
type warningRecorder struct {
	mu   sync.Mutex
	list []string
}

func (w *warningRecorder) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

// take returns the warnings so far and forgets them.
func (w *warningRecorder) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.list
	w.list = nil
	return out
}

// refusals records every request the API server refused with 403, as
// testenv.Environment.Refused does for the shipped RBAC.
type refusals struct {
	mu   sync.Mutex
	list []string
}

func (r *refusals) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(req)
		if err == nil && resp.StatusCode == http.StatusForbidden {
			r.mu.Lock()
			r.list = append(r.list, req.Method+" "+req.URL.Path)
			r.mu.Unlock()
		}
		return resp, err
	})
}

func (r *refusals) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.list)
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// scenario is the state of runScenario.
type scenario struct {
	t       *testing.T
	k8s     client.Client // admin, direct
	clients kubernetes.Interface
	base    string // the API, http://127.0.0.1:port
	secrets *leakcheck.Secrets
	fake    *atlassiantest.Server
	sink    *sinktest.Sink
}

// runScenario runs the manager out-of-cluster as the chart's ServiceAccount through a
// reconcile, a sync, a webhook, an OAuth2 authorization and API reads and search.
func runScenario(t *testing.T, e *testenv.Environment, full rendered) {
	ctx := context.Background()
	s := &scenario{t: t, k8s: e.Client, secrets: &leakcheck.Secrets{}}
	var err error
	if s.clients, err = kubernetes.NewForConfig(e.Config); err != nil {
		t.Fatal(err)
	}

	// The identity the chart's pods run as, bound by nothing but the chart's RBAC: the
	// envtest setup's config/rbac binds another ServiceAccount in another namespace.
	_, c := managerOf(t, full)
	sa := full.one(t, "ServiceAccount", fullname)
	user := "system:serviceaccount:" + sa.GetNamespace() + ":" + sa.GetName()
	cfg := rest.CopyConfig(e.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + sa.GetNamespace(), "system:authenticated"}}
	refused := &refusals{}
	cfg.Wrap(refused.wrap)
	s.waitAllowed(user, cfg.Impersonate.Groups, full)

	// The manager as the rendered Deployment runs it: its flags, and POD_NAMESPACE (the
	// release namespace). The fake vendor and sink are plain http on loopback, which only
	// the dev-only switch allows; the chart never sets it.
	args := map[string]string{}
	for _, a := range c.Args {
		k, v, _ := strings.Cut(a, "=")
		args[k] = v
	}
	workers, err := strconv.Atoi(args["--max-concurrent-reconciles"])
	must(t, err)
	logs := &leakcheck.Buffer{}
	logger, err := logging.New(logging.Options{Format: args["--log-format"], Verbosity: 10}, logs)
	must(t, err)
	ctrl.SetLogger(logger)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	s.base = "http://" + ln.Addr().String()
	// The API certificate as the chart delivers it: a kubernetes.io/tls Secret (written
	// by cert-manager in a cluster, here by the test) mounted where --api-cert-dir points.
	certDir := ""
	if dir, ok := args["--api-cert-dir"]; ok {
		certDir = s.mountAPICertificate(t, full, dir)
		s.base = "https://" + ln.Addr().String()
	}
	mgr, err := manager.New(cfg, manager.Options{
		Namespace:               releaseNamespace,
		LeaderElection:          args["--leader-elect"] == "true",
		MetricsBindAddress:      "0",
		HealthProbeBindAddress:  "0",
		AllowInsecureVendorURLs: true,
		Holder:                  "chart-test",
		Controllers: controllers.ControllerOptions{MaxConcurrentReconciles: workers,
			RetryMinBackoff: 100 * time.Millisecond, RetryMaxBackoff: time.Second},
		API: api.Options{Listener: ln, CertDir: certDir, VendorTimeout: 10 * time.Second, SearchSourceTimeout: 10 * time.Second},
	})
	must(t, err)
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(mctx); err != nil {
			t.Errorf("manager: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		// Some refusals are quiet (an Event, a lease renewal, a retried write).
		if r := refused.all(); len(r) > 0 {
			t.Errorf("the API server refused the chart's ServiceAccount (the chart's RBAC lacks a verb the operator needs): %q", r)
		}
		if leaks := leakcheck.Find(map[string]string{"logs": logs.String()}, s.secrets.All()); len(leaks) > 0 {
			t.Errorf("credentials leaked: %v", leaks)
		}
	})

	// The leader Lease, in the release namespace.
	s.eventually("the leader Lease in "+releaseNamespace, func() error {
		var l coordinationv1.Lease
		if err := s.k8s.Get(ctx, client.ObjectKey{Namespace: releaseNamespace, Name: "connector-operator.connectors.unified.dev"}, &l); err != nil {
			return err
		}
		if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "" {
			return fmt.Errorf("no holder")
		}
		return nil
	})

	s.fake = atlassiantest.NewServer()
	t.Cleanup(s.fake.Close)
	s.sink = sinktest.NewServer()
	t.Cleanup(s.sink.Close)
	acct := atlassiantest.Account{ID: "5b10ac8d82e05b22cc7d4ef9", DisplayName: "Chart Tester", Email: "chart@example.com",
		TimeZone: "UTC", APIToken: s.secrets.Token("apitoken")}
	s.fake.AddAccount(acct)
	s.fake.SeedJira(atlassiantest.JiraSeed{Projects: 1, IssuesPerProject: 12, Seed: 9, Start: time.Now().Add(-48 * time.Hour)})

	// Reconcile and sync: a Connector, a Connection syncing to the sink, Ready and Synced.
	cnr := &v1alpha1.Connector{ObjectMeta: metav1.ObjectMeta{Name: "chart-jira"}, Spec: v1alpha1.ConnectorSpec{
		Type: v1alpha1.ConnectorTypeJira, BaseURL: v1alpha1.EndpointURL(s.fake.URL()),
		AuthMethods: []v1alpha1.AuthMethod{v1alpha1.AuthMethodAPIToken},
		RateLimit:   v1alpha1.RateLimitSpec{RequestsPerSecond: 1000, Burst: 1000},
	}}
	must(t, s.k8s.Create(ctx, cnr))
	hookSecret := s.secrets.Token("webhook")
	must(t, s.k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: tenantNamespace, Name: "jira-credentials"},
		StringData: map[string]string{"email": acct.Email, "apiToken": acct.APIToken}}))
	must(t, s.k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: tenantNamespace, Name: "jira-webhook"},
		StringData: map[string]string{"secret": hookSecret}}))
	conn := &v1alpha1.Connection{ObjectMeta: metav1.ObjectMeta{Namespace: tenantNamespace, Name: "jira"}, Spec: v1alpha1.ConnectionSpec{
		ConnectorRef: v1alpha1.ConnectorReference{Name: cnr.Name},
		Auth:         v1alpha1.AuthSpec{Method: v1alpha1.AuthMethodAPIToken, SecretRef: v1alpha1.SecretReference{Name: "jira-credentials"}},
		Sync: &v1alpha1.SyncSpec{
			// Long: after the first run, only the webhook can bring the next item.
			Interval: &metav1.Duration{Duration: time.Hour},
			Sink:     &v1alpha1.SinkSpec{URL: v1alpha1.URL(s.sink.URL()), BatchSize: 5},
		},
		Webhook: &v1alpha1.WebhookSpec{SecretRef: v1alpha1.SecretReference{Name: "jira-webhook"}},
	}}
	must(t, s.k8s.Create(ctx, conn))
	key := client.ObjectKeyFromObject(conn)
	s.waitCondition(key, v1alpha1.ReadyCondition, "True")
	s.waitCondition(key, v1alpha1.SyncedCondition, "True")
	if got := s.sink.Check().Distinct; got != 12 {
		t.Errorf("the sink holds %d distinct items after the first sync, want the site's 12", got)
	}
	var ready v1alpha1.Connector
	must(t, s.k8s.Get(ctx, client.ObjectKeyFromObject(cnr), &ready))
	if !meta.IsStatusConditionTrue(ready.Status.Conditions, v1alpha1.ReadyCondition) {
		t.Errorf("the Connector is not Ready: %+v", ready.Status.Conditions)
	}

	// A signed webhook brings a new issue to the sink.
	newKey := s.fake.CreateIssue("PRJA", "Chartwebhook arrives through the receiver", "Filed after the first sync.", time.Now())
	body := fmt.Appendf(nil, `{"webhookEvent":"jira:issue_created","timestamp":%d,"issue":{"id":"99001","key":%q,"fields":{"project":{"key":"PRJA"}}}}`,
		time.Now().UnixMilli(), newKey)
	resp := s.post("/webhooks/v1/namespaces/"+tenantNamespace+"/connections/jira", body, map[string]string{"X-Hub-Signature": syncer.Sign([]byte(hookSecret), body)})
	if resp.status != http.StatusAccepted {
		t.Fatalf("a signed webhook answered %d %s, want 202", resp.status, resp.body)
	}
	s.eventually("the webhook's issue "+newKey+" at the sink", func() error {
		for _, it := range s.sink.Items() {
			if it.Key == newKey {
				return nil
			}
		}
		return fmt.Errorf("not delivered (%d items)", len(s.sink.Items()))
	})

	// A tenant: bound in its namespace to the chart's connection-editor ClusterRole, and
	// cluster-wide to its connector-viewer, with a token from the TokenRequest API.
	tenant := s.newUser("tenant")
	s.bind(tenant, tenantNamespace, "ClusterRole", fullname+"-connection-editor")
	s.bind(tenant, "", "ClusterRole", fullname+"-connector-viewer")

	// OAuth2: authorize, consent at the fake vendor, callback: the tokens land in the
	// Connection's Secret and the Connection becomes Ready.
	oauthKey := s.oauthConnection(t)
	first := s.authorize(oauthKey, tenant)
	s.waitCondition(oauthKey, v1alpha1.ReadyCondition, "True")
	// Authorizing again rotates the tokens in the existing Secret (an update, where the
	// first callback created it), and spends a second state.
	if second := s.authorize(oauthKey, tenant); second == first {
		t.Errorf("a second authorization left the access token as it was")
	}

	// The API: list, read and search with the tenant's bearer token.
	if a := s.get("/api/v1/connectors", tenant.token); a.status != http.StatusOK || len(a.list("items")) < 2 {
		t.Errorf("GET /api/v1/connectors: %d %s", a.status, a.body)
	}
	connPath := "/api/v1/namespaces/" + tenantNamespace + "/connections/jira"
	if a := s.get(connPath, tenant.token); a.status != http.StatusOK || a.data()["name"] != "jira" {
		t.Errorf("GET %s: %d %s", connPath, a.status, a.body)
	}
	if a := s.get(connPath+"/items?container=PRJA&limit=5", tenant.token); a.status != http.StatusOK || len(a.list("items")) != 5 {
		t.Errorf("GET %s/items: %d %s, want 5 items", connPath, a.status, a.body)
	}
	if a := s.get(connPath+"/items/"+newKey, tenant.token); a.status != http.StatusOK || a.data()["key"] != newKey {
		t.Errorf("GET %s/items/%s: %d %s", connPath, newKey, a.status, a.body)
	}
	search := s.get("/api/v1/search?q=Chartwebhook&namespaces="+tenantNamespace, tenant.token)
	if search.status != http.StatusOK {
		t.Fatalf("search: %d %s", search.status, search.body)
	}
	found := false
	for _, it := range search.list("items") {
		found = found || it.(map[string]any)["key"] == newKey
	}
	sources := search.list("sources")
	if !found || len(sources) != 2 {
		t.Errorf("search for the webhook's issue: %s; want it found, from both Connections", search.body)
	}
	for _, src := range sources {
		if src.(map[string]any)["status"] != "ok" {
			t.Errorf("search source %v is not ok", src)
		}
	}
	// The tenant's token does not reach another namespace.
	if a := s.get("/api/v1/namespaces/"+releaseNamespace+"/connections", tenant.token); a.status != http.StatusForbidden {
		t.Errorf("a tenant listed the operator's namespace: %d", a.status)
	}
}

// authorize runs authorize → consent at the fake vendor → callback for key as u, and
// returns the access token the callback stored in the Connection's Secret.
func (s *scenario) authorize(key client.ObjectKey, u apiUser) string {
	s.t.Helper()
	t := s.t
	a := s.get("/oauth/v1/namespaces/"+key.Namespace+"/connections/"+key.Name+"/authorize", u.token)
	if a.status != http.StatusFound {
		t.Fatalf("authorize: %d %s", a.status, a.body)
	}
	consent, err := noRedirect.Get(a.header.Get("Location"))
	must(t, err)
	_ = consent.Body.Close()
	back, err := url.Parse(consent.Header.Get("Location"))
	must(t, err)
	if consent.StatusCode != http.StatusFound || back.Query().Get("code") == "" {
		t.Fatalf("the vendor's consent answered %d to %s", consent.StatusCode, back)
	}
	s.secrets.Remember(back.Query().Get("code"))
	if a := s.get(back.Path+"?"+back.RawQuery, ""); a.status != http.StatusOK {
		t.Fatalf("callback: %d %s", a.status, a.body)
	}
	var tokens corev1.Secret
	must(t, s.k8s.Get(context.Background(), client.ObjectKey{Namespace: key.Namespace, Name: "jira-oauth-tokens"}, &tokens))
	s.secrets.Remember(string(tokens.Data["accessToken"]), string(tokens.Data["refreshToken"]))
	if len(tokens.Data["accessToken"]) == 0 || len(tokens.Data["refreshToken"]) == 0 || len(tokens.Data["expiry"]) == 0 {
		t.Fatalf("the callback stored no tokens (keys %v)", slices.Collect(maps.Keys(tokens.Data)))
	}
	return string(tokens.Data["accessToken"])
}

// mountAPICertificate issues a serving certificate for the API (its Service names and
// 127.0.0.1) from a CA of the test, stores it in the Secret the rendered Deployment mounts
// at mountPath, writes that Secret's keys into a directory as the kubelet would, and makes
// the test's HTTP client trust the CA. It returns the directory.
func (s *scenario) mountAPICertificate(t *testing.T, full rendered, mountPath string) string {
	t.Helper()
	d, c := managerOf(t, full)
	volume := ""
	for _, m := range c.VolumeMounts {
		if m.MountPath == mountPath {
			volume = m.Name
		}
	}
	secretName := ""
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == volume && v.Secret != nil {
			secretName = v.Secret.SecretName
		}
	}
	if secretName == "" {
		t.Fatalf("--api-cert-dir=%s is not a Secret volume of the Deployment (mounts %+v)", mountPath, c.VolumeMounts)
	}

	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "chart-test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	must(t, err)
	ca, err := x509.ParseCertificate(caDER)
	must(t, err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: fullname},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames:    []string{fullname + "." + releaseNamespace + ".svc"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	must(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	must(t, err)
	ctx := context.Background()
	must(t, s.k8s.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: releaseNamespace, Name: secretName},
		Type:       corev1.SecretTypeTLS,
		Data: map[string][]byte{
			corev1.TLSCertKey:       pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}),
			corev1.TLSPrivateKeyKey: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
			"ca.crt":                pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		},
	}))
	var mounted corev1.Secret
	must(t, s.k8s.Get(ctx, client.ObjectKey{Namespace: releaseNamespace, Name: secretName}, &mounted))
	dir := t.TempDir()
	for k, v := range mounted.Data {
		must(t, os.WriteFile(filepath.Join(dir, k), v, 0o600))
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	noRedirect.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	return dir
}

// waitAllowed waits until the authorizer applies the chart's RBAC to user (it learns of
// RBAC objects through informers): every rule of the roles bound to it.
func (s *scenario) waitAllowed(user string, groups []string, r rendered) {
	s.t.Helper()
	type check struct {
		ns   string
		rule rbacv1.PolicyRule
	}
	var checks []check
	for _, rule := range into[rbacv1.ClusterRole](s.t, r.one(s.t, "ClusterRole", fullname+"-manager")).Rules {
		checks = append(checks, check{"", rule})
	}
	for _, rule := range into[rbacv1.Role](s.t, r.one(s.t, "Role", fullname+"-leader-election")).Rules {
		checks = append(checks, check{releaseNamespace, rule})
	}
	for _, c := range checks {
		resource, sub, _ := strings.Cut(c.rule.Resources[0], "/")
		attrs := &authzv1.ResourceAttributes{Namespace: c.ns, Verb: c.rule.Verbs[0], Group: c.rule.APIGroups[0], Resource: resource, Subresource: sub}
		s.eventually(fmt.Sprintf("%s allowed %+v", user, *attrs), func() error {
			sar := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{User: user, Groups: groups, ResourceAttributes: attrs}}
			if err := s.k8s.Create(context.Background(), sar); err != nil {
				return err
			}
			if !sar.Status.Allowed {
				return fmt.Errorf("not allowed: %s", sar.Status.Reason)
			}
			return nil
		})
	}
}

// eventually retries f until it succeeds, failing the test after waitFor.
func (s *scenario) eventually(what string, f func() error) {
	s.t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: not within %s: %v", what, waitFor, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *scenario) waitCondition(key client.ObjectKey, typ, status string) {
	s.t.Helper()
	s.eventually(fmt.Sprintf("%s %s=%s", key, typ, status), func() error {
		var c v1alpha1.Connection
		if err := s.k8s.Get(context.Background(), key, &c); err != nil {
			return err
		}
		if cond := meta.FindStatusCondition(c.Status.Conditions, typ); cond == nil || string(cond.Status) != status {
			return fmt.Errorf("conditions %+v", c.Status.Conditions)
		}
		return nil
	})
}

// oauthConnection makes a Connector offering oauth2 through the fake's authorization
// server, its client Secret in the release namespace (the operator's), and a Connection
// whose token Secret does not exist yet.
func (s *scenario) oauthConnection(t *testing.T) client.ObjectKey {
	t.Helper()
	ctx := context.Background()
	clientID, clientSecret := "chart-client", s.secrets.Token("client-secret")
	s.fake.AddOAuthClient(clientID, clientSecret, s.base+"/oauth/v1/callback")
	must(t, s.k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: releaseNamespace, Name: clientID},
		StringData: map[string]string{"clientID": clientID, "clientSecret": clientSecret}}))
	cnr := &v1alpha1.Connector{ObjectMeta: metav1.ObjectMeta{Name: "chart-jira-oauth"}, Spec: v1alpha1.ConnectorSpec{
		Type: v1alpha1.ConnectorTypeJira, BaseURL: v1alpha1.EndpointURL(s.fake.URL()), CloudID: atlassiantest.CloudID,
		AuthMethods: []v1alpha1.AuthMethod{v1alpha1.AuthMethodOAuth2},
		OAuth2: &v1alpha1.OAuth2Spec{
			ClientSecretRef: v1alpha1.SecretReference{Name: clientID},
			Scopes:          []string{"read:jira-work", "read:jira-user", "offline_access"},
			AuthorizeURL:    v1alpha1.URL(s.fake.URL() + "/authorize"),
			TokenURL:        v1alpha1.URL(s.fake.URL() + "/oauth/token"),
			APIBaseURL:      v1alpha1.URL(s.fake.URL()),
		},
		RateLimit: v1alpha1.RateLimitSpec{RequestsPerSecond: 1000, Burst: 1000},
	}}
	must(t, s.k8s.Create(ctx, cnr))
	conn := &v1alpha1.Connection{ObjectMeta: metav1.ObjectMeta{Namespace: tenantNamespace, Name: "jira-oauth"}, Spec: v1alpha1.ConnectionSpec{
		ConnectorRef: v1alpha1.ConnectorReference{Name: cnr.Name},
		Auth:         v1alpha1.AuthSpec{Method: v1alpha1.AuthMethodOAuth2, SecretRef: v1alpha1.SecretReference{Name: "jira-oauth-tokens"}},
	}}
	must(t, s.k8s.Create(ctx, conn))
	key := client.ObjectKeyFromObject(conn)
	// Until authorized it waits for its Secret, and the API admits it only once its
	// Connector is Ready.
	s.eventually("the OAuth2 Connection waiting for its Secret", func() error {
		var c v1alpha1.Connection
		if err := s.k8s.Get(ctx, key, &c); err != nil {
			return err
		}
		if cond := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ReadyCondition); cond == nil || cond.Reason != v1alpha1.SecretNotFoundReason {
			return fmt.Errorf("conditions %+v", c.Status.Conditions)
		}
		return nil
	})
	return key
}

// apiUser is a ServiceAccount with a token from the TokenRequest API.
type apiUser struct{ name, token string }

func (s *scenario) newUser(name string) apiUser {
	s.t.Helper()
	ctx := context.Background()
	must(s.t, s.k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: tenantNamespace, Name: name}}))
	tr, err := s.clients.CoreV1().ServiceAccounts(tenantNamespace).CreateToken(ctx, name,
		&authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}, metav1.CreateOptions{})
	must(s.t, err)
	s.secrets.Remember(tr.Status.Token)
	return apiUser{name: name, token: tr.Status.Token}
}

// bind binds the chart's ClusterRole role to u in ns ("" for cluster-wide).
func (s *scenario) bind(u apiUser, ns, kind, role string) {
	s.t.Helper()
	ctx := context.Background()
	subject := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: u.name, Namespace: tenantNamespace}}
	ref := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: kind, Name: role}
	om := metav1.ObjectMeta{Namespace: ns, Name: u.name + "-" + role}
	if ns == "" {
		must(s.t, s.k8s.Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: om, RoleRef: ref, Subjects: subject}))
	} else {
		must(s.t, s.k8s.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: om, RoleRef: ref, Subjects: subject}))
	}
	var cr rbacv1.ClusterRole
	must(s.t, s.k8s.Get(ctx, client.ObjectKey{Name: role}, &cr))
	rule := cr.Rules[0]
	resource, sub, _ := strings.Cut(rule.Resources[0], "/")
	user := "system:serviceaccount:" + tenantNamespace + ":" + u.name
	s.eventually(user+" bound to "+role, func() error {
		sar := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{User: user,
			Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + tenantNamespace, "system:authenticated"},
			ResourceAttributes: &authzv1.ResourceAttributes{Namespace: ns, Verb: rule.Verbs[0], Group: rule.APIGroups[0], Resource: resource, Subresource: sub}}}
		if err := s.k8s.Create(ctx, sar); err != nil {
			return err
		}
		if !sar.Status.Allowed {
			return fmt.Errorf("not yet")
		}
		return nil
	})
}

// noRedirect shows redirects (authorize, consent) instead of following them.
var noRedirect = &http.Client{
	Timeout:       30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// answer is one API answer.
type answer struct {
	status int
	header http.Header
	body   []byte
	env    map[string]any
}

func (a answer) data() map[string]any { d, _ := a.env["data"].(map[string]any); return d }

func (a answer) list(field string) []any { l, _ := a.data()[field].([]any); return l }

func (s *scenario) get(path, token string) answer {
	s.t.Helper()
	return s.do(http.MethodGet, path, nil, map[string]string{"Authorization": bearer(token)})
}

func (s *scenario) post(path string, body []byte, header map[string]string) answer {
	s.t.Helper()
	return s.do(http.MethodPost, path, body, header)
}

func bearer(token string) string {
	if token == "" {
		return ""
	}
	return "Bearer " + token
}

func (s *scenario) do(method, path string, body []byte, header map[string]string) answer {
	s.t.Helper()
	req, err := http.NewRequest(method, s.base+path, bytes.NewReader(body))
	must(s.t, err)
	for k, v := range header {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	resp, err := noRedirect.Do(req)
	must(s.t, err)
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	must(s.t, err)
	a := answer{status: resp.StatusCode, header: resp.Header, body: b}
	_ = json.Unmarshal(b, &a.env)
	return a
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

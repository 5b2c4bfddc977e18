// Package contract_test proves that adding a vendor is one package and one registration:
// a provider the operator has never heard of (acme, registered by this test) is probed,
// synced and served by the unchanged reconcilers, sync engine and HTTP API, which answer
// 501 NOT_SUPPORTED for what its Description does not offer; and no code outside the
// vendor packages names a vendor.
package contract_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/rand"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/controllers"
	"github.com/unified-connectors/connector-operator/internal/api"
	"github.com/unified-connectors/connector-operator/internal/manager"
	"github.com/unified-connectors/connector-operator/internal/syncer/sinktest"
	"github.com/unified-connectors/connector-operator/internal/testenv"
)

const (
	tenant  = "team-acme"
	usersNS = "acme-users"
	boxes   = 2
	perBox  = 40
	timeout = 90 * time.Second // a busy 2-core machine
)

func TestUnknownVendorIsServedThroughTheContract(t *testing.T) {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	g := NewWithT(t)
	env, err := testenv.Start(testenv.Options{Scheme: manager.Scheme, Namespaces: []string{tenant, usersNS}})
	must(t, err)
	t.Cleanup(func() { _ = env.Stop() })
	ctx := context.Background()
	k8s := env.Client
	allowType(t, g, k8s, acmeType)

	key := "acme-key-" + rand.String(20)
	vendor := newAcmeService(key, []string{"red", "blue"}, perBox)
	t.Cleanup(vendor.Close)
	sink := sinktest.NewServer()
	t.Cleanup(sink.Close)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	mgr, err := manager.New(env.ManagerConfig, manager.Options{
		Namespace: env.Namespace, MetricsBindAddress: "0", HealthProbeBindAddress: "0",
		AllowInsecureVendorURLs: true,
		Controllers:             controllers.ControllerOptions{RetryMinBackoff: 100 * time.Millisecond, RetryMaxBackoff: time.Second},
		API:                     api.Options{Listener: ln},
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
	t.Cleanup(func() { cancel(); <-done })
	apiURL := "http://" + ln.Addr().String()

	must(t, k8s.Create(ctx, &v1alpha1.Connector{ObjectMeta: metav1.ObjectMeta{Name: "acme"},
		Spec: v1alpha1.ConnectorSpec{Type: acmeType, BaseURL: v1alpha1.EndpointURL(vendor.URL),
			AuthMethods: []v1alpha1.AuthMethod{v1alpha1.AuthMethodPAT},
			RateLimit:   v1alpha1.RateLimitSpec{RequestsPerSecond: 100, Burst: 100}}}))
	must(t, k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: "acme-creds"},
		StringData: map[string]string{acmeKeyKey: key}}))
	conn := &v1alpha1.Connection{ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: "things"},
		Spec: v1alpha1.ConnectionSpec{
			ConnectorRef: v1alpha1.ConnectorReference{Name: "acme"},
			Auth:         v1alpha1.AuthSpec{Method: v1alpha1.AuthMethodPAT, SecretRef: v1alpha1.SecretReference{Name: "acme-creds"}},
			Sync: &v1alpha1.SyncSpec{Interval: &metav1.Duration{Duration: time.Hour},
				Sink: &v1alpha1.SinkSpec{URL: v1alpha1.URL(sink.URL()), BatchSize: 25}},
		}}
	must(t, k8s.Create(ctx, conn))

	// The reconciler probes it and the engine syncs every thing of both boxes, once.
	g.Eventually(func(g Gomega) {
		var got v1alpha1.Connection
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(conn), &got)).To(Succeed())
		ready := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ReadyCondition)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Status).To(Equal(metav1.ConditionTrue), "%s: %s", ready.Reason, ready.Message)
		g.Expect(got.Status.Identity).NotTo(BeNil())
		g.Expect(got.Status.Identity.DisplayName).To(Equal("Acme Bot"))
		g.Expect(got.Status.Type).To(BeEquivalentTo(acmeType))
		g.Expect(sink.Items()).To(HaveLen(boxes * perBox))
	}, timeout, 100*time.Millisecond).Should(Succeed())
	seen := map[string]int{}
	for _, it := range sink.Items() {
		seen[it.ID]++
	}
	g.Expect(seen).To(HaveLen(boxes*perBox), "every thing delivered, none twice")

	// The HTTP API serves it and answers NOT_SUPPORTED for what acme does not offer.
	token := reader(t, env)
	var connectorsList struct {
		Items []struct {
			Name         string          `json:"name"`
			ItemKinds    []string        `json:"itemKinds"`
			Capabilities map[string]bool `json:"capabilities"`
		} `json:"items"`
	}
	call(t, apiURL, token, http.MethodGet, "/api/v1/connectors", nil, http.StatusOK, &connectorsList)
	g.Expect(connectorsList.Items).To(HaveLen(1))
	g.Expect(connectorsList.Items[0].ItemKinds).To(Equal([]string{acmeKind}))
	g.Expect(connectorsList.Items[0].Capabilities).To(Equal(map[string]bool{
		"create": false, "comments": false, "changeFeed": true, "search": false, "rankedSearch": false,
		"snapshots": true, "deletions": false}))

	base := "/api/v1/namespaces/" + tenant + "/connections/things"
	var item struct {
		ID, Kind, Title, Container string
	}
	call(t, apiURL, token, http.MethodGet, base+"/items/red-007", nil, http.StatusOK, &item)
	g.Expect(item).To(Equal(struct{ ID, Kind, Title, Container string }{"red-007", acmeKind, "Thing 7 of red", "red"}))

	var problem struct{ Code string }
	call(t, apiURL, token, http.MethodGet, base+"/items/red-007/comments", nil, http.StatusNotImplemented, &problem)
	g.Expect(problem.Code).To(Equal("NOT_SUPPORTED"))
	before := vendor.calls["/api/things/red-007"]
	call(t, apiURL, token, http.MethodPost, base+"/items", map[string]string{"container": "red", "title": "new", "text": "x"},
		http.StatusNotImplemented, &problem)
	g.Expect(problem.Code).To(Equal("NOT_SUPPORTED"))
	g.Expect(vendor.calls["/api/things/red-007"]).To(Equal(before))

	// Search reads only vendors that search: acme is left out, not an error.
	var found struct {
		Items   []any `json:"items"`
		Sources []any `json:"sources"`
	}
	call(t, apiURL, token, http.MethodGet, "/api/v1/search?q=thing&kind="+acmeKind, nil, http.StatusOK, &found)
	g.Expect(found.Sources).To(BeEmpty())

	if refused := env.Refused(); len(refused) > 0 {
		t.Fatalf("the API server refused the operator: %q", refused)
	}
}

// allowType adds typ to the type enums of the CRDs (Connector spec.type, Connection
// status.type) on this test's API server: the enums are API surface; the operator's code
// is what this test is about.
func allowType(t *testing.T, g *WithT, k8s client.Client, typ string) {
	t.Helper()
	ctx := context.Background()
	for crdName, field := range map[string][]string{
		"connectors.connectors.unified.dev":  {"spec", "type"},
		"connections.connectors.unified.dev": {"status", "type"},
	} {
		crd := &unstructured.Unstructured{}
		crd.SetAPIVersion("apiextensions.k8s.io/v1")
		crd.SetKind("CustomResourceDefinition")
		must(t, k8s.Get(ctx, client.ObjectKey{Name: crdName}, crd))
		versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
		for i := range versions {
			v := versions[i].(map[string]any)
			path := []string{"schema", "openAPIV3Schema", "properties", field[0], "properties", field[1], "enum"}
			enum, found, err := unstructured.NestedSlice(v, path...)
			must(t, err)
			if !found {
				t.Fatalf("%s has no enum at %v", crdName, path)
			}
			must(t, unstructured.SetNestedSlice(v, append(enum, typ), path...))
		}
		must(t, unstructured.SetNestedSlice(crd.Object, versions, "spec", "versions"))
		must(t, k8s.Update(ctx, crd))
	}
	probe := &v1alpha1.Connector{ObjectMeta: metav1.ObjectMeta{Name: "probe-" + typ},
		Spec: v1alpha1.ConnectorSpec{Type: v1alpha1.ConnectorType(typ), BaseURL: "https://probe.invalid"}}
	g.Eventually(func() error { return k8s.Create(ctx, probe) }, timeout, 100*time.Millisecond).Should(Succeed())
	must(t, k8s.Delete(ctx, probe))
}

// reader is the token of a ServiceAccount that may list Connectors and read and create
// the data of the tenant's Connections.
func reader(t *testing.T, env *testenv.Environment) string {
	t.Helper()
	group := v1alpha1.GroupVersion.Group
	token, err := env.Caller(context.Background(), usersNS, "reader", map[string][]rbacv1.PolicyRule{
		"": {{APIGroups: []string{group}, Resources: []string{"connectors"}, Verbs: []string{"list"}}},
		tenant: {
			{APIGroups: []string{group}, Resources: []string{"connections"}, Verbs: []string{"get", "list"}},
			{APIGroups: []string{group}, Resources: []string{"connections/data"}, Verbs: []string{"get", "create"}},
		},
	})
	must(t, err)
	return token
}

// call sends one API request and decodes the envelope's data (or, for an error, the
// envelope itself) into out, failing unless the status is want.
func call(t *testing.T, base, token, method, path string, body any, want int, out any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		must(t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, rd)
	must(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	var resp *http.Response
	var b []byte
	// RBAC reaches the API server's authorizer through informers: a fresh binding may
	// be refused for a moment.
	deadline := time.Now().Add(timeout)
	for {
		if body != nil {
			raw, _ := json.Marshal(body)
			req.Body = io.NopCloser(bytes.NewReader(raw))
		}
		resp, err = http.DefaultClient.Do(req)
		must(t, err)
		b, err = io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		must(t, err)
		if resp.StatusCode != http.StatusForbidden || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, b, want)
	}
	var env struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
	}
	must(t, json.Unmarshal(b, &env))
	raw := env.Data
	if env.Status != "ok" {
		raw = b
	}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("%s %s: decoding %s: %v", method, path, strings.TrimSpace(string(b)), err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

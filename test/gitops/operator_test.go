package gitops_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
	"github.com/unified-connectors/connector-operator/controllers"
	"github.com/unified-connectors/connector-operator/internal/leakcheck"
	"github.com/unified-connectors/connector-operator/internal/logging"
	"github.com/unified-connectors/connector-operator/internal/manager"
	"github.com/unified-connectors/connector-operator/internal/syncer/sinktest"
	"github.com/unified-connectors/connector-operator/internal/testenv"
)

const (
	operatorNamespace = "connector-system"
	tenant            = "team-a"
	// How long a state may take to appear: generous, the machine is shared.
	settle = 90 * time.Second
)

// gitopsState is one row of the table in docs/gitops/flux.md and docs/gitops/argocd.md:
// an object the real operator put in a state, and what kstatus (Flux, kubectl wait) and
// the Argo CD health check must read from it.
type gitopsState struct {
	// fixture is testdata/operator-<fixture>.yaml next to the kind's health.lua.
	fixture string
	kind    string
	name    string // the object; in namespace tenant for a Connection
	kstatus status.Status
	argo    string
	// reason of the Ready condition ("" for none): pins the state where two share a
	// health (a transient failure and the first reconcile are both InProgress).
	reason string
}

// TestOperatorStates runs the real manager (as the operator's ServiceAccount) against a
// real API server and fake Atlassian sites, drives Connections and Connectors into every
// state the GitOps docs name, and checks what kstatus and the Argo CD health checks read
// from each live object. The objects, with their volatile parts (times, ports, latency)
// normalised, are the testdata/operator-*.yaml fixtures of config/argocd/health: -update
// rewrites them, and otherwise the live objects must still match them, so the fixtures
// the Lua cases run over are what the operator writes today.
func TestOperatorStates(t *testing.T) {
	g := NewWithT(t)
	// The manager's logs, at every level: shown when the test fails, and searched for the
	// credentials handed out.
	logs := &leakcheck.Buffer{}
	logger, err := logging.New(logging.Options{Format: "json", Verbosity: 10}, logs)
	g.Expect(err).NotTo(HaveOccurred())
	ctrl.SetLogger(logger)
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(logs.String())
		}
	})
	env, err := testenv.Start(testenv.Options{Namespace: operatorNamespace, Scheme: manager.Scheme, Namespaces: []string{tenant}})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = env.Stop() })
	k8s := env.Client
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	secrets := &leakcheck.Secrets{}

	acct := atlassiantest.Account{ID: "5b10ac8d82e05b22cc7d4ef5", DisplayName: "Mia Krystof", Email: "mia@example.com",
		APIToken: secrets.Token("apitoken")}
	site := atlassiantest.NewServer()
	defer site.Close()
	site.AddAccount(acct)
	site.SeedJira(atlassiantest.JiraSeed{Projects: 1, IssuesPerProject: 3, Seed: 1, Start: time.Now().Add(-time.Hour)})
	down := atlassiantest.NewServer()
	defer down.Close()
	down.AddAccount(acct)
	// A 503 asking for an hour: the operator waits exactly that long (Reconciling, not
	// Stalled), so the state holds still for the test.
	down.SetFault(atlassiantest.Fault{Status: 503, RetryAfter: time.Hour})
	sink := sinktest.NewServer()
	defer sink.Close()
	rejecting := sinktest.NewServer()
	defer rejecting.Close()
	rejecting.Fail(sinktest.Failure{Status: 400})
	// Fixtures name stable addresses, not this run's ports.
	addresses := strings.NewReplacer(site.URL(), "https://acme.atlassian.net", down.URL(), "https://down.atlassian.net",
		sink.URL(), "https://sink.example.com/events", rejecting.URL(), "https://sink.example.com/rejects")

	connector := func(name, baseURL string, mutate ...func(*v1alpha1.Connector)) *v1alpha1.Connector {
		c := &v1alpha1.Connector{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: v1alpha1.ConnectorSpec{Type: v1alpha1.ConnectorTypeJira, BaseURL: v1alpha1.EndpointURL(baseURL)}}
		for _, m := range mutate {
			m(c)
		}
		g.Expect(k8s.Create(ctx, c)).To(Succeed())
		return c
	}
	connection := func(name, connector, secret string, sync *v1alpha1.SyncSpec) {
		g.Expect(k8s.Create(ctx, &v1alpha1.Connection{
			ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: name},
			Spec: v1alpha1.ConnectionSpec{
				ConnectorRef: v1alpha1.ConnectorReference{Name: connector},
				Auth:         v1alpha1.AuthSpec{Method: v1alpha1.AuthMethodAPIToken, SecretRef: v1alpha1.SecretReference{Name: secret}},
				Sync:         sync,
			},
		})).To(Succeed())
	}
	secret := func(name, token string) {
		g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: name},
			StringData: map[string]string{"email": acct.Email, "apiToken": token}})).To(Succeed())
	}

	// Before the operator runs: what GitOps tools see between kubectl apply and the first
	// reconcile (the CRDs default status.observedGeneration to -1).
	connector("jira", site.URL())
	secret("jira", acct.APIToken)
	connection("jira", "jira", "jira", nil)
	fresh := []gitopsState{
		{fixture: "fresh", kind: "Connector", name: "jira", kstatus: status.InProgressStatus, argo: "Progressing"},
		{fixture: "fresh", kind: "Connection", name: "jira", kstatus: status.InProgressStatus, argo: "Progressing"},
	}
	captured := map[gitopsState]string{}
	for _, s := range fresh {
		// No Eventually: nothing will change this object until the manager starts.
		captured[s] = checkState(t, ctx, k8s, s, addresses)
	}

	mgr, err := manager.New(env.ManagerConfig, manager.Options{
		Namespace: operatorNamespace, MetricsBindAddress: "0", HealthProbeBindAddress: "0",
		AllowInsecureVendorURLs: true,
		Controllers:             controllers.ControllerOptions{RetryMinBackoff: 100 * time.Millisecond, RetryMaxBackoff: time.Second},
	})
	g.Expect(err).NotTo(HaveOccurred())
	mgrCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mgrCtx) }()
	defer func() {
		stop()
		g.Expect(<-done).To(Succeed())
	}()

	connector("jira-down", down.URL())
	connector("jira-oauth", site.URL(), func(c *v1alpha1.Connector) {
		// Its OAuth2 client Secret does not exist: only a platform engineer can fix that.
		c.Spec.CloudID = "11223344-a1b2-3b33-c444-def123456789"
		c.Spec.AuthMethods = []v1alpha1.AuthMethod{v1alpha1.AuthMethodAPIToken, v1alpha1.AuthMethodOAuth2}
		c.Spec.OAuth2 = &v1alpha1.OAuth2Spec{ClientSecretRef: v1alpha1.SecretReference{Name: "jira-oauth-client"}}
	})
	// A Connection created while its Connector is still unreconciled waits up to a minute
	// for it (ConnectorNotReady is transient then); GitOps tools apply both at once, but
	// the state under test is the stalled one, so let the Connector reach its verdict first.
	g.Eventually(func(g Gomega) {
		c := &v1alpha1.Connector{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Name: "jira-oauth"}, c)).To(Succeed())
		g.Expect(c.Status.ObservedGeneration).To(Equal(c.Generation))
	}).WithContext(ctx).WithTimeout(settle).Should(Succeed())
	secret("wrong", secrets.Token("wrong"))
	connection("rejected", "jira", "wrong", nil)
	connection("no-secret", "jira", "absent", nil)
	connection("suspended", "jira", "jira", &v1alpha1.SyncSpec{Suspend: true, Sink: &v1alpha1.SinkSpec{URL: v1alpha1.URL(sink.URL())}})
	connection("connector-not-ready", "jira-oauth", "jira", nil)
	connection("vendor-down", "jira-down", "jira", nil)
	connection("sink-rejected", "jira", "jira", &v1alpha1.SyncSpec{Sink: &v1alpha1.SinkSpec{URL: v1alpha1.URL(rejecting.URL())}})

	states := []gitopsState{
		{fixture: "ready", kind: "Connector", name: "jira", kstatus: status.CurrentStatus, argo: "Healthy", reason: v1alpha1.SucceededReason},
		{fixture: "secret-not-found", kind: "Connector", name: "jira-oauth", kstatus: status.FailedStatus, argo: "Degraded", reason: v1alpha1.SecretNotFoundReason},
		{fixture: "ready", kind: "Connection", name: "jira", kstatus: status.CurrentStatus, argo: "Healthy", reason: v1alpha1.SucceededReason},
		{fixture: "credentials-rejected", kind: "Connection", name: "rejected", kstatus: status.FailedStatus, argo: "Degraded", reason: v1alpha1.CredentialsRejectedReason},
		{fixture: "secret-not-found", kind: "Connection", name: "no-secret", kstatus: status.FailedStatus, argo: "Degraded", reason: v1alpha1.SecretNotFoundReason},
		{fixture: "suspended", kind: "Connection", name: "suspended", kstatus: status.CurrentStatus, argo: "Suspended", reason: v1alpha1.SucceededReason},
		{fixture: "connector-not-ready", kind: "Connection", name: "connector-not-ready", kstatus: status.FailedStatus, argo: "Degraded", reason: v1alpha1.ConnectorNotReadyReason},
		{fixture: "vendor-unreachable", kind: "Connection", name: "vendor-down", kstatus: status.InProgressStatus, argo: "Progressing", reason: v1alpha1.VendorUnreachableReason},
		{fixture: "sink-rejected", kind: "Connection", name: "sink-rejected", kstatus: status.FailedStatus, argo: "Degraded", reason: v1alpha1.SinkRejectedReason},
	}
	for _, s := range states {
		t.Run("state/"+s.kind+"/"+s.fixture, func(t *testing.T) {
			g := NewWithT(t)
			g.Eventually(func(g Gomega) {
				obj := getObject(g, ctx, k8s, s)
				res, err := status.Compute(obj)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(res.Status).To(Equal(s.kstatus), "kstatus: %s", res.Message)
				hs, err := argoHealth(healthScript(t, s.kind), obj.Object, false)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(hs.Status).To(Equal(s.argo), "Argo CD: %s", hs.Message)
				g.Expect(readyReason(obj)).To(Equal(s.reason))
			}).WithContext(ctx).WithTimeout(settle).WithPolling(200 * time.Millisecond).Should(Succeed())
		})
	}
	// Every state is reached; now the objects are settled (the Connector counts its
	// Connections once they all have a verdict).
	g.Eventually(func(g Gomega) {
		c := &v1alpha1.Connector{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Name: "jira"}, c)).To(Succeed())
		g.Expect([]int32{c.Status.Connections, c.Status.ReadyConnections}).To(Equal([]int32{5, 2}))
	}).WithContext(ctx).WithTimeout(settle).Should(Succeed())
	for _, s := range states {
		t.Run("fixture/"+s.kind+"/"+s.fixture, func(t *testing.T) {
			captured[s] = checkState(t, ctx, k8s, s, addresses)
		})
	}

	t.Run("kubectl-wait", func(t *testing.T) {
		kubectlWait(t, ctx, env)
	})

	var all strings.Builder
	for s, text := range captured {
		fmt.Fprintf(&all, "%s/%s:\n%s\n", s.kind, s.fixture, text)
	}
	g.Expect(leakcheck.Find(map[string]string{"status": all.String(), "logs": logs.String()}, secrets.All())).To(BeEmpty(), "secret values leaked")
	g.Expect(env.Refused()).To(BeEmpty(), "the API server refused the manager")
}

// checkState checks kstatus and Argo CD health of the live object of s, and writes (with
// -update) or compares its fixture. It returns the fixture's text.
func checkState(t *testing.T, ctx context.Context, k8s client.Client, s gitopsState, addresses *strings.Replacer) string {
	t.Helper()
	g := NewWithT(t)
	path := filepath.Join(healthDir(t), "connectors.unified.dev", s.kind, "testdata", "operator-"+s.fixture+".yaml")
	var text string
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last %s %s seen:\n%s", s.kind, s.name, text)
		}
	})
	g.Eventually(func(g Gomega) {
		obj := getObject(g, ctx, k8s, s)
		res, err := status.Compute(obj)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(res.Status).To(Equal(s.kstatus), "kstatus: %s", res.Message)
		hs, err := argoHealth(healthScript(t, s.kind), obj.Object, false)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(hs.Status).To(Equal(s.argo), "Argo CD: %s", hs.Message)
		g.Expect(readyReason(obj)).To(Equal(s.reason))
		text = fixtureText(g, obj, addresses)
		if *update {
			return
		}
		want, err := os.ReadFile(path)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(text).To(Equal(string(want)), "the operator no longer writes %s: run go test ./test/gitops -update, then check health_test.yaml", path)
	}).WithContext(ctx).WithTimeout(settle).WithPolling(200 * time.Millisecond).Should(Succeed())
	if *update {
		g.Expect(os.WriteFile(path, []byte(text), 0o644)).To(Succeed())
	}
	return text
}

func getObject(g Gomega, ctx context.Context, k8s client.Client, s gitopsState) *unstructured.Unstructured {
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind(s.kind))
	key := client.ObjectKey{Name: s.name}
	if s.kind == "Connection" {
		key.Namespace = tenant
	}
	g.Expect(k8s.Get(ctx, key, obj)).To(Succeed())
	return obj
}

// readyReason is the reason of obj's Ready condition, "" without one.
func readyReason(obj *unstructured.Unstructured) string {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		if c, ok := c.(map[string]any); ok && c["type"] == v1alpha1.ReadyCondition {
			reason, _ := c["reason"].(string)
			return reason
		}
	}
	return ""
}

const fixtureHeader = "# Captured from the real operator by TestOperatorStates (test/gitops); regenerate with\n" +
	"# go test ./test/gitops -run TestOperatorStates -update. Times, addresses and latency normalised.\n"

// fixedTime replaces every time the operator or the API server wrote.
const fixedTime = "2026-01-01T00:00:00Z"

// fixtureText is the object as a fixture: what Argo CD and kstatus read, without what
// differs from run to run.
func fixtureText(g Gomega, obj *unstructured.Unstructured, addresses *strings.Replacer) string {
	o := obj.DeepCopy()
	o.SetManagedFields(nil)
	o.SetUID("")
	o.SetResourceVersion("")
	o.SetCreationTimestamp(metav1.Time{})
	normalise(o.Object)
	if conds, ok, _ := unstructured.NestedSlice(o.Object, "status", "conditions"); ok {
		// The order reflects which step wrote first, which varies between runs; kstatus
		// and the Lua checks look conditions up by type.
		slices.SortFunc(conds, func(a, b any) int {
			return strings.Compare(fmt.Sprint(a.(map[string]any)["type"]), fmt.Sprint(b.(map[string]any)["type"]))
		})
		unstructured.SetNestedSlice(o.Object, conds, "status", "conditions") //nolint:errcheck // status is a map
	}
	if _, ok, _ := unstructured.NestedMap(o.Object, "status", "probe"); ok {
		// Absent when the call took under a millisecond.
		unstructured.SetNestedField(o.Object, int64(12), "status", "probe", "latencyMillis") //nolint:errcheck // probe is a map
	}
	unstructured.SetNestedField(o.Object, fixedTime, "metadata", "creationTimestamp") //nolint:errcheck // metadata is a map
	b, err := yaml.Marshal(o.Object)
	g.Expect(err).NotTo(HaveOccurred())
	return fixtureHeader + addresses.Replace(string(b))
}

// normalise fixes the times and latency in v, in place.
func normalise(v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			switch {
			case k == "latencyMillis":
				v[k] = int64(12)
			case strings.HasSuffix(k, "Time") || k == "expiresAt":
				if _, ok := x.(string); ok {
					v[k] = fixedTime
				}
			case k == "cursor":
				v[k] = "opaque"
			default:
				normalise(x)
			}
		}
	case []any:
		for _, x := range v {
			normalise(x)
		}
	}
}

// kubectlWait runs the kubectl wait of docs/gitops/flux.md against the real objects: it
// returns for a Ready Connection and times out, exiting non-zero, for a stalled one.
func kubectlWait(t *testing.T, ctx context.Context, env *testenv.Environment) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		dir = filepath.Join(env.Root, "bin", "k8s")
	}
	kubectl := filepath.Join(dir, "kubectl")
	if _, err := os.Stat(kubectl); err != nil {
		t.Skipf("no %s: `make kubectl` builds it", kubectl)
	}
	c := env.Config
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: c.Host, CertificateAuthorityData: c.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: c.CertData, ClientKeyData: c.KeyData, Token: c.BearerToken}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin"}
	kc.CurrentContext = "envtest"
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, kubeconfig); err != nil {
		t.Fatal(err)
	}
	wait := func(name, timeout string) (string, error) {
		out, err := exec.CommandContext(ctx, kubectl, "--kubeconfig", kubeconfig, "-n", tenant,
			"wait", "--for=condition=Ready", "connection/"+name, "--timeout="+timeout).CombinedOutput()
		return string(out), err
	}
	if out, err := wait("jira", "60s"); err != nil || !strings.Contains(out, "condition met") {
		t.Errorf("kubectl wait on a Ready Connection: %v: %s", err, out)
	}
	if out, err := wait("rejected", "3s"); err == nil || !strings.Contains(out, "timed out") {
		t.Errorf("kubectl wait on a stalled Connection should time out: %v: %s", err, out)
	}
}

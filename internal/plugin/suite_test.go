package plugin_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
	"github.com/unified-connectors/connector-operator/controllers"
	"github.com/unified-connectors/connector-operator/internal/manager"
	"github.com/unified-connectors/connector-operator/internal/plugin"
	"github.com/unified-connectors/connector-operator/internal/syncer/sinktest"
	"github.com/unified-connectors/connector-operator/internal/testenv"
)

const (
	operatorNamespace = "connector-system"
	tenant            = "team-a" // the kubeconfig's default namespace
	otherTenant       = "team-b"
	jiraConnector     = "demo-jira"
	brokenConnector   = "broken-jira"
	issuesPerProject  = 12
	projects          = 2
	// waitLong bounds what the manager does on a busy 2-core machine.
	waitLong = 60 * time.Second
)

var (
	env  *testenv.Environment
	k8s  client.Client
	fake *atlassiantest.Server
	sink *sinktest.Sink
	// kubeconfig is a file naming the envtest API server as the admin, contexts
	// "envtest" (namespace team-a, the current one) and "team-b".
	kubeconfig string
	// apiToken and sinkAuthorization are the suite's secret values: no output may show them.
	apiToken          = "tok-" + rand.String(24)
	sinkAuthorization = "Bearer sink-" + rand.String(24)
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	var err error
	env, err = testenv.Start(testenv.Options{Namespace: operatorNamespace, Scheme: manager.Scheme,
		Namespaces: []string{tenant, otherTenant}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	k8s = env.Client

	dir, err := os.MkdirTemp("", "plugin-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	if kubeconfig, err = writeKubeconfig(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	fake = atlassiantest.NewServer()
	defer fake.Close()
	fake.AddAccount(atlassiantest.Account{ID: "acct-plugin", DisplayName: "Plugin Bot", Email: "bot@example.com", APIToken: apiToken})
	fake.SeedJira(atlassiantest.JiraSeed{Projects: projects, IssuesPerProject: issuesPerProject, Seed: 9,
		Start: time.Now().Add(-48 * time.Hour)})
	sink = sinktest.NewServer()
	defer sink.Close()
	sink.RequireAuthorization(sinkAuthorization)

	mgr, err := manager.New(env.ManagerConfig, manager.Options{
		Namespace: operatorNamespace, MetricsBindAddress: "0", HealthProbeBindAddress: "0",
		AllowInsecureVendorURLs: true, SyncPersistEvery: time.Second,
		Controllers: controllers.ControllerOptions{RetryMinBackoff: 100 * time.Millisecond, RetryMaxBackoff: time.Second},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}()

	if err := fixtures(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "fixtures:", err)
		return 1
	}
	code := m.Run()
	if refused := env.Refused(); len(refused) > 0 {
		fmt.Fprintf(os.Stderr, "the API server refused the manager (config/rbac lacks a verb): %q\n", refused)
		return 1
	}
	return code
}

// writeKubeconfig writes the admin's config as a kubeconfig file, as a user's would be.
func writeKubeconfig(dir string) (string, error) {
	cfg := env.Config
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData,
		Token: cfg.BearerToken, Username: cfg.Username, Password: cfg.Password}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin", Namespace: tenant}
	kc.Contexts["team-b"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin", Namespace: otherTenant}
	kc.CurrentContext = "envtest"
	path := filepath.Join(dir, "kubeconfig")
	return path, clientcmd.WriteToFile(*kc, path)
}

// fixtures: a Ready Connector and one that is not; in team-a a Ready syncing Connection
// and one whose credential the vendor rejects; in team-b a Ready probe-only Connection.
func fixtures(ctx context.Context) error {
	objs := []client.Object{
		&v1alpha1.Connector{ObjectMeta: metav1.ObjectMeta{Name: jiraConnector},
			Spec: v1alpha1.ConnectorSpec{Type: v1alpha1.ConnectorTypeJira, BaseURL: v1alpha1.EndpointURL(fake.URL()),
				RateLimit: v1alpha1.RateLimitSpec{RequestsPerSecond: 200, Burst: 200}}},
		// Not Ready: it offers OAuth2 with a client Secret that does not exist.
		&v1alpha1.Connector{ObjectMeta: metav1.ObjectMeta{Name: brokenConnector},
			Spec: v1alpha1.ConnectorSpec{Type: v1alpha1.ConnectorTypeJira, BaseURL: v1alpha1.EndpointURL(fake.URL()),
				Deployment: "datacenter", AuthMethods: []v1alpha1.AuthMethod{v1alpha1.AuthMethodOAuth2},
				OAuth2: &v1alpha1.OAuth2Spec{ClientSecretRef: v1alpha1.SecretReference{Name: "no-such-client"}}}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: "creds"},
			StringData: map[string]string{"email": "bot@example.com", "apiToken": apiToken}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: "sink-auth"},
			StringData: map[string]string{"authorization": sinkAuthorization}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: "wrong"},
			StringData: map[string]string{"email": "bot@example.com", "apiToken": "not-" + apiToken}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: otherTenant, Name: "creds"},
			StringData: map[string]string{"email": "bot@example.com", "apiToken": apiToken}},
		syncingConnection(tenant, "jira"),
		connection(otherTenant, "probe-only", "creds"),
		connection(tenant, "rejected", "wrong"),
	}
	for _, o := range objs {
		if err := k8s.Create(ctx, o); err != nil {
			return fmt.Errorf("%T %s: %w", o, o.GetName(), err)
		}
	}
	return nil
}

func connection(ns, name, secret string) *v1alpha1.Connection {
	return &v1alpha1.Connection{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.ConnectionSpec{
			ConnectorRef: v1alpha1.ConnectorReference{Name: jiraConnector},
			Auth:         v1alpha1.AuthSpec{Method: v1alpha1.AuthMethodAPIToken, SecretRef: v1alpha1.SecretReference{Name: secret}},
		},
	}
}

// syncingConnection syncs every project of the fake site to the suite's sink.
func syncingConnection(ns, name string) *v1alpha1.Connection {
	c := connection(ns, name, "creds")
	c.Spec.Sync = &v1alpha1.SyncSpec{
		Interval: &metav1.Duration{Duration: time.Hour}, // runs come from the tests' requests
		Sink: &v1alpha1.SinkSpec{URL: v1alpha1.URL(sink.URL()), BatchSize: 5,
			SecretRef: &v1alpha1.SecretReference{Name: "sink-auth"}},
	}
	return c
}

// newSyncingConnection creates a Connection of its own for a test that changes it, and
// returns once it has synced.
func newSyncingConnection(t *testing.T) client.ObjectKey {
	t.Helper()
	c := syncingConnection(tenant, "conn-"+rand.String(5))
	NewWithT(t).Expect(k8s.Create(context.Background(), c)).To(Succeed())
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), c) })
	key := client.ObjectKeyFromObject(c)
	waitSynced(t, key)
	return key
}

func waitSynced(t *testing.T, key client.ObjectKey) {
	t.Helper()
	NewWithT(t).Eventually(func() string { return conditionReason(t, key, v1alpha1.SyncedCondition) }, waitLong, 100*time.Millisecond).
		Should(Equal("True/"+v1alpha1.SucceededReason), "connection %s never synced", key)
}

func get(t *testing.T, key client.ObjectKey) *v1alpha1.Connection {
	t.Helper()
	var c v1alpha1.Connection
	NewWithT(t).Expect(k8s.Get(context.Background(), key, &c)).To(Succeed())
	return &c
}

// conditionReason is "Status/Reason" of the condition, "" when absent.
func conditionReason(t *testing.T, key client.ObjectKey, typ string) string {
	c := meta.FindStatusCondition(get(t, key).Status.Conditions, typ)
	if c == nil {
		return ""
	}
	return string(c.Status) + "/" + c.Reason
}

// kubectl runs the plugin in-process, as `kubectl connectors ARGS --kubeconfig FILE`.
func kubectl(args ...string) (stdout, stderr string, code int) {
	var out, errOut bytes.Buffer
	code = plugin.Main(append(args, "--kubeconfig", kubeconfig),
		genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	return out.String(), errOut.String(), code
}

// row returns the fields of the table line whose column col (0-based) is name.
func row(out string, col int, name string) []string {
	for line := range strings.SplitSeq(out, "\n") {
		if f := strings.Fields(line); len(f) > col && f[col] == name {
			return f
		}
	}
	return nil
}

// noSecrets fails when any of the suite's secret values shows in text.
func noSecrets(g Gomega, text string) {
	g.Expect(text).NotTo(ContainSubstring(apiToken))
	g.Expect(text).NotTo(ContainSubstring(strings.TrimPrefix(sinkAuthorization, "Bearer ")))
}

// Command dev runs connector-operator locally with nothing but Go: a real kube-apiserver
// and etcd (built from source by `make control-plane`), the CRDs, the fake Atlassian site
// seeded with demo accounts, the fake Salesforce org seeded with demo records, the samples
// in config/samples, and the manager. It writes a
// kubeconfig under bin/dev and prints commands to try. Ctrl-C stops everything.
//
//	make dev
package main

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
	"github.com/unified-connectors/connector-operator/connectors/salesforce/salesforcetest"
	"github.com/unified-connectors/connector-operator/internal/api"
	"github.com/unified-connectors/connector-operator/internal/logging"
	"github.com/unified-connectors/connector-operator/internal/manager"
	"github.com/unified-connectors/connector-operator/internal/syncer/sinktest"
)

const (
	operatorNamespace = "connector-system"
	// sinkAddr is where the demo sink listens; the samples point here.
	sinkAddr = "127.0.0.1:8091"
	// apiAddr is where the HTTP API listens.
	apiAddr = "127.0.0.1:8082"
)

func main() {
	assets := flag.String("assets", "bin/k8s", "Folder with kube-apiserver and etcd.")
	kubectl := flag.String("kubectl", "bin/k8s/kubectl", "kubectl binary used to apply the samples.")
	fakeAddr := flag.String("fake-listen", "127.0.0.1:8090", "Address of the fake Atlassian site (the samples point here).")
	salesforceAddr := flag.String("fake-salesforce-listen", "127.0.0.1:8092", "Address of the fake Salesforce org (config/samples/salesforce.yaml points here).")
	stateDir := flag.String("state-dir", "bin/dev", "Where the kubeconfig is written.")
	smoke := flag.Bool("smoke", false, "Exit once the samples reach their expected states (CI), failing after 3 minutes.")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *assets, *kubectl, *fakeAddr, *salesforceAddr, *stateDir, *smoke); err != nil {
		fmt.Fprintln(os.Stderr, "dev:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, assets, kubectl, fakeAddr, salesforceAddr, stateDir string, smoke bool) error {
	logger, err := logging.New(logging.Options{Format: "console"}, os.Stderr)
	if err != nil {
		return err
	}
	ctrl.SetLogger(logger)

	// The fake site first: the samples point at its fixed address.
	fake := atlassiantest.New()
	for _, a := range atlassiantest.DemoAccounts() {
		fake.AddAccount(a)
	}
	fake.SeedDemo()
	ln, err := net.Listen("tcp", fakeAddr)
	if err != nil {
		return fmt.Errorf("fake Atlassian site: %w (is another make dev running?)", err)
	}
	fakeSrv := &http.Server{Handler: fake.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = fakeSrv.Serve(ln) }()
	defer func() { _ = fakeSrv.Close() }()

	// The fake Salesforce org, seeded with demo Accounts, Contacts and Cases and the demo
	// connected apps (config/samples/salesforce.yaml uses the integration app).
	org := salesforcetest.New()
	org.SeedDemo()
	sfLn, err := net.Listen("tcp", salesforceAddr)
	if err != nil {
		return fmt.Errorf("fake Salesforce org: %w (is another make dev running?)", err)
	}
	sfSrv := &http.Server{Handler: org.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = sfSrv.Serve(sfLn) }()
	defer func() { _ = sfSrv.Close() }()

	// A throwaway PostgreSQL server with the demo tables (config/samples/postgresql.yaml).
	fmt.Println(">> starting PostgreSQL (demo database)")
	pg, err := startPostgres(ctx)
	if err != nil {
		return fmt.Errorf("PostgreSQL: %w (is another make dev running? make postgres installs the server)", err)
	}
	defer func() { _ = pg.Close() }()

	// A demo sink for the samples' sync (config/samples/team-a.yaml points here).
	sink := sinktest.New()
	sink.OnBatch(func(batch []sinktest.Event) {
		fmt.Printf(">> demo sink: received %d events (%d items so far)\n", len(batch), len(sink.Items()))
	})
	sinkLn, err := net.Listen("tcp", sinkAddr)
	if err != nil {
		return fmt.Errorf("demo sink: %w (is another make dev running?)", err)
	}
	sinkSrv := &http.Server{Handler: sink.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = sinkSrv.Serve(sinkLn) }()
	defer func() { _ = sinkSrv.Close() }()

	fmt.Println(">> starting kube-apiserver and etcd")
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join("config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		return fmt.Errorf("starting the control plane: %w", err)
	}
	defer func() {
		fmt.Println(">> stopping the control plane")
		_ = env.Stop()
	}()

	kubeconfig, err := writeKubeconfig(env, stateDir)
	if err != nil {
		return err
	}
	c, err := client.New(cfg, client.Options{Scheme: manager.Scheme})
	if err != nil {
		return err
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNamespace}}); err != nil {
		return err
	}
	// The demo server's CA, which the demo Connector verifies it with.
	if err := c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: operatorNamespace, Name: "demo-postgres-ca"},
		Data: map[string]string{"ca.crt": string(pg.CAPEM)}}); err != nil {
		return err
	}

	fmt.Println(">> applying config/samples")
	apply := exec.CommandContext(ctx, kubectl, "--kubeconfig", kubeconfig, "apply", "-k", "config/samples")
	apply.Stdout, apply.Stderr = os.Stdout, os.Stderr
	if err := apply.Run(); err != nil {
		return fmt.Errorf("applying the samples: %w", err)
	}

	mgr, err := manager.New(cfg, manager.Options{
		Namespace:               operatorNamespace,
		MetricsBindAddress:      "127.0.0.1:8080",
		HealthProbeBindAddress:  "127.0.0.1:8081",
		AllowInsecureVendorURLs: true, // the fake site is plain http on loopback
		// Plain HTTP, as the address is loopback; OAuth2 redirects come back here.
		API: api.Options{BindAddress: apiAddr, ExternalURL: "http://" + apiAddr},
	})
	if err != nil {
		return err
	}
	token, err := readerToken(ctx, cfg)
	if err != nil {
		return fmt.Errorf("creating the demo API reader: %w", err)
	}
	printTour(kubectl, kubeconfig, "http://"+ln.Addr().String(), "http://"+sfLn.Addr().String(), token)
	if !smoke {
		return mgr.Start(ctx)
	}

	mgrCtx, stopMgr := context.WithCancel(ctx)
	defer stopMgr()
	mgrErr := make(chan error, 1)
	go func() { mgrErr <- mgr.Start(mgrCtx) }()
	if err := waitForSamples(ctx, c, sink, demoRecords(org)+demoRows); err != nil {
		return err
	}
	if err := checkAPI(ctx, token); err != nil {
		return err
	}
	show := exec.CommandContext(ctx, kubectl, "--kubeconfig", kubeconfig, "get", "conn", "-A")
	show.Stdout, show.Stderr = os.Stdout, os.Stderr
	if err := show.Run(); err != nil {
		return err
	}
	fmt.Println(">> smoke test passed: the samples reached their expected states")
	stopMgr()
	return <-mgrErr
}

// salesforceTypes are the sObjects team-a/salesforce syncs (config/samples/salesforce.yaml).
var salesforceTypes = []string{"Account", "Contact", "Case"}

// demoRecords counts the demo org's records of salesforceTypes.
func demoRecords(org *salesforcetest.Server) int {
	n := 0
	for _, typ := range salesforceTypes {
		n += len(org.IDs(typ))
	}
	return n
}

// waitForSamples waits until each sample Connection shows the Ready reason it should,
// and the syncing ones delivered everything: team-a/jira the demo site's 2 projects × 60
// issues, team-a/salesforce the demo org's records and team-a/postgresql the demo rows
// (records), into the one demo sink.
func waitForSamples(ctx context.Context, c client.Client, sink *sinktest.Sink, records int) error {
	want := map[client.ObjectKey]string{
		{Namespace: "team-a", Name: "jira"}:       v1alpha1.SucceededReason,
		{Namespace: "team-a", Name: "wiki"}:       v1alpha1.SucceededReason,
		{Namespace: "team-b", Name: "jira"}:       v1alpha1.CredentialsRejectedReason,
		{Namespace: "team-a", Name: "salesforce"}: v1alpha1.SucceededReason,
		{Namespace: "team-a", Name: "postgresql"}: v1alpha1.SucceededReason,
	}
	wantItems := 120 + records
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	for {
		got := map[client.ObjectKey]string{}
		for key := range want {
			var conn v1alpha1.Connection
			if err := c.Get(ctx, key, &conn); err == nil {
				if ready := meta.FindStatusCondition(conn.Status.Conditions, v1alpha1.ReadyCondition); ready != nil {
					got[key] = ready.Reason
				}
			}
		}
		synced := true
		for _, name := range []string{"jira", "salesforce", "postgresql"} {
			var conn v1alpha1.Connection
			if err := c.Get(ctx, client.ObjectKey{Namespace: "team-a", Name: name}, &conn); err != nil ||
				!meta.IsStatusConditionTrue(conn.Status.Conditions, v1alpha1.SyncedCondition) {
				synced = false
			}
		}
		if maps.Equal(got, want) && synced && sink.Check().Distinct == wantItems {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("samples did not reach their expected states: want %v, have %v; the demo sink has %d of %d items", want, got, sink.Check().Distinct, wantItems)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// writeKubeconfig adds a cluster-admin user and writes its kubeconfig.
func writeKubeconfig(env *envtest.Environment, dir string) (string, error) {
	user, err := env.ControlPlane.AddUser(envtest.User{Name: "dev-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", err
	}
	data, err := user.KubeConfig()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	path, err := filepath.Abs(filepath.Join(dir, "kubeconfig"))
	if err != nil {
		return "", err
	}
	return path, os.WriteFile(path, data, 0o600)
}

// readerToken creates the ServiceAccount team-a/demo-reader, lets it read every
// Connection and its data cluster-wide, and returns a token for it (TokenRequest).
func readerToken(ctx context.Context, cfg *rest.Config) (string, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return "", err
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "demo-reader"}}
	if _, err := cs.CoreV1().ServiceAccounts("team-a").Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		return "", err
	}
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "demo-connection-reader"},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{v1alpha1.GroupVersion.Group},
			Resources: []string{"connectors", "connections", "connections/data"},
			Verbs:     []string{"get", "list"},
		}},
	}
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		return "", err
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "demo-connection-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: "team-a", Name: sa.Name}},
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		return "", err
	}
	hours := int64(12 * 3600)
	tr, err := cs.CoreV1().ServiceAccounts("team-a").CreateToken(ctx, sa.Name,
		&authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: &hours}}, metav1.CreateOptions{})
	if err != nil {
		return "", err
	}
	return tr.Status.Token, nil
}

// checkAPI calls the API as the demo reader: the Connections list and a search must
// answer ok.
func checkAPI(ctx context.Context, token string) error {
	for _, path := range []string{"/api/v1/namespaces/team-a/connections", "/api/v1/search?q=release"} {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+apiAddr+path, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("API %s: %w", path, err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("API %s answered %d", path, resp.StatusCode)
		}
		fmt.Printf(">> API %s: %d\n", path, resp.StatusCode)
	}
	return nil
}

func printTour(kubectl, kubeconfig, fakeURL, salesforceURL, token string) {
	k, _ := filepath.Abs(kubectl)
	fmt.Printf(`
================================================================================
connector-operator is running against a local control plane.

  kubeconfig:          %[2]s
  fake Atlassian site: %[3]s (demo accounts: alice@example.com / demo-jira-token)
  fake Salesforce org: %[6]s (demo connected app: %[7]s / %[8]s)
  PostgreSQL:          postgres://127.0.0.1:8093/demo (role demo_reader / demo-reader-password; TLS, CA in connector-system/demo-postgres-ca)
  demo sink:           http://127.0.0.1:8091 (team-a/jira, team-a/salesforce and team-a/postgresql sync into it)

Try, in another terminal:
  export KUBECONFIG=%[2]s
  %[1]s get cnr
  %[1]s get conn -A
  %[1]s describe conn -n team-b jira        # the sample with a wrong token
  %[1]s get conn -n team-a jira -o yaml
  %[1]s annotate conn -n team-a jira --overwrite connectors.unified.dev/requested-at="$(date +%%s)"
  %[1]s get events -A
  curl -u alice@example.com:demo-jira-token %[3]s/rest/api/3/myself
  %[1]s get conn -n team-a salesforce -o yaml
  %[1]s get conn -n team-a postgresql -o yaml
  PGPASSWORD=demo-reader-password psql "host=127.0.0.1 port=8093 dbname=demo user=demo_reader sslmode=require" -c 'TABLE tickets LIMIT 3'

The HTTP API (http://%[5]s, docs at http://%[5]s/docs), as team-a/demo-reader:
  export TOKEN=%[4]s
  curl -H "Authorization: Bearer $TOKEN" http://%[5]s/api/v1/connectors
  curl -H "Authorization: Bearer $TOKEN" http://%[5]s/api/v1/namespaces/team-a/connections
  curl -H "Authorization: Bearer $TOKEN" 'http://%[5]s/api/v1/search?q=release&limit=5'
  curl -H "Authorization: Bearer $TOKEN" 'http://%[5]s/api/v1/namespaces/team-a/connections/jira/items?container=PRJA&limit=3'
  curl -H "Authorization: Bearer $TOKEN" 'http://%[5]s/api/v1/namespaces/team-a/connections/salesforce/items?container=Case&limit=3'
  curl -H "Authorization: Bearer $TOKEN" 'http://%[5]s/api/v1/search?q=invoice&kind=row'

Ctrl-C stops everything.
================================================================================
`, k, kubeconfig, fakeURL, token, apiAddr, salesforceURL,
		salesforcetest.DemoIntegrationClientID, salesforcetest.DemoIntegrationClientSecret)
}

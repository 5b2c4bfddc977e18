// Command dev runs connector-operator locally with nothing but Go: a real kube-apiserver
// and etcd (built from source by `make control-plane`), the CRDs, the fake Atlassian site
// seeded with demo accounts, the samples in config/samples, and the manager. It writes a
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

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
	"github.com/unified-connectors/connector-operator/internal/logging"
	"github.com/unified-connectors/connector-operator/internal/manager"
	"github.com/unified-connectors/connector-operator/internal/syncer/sinktest"
)

const (
	operatorNamespace = "connector-system"
	// sinkAddr is where the demo sink listens; the samples point here.
	sinkAddr = "127.0.0.1:8091"
)

func main() {
	assets := flag.String("assets", "bin/k8s", "Folder with kube-apiserver and etcd.")
	kubectl := flag.String("kubectl", "bin/k8s/kubectl", "kubectl binary used to apply the samples.")
	fakeAddr := flag.String("fake-listen", "127.0.0.1:8090", "Address of the fake Atlassian site (the samples point here).")
	stateDir := flag.String("state-dir", "bin/dev", "Where the kubeconfig is written.")
	smoke := flag.Bool("smoke", false, "Exit once the samples reach their expected states (CI), failing after 3 minutes.")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *assets, *kubectl, *fakeAddr, *stateDir, *smoke); err != nil {
		fmt.Fprintln(os.Stderr, "dev:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, assets, kubectl, fakeAddr, stateDir string, smoke bool) error {
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
	defer fakeSrv.Close()

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
	defer sinkSrv.Close()

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
	})
	if err != nil {
		return err
	}
	printTour(kubectl, kubeconfig, "http://"+ln.Addr().String())
	if !smoke {
		return mgr.Start(ctx)
	}

	mgrCtx, stopMgr := context.WithCancel(ctx)
	defer stopMgr()
	mgrErr := make(chan error, 1)
	go func() { mgrErr <- mgr.Start(mgrCtx) }()
	if err := waitForSamples(ctx, c, sink); err != nil {
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

// waitForSamples waits until each sample Connection shows the Ready reason it should.
func waitForSamples(ctx context.Context, c client.Client, sink *sinktest.Sink) error {
	want := map[client.ObjectKey]string{
		{Namespace: "team-a", Name: "jira"}: v1alpha1.SucceededReason,
		{Namespace: "team-a", Name: "wiki"}: v1alpha1.SucceededReason,
		{Namespace: "team-b", Name: "jira"}: v1alpha1.CredentialsRejectedReason,
	}
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
		var synced bool
		var conn v1alpha1.Connection
		if err := c.Get(ctx, client.ObjectKey{Namespace: "team-a", Name: "jira"}, &conn); err == nil {
			synced = meta.IsStatusConditionTrue(conn.Status.Conditions, v1alpha1.SyncedCondition)
		}
		// The demo site has 2 projects × 60 issues; team-a/jira syncs them all.
		if maps.Equal(got, want) && synced && sink.Check().Distinct == 120 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("samples did not reach their expected states: want %v, have %v; team-a/jira synced %d items", want, got, sink.Check().Distinct)
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

func printTour(kubectl, kubeconfig, fakeURL string) {
	k, _ := filepath.Abs(kubectl)
	fmt.Printf(`
================================================================================
connector-operator is running against a local control plane.

  kubeconfig:          %[2]s
  fake Atlassian site: %[3]s (demo accounts: alice@example.com / demo-jira-token)
  demo sink:           http://127.0.0.1:8091 (team-a/jira syncs every project into it)

Try, in another terminal:
  export KUBECONFIG=%[2]s
  %[1]s get cnr
  %[1]s get conn -A
  %[1]s describe conn -n team-b jira        # the sample with a wrong token
  %[1]s get conn -n team-a jira -o yaml
  %[1]s annotate conn -n team-a jira --overwrite connectors.unified.dev/requested-at="$(date +%%s)"
  %[1]s get events -A
  curl -u alice@example.com:demo-jira-token %[3]s/rest/api/3/myself

Ctrl-C stops everything.
================================================================================
`, k, kubeconfig, fakeURL)
}

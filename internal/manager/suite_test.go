package manager_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/unified-connectors/connector-operator/internal/manager"
	"github.com/unified-connectors/connector-operator/internal/testenv"
)

// One control plane for the package, started on first use; the manager runs as the
// operator's ServiceAccount (testenv's ManagerConfig).
var (
	env     *testenv.Environment
	envOnce sync.Once
	envErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping the control plane:", err)
	}
	os.Exit(code)
}

func controlPlane(t testing.TB) *testenv.Environment {
	t.Helper()
	envOnce.Do(func() { env, envErr = testenv.Start(testenv.Options{Scheme: manager.Scheme}) })
	if envErr != nil {
		t.Fatalf("control plane: %v", envErr)
	}
	return env
}

// startManager runs the manager, as the operator's ServiceAccount, until the test ends.
func startManager(t testing.TB, opts manager.Options) ctrl.Manager {
	t.Helper()
	e := controlPlane(t)
	opts.Namespace, opts.MetricsBindAddress, opts.HealthProbeBindAddress = e.Namespace, "0", "0"
	opts.Controllers.SkipNameValidation = true // one manager per test
	opts.Controllers.RetryMinBackoff, opts.Controllers.RetryMaxBackoff = 100*time.Millisecond, time.Second
	mgr, err := manager.New(e.ManagerConfig, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			t.Errorf("manager: %v", err)
		}
	}()
	refusedBefore := len(e.Refused())
	t.Cleanup(func() {
		cancel()
		<-done
		if refused := e.Refused()[refusedBefore:]; len(refused) > 0 {
			t.Errorf("the API server refused the manager (config/rbac lacks a verb the code needs): %q", refused)
		}
	})
	if opts.LeaderElection {
		select {
		case <-mgr.Elected():
		case <-time.After(30 * time.Second):
			t.Fatal("the manager was not elected leader within 30s")
		}
	}
	return mgr
}

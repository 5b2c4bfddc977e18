package controllers_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	eventsv1 "k8s.io/api/events/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/controllers"
	"github.com/unified-connectors/connector-operator/internal/leakcheck"
	"github.com/unified-connectors/connector-operator/internal/logging"
	"github.com/unified-connectors/connector-operator/internal/manager"
	"github.com/unified-connectors/connector-operator/internal/testenv"
)

const operatorNamespace = "connector-system"

var (
	testEnv *testenv.Environment
	// k8s is a direct admin client: assertions never read a stale cache. The manager
	// itself acts as the operator's ServiceAccount, with only the RBAC config/rbac ships.
	k8s     client.Client
	cancel  context.CancelFunc
	logs    = &leakcheck.Buffer{}
	secrets = &leakcheck.Secrets{}
)

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Controllers Suite")
}

var _ = BeforeSuite(func() {
	// Capture the manager's logs at every verbosity to search them for secrets.
	logger, err := logging.New(logging.Options{Format: "json", Verbosity: 10}, io.MultiWriter(logs, GinkgoWriter))
	Expect(err).NotTo(HaveOccurred())
	ctrl.SetLogger(logger)

	testEnv, err = testenv.Start(testenv.Options{Namespace: operatorNamespace, Scheme: manager.Scheme})
	Expect(err).NotTo(HaveOccurred())
	k8s = testEnv.Client

	mgr, err := manager.New(testEnv.ManagerConfig, manager.Options{
		Namespace:               operatorNamespace,
		MetricsBindAddress:      "0",
		HealthProbeBindAddress:  "0",
		AllowInsecureVendorURLs: true,
		// Short backoff so transient-failure specs recover quickly once the fake does.
		Controllers: controllers.ControllerOptions{RetryMinBackoff: 100 * time.Millisecond, RetryMaxBackoff: time.Second},
	})
	Expect(err).NotTo(HaveOccurred())

	var ctx context.Context
	ctx, cancel = context.WithCancel(context.Background())
	go func() {
		defer GinkgoRecover()
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
})

var _ = AfterSuite(func() {
	// No secret value may appear in any log line, Event or status written during the
	// suite. Read Events and status before stopping the API server.
	if k8s != nil {
		ctx := context.Background()
		var events eventsv1.EventList
		Expect(k8s.List(ctx, &events)).To(Succeed())
		var conns v1alpha1.ConnectionList
		Expect(k8s.List(ctx, &conns)).To(Succeed())
		var cnrs v1alpha1.ConnectorList
		Expect(k8s.List(ctx, &cnrs)).To(Succeed())
		Expect(events.Items).NotTo(BeEmpty(), "the suite should have produced Events to check")

		var written strings.Builder
		for _, e := range events.Items {
			fmt.Fprintf(&written, "%s %s\n", e.Reason, e.Note)
		}
		for _, c := range conns.Items {
			fmt.Fprintf(&written, "%+v\n", c.Status)
		}
		for _, c := range cnrs.Items {
			fmt.Fprintf(&written, "%+v\n", c.Status)
		}
		cancel()
		// Some refusals are quiet (an Event, a retried write); none is expected.
		Expect(testEnv.Refused()).To(BeEmpty(), "the API server refused the manager: config/rbac lacks a verb the code needs")
		Expect(logs.String()).NotTo(BeEmpty())
		leaks := leakcheck.Find(map[string]string{"logs": logs.String(), "Events and status": written.String()}, secrets.All())
		Expect(leaks).To(BeEmpty(), "secret values leaked")
	}
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

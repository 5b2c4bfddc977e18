package controllers_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/controllers"
	"github.com/unified-connectors/connector-operator/internal/logging"
	"github.com/unified-connectors/connector-operator/internal/manager"
)

const operatorNamespace = "connector-system"

var (
	testEnv *envtest.Environment
	// k8s is a direct client: assertions never read a stale cache.
	k8s     client.Client
	cancel  context.CancelFunc
	logs    = &syncBuffer{}
	secrets = &secretValues{}
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

	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := testEnv.Start()
	Expect(err).NotTo(HaveOccurred())

	k8s, err = client.New(cfg, client.Options{Scheme: manager.Scheme})
	Expect(err).NotTo(HaveOccurred())
	Expect(k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNamespace}})).To(Succeed())

	mgr, err := manager.New(cfg, manager.Options{
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
		Expect(logs.String()).NotTo(BeEmpty())
		for _, v := range secrets.all() {
			// Any 12-character window: client-go's hex dumps of bodies split values
			// across lines, 16 characters at a time.
			for i := 0; i+12 <= len(v); i++ {
				Expect(logs.String()).NotTo(ContainSubstring(v[i:i+12]), "a secret value leaked into the logs")
				Expect(written.String()).NotTo(ContainSubstring(v[i:i+12]), "a secret value leaked into Events or status")
			}
		}
	}
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

// syncBuffer is a goroutine-safe bytes.Buffer for captured logs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// secretValues remembers every credential the suite hands out.
type secretValues struct {
	mu     sync.Mutex
	values []string
}

// token returns a fresh, unguessable credential value and remembers it.
func (s *secretValues) token(prefix string) string {
	v := prefix + "-" + rand.String(24)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.values = append(s.values, v)
	return v
}

// remember adds values handed out by someone else (the fake's OAuth2 server).
func (s *secretValues) remember(values ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.values = append(s.values, values...)
}

func (s *secretValues) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.values...)
}

// Package manager assembles the operator: scheme, cache rules, controllers and health
// checks. main.go, the dev environment and the envtest suites all build the manager here,
// so that what is tested is what runs.
package manager

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/controllers"

	// Vendor connectors register themselves.
	_ "github.com/unified-connectors/connector-operator/connectors/confluence"
	_ "github.com/unified-connectors/connector-operator/connectors/jira"
)

// Scheme knows the built-in kinds and ours.
var Scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(Scheme))
	utilruntime.Must(v1alpha1.AddToScheme(Scheme))
}

// Options configure the manager.
type Options struct {
	// Namespace is the operator's own namespace (OAuth2 client Secrets, leader lease).
	Namespace string
	// MetricsBindAddress and HealthProbeBindAddress; "0" disables.
	MetricsBindAddress     string
	HealthProbeBindAddress string
	LeaderElection         bool
	// AllowInsecureVendorURLs lifts the https-only and address rules for vendors and sinks.
	// Dev and tests only.
	AllowInsecureVendorURLs bool
	// VendorHTTP sends vendor requests; nil means the connectors' default client.
	VendorHTTP connectors.Doer
	// Controllers tunes the controllers.
	Controllers controllers.ControllerOptions
}

// New returns a manager with every controller registered.
func New(cfg *rest.Config, opts Options) (ctrl.Manager, error) {
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  Scheme,
		Metrics:                 metricsserver.Options{BindAddress: opts.MetricsBindAddress},
		HealthProbeBindAddress:  opts.HealthProbeBindAddress,
		LeaderElection:          opts.LeaderElection,
		LeaderElectionID:        "connector-operator.connectors.unified.dev",
		LeaderElectionNamespace: opts.Namespace,
		// Release the lease on shutdown so a successor takes over at once.
		LeaderElectionReleaseOnCancel: true,
		GracefulShutdownTimeout:       ptr(30 * time.Second),
		Client: client.Options{Cache: &client.CacheOptions{
			// Never cache Secret data: reads go live to the API server.
			DisableFor: []client.Object{&corev1.Secret{}},
		}},
	})
	if err != nil {
		return nil, fmt.Errorf("creating manager: %w", err)
	}
	recorder := mgr.GetEventRecorder("connector-operator")
	conn := &controllers.ConnectionReconciler{
		Client:                  mgr.GetClient(),
		APIReader:               mgr.GetAPIReader(),
		Recorder:                recorder,
		HTTP:                    opts.VendorHTTP,
		AllowInsecureVendorURLs: opts.AllowInsecureVendorURLs,
	}
	if err := conn.SetupWithManager(mgr, opts.Controllers); err != nil {
		return nil, fmt.Errorf("setting up Connection controller: %w", err)
	}
	cnr := &controllers.ConnectorReconciler{
		Client:                  mgr.GetClient(),
		APIReader:               mgr.GetAPIReader(),
		Recorder:                recorder,
		Namespace:               opts.Namespace,
		AllowInsecureVendorURLs: opts.AllowInsecureVendorURLs,
	}
	if err := cnr.SetupWithManager(mgr, opts.Controllers); err != nil {
		return nil, fmt.Errorf("setting up Connector controller: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return nil, err
	}
	return mgr, nil
}

func ptr[T any](v T) *T { return &v }

// Package manager assembles the operator: scheme, cache rules, controllers and health
// checks. main.go, the dev environment and the envtest suites all build the manager here,
// so that what is tested is what runs.
package manager

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/controllers"
	"github.com/unified-connectors/connector-operator/internal/api"
	"github.com/unified-connectors/connector-operator/internal/egress"
	"github.com/unified-connectors/connector-operator/internal/oauth"
	"github.com/unified-connectors/connector-operator/internal/syncer"
	"github.com/unified-connectors/connector-operator/internal/vendorclient"
	"github.com/unified-connectors/connector-operator/internal/vendorhttp"
)

// Scheme knows the built-in kinds and ours.
var Scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(Scheme))
	utilruntime.Must(v1alpha1.AddToScheme(Scheme))
}

// Leader election, in the operator's own namespace only (namespace=system is renamed by
// config/default and the chart): controller-runtime's Lease lock reads, creates and
// renews its Lease (get, create, update; never list, watch or delete), and records its
// LeaderElection Events through the core Events API (create, patch).
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=system,resources=leases,verbs=get;create;update
// +kubebuilder:rbac:groups="",namespace=system,resources=events,verbs=create;patch

// Options configure the manager.
type Options struct {
	// Namespace is the operator's own namespace (OAuth2 client Secrets, leader lease).
	Namespace string
	// MetricsBindAddress and HealthProbeBindAddress; "0" disables.
	MetricsBindAddress     string
	HealthProbeBindAddress string
	LeaderElection         bool
	// LeaderElectionID names the leader Lease; empty means DefaultLeaderElectionID, with a
	// hash of WatchLabelSelector appended when one is set (LeaseName).
	LeaderElectionID string
	// LeaseDuration, RenewDeadline and RetryPeriod tune leader election; 0 means
	// controller-runtime's 15s, 10s and 2s. A follower takes over at most LeaseDuration
	// plus RetryPeriod after the leader's last renewal.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// WatchLabelSelector shards the operator (Flux's --watch-label-selector): this
	// instance reconciles, probes and syncs only the Connections whose labels it matches,
	// for example "sharding.connectors.unified.dev/key=shard1", or
	// "!sharding.connectors.unified.dev/key" for the instance that takes the rest. The
	// Connector controller and the HTTP API still read every Connection (docs/sharding.md).
	// Empty means every Connection.
	WatchLabelSelector string
	// AllowInsecureVendorURLs lifts the https-only and address rules for vendors and sinks.
	// Dev and tests only.
	AllowInsecureVendorURLs bool
	// Holder names this replica in OAuth2 refresh locks; empty means the host name.
	Holder string
	// Controllers tunes the controllers.
	Controllers controllers.ControllerOptions
	// KubeAPIQPS and KubeAPIBurst bound the manager's requests to the API server, per
	// resource (controller-runtime gives each resource its own token bucket); 0 keeps
	// the rest.Config's (main.go passes DefaultKubeAPIQPS and DefaultKubeAPIBurst).
	KubeAPIQPS   float32
	KubeAPIBurst int
	// SyncPersistEvery throttles cursor writes during a sync; 0 means the engine default.
	SyncPersistEvery time.Duration
	// SyncPersistEveryItems writes cursors at least every this many items; 0 means the
	// engine default.
	SyncPersistEveryItems int
	// API configures the HTTP API, served on every replica; an empty BindAddress (or "0")
	// and no Listener disable it.
	API api.Options
}

// Client-side limits of the manager's API requests (flags --kube-api-qps and
// --kube-api-burst). ctrl.GetConfigOrDie's 20/30 held 10,000 Connections' status writes
// to 20 a second (issue 9's scale benchmark, test/scale); the API server's Priority and
// Fairness is what protects it from a busy operator, these only bound a runaway one.
const (
	DefaultKubeAPIQPS   = 200
	DefaultKubeAPIBurst = 400
)

// New returns a manager with every controller registered.
func New(cfg *rest.Config, opts Options) (ctrl.Manager, error) {
	if opts.KubeAPIQPS != 0 || opts.KubeAPIBurst != 0 {
		cfg = rest.CopyConfig(cfg)
		if opts.KubeAPIQPS != 0 {
			cfg.QPS = opts.KubeAPIQPS
		}
		if opts.KubeAPIBurst != 0 {
			cfg.Burst = opts.KubeAPIBurst
		}
	}
	shard, err := WatchSelector(opts.WatchLabelSelector)
	if err != nil {
		return nil, err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  Scheme,
		Metrics:                 metricsserver.Options{BindAddress: opts.MetricsBindAddress},
		HealthProbeBindAddress:  opts.HealthProbeBindAddress,
		LeaderElection:          opts.LeaderElection,
		LeaderElectionID:        LeaseName(opts.LeaderElectionID, shard),
		LeaderElectionNamespace: opts.Namespace,
		LeaseDuration:           positive(opts.LeaseDuration),
		RenewDeadline:           positive(opts.RenewDeadline),
		RetryPeriod:             positive(opts.RetryPeriod),
		// Release the lease on shutdown so a successor takes over at once.
		LeaderElectionReleaseOnCancel: true,
		GracefulShutdownTimeout:       ptr(30 * time.Second),
		Client: client.Options{Cache: &client.CacheOptions{
			// Never cache Secret data: reads go live to the API server.
			DisableFor: []client.Object{&corev1.Secret{}},
		}},
		Cache: cache.Options{
			// Nothing reads managedFields; they are often the larger part of an object.
			DefaultTransform: cache.TransformStripManagedFields(),
			ByObject: map[client.Object]cache.ByObject{
				// The Secret watches are metadata only, but metadata can carry the data.
				&corev1.Secret{}: {Transform: stripSecretMetadata},
			},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("creating manager: %w", err)
	}
	recorder := mgr.GetEventRecorder("connector-operator")
	vendorEgress := egress.Vendor.WithAllowInsecure(opts.AllowInsecureVendorURLs)
	holder := opts.Holder
	if holder == "" {
		holder, _ = os.Hostname()
	}
	vendors := &vendorclient.Factory{
		Reader:    mgr.GetAPIReader(),
		Vendors:   &vendorhttp.Pool{Egress: vendorEgress},
		Refresher: &oauth.Refresher{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Holder: holder},
		Namespace: opts.Namespace,
		// Databases follow the sink policy (DESIGN.md, Egress).
		DatabaseEgress: egress.Sink.WithAllowInsecure(opts.AllowInsecureVendorURLs),
	}
	conn := &controllers.ConnectionReconciler{
		Client:   mgr.GetClient(),
		Recorder: recorder,
		Vendors:  vendors,
		// The Connection cache stays whole (the Connector counts and the API need every
		// Connection); only reconciles, probes and syncs are sharded.
		Shard: shard,
	}
	engine := &syncer.Engine{
		Client:     mgr.GetClient(),
		Reader:     mgr.GetAPIReader(),
		Vendors:    vendors,
		SinkEgress: egress.Sink.WithAllowInsecure(opts.AllowInsecureVendorURLs),
		Notify:     conn.NotifySync,
	}
	engine.PersistEvery = opts.SyncPersistEvery
	engine.PersistEveryItems = opts.SyncPersistEveryItems
	conn.Sync = engine
	if err := conn.SetupWithManager(mgr, opts.Controllers); err != nil {
		return nil, fmt.Errorf("setting up Connection controller: %w", err)
	}
	// Leader only: a long sync runs in the engine's goroutines, never in a reconcile worker.
	if err := mgr.Add(engine); err != nil {
		return nil, err
	}
	cnr := &controllers.ConnectorReconciler{
		Client:    mgr.GetClient(),
		Recorder:  recorder,
		Namespace: opts.Namespace,
		Vendors:   vendors,
	}
	if err := cnr.SetupWithManager(mgr, opts.Controllers); err != nil {
		return nil, fmt.Errorf("setting up Connector controller: %w", err)
	}
	if opts.API.Enabled() {
		srv, err := api.New(api.Deps{
			Client:    mgr.GetClient(),
			Reader:    mgr.GetCache(), // every replica answers from memory
			APIReader: mgr.GetAPIReader(),
			Vendors:   vendors,
			Namespace: opts.Namespace,
			Logger:    mgr.GetLogger().WithName("api"),
			// Any replica receives webhooks; the annotation it writes reaches the leader.
			Webhooks: &syncer.WebhookHandler{Client: mgr.GetClient(), Reader: mgr.GetAPIReader()},
		}, opts.API)
		if err != nil {
			return nil, fmt.Errorf("setting up the HTTP API: %w", err)
		}
		if err := mgr.Add(srv); err != nil {
			return nil, err
		}
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return nil, err
	}
	return mgr, nil
}

// stripSecretMetadata is the cache transform of Secrets (watched as metadata only): it drops
// kubectl's last-applied-configuration annotation, which holds the whole Secret, data
// included, for anything applied with kubectl, and managedFields, so that no Secret data
// stays in the manager's memory.
func stripSecretMetadata(in any) (any, error) {
	obj, err := meta.Accessor(in)
	if err != nil {
		return in, nil // a tombstone: its object was transformed when it was stored
	}
	if ann := obj.GetAnnotations(); ann != nil {
		if _, ok := ann[corev1.LastAppliedConfigAnnotation]; ok {
			delete(ann, corev1.LastAppliedConfigAnnotation)
			obj.SetAnnotations(ann)
		}
	}
	if obj.GetManagedFields() != nil {
		obj.SetManagedFields(nil)
	}
	return in, nil
}

func ptr[T any](v T) *T { return &v }

// DefaultLeaderElectionID is the leader Lease of an operator that is not sharded.
const DefaultLeaderElectionID = "connector-operator.connectors.unified.dev"

// ShardLabel is the label that shards Connections by convention (Flux's is
// sharding.fluxcd.io/key): shard instances run with --watch-label-selector
// "ShardLabel=<shard>", the main one with "!ShardLabel".
const ShardLabel = "sharding.connectors.unified.dev/key"

// WatchSelector parses a --watch-label-selector as Flux does (metav1.ParseToLabelSelector):
// "key=value", "key in (a,b)", "!key", "key", comma-separated. Empty selects everything.
func WatchSelector(s string) (labels.Selector, error) {
	if strings.TrimSpace(s) == "" {
		return labels.Everything(), nil
	}
	ls, err := metav1.ParseToLabelSelector(s)
	if err != nil {
		return nil, fmt.Errorf("--watch-label-selector %q: %w", s, err)
	}
	sel, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		return nil, fmt.Errorf("--watch-label-selector %q: %w", s, err)
	}
	return sel, nil
}

// LeaseName is the leader Lease of an instance: id when set; else DefaultLeaderElectionID,
// followed, for a sharded instance, by the first 8 hex digits of the SHA-256 of the
// selector in canonical form (labels.Selector.String sorts its requirements), so that the
// replicas of one shard share a Lease, every shard has its own, and two spellings of one
// selector are the same shard.
func LeaseName(id string, shard labels.Selector) string {
	if id != "" {
		return id
	}
	if shard == nil || shard.Empty() {
		return DefaultLeaderElectionID
	}
	sum := sha256.Sum256([]byte(shard.String()))
	return DefaultLeaderElectionID + "-" + hex.EncodeToString(sum[:4])
}

// positive is nil for 0 (controller-runtime's default) and &d otherwise.
func positive(d time.Duration) *time.Duration {
	if d <= 0 {
		return nil
	}
	return &d
}

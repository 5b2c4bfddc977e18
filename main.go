// Command manager runs connector-operator: the Connector and Connection controllers.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/unified-connectors/connector-operator/controllers"
	"github.com/unified-connectors/connector-operator/internal/api"
	"github.com/unified-connectors/connector-operator/internal/logging"
	"github.com/unified-connectors/connector-operator/internal/manager"
	"github.com/unified-connectors/connector-operator/internal/syncer"
)

func main() {
	var (
		opts    manager.Options
		logOpts logging.Options
	)
	flag.StringVar(&opts.MetricsBindAddress, "metrics-bind-address", ":8080", "Address of the Prometheus metrics endpoint; 0 disables it.")
	flag.StringVar(&opts.HealthProbeBindAddress, "health-probe-bind-address", ":8081", "Address of the health probes.")
	flag.BoolVar(&opts.LeaderElection, "leader-elect", true, "Elect a leader so that only one replica syncs.")
	flag.StringVar(&opts.LeaderElectionID, "leader-election-id", "", "Name of the leader Lease; empty means "+manager.DefaultLeaderElectionID+", with a hash of --watch-label-selector appended when it is set.")
	flag.DurationVar(&opts.LeaseDuration, "leader-election-lease-duration", 15*time.Second, "How long followers wait after the leader's last renewal before taking the lease.")
	flag.DurationVar(&opts.RenewDeadline, "leader-election-renew-deadline", 10*time.Second, "How long the leader retries renewing before it gives up leading (and exits).")
	flag.DurationVar(&opts.RetryPeriod, "leader-election-retry-period", 2*time.Second, "How often candidates try to acquire or renew the lease.")
	flag.StringVar(&opts.WatchLabelSelector, "watch-label-selector", "", "Reconcile and sync only the Connections matching this label selector, e.g. '"+manager.ShardLabel+"=shard1' for a shard or '!"+manager.ShardLabel+"' for the main instance (docs/sharding.md). Each selector elects its own leader.")
	flag.DurationVar(&opts.SyncPersistEvery, "sync-persist-interval", syncer.DefaultPersistEvery, "During a sync, write the cursors at least this often: a crash repeats at most this long a window.")
	flag.IntVar(&opts.SyncPersistEveryItems, "sync-persist-items", syncer.DefaultPersistEveryItems, "During a sync, write the cursors at least every this many acknowledged items: a crash repeats at most this many items plus the batch in flight.")
	flag.StringVar(&opts.Namespace, "namespace", envOr("POD_NAMESPACE", "connector-system"), "The operator's own namespace (OAuth2 client Secrets, leader lease).")
	flag.BoolVar(&opts.AllowInsecureVendorURLs, "allow-insecure-vendor-urls", false, "Allow http and loopback vendors and sinks. For development and tests only; never in production.")
	flag.IntVar(&opts.Controllers.MaxConcurrentReconciles, "max-concurrent-reconciles", controllers.DefaultMaxConcurrentReconciles, "Workers per controller (they also bound the probes in flight).")
	var qps float64
	flag.Float64Var(&qps, "kube-api-qps", manager.DefaultKubeAPIQPS, "Requests a second to the Kubernetes API server, per resource.")
	flag.IntVar(&opts.KubeAPIBurst, "kube-api-burst", manager.DefaultKubeAPIBurst, "Burst of requests to the Kubernetes API server, per resource.")
	flag.StringVar(&opts.API.BindAddress, "api-bind-address", api.DefaultBindAddress, "Address of the HTTP API; 0 disables it.")
	flag.StringVar(&opts.API.CertDir, "api-cert-dir", "", "Directory with tls.crt and tls.key for the HTTP API; without it the API serves a self-signed certificate (plain HTTP on a loopback address).")
	flag.BoolVar(&opts.API.InsecurePlainHTTP, "api-insecure-plain-http", false, "Serve the HTTP API over plain HTTP on any address, behind a TLS-terminating proxy only.")
	flag.StringVar(&opts.API.ExternalURL, "api-external-url", "", "The HTTP API's root as browsers and vendors reach it (OAuth2 redirect URI: <url>/oauth/v1/callback); empty means the root the authorize request came to.")
	flag.StringVar(&logOpts.Format, "log-format", "json", "Log format: json or console.")
	flag.IntVar(&logOpts.Verbosity, "v", 0, "Log verbosity: 0 info, 1 debug.")
	flag.Parse()
	opts.KubeAPIQPS = float32(qps)

	logger, err := logging.New(logOpts, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctrl.SetLogger(logger)
	if opts.AllowInsecureVendorURLs {
		logger.Info("WARNING: --allow-insecure-vendor-urls is set; http and loopback vendors are allowed. Never use it in production.")
	}

	mgr, err := manager.New(ctrl.GetConfigOrDie(), opts)
	if err != nil {
		logger.Error(err, "unable to create the manager")
		os.Exit(1)
	}
	logger.Info("starting manager")
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		logger.Error(err, "manager stopped with an error")
		os.Exit(1)
	}
}

func envOr(key, fallback string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return fallback
}

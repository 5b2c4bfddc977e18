// Command manager runs connector-operator: the Connector and Connection controllers.
package main

import (
	"flag"
	"fmt"
	"os"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/unified-connectors/connector-operator/internal/api"
	"github.com/unified-connectors/connector-operator/internal/logging"
	"github.com/unified-connectors/connector-operator/internal/manager"
)

func main() {
	var (
		opts    manager.Options
		logOpts logging.Options
	)
	flag.StringVar(&opts.MetricsBindAddress, "metrics-bind-address", ":8080", "Address of the Prometheus metrics endpoint; 0 disables it.")
	flag.StringVar(&opts.HealthProbeBindAddress, "health-probe-bind-address", ":8081", "Address of the health probes.")
	flag.BoolVar(&opts.LeaderElection, "leader-elect", true, "Elect a leader so that only one replica syncs.")
	flag.StringVar(&opts.Namespace, "namespace", envOr("POD_NAMESPACE", "connector-system"), "The operator's own namespace (OAuth2 client Secrets, leader lease).")
	flag.BoolVar(&opts.AllowInsecureVendorURLs, "allow-insecure-vendor-urls", false, "Allow http and loopback vendors and sinks. For development and tests only; never in production.")
	flag.IntVar(&opts.Controllers.MaxConcurrentReconciles, "max-concurrent-reconciles", 4, "Workers per controller.")
	flag.StringVar(&opts.API.BindAddress, "api-bind-address", api.DefaultBindAddress, "Address of the HTTP API; 0 disables it.")
	flag.StringVar(&opts.API.CertDir, "api-cert-dir", "", "Directory with tls.crt and tls.key for the HTTP API; without it the API serves a self-signed certificate (plain HTTP on a loopback address).")
	flag.BoolVar(&opts.API.InsecurePlainHTTP, "api-insecure-plain-http", false, "Serve the HTTP API over plain HTTP on any address, behind a TLS-terminating proxy only.")
	flag.StringVar(&opts.API.ExternalURL, "api-external-url", "", "The HTTP API's root as browsers and vendors reach it (OAuth2 redirect URI: <url>/oauth/v1/callback); empty means the root the authorize request came to.")
	flag.StringVar(&logOpts.Format, "log-format", "json", "Log format: json or console.")
	flag.IntVar(&logOpts.Verbosity, "v", 0, "Log verbosity: 0 info, 1 debug.")
	flag.Parse()

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

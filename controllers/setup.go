// Package controllers holds the reconcilers of the Connector and Connection kinds.
package controllers

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
)

// DefaultMaxConcurrentReconciles is the workers of each controller. A Connection's
// reconcile mostly waits (a live Secret GET, the vendor's identity call, a status patch):
// with 4 workers and a vendor answering in 50 ms, 10,000 new Connections took minutes
// to become Ready (issue 9's scale benchmark, test/scale). The workers also bound the
// probes in flight at a leader start or a Connector edit.
const DefaultMaxConcurrentReconciles = 16

// ControllerOptions tune the controllers.
type ControllerOptions struct {
	// MaxConcurrentReconciles per controller; 0 means DefaultMaxConcurrentReconciles.
	MaxConcurrentReconciles int
	// RetryMinBackoff and RetryMaxBackoff bound the exponential backoff of transient
	// errors; 0 means 1s and 5m.
	RetryMinBackoff, RetryMaxBackoff time.Duration
	// SkipNameValidation allows several managers in one process (tests that restart the
	// manager); controller names are otherwise unique per process.
	SkipNameValidation bool
}

func (o ControllerOptions) controllerOptions() controller.Options {
	workers, minB, maxB := o.MaxConcurrentReconciles, o.RetryMinBackoff, o.RetryMaxBackoff
	if workers == 0 {
		workers = DefaultMaxConcurrentReconciles
	}
	if minB == 0 {
		minB = time.Second
	}
	if maxB == 0 {
		maxB = 5 * time.Minute
	}
	return controller.Options{
		SkipNameValidation:      &o.SkipNameValidation,
		MaxConcurrentReconciles: workers,
		RateLimiter:             workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](minB, maxB),
	}
}

// Field indexes over Connections.
const (
	indexConnectorRef = "spec.connectorRef.name"
	indexSecretRefs   = "spec.secretRefs"
)

func indexConnections(ctx context.Context, idx client.FieldIndexer) error {
	if err := idx.IndexField(ctx, &v1alpha1.Connection{}, indexConnectorRef, func(o client.Object) []string {
		return []string{o.(*v1alpha1.Connection).Spec.ConnectorRef.Name}
	}); err != nil {
		return err
	}
	return idx.IndexField(ctx, &v1alpha1.Connection{}, indexSecretRefs, func(o client.Object) []string {
		return secretNames(o.(*v1alpha1.Connection))
	})
}

// secretNames lists every Secret a Connection reads, all in its own namespace.
func secretNames(c *v1alpha1.Connection) []string {
	names := []string{c.Spec.Auth.SecretRef.Name}
	if s := c.Spec.Sync; s != nil && s.Sink != nil && s.Sink.SecretRef != nil {
		names = append(names, s.Sink.SecretRef.Name)
	}
	if c.Spec.Webhook != nil {
		names = append(names, c.Spec.Webhook.SecretRef.Name)
	}
	return names
}

var probeLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
	Name:    "connector_probe_duration_seconds",
	Help:    "Latency of the identity probe, by connector type.",
	Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
}, []string{"connector_type"})

// connectionReady reports per-Connection readiness (1 Ready, 0 not).
var connectionReady = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "connector_connection_ready",
	Help: "1 when the Connection is Ready, 0 otherwise.",
}, []string{"namespace", "name", "connector_type"})

func init() {
	metrics.Registry.MustRegister(probeLatency, connectionReady)
}

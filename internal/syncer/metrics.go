package syncer

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	itemsDelivered = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "connector_sync_items_delivered_total",
		Help: "Items the sink acknowledged, per Connection.",
	}, []string{"namespace", "name"})
	batchesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "connector_sync_batches_total",
		Help: "CloudEvents batches posted to sinks, by outcome (ok, a status code, or error).",
	}, []string{"outcome"})
	sinkLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "connector_sync_sink_request_duration_seconds",
		Help:    "Latency of one POST to a sink.",
		Buckets: prometheus.DefBuckets,
	})
	syncLag = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "connector_sync_lag_seconds",
		Help: "Age of the newest update delivered for a container, measured when its sync ends.",
	}, []string{"namespace", "name", "container"})
	statusWrites = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "connector_sync_status_writes_total",
		Help: "status.sync writes (cursor persistence).",
	})
)

func init() {
	metrics.Registry.MustRegister(itemsDelivered, batchesTotal, sinkLatency, syncLag, statusWrites)
}

// ForgetMetrics deletes the per-Connection series of a Connection that is gone, so that
// a cluster that churns Connections does not grow the metrics endpoint for ever.
func ForgetMetrics(namespace, name string) {
	labels := prometheus.Labels{"namespace": namespace, "name": name}
	itemsDelivered.DeletePartialMatch(labels)
	syncLag.DeletePartialMatch(labels)
}

package api

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	requestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "connector_api_requests_total",
		Help: "HTTP API requests by route pattern and HTTP status code.",
	}, []string{"route", "code"})
	requestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "connector_api_request_duration_seconds",
		Help:    "HTTP API request latency by route pattern and HTTP status code.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"route", "code"})
	searchSources = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "connector_api_search_sources_total",
		Help: "Sources asked by API searches, by outcome (ok, error, timeout).",
	}, []string{"status"})
)

func init() {
	metrics.Registry.MustRegister(requestsTotal, requestDuration, searchSources)
}

// observe records one request. route is a ServeMux pattern or "unmatched", so the label
// set stays small whatever callers send.
func observe(route string, status int, d time.Duration) {
	code := strconv.Itoa(status)
	requestsTotal.WithLabelValues(route, code).Inc()
	requestDuration.WithLabelValues(route, code).Observe(d.Seconds())
}

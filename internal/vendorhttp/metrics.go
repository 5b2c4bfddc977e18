package vendorhttp

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	requestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "connector_vendor_requests_total",
		Help: "Vendor HTTP requests by connector type and status code (\"error\" when no answer came).",
	}, []string{"connector_type", "code"})
	requestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "connector_vendor_request_duration_seconds",
		Help:    "Vendor HTTP request latency by connector type and status code.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"connector_type", "code"})
	retriesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "connector_vendor_retries_total",
		Help: "Vendor HTTP retries by connector type and the status (or \"error\") that caused them.",
	}, []string{"connector_type", "reason"})
)

func init() {
	metrics.Registry.MustRegister(requestsTotal, requestDuration, retriesTotal)
}

func observe(connectorType string, resp *http.Response, err error, d time.Duration) {
	code := "error"
	if err == nil {
		code = strconv.Itoa(resp.StatusCode)
	}
	requestsTotal.WithLabelValues(connectorType, code).Inc()
	requestDuration.WithLabelValues(connectorType, code).Observe(d.Seconds())
}

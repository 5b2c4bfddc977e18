// Package reference holds the checks that keep the operator's published references true:
// docs/reference/metrics.md against the Prometheus registry the manager serves, and the
// Grafana dashboard and PrometheusRule in the chart against the metrics they query. The
// tests need no API server; they import internal/manager so that every package that
// registers a metric is linked in, exactly as in the manager binary.
//
//	go test ./test/reference              # check
//	go test ./test/reference -update      # rewrite the generated columns of metrics.md
package reference

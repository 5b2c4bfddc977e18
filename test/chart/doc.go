// Package chart holds the tests of the Helm chart in charts/connector-operator, run by
// `make test` with the Helm Go SDK (helm.sh/helm/v4):
//
//   - render_test.go: helm lint; renders with default and with every optional block on;
//     values.schema.json refusing bad values; the RBAC no broader than the
//     +kubebuilder:rbac markers name (no "*", Secret writes only where the code needs
//     them); config/default granting and running exactly what the chart does.
//   - apiserver_test.go: server-side apply of every rendered object to a real
//     kube-apiserver (internal/testenv), with the Prometheus Operator and cert-manager
//     CRDs of testdata/crds so that ServiceMonitor, PrometheusRule and Certificate are
//     validated too; then the manager, run out-of-cluster as the chart's ServiceAccount
//     and bound by nothing but the chart's RBAC, through reconcile, sync, webhook, OAuth2
//     callback and API reads and search, failing on any request it was refused.
package chart

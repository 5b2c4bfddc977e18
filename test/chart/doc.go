// Package chart holds the tests of the Helm chart in charts/connector-operator, run by
// `make test` with the Helm Go SDK (helm.sh/helm/v4):
//
//   - render_test.go: helm lint (nothing above INFO); renders with default values and
//     with every optional block on; render-time refusals; values.schema.json refusing
//     bad values; the dev-only insecure flag never rendered.
//   - rbac_test.go: the chart's RBAC is exactly what the +kubebuilder:rbac markers name
//     (no "*", Secret writes only where the code needs them, leader election in the
//     release namespace only); config/default grants and runs exactly what the chart does.
//   - apiserver_test.go: server-side apply (strict field validation) of both renders and
//     the chart's CRDs to a real kube-apiserver (internal/testenv), with the Prometheus
//     Operator and cert-manager CRDs of testdata/crds so that ServiceMonitor,
//     PrometheusRule and Certificate are validated too, in namespaces enforcing the
//     restricted Pod Security Standard; then the manager, run out-of-cluster as the
//     chart's ServiceAccount and bound by nothing but the chart's RBAC, serving HTTPS with
//     the certificate of the Secret the Deployment mounts, through reconcile, sync,
//     webhook, OAuth2 callbacks and API reads and search, failing on any request it was
//     refused and on any credential in its logs.
package chart

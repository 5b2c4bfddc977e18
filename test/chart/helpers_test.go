package chart_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	chartutil "helm.sh/helm/v4/pkg/chart/common/util"
	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/unified-connectors/connector-operator/internal/testenv"
)

const (
	// release and releaseNamespace name the installation the tests render: the chart's
	// objects are then named "connector-operator" (fullname) in "connectors".
	release          = "connector-operator"
	releaseNamespace = "connectors"
	fullname         = "connector-operator"
)

// repoRoot is the repository's root (the tests run in test/chart).
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func chartDir(t testing.TB) string { return filepath.Join(repoRoot(t), "charts", "connector-operator") }

func loadChart(t testing.TB) *chartv2.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir(t))
	if err != nil {
		t.Fatalf("loading the chart: %v", err)
	}
	return ch
}

// renderValues coalesces vals over the chart's values.yaml and validates them against
// values.schema.json, as `helm install` does.
func renderValues(ch *chartv2.Chart, name, ns string, vals map[string]any) (common.Values, error) {
	return chartutil.ToRenderValuesWithSchemaValidation(ch, vals,
		common.ReleaseOptions{Name: name, Namespace: ns, Revision: 1, IsInstall: true},
		common.DefaultCapabilities, false)
}

// rendered is one render of the chart.
type rendered struct {
	objects []*unstructured.Unstructured
	notes   string
}

// render renders the chart as release in releaseNamespace with vals over the defaults.
func render(t testing.TB, vals map[string]any) rendered {
	t.Helper()
	r, err := renderAs(t, release, releaseNamespace, vals)
	if err != nil {
		t.Fatalf("rendering the chart: %v", err)
	}
	return r
}

func renderAs(t testing.TB, name, ns string, vals map[string]any) (rendered, error) {
	t.Helper()
	ch := loadChart(t)
	v, err := renderValues(ch, name, ns, vals)
	if err != nil {
		return rendered{}, err
	}
	files, err := engine.Render(ch, v)
	if err != nil {
		return rendered{}, err
	}
	var r rendered
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		switch {
		case strings.HasSuffix(n, "NOTES.txt"):
			r.notes = files[n]
			continue
		case !strings.HasSuffix(n, ".yaml"):
			continue
		}
		objs, err := decodeObjects([]byte(files[n]))
		if err != nil {
			return rendered{}, errors.New(n + ": " + err.Error())
		}
		r.objects = append(r.objects, objs...)
	}
	return r, nil
}

// decodeObjects reads every non-empty YAML document of b.
func decodeObjects(b []byte) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	rd := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	for {
		doc, err := rd.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			return nil, err
		}
		if len(m) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
}

func readObjects(t testing.TB, path string) []*unstructured.Unstructured {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeObjects(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return objs
}

// find returns the rendered objects of kind (and name, when not empty).
func (r rendered) find(kind, name string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range r.objects {
		if o.GetKind() == kind && (name == "" || o.GetName() == name) {
			out = append(out, o)
		}
	}
	return out
}

// one returns the one rendered object of kind and name, failing t otherwise.
func (r rendered) one(t testing.TB, kind, name string) *unstructured.Unstructured {
	t.Helper()
	got := r.find(kind, name)
	if len(got) != 1 {
		t.Fatalf("want one %s %q in the render, got %d (render holds %v)", kind, name, len(got), r.kinds())
	}
	return got[0]
}

func (r rendered) kinds() []string {
	var out []string
	for _, o := range r.objects {
		out = append(out, o.GetKind()+"/"+o.GetName())
	}
	return out
}

// into converts u into a typed object.
func into[T any](t testing.TB, u *unstructured.Unstructured) *T {
	t.Helper()
	b, err := yaml.Marshal(u.Object)
	if err != nil {
		t.Fatal(err)
	}
	var out T
	if err := yaml.UnmarshalStrict(b, &out); err != nil {
		t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
	}
	return &out
}

// everyOption turns every optional block of the chart on, with non-default values
// elsewhere.
func everyOption() map[string]any {
	return map[string]any{
		"replicaCount":            3,
		"logVerbosity":            1,
		"maxConcurrentReconciles": 8,
		"api": map[string]any{
			"port":        9443,
			"externalURL": "https://connectors.example.com",
			"tls": map[string]any{
				"certManager": map[string]any{
					"enabled":       true,
					"issuerRef":     map[string]any{"name": "platform-ca", "kind": "ClusterIssuer"},
					"extraDNSNames": []any{"connectors.example.com"},
				},
			},
		},
		"podDisruptionBudget": map[string]any{"minAvailable": 2},
		"serviceMonitor":      map[string]any{"enabled": true, "labels": map[string]any{"release": "kube-prometheus-stack"}},
		"prometheusRule":      map[string]any{"enabled": true, "notReadyFor": "20m"},
		"networkPolicy": map[string]any{
			"enabled": true,
			"ingress": map[string]any{
				"metricsFrom": []any{map[string]any{"namespaceSelector": map[string]any{"matchLabels": map[string]any{"kubernetes.io/metadata.name": "monitoring"}}}},
			},
			"egress": map[string]any{
				"dnsTo":          []any{map[string]any{"namespaceSelector": map[string]any{"matchLabels": map[string]any{"kubernetes.io/metadata.name": "kube-system"}}}},
				"apiServerCIDRs": []any{"10.0.0.1/32"},
				"extra": []any{map[string]any{
					"to":    []any{map[string]any{"namespaceSelector": map[string]any{"matchLabels": map[string]any{"kubernetes.io/metadata.name": "sinks"}}}},
					"ports": []any{map[string]any{"port": 8080, "protocol": "TCP"}},
				}},
			},
		},
		"grafana":                   map[string]any{"dashboard": map[string]any{"enabled": true, "annotations": map[string]any{"grafana_folder": "Platform"}}},
		"podAnnotations":            map[string]any{"example.com/team": "platform"},
		"podLabels":                 map[string]any{"example.com/tier": "control"},
		"nodeSelector":              map[string]any{"kubernetes.io/os": "linux"},
		"tolerations":               []any{map[string]any{"key": "dedicated", "operator": "Equal", "value": "platform", "effect": "NoSchedule"}},
		"topologySpreadConstraints": []any{map[string]any{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": map[string]any{"matchLabels": map[string]any{"app.kubernetes.io/name": "connector-operator"}}}},
		"priorityClassName":         "system-cluster-critical",
		"service":                   map[string]any{"annotations": map[string]any{"example.com/lb": "internal"}},
		"serviceAccount":            map[string]any{"annotations": map[string]any{"example.com/role": "connectors"}},
	}
}

// metricNames are the Prometheus metrics the operator's code declares (Name: "connector_…"
// in a prometheus.*Opts), read from the sources so that an alert cannot name one that
// does not exist.
func metricNames(t testing.TB) map[string]bool {
	t.Helper()
	decl := regexp.MustCompile(`Name:\s+"(connector_[a-z0-9_]+)"`)
	names := map[string]bool{}
	root := repoRoot(t)
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "bin" || d.Name() == "test" || strings.HasPrefix(d.Name(), ".")) {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if !bytes.Contains(b, []byte("prometheus.")) {
			return nil
		}
		for _, m := range decl.FindAllSubmatch(b, -1) {
			names[string(m[1])] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

package reference

import (
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	// Links in every package that registers a metric, as main.go does.
	_ "github.com/unified-connectors/connector-operator/internal/manager"
)

// projectPrefix is the prefix every metric of this project carries.
const projectPrefix = "connector_"

// upstreamPrefixes are metrics controller-runtime and client-go register in the same
// registry; any other name without projectPrefix is a naming mistake in this project.
var upstreamPrefixes = []string{
	"controller_runtime_", "workqueue_", "rest_client_", "certwatcher_", "leader_election_",
	"go_", "process_",
}

// metric is one registered metric family as a scraper sees it.
type metric struct {
	Name   string
	Type   string // counter, gauge, histogram, summary, untyped
	Labels []string
	Help   string
	// AnyLabels marks a series whose labels are not known here (a recording rule's).
	AnyLabels bool
}

// registered lists every metric family registered in controller-runtime's registry,
// project and upstream alike, by name.
//
// A Vec with no series yet is invisible to Gather, so the collectors are read from the
// registry itself: client_golang has no public way to list them. If a client_golang
// upgrade renames the field, this fails loudly rather than checking nothing.
func registered() (map[string]metric, error) {
	reg, ok := metrics.Registry.(*prometheus.Registry)
	if !ok {
		return nil, fmt.Errorf("metrics.Registry is a %T, not a *prometheus.Registry", metrics.Registry)
	}
	f := reflect.ValueOf(reg).Elem().FieldByName("collectorsByID")
	if !f.IsValid() {
		return nil, fmt.Errorf("prometheus.Registry has no collectorsByID field any more; update registered()")
	}
	collectors, ok := reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().Interface().(map[uint64]prometheus.Collector)
	if !ok {
		return nil, fmt.Errorf("prometheus.Registry.collectorsByID is a %s; update registered()", f.Type())
	}
	out := map[string]metric{}
	for _, c := range collectors {
		descs := make(chan *prometheus.Desc, 64)
		go func() { c.Describe(descs); close(descs) }()
		for d := range descs {
			m, err := parseDesc(d.String())
			if err != nil {
				return nil, err
			}
			m.Type = typeOf(c, m.Name)
			if prev, dup := out[m.Name]; dup && !reflect.DeepEqual(prev, m) {
				return nil, fmt.Errorf("%s described twice, differently: %+v and %+v", m.Name, prev, m)
			}
			out[m.Name] = m
		}
	}
	return out, nil
}

func sortedNames(m map[string]metric) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

var descRE = regexp.MustCompile(`^Desc\{fqName: ("(?:[^"\\]|\\.)*"), help: ("(?:[^"\\]|\\.)*"), (?:unit: "(?:[^"\\]|\\.)*", )?constLabels: \{(.*)\}, variableLabels: \{(.*)\}\}$`)

// parseDesc reads name, help and labels from a Desc's String form, the only public view
// of a Desc.
func parseDesc(s string) (metric, error) {
	g := descRE.FindStringSubmatch(s)
	if g == nil {
		return metric{}, fmt.Errorf("cannot read descriptor %s; update parseDesc", s)
	}
	name, err := strconv.Unquote(g[1])
	if err != nil {
		return metric{}, err
	}
	help, err := strconv.Unquote(g[2])
	if err != nil {
		return metric{}, err
	}
	m := metric{Name: name, Help: help}
	for _, kv := range splitNonEmpty(g[3]) {
		m.Labels = append(m.Labels, strings.SplitN(kv, "=", 2)[0])
	}
	for _, l := range splitNonEmpty(g[4]) {
		// A constrained label prints as c(name).
		m.Labels = append(m.Labels, strings.TrimSuffix(strings.TrimPrefix(l, "c("), ")"))
	}
	return m, nil
}

func splitNonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// typeOf is the metric type c exposes for name: known from a Vec's Go type, else from
// what it collects.
func typeOf(c prometheus.Collector, name string) string {
	switch c.(type) {
	case *prometheus.CounterVec:
		return "counter"
	case *prometheus.GaugeVec:
		return "gauge"
	case *prometheus.HistogramVec:
		return "histogram"
	case *prometheus.SummaryVec:
		return "summary"
	}
	ch := make(chan prometheus.Metric, 64)
	go func() { c.Collect(ch); close(ch) }()
	t := "unknown"
	for m := range ch {
		if !strings.Contains(m.Desc().String(), strconv.Quote(name)) {
			continue
		}
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			continue
		}
		switch {
		case pb.Counter != nil:
			t = "counter"
		case pb.Gauge != nil:
			t = "gauge"
		case pb.Histogram != nil:
			t = "histogram"
		case pb.Summary != nil:
			t = "summary"
		case pb.Untyped != nil:
			t = "untyped"
		}
	}
	return t
}

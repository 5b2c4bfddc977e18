package reference

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const (
	dashboardFile = repoRoot + "/charts/connector-operator/dashboards/connector-operator.json"
	ruleFile      = repoRoot + "/charts/connector-operator/templates/prometheusrule.yaml"
)

// scrapeLabels are the labels Prometheus adds to every scraped series (the Prometheus
// Operator's ServiceMonitor defaults), so queries may match or group on them.
var scrapeLabels = []string{"job", "instance", "pod", "service", "endpoint"}

// synthetic are series Prometheus itself writes.
var synthetic = map[string]metric{
	"up":     {Name: "up", Type: "gauge"},
	"ALERTS": {Name: "ALERTS", Type: "gauge", Labels: []string{"alertname", "alertstate", "severity"}},
}

// resolve finds the registered metric family a series name belongs to: the name itself, or
// a histogram's _bucket/_sum/_count (a summary's _sum/_count), with the labels that series
// carries.
func resolve(all map[string]metric, name string) (metric, bool) {
	if m, ok := all[name]; ok {
		return m, true
	}
	if m, ok := synthetic[name]; ok {
		return m, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		m, ok := all[base]
		switch {
		case ok && m.Type == "histogram" && suffix == "_bucket":
			m.Labels = append(slices.Clone(m.Labels), "le")
			return m, true
		case ok && (m.Type == "histogram" || m.Type == "summary") && suffix != "_bucket":
			return m, true
		}
	}
	return metric{}, false
}

// checkQuery returns what is wrong with expr: a metric the registry does not have, or a
// label that none of the metrics it queries carries. Each selector of a metric with a
// label in required must match that label with the given value (a dashboard variable).
func checkQuery(all map[string]metric, expr string, required map[string]string) []error {
	q, err := parseQuery(expr)
	if err != nil {
		return []error{err}
	}
	var errs []error
	known := slices.Clone(scrapeLabels)
	anyLabels := false
	for _, sel := range q.Selectors {
		name := sel.Metric
		for _, m := range sel.Matchers {
			if m.Label == "__name__" && m.Op == "=" {
				name = m.Value
			}
		}
		if name == "" {
			errs = append(errs, fmt.Errorf("a selector without a metric name in %q", expr))
			continue
		}
		m, ok := resolve(all, name)
		if !ok {
			errs = append(errs, fmt.Errorf("%s is not a metric the manager registers (in %q)", name, expr))
			continue
		}
		if m.AnyLabels {
			anyLabels = true
			continue
		}
		labels := append(slices.Clone(m.Labels), scrapeLabels...)
		known = append(known, m.Labels...)
		for _, mt := range sel.Matchers {
			if mt.Label != "__name__" && !slices.Contains(labels, mt.Label) {
				errs = append(errs, fmt.Errorf("%s has no label %s (labels %v) in %q", name, mt.Label, m.Labels, expr))
			}
		}
		for label, value := range required {
			if !slices.Contains(labels, label) {
				continue
			}
			if !slices.ContainsFunc(sel.Matchers, func(mt matcher) bool { return mt.Label == label && mt.Op == "=~" && mt.Value == value }) {
				errs = append(errs, fmt.Errorf("%s is not filtered by %s=~%q in %q", name, label, value, expr))
			}
		}
	}
	for _, l := range q.Grouping {
		if !anyLabels && !slices.Contains(known, l) {
			errs = append(errs, fmt.Errorf("groups on %s, a label none of its metrics has, in %q", l, expr))
		}
	}
	return errs
}

type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int             `json:"id"`
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Datasource *datasourceRef  `json:"datasource"`
	GridPos    gridPos         `json:"gridPos"`
	Targets    []target        `json:"targets"`
	Panels     []panel         `json:"panels"`
	FieldCfg   json.RawMessage `json:"fieldConfig"`
}

type gridPos struct{ H, W, X, Y int }

type target struct {
	Expr       string         `json:"expr"`
	RefID      string         `json:"refId"`
	Datasource *datasourceRef `json:"datasource"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Definition string          `json:"definition"`
	Datasource *datasourceRef  `json:"datasource"`
}

// variableQueryRE is Grafana's label_values(metric-selector, label).
var variableQueryRE = regexp.MustCompile(`^\s*label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$`)

// TestDashboard checks the chart's Grafana dashboard: it loads, every panel queries the
// data source variable, and every metric and label its queries name exists in the
// manager's registry, filtered by the dashboard's variables; every connector_* metric has a
// panel.
func TestDashboard(t *testing.T) {
	all, err := registered()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.UID == "" || d.Title == "" || d.SchemaVersion == 0 {
		t.Errorf("dashboard needs uid, title and schemaVersion: %q %q %d", d.UID, d.Title, d.SchemaVersion)
	}

	vars := map[string]variable{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	if v, ok := vars["datasource"]; !ok || v.Type != "datasource" || string(v.Query) != `"prometheus"` {
		t.Errorf("want a datasource variable of type datasource over prometheus, have %+v", v)
	}
	required := map[string]string{"job": "$job", "namespace": "$namespace", "connector_type": "$connector_type"}
	for name := range required {
		if _, ok := vars[name]; !ok {
			t.Errorf("no %s variable", name)
		}
	}
	used := map[string]bool{}
	note := func(expr string) {
		if q, err := parseQuery(expr); err == nil {
			for _, s := range q.Selectors {
				if m, ok := resolve(all, s.Metric); ok {
					used[m.Name] = true
				}
			}
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		if v.Datasource == nil || v.Datasource.UID != "${datasource}" {
			t.Errorf("variable %s does not query ${datasource}", v.Name)
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			if err := json.Unmarshal(v.Query, &q.Query); err != nil {
				t.Errorf("variable %s: query %s", v.Name, v.Query)
				continue
			}
		}
		g := variableQueryRE.FindStringSubmatch(q.Query)
		if g == nil {
			t.Errorf("variable %s: want label_values(selector, label), have %q", v.Name, q.Query)
			continue
		}
		for _, err := range checkQuery(all, g[1], nil) {
			t.Errorf("variable %s: %v", v.Name, err)
		}
		// The label it lists must be one of the selector's.
		if errs := checkQuery(all, fmt.Sprintf("sum by (%s) (%s)", g[2], g[1]), nil); len(errs) > 0 {
			t.Errorf("variable %s lists label %s its metric does not have", v.Name, g[2])
		}
	}

	ids := map[int]string{}
	var boxes []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if prev, dup := ids[p.ID]; dup {
				t.Errorf("panels %q and %q share id %d", prev, p.Title, p.ID)
			}
			ids[p.ID] = p.Title
			boxes = append(boxes, p)
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q does not use the ${datasource} variable", p.Title)
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			refs := map[string]bool{}
			for _, tg := range p.Targets {
				if refs[tg.RefID] {
					t.Errorf("panel %q repeats refId %s", p.Title, tg.RefID)
				}
				refs[tg.RefID] = true
				if tg.Datasource != nil && tg.Datasource.UID != "${datasource}" {
					t.Errorf("panel %q target %s does not use ${datasource}", p.Title, tg.RefID)
				}
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("panel %q target %s has no expression", p.Title, tg.RefID)
					continue
				}
				for _, err := range checkQuery(all, tg.Expr, required) {
					t.Errorf("panel %q: %v", p.Title, err)
				}
				note(tg.Expr)
			}
		}
	}
	walk(d.Panels)
	for i, a := range boxes {
		if a.GridPos.W <= 0 || a.GridPos.H <= 0 || a.GridPos.X+a.GridPos.W > 24 {
			t.Errorf("panel %q has gridPos %+v outside the 24-column grid", a.Title, a.GridPos)
		}
		for _, b := range boxes[i+1:] {
			if a.GridPos.X < b.GridPos.X+b.GridPos.W && b.GridPos.X < a.GridPos.X+a.GridPos.W &&
				a.GridPos.Y < b.GridPos.Y+b.GridPos.H && b.GridPos.Y < a.GridPos.Y+a.GridPos.H {
				t.Errorf("panels %q and %q overlap", a.Title, b.Title)
			}
		}
	}
	for _, name := range sortedNames(all) {
		if strings.HasPrefix(name, projectPrefix) && !used[name] {
			t.Errorf("%s has no panel on the dashboard", name)
		}
	}
}

// helmAction is a template action; in an expression it stands for a value (a threshold,
// a namespace), so it is replaced by a number before parsing.
var helmAction = regexp.MustCompile(`\{\{-?.*?-?\}\}`)

// ruleExprs reads the expr: values of a PrometheusRule template without rendering it: the
// rest of the line, or the indented block after a | or > block scalar.
func ruleExprs(src string) (exprs []string, records []string) {
	lines := strings.Split(src, "\n")
	for i := 0; i < len(lines); i++ {
		trimmed := strings.TrimPrefix(strings.TrimSpace(lines[i]), "- ")
		if rec, ok := strings.CutPrefix(trimmed, "record:"); ok {
			records = append(records, strings.Trim(strings.TrimSpace(rec), `"'`))
			continue
		}
		rest, ok := strings.CutPrefix(trimmed, "expr:")
		if !ok {
			continue
		}
		rest = strings.TrimSpace(rest)
		if rest != "" && !strings.HasPrefix(rest, "|") && !strings.HasPrefix(rest, ">") {
			exprs = append(exprs, strings.Trim(rest, `"'`))
			continue
		}
		indent := len(lines[i]) - len(strings.TrimLeft(lines[i], " "))
		var block []string
		for i+1 < len(lines) {
			next := lines[i+1]
			if strings.TrimSpace(next) != "" && len(next)-len(strings.TrimLeft(next, " ")) <= indent {
				break
			}
			block = append(block, next)
			i++
		}
		exprs = append(exprs, strings.Join(block, "\n"))
	}
	return exprs, records
}

// TestPrometheusRule checks that every alert and recording rule in the chart queries
// metrics and labels the manager registers, so a renamed metric cannot leave an alert
// that never fires.
func TestPrometheusRule(t *testing.T) {
	if _, err := os.Stat(ruleFile); errors.Is(err, fs.ErrNotExist) {
		t.Skipf("%s does not exist (yet)", ruleFile)
	}
	all, err := registered()
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range checkRules(all, ruleFile) {
		t.Errorf("%s: %v", ruleFile, err)
	}
}

// checkRules reads a PrometheusRule template and checks each expression against all and
// the series its own recording rules write.
func checkRules(all map[string]metric, path string) []error {
	src, err := os.ReadFile(path)
	if err != nil {
		return []error{err}
	}
	exprs, records := ruleExprs(string(src))
	if len(exprs) == 0 {
		return []error{errors.New("no expr: found; the check would pass on nothing")}
	}
	known := map[string]metric{}
	for k, v := range all {
		known[k] = v
	}
	for _, r := range records {
		// A recorded series has labels of its own; they are not checked here.
		known[r] = metric{Name: r, Type: "gauge", AnyLabels: true}
	}
	var errs []error
	for _, e := range exprs {
		errs = append(errs, checkQuery(known, helmAction.ReplaceAllString(e, "0"), nil)...)
	}
	return errs
}

func TestCheckRulesCatches(t *testing.T) {
	all := map[string]metric{
		"connector_connection_ready":      {Name: "connector_connection_ready", Type: "gauge", Labels: []string{"namespace", "name", "connector_type"}},
		"connector_vendor_requests_total": {Name: "connector_vendor_requests_total", Type: "counter", Labels: []string{"connector_type", "code"}},
	}
	path := t.TempDir() + "/prometheusrule.yaml"
	src := `{{- if .Values.prometheusRule.enabled }}
spec:
  groups:
  - name: x
    rules:
    - record: connector:ready:sum
      expr: sum by (namespace) (connector_connection_ready)
    - alert: A
      expr: |
        connector:ready:sum{foo="bar"} < {{ .Values.x }}
        and on (namespace) connector_sync_lag_secs{namespace="{{ .Release.Namespace }}"} > 5
    - alert: B
      expr: sum by (type) (rate(connector_vendor_requests_total[5m])) > 0
{{- end }}
`
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	errs := checkRules(all, path)
	var got []string
	for _, e := range errs {
		got = append(got, e.Error())
	}
	if len(errs) != 2 || !strings.Contains(got[0], "connector_sync_lag_secs is not a metric") || !strings.Contains(got[1], "groups on type") {
		t.Errorf("want the unknown metric and the unknown label, have %q", got)
	}
}

func TestCheckQueryCatches(t *testing.T) {
	all := map[string]metric{
		"connector_x_total":   {Name: "connector_x_total", Type: "counter", Labels: []string{"namespace", "code"}},
		"connector_h_seconds": {Name: "connector_h_seconds", Type: "histogram", Labels: []string{"route"}},
	}
	req := map[string]string{"namespace": "$namespace"}
	for expr, want := range map[string]string{
		`rate(connector_y_total[5m])`:                                               "not a metric",
		`rate(connector_x_total{namespace=~"$namespace", type="a"}[5m])`:            "no label type",
		`sum by (type) (rate(connector_x_total{namespace=~"$namespace"}[5m]))`:      "groups on type",
		`rate(connector_x_total[5m])`:                                               "not filtered by namespace",
		`rate(connector_h_seconds_count{route="a"}[5m])`:                            "",
		`sum by (le) (rate(connector_h_seconds_bucket[5m]))`:                        "",
		`sum by (le) (rate(connector_x_total_bucket{namespace=~"$namespace"}[5m]))`: "not a metric",
	} {
		errs := checkQuery(all, expr, req)
		switch {
		case want == "" && len(errs) > 0:
			t.Errorf("%s: unexpected %v", expr, errs)
		case want != "" && (len(errs) == 0 || !strings.Contains(errs[0].Error(), want)):
			t.Errorf("%s: want an error with %q, have %v", expr, want, errs)
		}
	}
}

// targetLabels are the labels the Prometheus Operator attaches to every series it scrapes
// through a ServiceMonitor.
var targetLabels = []string{"namespace", "container", "pod", "service", "endpoint", "job", "instance"}

// TestServiceMonitorKeepsMetricLabels: a metric label that is also a target label (the
// Connection's namespace, a sync container) is renamed exported_<label> by Prometheus
// unless the ServiceMonitor honours the scraped labels; then the dashboard's namespace
// filter and every per-namespace alert would see only the operator's own namespace.
func TestServiceMonitorKeepsMetricLabels(t *testing.T) {
	path := repoRoot + "/charts/connector-operator/templates/servicemonitor.yaml"
	src, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		t.Skipf("%s does not exist (yet)", path)
	}
	if err != nil {
		t.Fatal(err)
	}
	all, err := registered()
	if err != nil {
		t.Fatal(err)
	}
	var clash []string
	for _, name := range sortedNames(all) {
		if !strings.HasPrefix(name, projectPrefix) {
			continue
		}
		for _, l := range all[name].Labels {
			if slices.Contains(targetLabels, l) {
				clash = append(clash, name+"{"+l+"}")
			}
		}
	}
	if len(clash) == 0 {
		return
	}
	if !regexp.MustCompile(`(?m)^\s*honorLabels:\s*true\s*$`).Match(src) {
		t.Errorf("%s must set honorLabels: true on its endpoints: these labels are also target labels and would arrive as exported_*: %v", path, clash)
	}
}

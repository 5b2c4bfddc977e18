package reference

import (
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the generated columns of docs/reference/metrics.md from the registry")

const (
	repoRoot     = "../.."
	metricsPage  = repoRoot + "/docs/reference/metrics.md"
	tableBegin   = "<!-- metrics:begin -->"
	tableEnd     = "<!-- metrics:end -->"
	tableHeading = "| Metric | Type | Labels | Help | Defined in | Recorded |\n|---|---|---|---|---|---|\n"
)

// docRow is one row of the metrics table. Recorded is written by hand and kept by -update;
// the other columns are the registry's and the source tree's.
type docRow struct {
	metric
	DefinedIn string
	Recorded  string
}

// TestMetricsReference checks docs/reference/metrics.md against the metrics the manager
// registers: a metric registered but not documented, documented but not registered, or
// documented with another type, label set, help text or defining file fails. With -update
// it first rewrites those columns from the registry, keeping each row's Recorded text; a
// new metric still fails until someone writes when it is recorded.
func TestMetricsReference(t *testing.T) {
	all, err := registered()
	if err != nil {
		t.Fatal(err)
	}
	reg := map[string]metric{}
	for name, m := range all {
		switch {
		case strings.HasPrefix(name, projectPrefix):
			reg[name] = m
		case !hasAnyPrefix(name, upstreamPrefixes):
			t.Errorf("metric %s is neither this project's (%s*) nor controller-runtime's or client-go's: name it %s…", name, projectPrefix, projectPrefix)
		}
	}
	if len(reg) == 0 {
		t.Fatal("no connector_* metric registered; is internal/manager still linking every package in?")
	}
	definedIn, err := definitions(sortedNames(reg))
	if err != nil {
		t.Fatal(err)
	}

	page, err := os.ReadFile(metricsPage)
	if err != nil {
		t.Fatal(err)
	}
	before, rows, after, err := parsePage(string(page))
	if err != nil {
		t.Fatalf("%s: %v", metricsPage, err)
	}
	if *update {
		recorded := map[string]string{}
		for _, r := range rows {
			recorded[r.Name] = r.Recorded
		}
		rows = rows[:0]
		for _, name := range sortedNames(reg) {
			rows = append(rows, docRow{metric: reg[name], DefinedIn: definedIn[name], Recorded: recorded[name]})
		}
		if err := os.WriteFile(metricsPage, []byte(before+renderTable(rows)+after), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote %s from the registry (%d metrics)", metricsPage, len(rows))
	}

	documented := map[string]bool{}
	for _, r := range rows {
		if documented[r.Name] {
			t.Errorf("%s is documented twice", r.Name)
		}
		documented[r.Name] = true
		m, ok := reg[r.Name]
		if !ok {
			t.Errorf("%s is documented in %s but the manager registers no such metric", r.Name, metricsPage)
			continue
		}
		if r.Type != m.Type {
			t.Errorf("%s: documented type %s, registered %s", r.Name, r.Type, m.Type)
		}
		if !slices.Equal(r.Labels, m.Labels) {
			t.Errorf("%s: documented labels %v, registered %v", r.Name, r.Labels, m.Labels)
		}
		if r.Help != m.Help {
			t.Errorf("%s: documented help %q, registered %q", r.Name, r.Help, m.Help)
		}
		if r.DefinedIn != definedIn[r.Name] {
			t.Errorf("%s: documented as defined in %q, the source says %q", r.Name, r.DefinedIn, definedIn[r.Name])
		}
		if strings.TrimSpace(r.Recorded) == "" {
			t.Errorf("%s: the Recorded column is empty; say in %s when the operator records it", r.Name, metricsPage)
		}
	}
	for _, name := range sortedNames(reg) {
		if !documented[name] {
			t.Errorf("%s (%s, defined in %s) is registered but not documented in %s; run 'go test ./test/reference -update' and fill in its Recorded column",
				name, reg[name].Type, definedIn[name], metricsPage)
		}
	}
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// definitions finds, for each metric name, the non-test Go files that spell it as a
// string literal: where a reader goes to change it.
func definitions(names []string) (map[string]string, error) {
	found := map[string][]string{}
	err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "bin", "testdata", "vendor", "node_modules":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(repoRoot, path)
		if err != nil {
			return err
		}
		for _, n := range names {
			if strings.Contains(string(src), strconv.Quote(n)) {
				found[n] = append(found[n], filepath.ToSlash(rel))
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, n := range names {
		files := found[n]
		slices.Sort(files)
		if len(files) == 0 {
			out[n] = "(name not spelled as one literal)"
			continue
		}
		out[n] = strings.Join(files, ", ")
	}
	return out, nil
}

// parsePage splits the page into the text before the table, its rows and the text after.
func parsePage(page string) (before string, rows []docRow, after string, err error) {
	i := strings.Index(page, tableBegin)
	j := strings.Index(page, tableEnd)
	if i < 0 || j < i {
		return "", nil, "", fmt.Errorf("no %s … %s markers around the metrics table", tableBegin, tableEnd)
	}
	before, body, after := page[:i+len(tableBegin)]+"\n", page[i+len(tableBegin):j], page[j:]
	for n, line := range strings.Split(body, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "| Metric ") || strings.HasPrefix(line, "|---") {
			continue
		}
		cells := splitRow(line)
		if len(cells) != 6 {
			return "", nil, "", fmt.Errorf("table line %d has %d cells, want 6: %s", n, len(cells), line)
		}
		r := docRow{
			metric: metric{
				Name: strings.Trim(cells[0], "`"),
				Type: cells[1],
				Help: cells[3],
			},
			DefinedIn: strings.ReplaceAll(cells[4], "`", ""),
			Recorded:  cells[5],
		}
		if cells[2] != "" && cells[2] != "none" {
			for _, l := range strings.Split(cells[2], ",") {
				r.Labels = append(r.Labels, strings.Trim(strings.TrimSpace(l), "`"))
			}
		}
		rows = append(rows, r)
	}
	return before, rows, after, nil
}

// splitRow splits a Markdown table row on its unescaped pipes and unescapes the cells.
func splitRow(line string) []string {
	line = strings.TrimSuffix(strings.TrimPrefix(line, "|"), "|")
	var cells []string
	var cur strings.Builder
	for k := 0; k < len(line); k++ {
		switch {
		case line[k] == '\\' && k+1 < len(line) && line[k+1] == '|':
			cur.WriteByte('|')
			k++
		case line[k] == '|':
			cells = append(cells, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(line[k])
		}
	}
	return append(cells, strings.TrimSpace(cur.String()))
}

var pipe = regexp.MustCompile(`\|`)

func renderTable(rows []docRow) string {
	var b strings.Builder
	b.WriteString(tableHeading)
	for _, r := range rows {
		labels := "none"
		if len(r.Labels) > 0 {
			q := make([]string, len(r.Labels))
			for i, l := range r.Labels {
				q[i] = "`" + l + "`"
			}
			labels = strings.Join(q, ", ")
		}
		defined := r.DefinedIn
		if !strings.HasPrefix(defined, "(") {
			parts := strings.Split(defined, ", ")
			for i, p := range parts {
				parts[i] = "`" + p + "`"
			}
			defined = strings.Join(parts, ", ")
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s | %s |\n", r.Name, r.Type, labels,
			pipe.ReplaceAllString(r.Help, `\|`), defined, pipe.ReplaceAllString(r.Recorded, `\|`))
	}
	return b.String()
}

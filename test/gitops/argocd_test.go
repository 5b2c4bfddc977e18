// Package gitops_test proves what GitOps tools read from the operator's kinds: the Argo CD
// health checks in config/argocd (run with gopher-lua, as Argo CD runs them) over the
// fixtures next to them, the argocd-cm snippet of config/argocd and docs/gitops/argocd.md
// kept identical to the scripts, and, against a real API server with the real manager,
// kstatus (what Flux and kubectl wait read) and the Lua checks over objects in every state
// docs/gitops names.
//
// go test ./test/gitops -update rewrites the generated files (argocd-cm.yaml, the doc's
// snippet, and the testdata/operator-*.yaml fixtures captured from the real operator).
package gitops_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"

	"github.com/unified-connectors/connector-operator/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite config/argocd/argocd-cm.yaml, the snippet in docs/gitops/argocd.md and the operator-*.yaml fixtures")

// healthStatus is Argo CD's health.HealthStatus: what a health.lua returns.
type healthStatus struct {
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
}

// The health codes Argo CD accepts from a script (util/lua isValidHealthStatusCode).
var argoHealthCodes = []string{"Unknown", "Progressing", "Suspended", "Healthy", "Degraded", "Missing"}

// argoHealth runs a health.lua over obj the way Argo CD's util/lua does: a fresh state
// with only the package, base and table libraries open (the others only with
// resource.customizations.useOpenLibs, which openLibs stands for; Argo CD's own safe os
// library is left out: the scripts do not use it), a 1 s deadline, the object decoded into
// the global obj, and the table the script returns read as {status, message}, an unknown
// status turning into Unknown.
func argoHealth(script string, obj map[string]any, openLibs bool) (*healthStatus, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: !openLibs})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.LoadLibName, lua.OpenPackage}, {lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", decodeValue(l, obj))
	if err := l.DoString(script); err != nil {
		return nil, err
	}
	ret := l.Get(-1)
	tbl, ok := ret.(*lua.LTable)
	if !ok {
		return nil, fmt.Errorf("expect table output from Lua script, not %s", ret.Type())
	}
	// Argo CD encodes the table as JSON and decodes a HealthStatus from it: every field
	// must be a string.
	hs := &healthStatus{}
	var err error
	tbl.ForEach(func(k, v lua.LValue) {
		s, ok := v.(lua.LString)
		switch {
		case k.String() != "status" && k.String() != "message":
		case !ok:
			err = errors.Join(err, fmt.Errorf("health field %s is a %s, not a string", k, v.Type()))
		case k.String() == "status":
			hs.Status = string(s)
		default:
			hs.Message = string(s)
		}
	})
	if err != nil {
		return nil, err
	}
	if !slices.Contains(argoHealthCodes, hs.Status) {
		return &healthStatus{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
	}
	return hs, nil
}

// decodeValue is Argo CD's util/lua decodeValue: JSON-shaped Go values as Lua values.
func decodeValue(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case json.Number:
		return lua.LString(v)
	case int:
		return lua.LNumber(v)
	case int32:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case []any:
		arr := l.CreateTable(len(v), 0)
		for _, item := range v {
			arr.Append(decodeValue(l, item))
		}
		return arr
	case map[string]any:
		tbl := l.CreateTable(0, len(v))
		for key, item := range v {
			tbl.RawSetH(lua.LString(key), decodeValue(l, item))
		}
		return tbl
	}
	return lua.LNil
}

// healthDir is config/argocd/health, laid out as Argo CD's resource_customizations:
// <group>/<Kind>/health.lua, health_test.yaml and testdata/.
func healthDir(t testing.TB) string {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "config", "argocd", "health")
}

// healthScript reads the health.lua of a kind of connectors.unified.dev.
func healthScript(t testing.TB, kind string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(healthDir(t), "connectors.unified.dev", kind, "health.lua"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// healthTests is a health_test.yaml, as in Argo CD's resource_customizations.
type healthTests struct {
	Tests []struct {
		InputPath    string       `json:"inputPath"`
		HealthStatus healthStatus `json:"healthStatus"`
	} `json:"tests"`
}

func readYAMLObject(t testing.TB, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	obj := map[string]any{}
	if err := yaml.Unmarshal(b, &obj); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return obj
}

// TestArgoCDHealth runs every health_test.yaml case, as Argo CD's TestLuaHealthScript does,
// with and without the open libraries: the scripts must not depend on useOpenLibs. Every
// fixture must be listed, and each health code a kind can have must be covered.
func TestArgoCDHealth(t *testing.T) {
	dir := healthDir(t)
	kinds := map[string][]string{
		"Connection": {"Healthy", "Progressing", "Degraded", "Suspended"},
		"Connector":  {"Healthy", "Progressing", "Degraded"},
	}
	found := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "health.lua" {
			return err
		}
		found++
		kindDir := filepath.Dir(path)
		kind := filepath.Base(kindDir)
		t.Run(kind, func(t *testing.T) {
			script := healthScript(t, kind)
			b, err := os.ReadFile(filepath.Join(kindDir, "health_test.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			var cases healthTests
			if err := yaml.UnmarshalStrict(b, &cases); err != nil {
				t.Fatalf("health_test.yaml: %v", err)
			}
			listed := map[string]bool{}
			covered := map[string]bool{}
			for _, c := range cases.Tests {
				listed[filepath.Clean(c.InputPath)] = true
				covered[c.HealthStatus.Status] = true
				t.Run(strings.TrimSuffix(filepath.Base(c.InputPath), ".yaml"), func(t *testing.T) {
					obj := readYAMLObject(t, filepath.Join(kindDir, c.InputPath))
					if got := obj["kind"]; got != kind {
						t.Fatalf("fixture is a %v, not a %s", got, kind)
					}
					for _, openLibs := range []bool{false, true} {
						got, err := argoHealth(script, obj, openLibs)
						if err != nil {
							t.Fatalf("useOpenLibs=%v: %v", openLibs, err)
						}
						if *got != c.HealthStatus {
							t.Errorf("useOpenLibs=%v: health %+v, want %+v", openLibs, *got, c.HealthStatus)
						}
					}
				})
			}
			fixtures, err := filepath.Glob(filepath.Join(kindDir, "testdata", "*.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range fixtures {
				rel, _ := filepath.Rel(kindDir, f)
				if !listed[rel] {
					t.Errorf("%s is not listed in health_test.yaml", rel)
				}
			}
			for _, code := range kinds[kind] {
				if !covered[code] {
					t.Errorf("no case of health_test.yaml is %s", code)
				}
			}
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found != len(kinds) {
		t.Fatalf("found %d health.lua under %s, want %d (Connection and Connector)", found, dir, len(kinds))
	}
}

// TestArgoHealthRunner checks the runner against what Argo CD does with a bad script, so
// that a script passing here does not fail in Argo CD.
func TestArgoHealthRunner(t *testing.T) {
	obj := map[string]any{"metadata": map[string]any{"name": "x"}}
	if _, err := argoHealth(`return string.find("a", "a")`, obj, false); err == nil {
		t.Error("the string library is open without useOpenLibs; Argo CD does not open it")
	}
	if _, err := argoHealth(`return "Healthy"`, obj, false); err == nil {
		t.Error("a script returning a string passed")
	}
	got, err := argoHealth(`return {status = "Fine"}`, obj, false)
	if err != nil || got.Status != "Unknown" {
		t.Errorf("an invalid health code gave %+v, %v; want Unknown", got, err)
	}
	if _, err := argoHealth(`while true do end`, obj, false); err == nil {
		t.Error("a script that never ends was not stopped")
	}
	got, err = argoHealth(`return {status = "Healthy", message = obj.metadata.name}`, obj, false)
	if err != nil || *got != (healthStatus{Status: "Healthy", Message: "x"}) {
		t.Errorf("got %+v, %v", got, err)
	}
}

const (
	cmHeader = "# Generated from config/argocd/health/connectors.unified.dev/*/health.lua by\n" +
		"# `go test ./test/gitops -run TestArgoCDConfigMap -update`; edit the .lua files, not this.\n"
	docBegin = "<!-- argocd-cm: generated from config/argocd/argocd-cm.yaml by `go test ./test/gitops -run TestArgoCDConfigMap -update` -->\n```yaml\n"
	docEnd   = "```\n<!-- end argocd-cm -->"
)

// argocdCM is the argocd-cm snippet holding both health checks.
func argocdCM(t testing.TB) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(cmHeader)
	b.WriteString("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-cm\n  namespace: argocd\n" +
		"  labels:\n    app.kubernetes.io/name: argocd-cm\n    app.kubernetes.io/part-of: argocd\ndata:\n")
	for _, kind := range []string{"Connection", "Connector"} {
		fmt.Fprintf(&b, "  resource.customizations.health.connectors.unified.dev_%s: |\n", kind)
		for _, line := range strings.SplitAfter(healthScript(t, kind), "\n") {
			if strings.TrimSpace(line) == "" {
				b.WriteString(line[len(strings.TrimRight(line, "\n")):])
				continue
			}
			b.WriteString("    " + line)
		}
	}
	return b.String()
}

// TestArgoCDConfigMap keeps config/argocd/argocd-cm.yaml and the snippet in
// docs/gitops/argocd.md identical to the health.lua files, and checks that the ConfigMap
// hands Argo CD exactly those scripts under the keys it looks up.
func TestArgoCDConfigMap(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	want := argocdCM(t)
	cmPath := filepath.Join(root, "config", "argocd", "argocd-cm.yaml")
	docPath := filepath.Join(root, "docs", "gitops", "argocd.md")
	doc, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	begin := bytes.Index(doc, []byte(docBegin))
	end := bytes.Index(doc, []byte(docEnd))
	if begin < 0 || end < begin {
		t.Fatalf("%s lacks the generated argocd-cm block (%q … %q)", docPath, docBegin, docEnd)
	}
	inDoc := string(doc[begin+len(docBegin) : end])
	if *update {
		if err := os.WriteFile(cmPath, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		newDoc := slices.Concat(doc[:begin+len(docBegin)], []byte(want), doc[end:])
		if err := os.WriteFile(docPath, newDoc, 0o644); err != nil {
			t.Fatal(err)
		}
		inDoc = want
	}
	got, err := os.ReadFile(cmPath)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("%s is stale: run go test ./test/gitops -run TestArgoCDConfigMap -update", cmPath)
	}
	if inDoc != want {
		t.Errorf("the argocd-cm snippet in %s is stale: run go test ./test/gitops -run TestArgoCDConfigMap -update", docPath)
	}

	var cm struct {
		Kind     string                `json:"kind"`
		Metadata struct{ Name string } `json:"metadata"`
		Data     map[string]string     `json:"data"`
	}
	if err := yaml.Unmarshal([]byte(want), &cm); err != nil {
		t.Fatal(err)
	}
	if cm.Kind != "ConfigMap" || cm.Metadata.Name != "argocd-cm" || len(cm.Data) != 2 {
		t.Fatalf("the snippet is not an argocd-cm with two keys: %+v", cm)
	}
	for _, kind := range []string{"Connection", "Connector"} {
		// Argo CD's key: resource.customizations.health.<group>_<Kind>.
		if got := cm.Data["resource.customizations.health.connectors.unified.dev_"+kind]; got != healthScript(t, kind) {
			t.Errorf("argocd-cm's %s script differs from its health.lua", kind)
		}
	}
}

// TestKstatusOfFixtures computes kstatus (what Flux and kubectl wait read) over every
// fixture, so the kstatus column of docs/gitops/argocd.md holds for the hand-written
// states too, including the two where kstatus is more lenient than the Lua checks.
func TestKstatusOfFixtures(t *testing.T) {
	want := map[string]status.Status{
		"Connection/operator-fresh":                status.InProgressStatus,
		"Connection/operator-ready":                status.CurrentStatus,
		"Connection/operator-credentials-rejected": status.FailedStatus,
		"Connection/operator-secret-not-found":     status.FailedStatus,
		"Connection/operator-suspended":            status.CurrentStatus,
		"Connection/operator-connector-not-ready":  status.FailedStatus,
		"Connection/operator-vendor-unreachable":   status.InProgressStatus,
		"Connection/operator-sink-rejected":        status.FailedStatus,
		// kstatus has nothing to go on without a status: the CRD default exists for this.
		"Connection/no-status":                  status.CurrentStatus,
		"Connection/generation-ahead":           status.InProgressStatus,
		"Connection/reconciling-new-generation": status.InProgressStatus,
		"Connection/rate-limited":               status.InProgressStatus,
		"Connection/sink-unavailable":           status.InProgressStatus,
		// Without a Ready condition kstatus assumes Current; Ready False or Unknown without
		// Reconciling or Stalled (which the operator never writes) is InProgress.
		"Connection/no-conditions":            status.CurrentStatus,
		"Connection/ready-unknown":            status.InProgressStatus,
		"Connection/ready-false":              status.InProgressStatus,
		"Connection/suspended-stalled":        status.FailedStatus,
		"Connection/synced":                   status.CurrentStatus,
		"Connector/operator-fresh":            status.InProgressStatus,
		"Connector/operator-ready":            status.CurrentStatus,
		"Connector/operator-secret-not-found": status.FailedStatus,
		"Connector/no-status":                 status.CurrentStatus,
		"Connector/generation-ahead":          status.InProgressStatus,
		"Connector/egress-denied":             status.FailedStatus,
	}
	fixtures, err := filepath.Glob(filepath.Join(healthDir(t), "connectors.unified.dev", "*", "testdata", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, f := range fixtures {
		name := filepath.Base(filepath.Dir(filepath.Dir(f))) + "/" + strings.TrimSuffix(filepath.Base(f), ".yaml")
		seen[name] = true
		exp, ok := want[name]
		if !ok {
			t.Errorf("%s: no expected kstatus", name)
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		// As the API server's JSON reaches kstatus: integers as int64.
		j, err := yaml.YAMLToJSON(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(j); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		res, err := status.Compute(obj)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if res.Status != exp {
			t.Errorf("%s: kstatus %s (%s), want %s", name, res.Status, res.Message, exp)
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("%s: no such fixture", name)
		}
	}
}

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const (
	crdDir  = "../../config/crd/bases"
	apiPage = "../../docs/reference/api.md"
)

// TestPageIsCurrent fails when docs/reference/api.md is not what make api-docs writes
// from the CRDs, so a changed API type cannot ship with a stale reference.
func TestPageIsCurrent(t *testing.T) {
	want, err := Render(crdDir)
	if err != nil {
		t.Fatal(err)
	}
	have, err := os.ReadFile(apiPage)
	if err != nil {
		t.Fatalf("%v; run 'make api-docs'", err)
	}
	if string(have) != string(want) {
		t.Fatalf("%s is stale; run 'make api-docs' and commit it", apiPage)
	}
}

// TestEveryFieldHasARow walks the CRD schemas independently of the generator and checks
// that each field path has its own row, with its default and enum values.
func TestEveryFieldHasARow(t *testing.T) {
	page, err := Render(crdDir)
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(string(page), "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		path := strings.Trim(strings.SplitN(line, " | ", 2)[0], "| `")
		rows[path] += line
	}
	files, _ := filepath.Glob(filepath.Join(crdDir, "*.yaml"))
	if len(files) == 0 {
		t.Fatal("no CRDs")
	}
	fields := 0
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var crd map[string]any
		if err := yaml.Unmarshal(raw, &crd); err != nil {
			t.Fatal(err)
		}
		for _, v := range dig(crd, "spec", "versions").([]any) {
			root := dig(v, "schema", "openAPIV3Schema").(map[string]any)
			for name, p := range root["properties"].(map[string]any) {
				if name == "apiVersion" || name == "kind" || name == "metadata" {
					continue
				}
				eachField(name, p.(map[string]any), func(path string, s map[string]any) {
					fields++
					row, ok := rows[path]
					if !ok {
						t.Errorf("%s: field %s has no row", filepath.Base(f), path)
						return
					}
					if d, ok := s["default"]; ok {
						if str, isStr := d.(string); isStr && !strings.Contains(row, "`"+str+"`") {
							t.Errorf("%s: row does not show default %q: %s", path, str, row)
						}
					}
					if enum, ok := s["enum"].([]any); ok {
						for _, e := range enum {
							if !strings.Contains(row, "`"+e.(string)+"`") {
								t.Errorf("%s: row does not list enum value %v", path, e)
							}
						}
					}
					if desc, _ := s["description"].(string); desc != "" {
						first := strings.Fields(desc)[0]
						if !strings.Contains(row, first) {
							t.Errorf("%s: row lacks its description %q", path, desc)
						}
					}
				})
			}
		}
	}
	if fields < 50 {
		t.Fatalf("walked only %d fields; the schemas did not parse as expected", fields)
	}
}

// TestUnknownSchemaKeywordFails: a keyword the generator does not model must stop it, not
// vanish from the page.
func TestUnknownSchemaKeywordFails(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(crdDir, "connectors.unified.dev_connectors.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(raw), "    schema:\n      openAPIV3Schema:\n", "    schema:\n      openAPIV3Schema:\n        x-made-up-keyword: true\n", 1)
	if bad == string(raw) {
		t.Fatal("fixture edit did not apply")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "c.yaml"), []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Render(dir); err == nil {
		t.Fatal("Render accepted a schema with an unknown keyword")
	}
}

// eachField calls fn for s at path and every field below it, lists as path[] and maps as
// path{}, as the page names them.
func eachField(path string, s map[string]any, fn func(string, map[string]any)) {
	fn(path, s)
	if props, ok := s["properties"].(map[string]any); ok {
		for name, p := range props {
			eachField(path+"."+name, p.(map[string]any), fn)
		}
	}
	for key, suffix := range map[string]string{"items": "[]", "additionalProperties": "{}"} {
		elem, ok := s[key].(map[string]any)
		if !ok {
			continue
		}
		if props, ok := elem["properties"].(map[string]any); ok {
			for name, p := range props {
				eachField(path+suffix+"."+name, p.(map[string]any), fn)
			}
		}
	}
}

func dig(v any, keys ...string) any {
	for _, k := range keys {
		v = v.(map[string]any)[k]
	}
	return v
}

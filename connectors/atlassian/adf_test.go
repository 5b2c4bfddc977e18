package atlassian_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/unified-connectors/connector-operator/connectors/atlassian"
	"github.com/unified-connectors/connector-operator/internal/vendorspec"
)

func TestADFToText(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{
			name: "paragraphs and headings are blocks",
			doc: `{"type":"doc","version":1,"content":[
				{"type":"heading","attrs":{"level":1},"content":[{"type":"text","text":"Title"}]},
				{"type":"paragraph","content":[{"type":"text","text":"Hello "},{"type":"text","text":"world","marks":[{"type":"strong"}]},{"type":"text","text":"."}]},
				{"type":"paragraph","content":[]},
				{"type":"paragraph","content":[{"type":"text","text":"Second."}]}]}`,
			want: "Title\n\nHello world.\n\nSecond.",
		},
		{
			name: "hard break",
			doc:  `{"type":"doc","version":1,"content":[{"type":"paragraph","content":[{"type":"text","text":"one"},{"type":"hardBreak"},{"type":"text","text":"two"}]}]}`,
			want: "one\ntwo",
		},
		{
			name: "inline nodes",
			doc: `{"type":"doc","version":1,"content":[{"type":"paragraph","content":[
				{"type":"mention","attrs":{"id":"5b10","text":"@Alice"}},{"type":"text","text":" see "},
				{"type":"inlineCard","attrs":{"url":"https://example.com/x"}},{"type":"text","text":" "},
				{"type":"emoji","attrs":{"shortName":":smile:","text":"😄"}},{"type":"emoji","attrs":{"shortName":":party:"}},{"type":"text","text":" "},
				{"type":"status","attrs":{"text":"IN PROGRESS","color":"blue"}},{"type":"text","text":" by "},
				{"type":"date","attrs":{"timestamp":"1706659200000"}},
				{"type":"placeholder","attrs":{"text":"Type here"}}]}]}`,
			want: "@Alice see https://example.com/x 😄:party: IN PROGRESS by 2024-01-31",
		},
		{
			name: "lists",
			doc: `{"type":"doc","version":1,"content":[
				{"type":"paragraph","content":[{"type":"text","text":"Steps:"}]},
				{"type":"orderedList","attrs":{"order":3},"content":[
					{"type":"listItem","content":[{"type":"paragraph","content":[{"type":"text","text":"first"}]}]},
					{"type":"listItem","content":[{"type":"paragraph","content":[{"type":"text","text":"second"}]},
						{"type":"bulletList","content":[{"type":"listItem","content":[{"type":"paragraph","content":[{"type":"text","text":"nested"}]}]}]}]}]},
				{"type":"taskList","attrs":{"localId":"t"},"content":[{"type":"taskItem","attrs":{"localId":"1","state":"TODO"},"content":[{"type":"text","text":"task"}]}]},
				{"type":"paragraph","content":[{"type":"text","text":"After."}]}]}`,
			want: "Steps:\n\n3. first\n4. second\n- nested\n\ntask\n\nAfter.",
		},
		{
			name: "table",
			doc: `{"type":"doc","version":1,"content":[{"type":"table","content":[
				{"type":"tableRow","content":[{"type":"tableHeader","content":[{"type":"paragraph","content":[{"type":"text","text":"A"}]}]},{"type":"tableHeader","content":[{"type":"paragraph","content":[{"type":"text","text":"B"}]}]}]},
				{"type":"tableRow","content":[{"type":"tableCell","content":[{"type":"paragraph","content":[{"type":"text","text":"1"}]}]},{"type":"tableCell","content":[{"type":"paragraph","content":[{"type":"text","text":"2"}]}]}]}]},
				{"type":"paragraph","content":[{"type":"text","text":"end"}]}]}`,
			want: "A\tB\n1\t2\n\nend",
		},
		{
			name: "code block keeps its lines",
			doc:  `{"type":"doc","version":1,"content":[{"type":"codeBlock","attrs":{"language":"go"},"content":[{"type":"text","text":"if x {\n\treturn\n}"}]},{"type":"rule"},{"type":"blockCard","attrs":{"url":"https://example.com/card"}}]}`,
			want: "if x {\n\treturn\n}\n\nhttps://example.com/card",
		},
		{
			name: "expand, panel, quote and unknown nodes",
			doc: `{"type":"doc","version":1,"content":[
				{"type":"expand","attrs":{"title":"Details"},"content":[{"type":"paragraph","content":[{"type":"text","text":"hidden"}]}]},
				{"type":"panel","attrs":{"panelType":"info"},"content":[{"type":"paragraph","content":[{"type":"text","text":"note"}]}]},
				{"type":"blockquote","content":[{"type":"paragraph","content":[{"type":"text","text":"quoted"}]}]},
				{"type":"futureThing","text":"own","content":[{"type":"text","text":" inner"}]}]}`,
			want: "Details\n\nhidden\n\nnote\n\nquoted\n\nown inner",
		},
		{name: "null", doc: `null`, want: ""},
		{name: "a string", doc: `"plain"`, want: ""},
		{name: "malformed JSON", doc: `{"type":"doc","content":[`, want: ""},
		{name: "empty", doc: ``, want: ""},
		{
			name: "wrong types are skipped, the rest survives",
			doc:  `{"type":"doc","content":[{"type":"paragraph","content":[{"type":"text","text":5},{"type":"text","text":"kept"},{"type":"mention","attrs":{"text":["x"]}}]},{"type":"paragraph","content":{"not":"a list"}}]}`,
			want: "kept",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := atlassian.ADFToText(json.RawMessage(tt.doc)); got != tt.want {
				t.Errorf("ADFToText =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

// nested is an ADF document whose paragraph sits depth levels down, in blockquotes.
func nested(depth int, text string) string {
	return `{"type":"doc","version":1,"content":[` + strings.Repeat(`{"type":"blockquote","content":[`, depth) +
		`{"type":"paragraph","content":[{"type":"text","text":"` + text + `"}]}` + strings.Repeat(`]}`, depth) + `]}`
}

func TestADFToTextDepthIsBounded(t *testing.T) {
	if got := atlassian.ADFToText(json.RawMessage(nested(10, "shallow"))); got != "shallow" {
		t.Errorf("a 10-deep paragraph gave %q", got)
	}
	if got := atlassian.ADFToText(json.RawMessage(nested(atlassian.MaxADFDepth+5, "deep"))); got != "" {
		t.Errorf("text below MaxADFDepth was rendered: %q", got)
	}
	// Deeper than encoding/json allows: refused without a stack overflow.
	if got := atlassian.ADFToText(json.RawMessage(nested(20000, "abyss"))); got != "" {
		t.Errorf("a 20000-deep document gave %q", got)
	}
}

func TestTextToADF(t *testing.T) {
	for _, tc := range []struct{ in, want, text string }{
		{in: "", want: `{"type":"doc","version":1,"content":[]}`, text: ""},
		{in: "one line", want: `{"type":"doc","version":1,"content":[{"type":"paragraph","content":[{"type":"text","text":"one line"}]}]}`, text: "one line"},
		{in: "a\nb\r\n\r\nc", want: `{"type":"doc","version":1,"content":[{"type":"paragraph","content":[{"type":"text","text":"a"},{"type":"hardBreak"},{"type":"text","text":"b"}]},{"type":"paragraph","content":[{"type":"text","text":"c"}]}]}`, text: "a\nb\n\nc"},
		{in: "\n\n\nx\n\n\n\ny\n", text: "x\n\ny"},
		{in: "a\n\nb\n", text: "a\n\nb"},
		{in: `quote " and \ and <tag> & 😄`, text: `quote " and \ and <tag> & 😄`},
	} {
		got := atlassian.TextToADF(tc.in)
		if tc.want != "" && string(got) != tc.want {
			t.Errorf("TextToADF(%q) = %s, want %s", tc.in, got, tc.want)
		}
		if back := atlassian.ADFToText(got); back != tc.text {
			t.Errorf("ADFToText(TextToADF(%q)) = %q, want %q", tc.in, back, tc.text)
		}
	}
}

// adfSchema compiles shared/vendor-specs/atlassian-document-format.schema.json.
func adfSchema(t testing.TB) *jsonschema.Schema {
	t.Helper()
	dir, err := vendorspec.Dir()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "atlassian-document-format.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	// The published schema refers to a few definitions it lacks (bulletList_node,
	// orderedList_node, taskList_node, mediaSingle_caption_node). TextToADF produces none
	// of those nodes, so each stands in as "an object of that type"; the nodes it does
	// produce keep their strict definitions.
	defs := doc.(map[string]any)["definitions"].(map[string]any)
	for _, name := range []string{"bulletList_node", "orderedList_node", "taskList_node", "mediaSingle_caption_node"} {
		if _, ok := defs[name]; !ok {
			typ, _, _ := strings.Cut(name, "_")
			defs[name] = map[string]any{"type": "object", "required": []any{"type"},
				"properties": map[string]any{"type": map[string]any{"enum": []any{typ}}}}
		}
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft4)
	const url = "urn:atlassian-document-format"
	if err := c.AddResource(url, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(url)
	if err != nil {
		t.Fatalf("compile the ADF schema: %v", err)
	}
	return s
}

// TestTextToADFFollowsTheSchema holds the documents Create sends to Atlassian's ADF
// schema, the same one Jira checks descriptions against.
func TestTextToADFFollowsTheSchema(t *testing.T) {
	schema := adfSchema(t)
	for _, in := range []string{"", "x", "a\nb", "a\n\nb\n\n\nc", "\n\n", " \n \n", "tab\there", "emoji 😄\r\nnext"} {
		var v any
		if err := json.Unmarshal(atlassian.TextToADF(in), &v); err != nil {
			t.Fatal(err)
		}
		if err := schema.Validate(v); err != nil {
			t.Errorf("TextToADF(%q) breaks the ADF schema: %v", in, err)
		}
	}
	// The schema is strict enough to matter: an empty text node or a missing version fail.
	for _, bad := range []string{
		`{"type":"doc","version":1,"content":[{"type":"paragraph","content":[{"type":"text","text":""}]}]}`,
		`{"type":"doc","content":[]}`,
	} {
		var v any
		_ = json.Unmarshal([]byte(bad), &v)
		if schema.Validate(v) == nil {
			t.Errorf("the ADF schema accepted %s", bad)
		}
	}
}

func FuzzADFToText(f *testing.F) {
	for _, s := range []string{
		`{"type":"doc","version":1,"content":[{"type":"paragraph","content":[{"type":"text","text":"hi"},{"type":"hardBreak"}]}]}`,
		`{"type":"doc","content":[{"type":"bulletList","content":[{"type":"listItem","content":[{"type":"paragraph","content":[{"type":"text","text":"x"}]}]}]}]}`,
		`{"type":"doc","content":[{"type":"table","content":[{"type":"tableRow","content":[{"type":"tableCell","content":[]}]}]}]}`,
		`{"type":"date","attrs":{"timestamp":"99999999999999999999"}}`,
		`{"type":"orderedList","attrs":{"order":-5},"content":[{"type":"listItem"}]}`,
		`{"type":"emoji","attrs":{"shortName":":a:"}}`,
		`{"content":[{"content":[{"content":[]}]}]}`,
		nested(120, "deep"),
		`[1,2,3]`, `null`, `"x"`, `{`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		out := atlassian.ADFToText(doc)
		// Every output byte comes from the input but separators and list numbers; a
		// date's day is at most 10 bytes from a timestamp of at least 1.
		if limit := 2*len(doc) + 16; len(out) > limit {
			t.Fatalf("output of %d bytes for %d bytes of input", len(out), len(doc))
		}
		if out != strings.TrimRight(out, " \t\r\n") {
			t.Fatalf("output %q has trailing space", out)
		}
		// Converting text to ADF and back is stable once normalized.
		again := atlassian.ADFToText(atlassian.TextToADF(out))
		if again != atlassian.ADFToText(atlassian.TextToADF(again)) {
			t.Fatalf("TextToADF/ADFToText is not stable for %q", out)
		}
	})
}

// largeADF is a document of about size bytes: sections with headings, paragraphs with
// marks and mentions, lists and a table, as a long Jira description would have.
func largeADF(size int) []byte {
	var sections []string
	for i, n := 0, 0; n < size; i++ {
		s := fmt.Sprintf(`{"type":"heading","attrs":{"level":2},"content":[{"type":"text","text":"Section %d"}]},`+
			`{"type":"paragraph","content":[{"type":"text","text":"The deployment of build %d failed on "},{"type":"text","text":"staging","marks":[{"type":"strong"}]},`+
			`{"type":"text","text":" because the migration timed out. "},{"type":"mention","attrs":{"id":"5b10a2844c20165700ede21g","text":"@Mia Krystof"}},{"type":"text","text":" please look."},{"type":"hardBreak"},`+
			`{"type":"inlineCard","attrs":{"url":"https://acme.atlassian.net/browse/OPS-%d"}}]},`+
			`{"type":"bulletList","content":[{"type":"listItem","content":[{"type":"paragraph","content":[{"type":"text","text":"rollback plan %d"}]}]},{"type":"listItem","content":[{"type":"paragraph","content":[{"type":"text","text":"notify the on-call"}]}]}]},`+
			`{"type":"table","content":[{"type":"tableRow","content":[{"type":"tableCell","content":[{"type":"paragraph","content":[{"type":"text","text":"owner"}]}]},{"type":"tableCell","content":[{"type":"paragraph","content":[{"type":"text","text":"team %d"}]}]}]}]}`,
			i, i, i, i, i)
		sections = append(sections, s)
		n += len(s) + 1
	}
	return []byte(`{"type":"doc","version":1,"content":[` + strings.Join(sections, ",") + `]}`)
}

func BenchmarkADFToText1MB(b *testing.B) {
	doc := largeADF(1 << 20)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		if atlassian.ADFToText(doc) == "" {
			b.Fatal("no text")
		}
	}
}

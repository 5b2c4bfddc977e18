package atlassian

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestStorageToText(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"paragraphs", "<p>Hello <strong>world</strong>!</p>\n<p>Second   line</p>", "Hello world!\nSecond line"},
		{"headings and lists", "<h1>Title</h1><ul><li>one</li><li>two <em>2</em></li></ul><ol><li>three</li></ol>", "Title\none\ntwo 2\nthree"},
		{"line breaks", "<p>a<br/>b<br />c</p>", "a\nb\nc"},
		{"entities", "<p>Tom &amp; Jerry&nbsp;&ndash; &lt;tag&gt; &rsquo;quoted&rsquo; &#169; &#x263A;</p>", "Tom & Jerry – <tag> ’quoted’ © ☺"},
		{"table cells on a row", "<table><tbody><tr><th><p>Key</p></th><th><p>Value</p></th></tr><tr><td><p>a</p><p>more</p></td><td>1</td></tr></tbody></table>", "Key\tValue\na more\t1"},
		{"pre keeps whitespace", "<p>before</p><pre>  x := 1\n  y := 2</pre><p>after</p>", "before\n  x := 1\n  y := 2\nafter"},
		{"blockquote and div", "<blockquote><p>quoted</p></blockquote><div>block</div>inline", "quoted\nblock\ninline"},
		{
			"code macro: parameters dropped, CDATA verbatim",
			`<ac:structured-macro ac:name="code" ac:schema-version="1"><ac:parameter ac:name="language">go</ac:parameter><ac:parameter ac:name="title">Example</ac:parameter><ac:plain-text-body><![CDATA[if a < b && c > d {
	fmt.Println("&amp; stays")
}]]></ac:plain-text-body></ac:structured-macro><p>after</p>`,
			"if a < b && c > d {\n\tfmt.Println(\"&amp; stays\")\n}\nafter",
		},
		{
			"panel macro: rich text body kept",
			`<p>before</p><ac:structured-macro ac:name="info"><ac:parameter ac:name="title">Heads up</ac:parameter><ac:rich-text-body><p>Be <em>careful</em>.</p></ac:rich-text-body></ac:structured-macro>`,
			"before\nBe careful.",
		},
		{
			"inline macro with parameters only",
			`<p>Status: <ac:structured-macro ac:name="status"><ac:parameter ac:name="title">DONE</ac:parameter></ac:structured-macro> today</p>`,
			"Status: today",
		},
		{
			"links: own text, else the target's name",
			`<p>See <ac:link><ri:page ri:content-title="Runbook" ri:space-key="OPS"/><ac:plain-text-link-body><![CDATA[the runbook]]></ac:plain-text-link-body></ac:link> and <ac:link><ri:page ri:content-title="Design notes"/></ac:link> and <ac:link><ri:attachment ri:filename="plan.pdf"/></ac:link>.</p>`,
			"See the runbook and Design notes and plan.pdf.",
		},
		{
			"tasks: status and id dropped",
			`<ac:task-list><ac:task><ac:task-id>1</ac:task-id><ac:task-status>incomplete</ac:task-status><ac:task-body>Write tests</ac:task-body></ac:task><ac:task><ac:task-id>2</ac:task-id><ac:task-status>complete</ac:task-status><ac:task-body>Ship</ac:task-body></ac:task></ac:task-list>`,
			"Write tests\nShip",
		},
		{"script and style dropped", `<p>a</p><script>alert("x")</script><style>p{color:red}</style><p>b</p>`, "a\nb"},
		{"images and emoticons have no text", `<p>x<ac:image><ri:attachment ri:filename="a.png"/></ac:image><ac:emoticon ac:name="smile"/>y</p>`, "xy"},
		{"unclosed and stray tags", `<p>a<b>b<p>c</i></div>d`, "ab\ncd"},
		{"plain text", "just text\n  with   spaces", "just text with spaces"},
		{"invalid UTF-8", "<p>a\xffb</p>", "a\uFFFDb"},
		{"comments dropped", "<p>a<!-- secret -->b</p>", "ab"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := StorageToText(tc.in); got != tc.want {
				t.Errorf("StorageToText(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
		})
	}
}

// Deep nesting must neither blow the stack nor take quadratic time, and text inside it
// must survive.
func TestStorageToTextPathologicalNesting(t *testing.T) {
	const depth = 200000
	in := strings.Repeat("<div><ac:rich-text-body>", depth) + "deep" + strings.Repeat("</ac:rich-text-body></div>", depth) + "<p>after</p>"
	if got := StorageToText(in); got != "deep\nafter" {
		t.Errorf("got %q", got)
	}
	dropped := strings.Repeat("<ac:parameter>", depth) + "hidden" + "<p>after</p>"
	if got := StorageToText(dropped); strings.Contains(got, "hidden") {
		t.Errorf("text inside unclosed parameters leaked: %q", got)
	}
	unbalanced := strings.Repeat("</p></ac:parameter>", depth) + "x"
	if got := StorageToText(unbalanced); got != "x" {
		t.Errorf("got %q", got)
	}
}

func TestTextToStorage(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"  \n\n ", ""},
		{"Hello", "<p>Hello</p>"},
		{"a\nb\n\nc", "<p>a<br />b</p><p>c</p>"},
		{"a\r\n\r\n\r\nb", "<p>a</p><p>b</p>"},
		{`<ac:structured-macro ac:name="x"/> & "q" 'a'`, "<p>&lt;ac:structured-macro ac:name=&#34;x&#34;/&gt; &amp; &#34;q&#34; &#39;a&#39;</p>"},
		{"bell\x07 and nul\x00 gone, tab\tkept", "<p>bell and nul gone, tab\tkept</p>"},
		{"bad \xff utf8", "<p>bad  utf8</p>"},
	} {
		if got := TextToStorage(tc.in); got != tc.want {
			t.Errorf("TextToStorage(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// What a user writes comes back as they wrote it, give or take whitespace.
func TestTextRoundTrip(t *testing.T) {
	for _, in := range []string{
		"Plain words",
		"Line one\nLine two\n\nSecond paragraph with <markup> & \"quotes\"",
		"]]> <![CDATA[ not code ]]>",
		"Unicode: żółw, 日本語, emoji 🐢",
	} {
		if got := StorageToText(TextToStorage(in)); got != strings.ReplaceAll(in, "\n\n", "\n") {
			t.Errorf("round trip of %q gave %q", in, got)
		}
	}
}

func FuzzStorageToText(f *testing.F) {
	for _, s := range []string{
		"",
		"<p>Hello &amp; <b>world</b></p>",
		`<ac:structured-macro ac:name="code"><ac:parameter ac:name="language">go</ac:parameter><ac:plain-text-body><![CDATA[x < y]]></ac:plain-text-body></ac:structured-macro>`,
		"<table><tr><td>a</td><td>b</td></tr></table>",
		"<![CDATA[unterminated",
		"<ac:link><ri:page ri:content-title=\"T\"/></ac:link>",
		"</p></ac:link></td>",
		"<script>if (a < b) {}</script><plaintext><p>",
		"<pre>\n\tkeep\n</pre>",
		"\xff\xfe<p\x00>",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := StorageToText(s)
		if !utf8.ValidString(got) {
			t.Fatalf("StorageToText(%q) = %q: invalid UTF-8", s, got)
		}
		// Lines are trimmed on the right and blank lines at the ends dropped.
		if strings.HasPrefix(got, "\n") || strings.HasSuffix(got, "\n") {
			t.Fatalf("StorageToText(%q) = %q: blank line at an end", s, got)
		}
		for _, line := range strings.Split(got, "\n") {
			if strings.TrimRight(line, " \t\r") != line {
				t.Fatalf("StorageToText(%q) = %q: line %q not trimmed", s, got, line)
			}
		}
		// Text written by TextToStorage comes back.
		if text := strings.Join(strings.Fields(s), " "); utf8.ValidString(text) && !strings.ContainsAny(text, "\x00\ufffd") {
			back := StorageToText(TextToStorage(text))
			want := strings.Join(strings.Fields(strings.Map(dropControl, text)), " ")
			if strings.Join(strings.Fields(back), " ") != want {
				t.Fatalf("round trip of %q gave %q, want %q", text, back, want)
			}
		}
	})
}

func dropControl(r rune) rune {
	if r < 0x20 || r == 0xFFFE || r == 0xFFFF {
		return -1
	}
	return r
}

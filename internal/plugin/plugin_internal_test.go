package plugin

import (
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/unified-connectors/connector-operator/internal/syncer"
)

func TestTarget(t *testing.T) {
	for arg, want := range map[string]string{
		"conn/jira": "jira", "connection/jira": "jira", "connections/jira": "jira", "jira": "jira",
		"connection.connectors.unified.dev/jira": "jira", "Conn/jira": "jira",
		"pod/jira": "", "conn/": "", "conn/a/b": "", "": "",
	} {
		got, err := target(arg)
		if got != want || (err != nil) != (want == "") {
			t.Errorf("target(%q) = %q, %v; want %q", arg, got, err, want)
		}
	}
}

func TestCursorPosition(t *testing.T) {
	from := time.Date(2026, 11, 30, 4, 0, 0, 0, time.UTC)
	cur := syncer.Cursor{From: from, Seen: []syncer.Instant{{At: from.Add(time.Minute), IDs: []string{"10001", "10002"}}}}
	for in, want := range map[string]string{
		"":                               "start (nothing delivered yet, or rewound by a resync)",
		cur.Encode():                     "delivered everything updated before 2026-11-30T04:00:00Z, and 2 items updated since (newest 2026-11-30T04:01:00Z)",
		"v9." + strings.Repeat("x", 100): `"v9.` + strings.Repeat("x", maxCursorText-3) + `…" (not readable by this plugin version)`,
	} {
		if got := cursorPosition(in); got != want {
			t.Errorf("cursorPosition(%.20q) = %q, want %q", in, got, want)
		}
	}
}

func TestMentions(t *testing.T) {
	if !mentions("sink answered 400 for PRJA: bad batch", "PRJA") || mentions("project PRJAB failed", "PRJA") ||
		!mentions("jira GET /rest/api/3/project/PRJ-B.x: 404", "PRJ-B.x") {
		t.Error("mentions matches container keys as whole words only")
	}
}

func TestTree(t *testing.T) {
	root := &node{text: "a"}
	b := root.add("b")
	b.add("c")
	b.add("d")
	root.add("e").add("f")
	var out strings.Builder
	if err := root.write(&out); err != nil {
		t.Fatal(err)
	}
	want := "a\n├── b\n│   ├── c\n│   └── d\n└── e\n    └── f\n"
	if out.String() != want {
		t.Errorf("tree:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestDescribe(t *testing.T) {
	gr := schema.GroupResource{Group: "connectors.unified.dev", Resource: "connections"}
	for _, c := range []struct {
		err  error
		want string
	}{
		{about(apierrors.NewNotFound(gr, "x"), "get", "connection", "ns", "x"), "connection ns/x not found"},
		{about(apierrors.NewForbidden(gr, "x", nil), "patch", "connection", "ns", "x"),
			"forbidden: you may not patch connection ns/x: " + apierrors.NewForbidden(gr, "x", nil).ErrStatus.Message},
		{about(apierrors.NewForbidden(gr, "", nil), "list", "connections", "ns", ""), "forbidden: you may not list connections in namespace ns: " +
			apierrors.NewForbidden(gr, "", nil).ErrStatus.Message},
	} {
		if got := describe(c.err); got != c.want {
			t.Errorf("describe = %q, want %q", got, c.want)
		}
	}
}

package plugin

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/internal/syncer"
)

// maxCursorText bounds how much of an unreadable cursor status prints.
const maxCursorText = 48

func (o *options) statusCommand() *cobra.Command {
	events := 10
	cmd := &cobra.Command{
		Use:   "status conn/NAME",
		Short: "Show a Connection as a tree: Connector, conditions, Secrets, containers, Events",
		Long: "status shows one Connection and what it depends on: its Connector (ready?), its conditions\n" +
			"with reasons and messages, the Secrets it references (found? which keys; never values),\n" +
			"each synced container's cursor position, items, last sync and last error, and the last\n" +
			"Events about it.",
		Example: "  kubectl connectors status conn/tracker -n team-a",
		Args:    connectionArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			name, _ := target(args[0])
			return o.status(cmd.Context(), name, events)
		},
	}
	cmd.Flags().IntVar(&events, "events", events, "how many of the latest Events to show (0: none)")
	return cmd
}

func (o *options) status(ctx context.Context, name string, maxEvents int) error {
	c, ns, err := o.client()
	if err != nil {
		return err
	}
	var conn v1alpha1.Connection
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &conn); err != nil {
		return about(err, "get", "connection", ns, name)
	}
	now := time.Now()

	root := connectorNode(ctx, c, conn.Spec.ConnectorRef.Name)
	cn := root.add("Connection %s/%s: %s", conn.Namespace, conn.Name, headline(conn.Status.Conditions, conn.Generation))
	cn.add("Generation %d, observed %d", conn.Generation, conn.Status.ObservedGeneration)

	conds := cn.add("Conditions")
	for _, cond := range sortedConditions(conn.Status.Conditions) {
		conds.add("%s=%s %s: %s (%s)", cond.Type, cond.Status, cond.Reason, oneLine(cond.Message),
			ago(now, &cond.LastTransitionTime))
	}
	if len(conn.Status.Conditions) == 0 {
		conds.add("none yet: the operator has not reconciled this Connection")
	}

	if id := conn.Status.Identity; id != nil {
		line := fmt.Sprintf("Identity: %s (%s)", cell(id.DisplayName), cell(id.AccountID))
		if p := conn.Status.Probe; p != nil {
			line += fmt.Sprintf(", probed %s in %dms", ago(now, p.LastTime), p.LatencyMillis)
		}
		cn.add("%s", line)
	}
	if cr := conn.Status.Credentials; cr != nil {
		cn.add("OAuth2 token: expires %s, refreshed %s", when(cr.ExpiresAt), ago(now, cr.LastRefreshTime))
	}

	secretNode(ctx, c, cn, fmt.Sprintf("Secret (auth %s)", conn.Spec.Auth.Method), conn.Namespace, conn.Spec.Auth.SecretRef.Name)
	if w := conn.Spec.Webhook; w != nil {
		secretNode(ctx, c, cn, "Webhook Secret", conn.Namespace, w.SecretRef.Name)
	}
	syncNode(ctx, c, cn, &conn, now)

	if maxEvents > 0 {
		events, err := eventsOf(ctx, c, &conn)
		en := cn.add("Events")
		switch {
		case err != nil:
			en.add("%s", describe(about(err, "list", "events", conn.Namespace, "")))
		case len(events) == 0:
			en.add("none")
		default:
			if len(events) > maxEvents {
				events = events[len(events)-maxEvents:]
			}
			for _, e := range events {
				t := metav1.NewTime(eventTime(e))
				count := ""
				if e.Series != nil && e.Series.Count > 1 {
					count = fmt.Sprintf(" (x%d)", e.Series.Count)
				}
				en.add("%s %s %s: %s%s", ago(now, &t), e.Type, e.Reason, oneLine(e.Note), count)
			}
		}
	}
	return root.write(o.streams.Out)
}

// connectorNode is the tree's root: the Connection's Connector, however much of it the
// caller may see.
func connectorNode(ctx context.Context, c client.Client, name string) *node {
	var cnr v1alpha1.Connector
	err := c.Get(ctx, client.ObjectKey{Name: name}, &cnr)
	switch {
	case apierrors.IsNotFound(err):
		return &node{text: fmt.Sprintf("Connector %s: not found (the Connection reads ConnectorNotFound)", name)}
	case err != nil:
		return &node{text: fmt.Sprintf("Connector %s: %s", name, describe(about(err, "get", "connector", "", name)))}
	}
	n := &node{text: fmt.Sprintf("Connector %s (%s, %s, %s): %s", cnr.Name, cnr.Spec.Type, cell(cnr.Spec.Deployment),
		cnr.Spec.BaseURL, headline(cnr.Status.Conditions, cnr.Generation))}
	return n
}

// headline is "Ready=True: message" or what stands for it.
func headline(conds []metav1.Condition, generation int64) string {
	ready, msg := readiness(conds, generation)
	line := "Ready=" + ready
	if c := meta.FindStatusCondition(conds, v1alpha1.StalledCondition); c != nil && c.Status == metav1.ConditionTrue {
		line += " Stalled"
	} else if c := meta.FindStatusCondition(conds, v1alpha1.ReconcilingCondition); c != nil && c.Status == metav1.ConditionTrue {
		line += " Reconciling"
	}
	if msg != none {
		line += ": " + msg
	}
	return line
}

// sortedConditions puts Ready first, then the others by type.
func sortedConditions(conds []metav1.Condition) []metav1.Condition {
	out := slices.Clone(conds)
	sort.SliceStable(out, func(i, j int) bool {
		if (out[i].Type == v1alpha1.ReadyCondition) != (out[j].Type == v1alpha1.ReadyCondition) {
			return out[i].Type == v1alpha1.ReadyCondition
		}
		return out[i].Type < out[j].Type
	})
	return out
}

// secretNode adds a Secret reference: whether it exists and which keys it holds. The
// values are read with the Secret (the API has no keys-only read) and dropped here.
func secretNode(ctx context.Context, c client.Client, parent *node, label, ns, name string) {
	if name == "" {
		return
	}
	var s corev1.Secret
	err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &s)
	switch {
	case apierrors.IsNotFound(err):
		parent.add("%s %s/%s: not found", label, ns, name)
		return
	case err != nil:
		parent.add("%s %s/%s: %s", label, ns, name, describe(about(err, "get", "secret", ns, name)))
		return
	}
	keys := make([]string, 0, len(s.Data))
	for k := range s.Data {
		keys = append(keys, k)
	}
	s.Data, s.StringData = nil, nil
	slices.Sort(keys)
	if len(keys) == 0 {
		parent.add("%s %s/%s: found, no keys", label, ns, name)
		return
	}
	parent.add("%s %s/%s: found, keys %s", label, ns, name, strings.Join(keys, ", "))
}

// syncNode adds the sink, the sync's progress and each container's cursor.
func syncNode(ctx context.Context, c client.Client, parent *node, conn *v1alpha1.Connection, now time.Time) {
	spec := conn.Spec.Sync
	if spec == nil || spec.Sink == nil {
		parent.add("Sync: off (no spec.sync.sink)")
		return
	}
	st := conn.Status.Sync
	if st == nil {
		st = &v1alpha1.SyncStatus{}
	}
	line := fmt.Sprintf("Sync to %s: %d items delivered, last sync %s, last complete %s", spec.Sink.URL,
		st.ItemsDelivered, ago(now, st.LastSyncTime), ago(now, st.LastSuccessfulSyncTime))
	if spec.Suspend {
		line += ", SUSPENDED"
	}
	sn := parent.add("%s", line)
	if spec.Sink.SecretRef != nil {
		secretNode(ctx, c, sn, "Sink Secret", conn.Namespace, spec.Sink.SecretRef.Name)
	}
	if spec.ResyncRequest != "" {
		handled := "handled"
		if spec.ResyncRequest != st.LastHandledResyncRequest {
			handled = "pending"
		}
		sn.add("Resync request %q: %s", spec.ResyncRequest, handled)
	}

	// Status keeps no per-container error: a failing run says which container and why in
	// Synced's message, so that message is the last error of the container it names (or
	// of the whole sync when it names none).
	lastError, errorOwner := "", ""
	if s := meta.FindStatusCondition(conn.Status.Conditions, v1alpha1.SyncedCondition); s != nil &&
		s.Status == metav1.ConditionFalse && s.Reason != v1alpha1.SuspendedReason {
		lastError = fmt.Sprintf("%s: %s", s.Reason, oneLine(s.Message))
		for _, ct := range st.Containers {
			if mentions(s.Message, ct.Key) {
				errorOwner = ct.Key
				break
			}
		}
		if errorOwner == "" {
			sn.add("Last error: %s", lastError)
		}
	}
	if len(st.Containers) == 0 {
		sn.add("Containers: none synced yet")
	}
	for _, ct := range st.Containers {
		label := ct.Key
		if ct.Name != "" && ct.Name != ct.Key {
			label += " (" + ct.Name + ")"
		}
		cnode := sn.add("Container %s", label)
		cnode.add("Cursor: %s", cursorPosition(ct.Cursor))
		cnode.add("Items: %d, last sync %s, last snapshot %s", ct.ItemsDelivered, ago(now, ct.LastSyncTime), ago(now, ct.LastPruneTime))
		switch {
		case ct.Key == errorOwner:
			cnode.add("Last error: %s", lastError)
		case lastError != "" && errorOwner == "":
			cnode.add("Last error: the last run failed (the sync's last error above)")
		default:
			cnode.add("Last error: none")
		}
	}
}

// mentions reports whether msg names the container key as a word.
func mentions(msg, key string) bool {
	for f := range strings.FieldsFuncSeq(msg, func(r rune) bool {
		return (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && !strings.ContainsRune("_~.-", r)
	}) {
		if f == key {
			return true
		}
	}
	return false
}

// cursorPosition reads the opaque cursor the way the sync engine does: every item
// updated before From was delivered, and so were the ids listed at or after it.
func cursorPosition(s string) string {
	if s == "" {
		return "start (nothing delivered yet, or rewound by a resync)"
	}
	cur, err := syncer.ParseCursor(s)
	if err != nil {
		if len(s) > maxCursorText {
			s = s[:maxCursorText] + "…"
		}
		return fmt.Sprintf("%q (not readable by this plugin version)", s)
	}
	if cur.From.IsZero() && cur.Len() == 0 {
		return "start"
	}
	line := "delivered everything updated before " + cur.From.UTC().Format(time.RFC3339)
	if n := cur.Len(); n > 0 {
		line += fmt.Sprintf(", and %d items updated since (newest %s)", n, cur.Latest().UTC().Format(time.RFC3339))
	}
	return line
}

func when(t *metav1.Time) string {
	if t == nil || t.IsZero() {
		return "unknown"
	}
	return t.UTC().Format(time.RFC3339)
}

// node is one line of a tree and the lines under it.
type node struct {
	text     string
	children []*node
}

func (n *node) add(format string, args ...any) *node {
	c := &node{text: fmt.Sprintf(format, args...)}
	n.children = append(n.children, c)
	return c
}

func (n *node) write(w io.Writer) error {
	var b strings.Builder
	b.WriteString(n.text + "\n")
	n.writeChildren(&b, "")
	_, err := io.WriteString(w, b.String())
	return err
}

func (n *node) writeChildren(b *strings.Builder, prefix string) {
	for i, c := range n.children {
		branch, indent := "├── ", "│   "
		if i == len(n.children)-1 {
			branch, indent = "└── ", "    "
		}
		b.WriteString(prefix + branch + c.text + "\n")
		c.writeChildren(b, prefix+indent)
	}
}

// sortEvents orders Events oldest first.
func sortEvents(events []eventsv1.Event) {
	sort.SliceStable(events, func(i, j int) bool { return eventTime(events[i]).Before(eventTime(events[j])) })
}

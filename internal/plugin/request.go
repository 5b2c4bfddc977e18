package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
)

// pollInterval is how often a waiting command reads the Connection again.
const pollInterval = 500 * time.Millisecond

// waitFlags are --wait and --timeout.
type waitFlags struct {
	wait    bool
	timeout time.Duration
}

func (w *waitFlags) add(cmd *cobra.Command, what string) {
	cmd.Flags().BoolVar(&w.wait, "wait", true, "wait until the operator "+what)
	cmd.Flags().DurationVar(&w.timeout, "timeout", 2*time.Minute, "how long to wait")
}

func (o *options) syncCommand() *cobra.Command {
	var w waitFlags
	cmd := &cobra.Command{
		Use:   "sync conn/NAME",
		Short: "Ask for an immediate probe and sync (annotation " + v1alpha1.RequestedAtAnnotation + ")",
		Long: "sync sets the annotation " + v1alpha1.RequestedAtAnnotation + " to a fresh value, which asks\n" +
			"the operator for an immediate probe and an incremental sync, and waits until\n" +
			"status.lastHandledReconcileAt echoes it.",
		Example: "  kubectl connectors sync conn/tracker -n team-a",
		Args:    connectionArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			name, _ := target(args[0])
			return o.sync(cmd.Context(), name, w)
		},
	}
	w.add(cmd, "has handled the request")
	return cmd
}

func (o *options) resyncCommand() *cobra.Command {
	var w waitFlags
	cmd := &cobra.Command{
		Use:   "resync conn/NAME",
		Short: "Rewind every cursor to spec.sync.since and sync again (spec.sync.resyncRequest)",
		Long: "resync sets spec.sync.resyncRequest to a fresh value: the sync engine rewinds every\n" +
			"container's cursor to spec.sync.since and delivers everything again. It waits until\n" +
			"status.sync.lastHandledResyncRequest echoes the value.",
		Example: "  kubectl connectors resync conn/tracker -n team-a --timeout 5m",
		Args:    connectionArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			name, _ := target(args[0])
			return o.resync(cmd.Context(), name, w)
		},
	}
	w.add(cmd, "has started the resync")
	return cmd
}

func (o *options) suspendCommand(suspend bool) *cobra.Command {
	var w waitFlags
	use, short, what := "resume", "Resume syncing (spec.sync.suspend=false)", "has resumed the sync"
	if suspend {
		use, short, what = "suspend", "Stop syncing (spec.sync.suspend=true); probes go on", "has stopped the sync"
	}
	cmd := &cobra.Command{
		Use:     use + " conn/NAME",
		Short:   short,
		Example: "  kubectl connectors " + use + " conn/tracker -n team-a",
		Args:    connectionArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			name, _ := target(args[0])
			return o.suspend(cmd.Context(), name, suspend, w)
		},
	}
	w.add(cmd, what)
	return cmd
}

// fresh is a request value that differs from any earlier one.
func fresh() string { return time.Now().UTC().Format(time.RFC3339Nano) }

func (o *options) sync(ctx context.Context, name string, w waitFlags) error {
	c, ns, err := o.client()
	if err != nil {
		return err
	}
	value := fresh()
	patch := map[string]any{"metadata": map[string]any{"annotations": map[string]string{v1alpha1.RequestedAtAnnotation: value}}}
	conn, err := mergePatch(ctx, c, ns, name, patch)
	if err != nil {
		return err
	}
	say(o.streams.Out, "► sync requested for connection %s/%s (%s=%s)\n", ns, name, v1alpha1.RequestedAtAnnotation, value)
	if !w.wait {
		return nil
	}
	conn, err = o.await(ctx, c, conn, w.timeout, "status.lastHandledReconcileAt to echo "+value, func(conn *v1alpha1.Connection) (bool, error) {
		return conn.Status.LastHandledReconcileAt == value, nil
	})
	if err != nil {
		return err
	}
	say(o.streams.Out, "✔ request handled: %s\n", headline(conn.Status.Conditions, conn.Generation))
	return nil
}

func (o *options) resync(ctx context.Context, name string, w waitFlags) error {
	c, ns, err := o.client()
	if err != nil {
		return err
	}
	var conn v1alpha1.Connection
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &conn); err != nil {
		return about(err, "get", "connection", ns, name)
	}
	if conn.Spec.Sync == nil || conn.Spec.Sync.Sink == nil {
		return fmt.Errorf("connection %s/%s has no spec.sync.sink: there is nothing to resync", ns, name)
	}
	value := fresh()
	patched, err := mergePatch(ctx, c, ns, name, map[string]any{"spec": map[string]any{"sync": map[string]any{"resyncRequest": value}}})
	if err != nil {
		return err
	}
	say(o.streams.Out, "► resync requested for connection %s/%s (spec.sync.resyncRequest=%s)\n", ns, name, value)
	if !w.wait {
		return nil
	}
	if patched.Spec.Sync.Suspend {
		return fmt.Errorf("connection %s/%s is suspended: the resync runs once it is resumed (kubectl connectors resume conn/%s)", ns, name, name)
	}
	patched, err = o.await(ctx, c, patched, w.timeout, "status.sync.lastHandledResyncRequest to echo "+value, func(conn *v1alpha1.Connection) (bool, error) {
		return conn.Status.Sync != nil && conn.Status.Sync.LastHandledResyncRequest == value, nil
	})
	if err != nil {
		return err
	}
	say(o.streams.Out, "✔ resync started: every cursor rewound; %s\n", syncedLine(patched))
	return nil
}

func (o *options) suspend(ctx context.Context, name string, suspend bool, w waitFlags) error {
	c, ns, err := o.client()
	if err != nil {
		return err
	}
	var conn v1alpha1.Connection
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &conn); err != nil {
		return about(err, "get", "connection", ns, name)
	}
	if conn.Spec.Sync == nil {
		return fmt.Errorf("connection %s/%s has no spec.sync: there is no sync to suspend or resume", ns, name)
	}
	patched, err := mergePatch(ctx, c, ns, name, map[string]any{"spec": map[string]any{"sync": map[string]any{"suspend": suspend}}})
	if err != nil {
		return err
	}
	verb := "resumed"
	if suspend {
		verb = "suspended"
	}
	say(o.streams.Out, "► connection %s/%s %s (spec.sync.suspend=%t)\n", ns, name, verb, patched.Spec.Sync.Suspend)
	if !w.wait || patched.Spec.Sync.Sink == nil {
		return nil
	}
	gen := patched.Generation
	patched, err = o.await(ctx, c, patched, w.timeout, "the operator to see spec.sync.suspend="+fmt.Sprint(suspend), func(conn *v1alpha1.Connection) (bool, error) {
		ready := meta.FindStatusCondition(conn.Status.Conditions, v1alpha1.ReadyCondition)
		if ready == nil || ready.ObservedGeneration < gen {
			return false, nil
		}
		synced := meta.FindStatusCondition(conn.Status.Conditions, v1alpha1.SyncedCondition)
		if suspend {
			// Synced is absent while the Connection cannot be served: nothing syncs then.
			return synced == nil || synced.Reason == v1alpha1.SuspendedReason, nil
		}
		return synced == nil || synced.Reason != v1alpha1.SuspendedReason, nil
	})
	if err != nil {
		return err
	}
	say(o.streams.Out, "✔ %s\n", syncedLine(patched))
	return nil
}

// mergePatch applies a JSON merge patch to the Connection and returns it as patched.
func mergePatch(ctx context.Context, c client.Client, ns, name string, patch map[string]any) (*v1alpha1.Connection, error) {
	data, err := json.Marshal(patch)
	if err != nil {
		return nil, err
	}
	conn := &v1alpha1.Connection{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := c.Patch(ctx, conn, client.RawPatch(types.MergePatchType, data)); err != nil {
		return nil, about(err, "patch", "connection", ns, name)
	}
	return conn, nil
}

// await reads the Connection until done says so or timeout passes; the error on timeout
// says what it waited for and what the Connection reads meanwhile.
func (o *options) await(ctx context.Context, c client.Client, conn *v1alpha1.Connection, timeout time.Duration,
	what string, done func(*v1alpha1.Connection) (bool, error)) (*v1alpha1.Connection, error) {
	key := client.ObjectKeyFromObject(conn)
	uid := conn.UID
	say(o.streams.Out, "◎ waiting for %s\n", what)
	var last v1alpha1.Connection
	err := wait.PollUntilContextTimeout(ctx, pollInterval, timeout, true, func(ctx context.Context) (bool, error) {
		var cur v1alpha1.Connection
		if err := c.Get(ctx, key, &cur); err != nil {
			if apierrors.IsNotFound(err) || apierrors.IsForbidden(err) {
				return false, about(err, "get", "connection", key.Namespace, key.Name)
			}
			return false, nil // the API server may be briefly unavailable: ask again
		}
		if cur.UID != uid {
			return false, fmt.Errorf("connection %s was deleted and re-created while waiting", key)
		}
		last = cur
		return done(&cur)
	})
	if err != nil {
		if wait.Interrupted(err) || errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("timed out after %s waiting for %s; connection %s reads %s", timeout, what, key,
				headline(last.Status.Conditions, last.Generation))
		}
		return nil, err
	}
	return &last, nil
}

// syncedLine is the Synced condition in words.
func syncedLine(conn *v1alpha1.Connection) string {
	s := meta.FindStatusCondition(conn.Status.Conditions, v1alpha1.SyncedCondition)
	if s == nil {
		return "Synced: not reported (" + headline(conn.Status.Conditions, conn.Generation) + ")"
	}
	return fmt.Sprintf("Synced=%s %s: %s", s.Status, s.Reason, oneLine(s.Message))
}

package plugin

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
)

// none fills a table cell or a tree line that has nothing to show.
const none = "-"

func (o *options) getCommand() *cobra.Command {
	var allNamespaces bool
	cmd := &cobra.Command{
		Use:   "get [connectors|connections]",
		Short: "Show the health of Connectors and Connections (both without an argument)",
		Example: "  kubectl connectors get\n  kubectl connectors get connections -A\n" +
			"  kubectl connectors get connectors",
		Args:      cobra.MaximumNArgs(1),
		ValidArgs: []string{"connectors", "connections"},
		RunE: func(cmd *cobra.Command, args []string) error {
			what := ""
			if len(args) == 1 {
				what = args[0]
			}
			return o.get(cmd.Context(), what, allNamespaces)
		},
	}
	cmd.Flags().BoolVarP(&allNamespaces, "all-namespaces", "A", false, "list Connections in every namespace")
	return cmd
}

func (o *options) get(ctx context.Context, what string, allNamespaces bool) error {
	var connectors, connections bool
	switch strings.ToLower(what) {
	case "":
		connectors, connections = true, true
	case "connectors", "connector", "cnr", "connectors.connectors.unified.dev":
		connectors = true
	case "connections", "connection", "conn", "connections.connectors.unified.dev":
		connections = true
	default:
		return fmt.Errorf("get shows connectors or connections, not %q", what)
	}
	c, ns, err := o.client()
	if err != nil {
		return err
	}
	both := connectors && connections
	if connectors {
		var list v1alpha1.ConnectorList
		err := about(c.List(ctx, &list), "list", "connectors", "", "")
		switch {
		case err != nil && both && apierrors.IsForbidden(err):
			// A tenant may read its own Connections without seeing cluster-scoped
			// Connectors: say so and show what it may see.
			say(o.streams.ErrOut, "Connectors: %s\n\n", describe(err))
		case err != nil:
			return err
		case len(list.Items) == 0:
			say(o.streams.ErrOut, "No connectors found.\n")
		default:
			if both {
				say(o.streams.Out, "CONNECTORS\n")
			}
			if err := connectorTable(o.streams.Out, list.Items); err != nil {
				return err
			}
			if both {
				say(o.streams.Out, "\n")
			}
		}
	}
	if connections {
		var list v1alpha1.ConnectionList
		var opts []client.ListOption
		listNS := ""
		if !allNamespaces {
			listNS = ns
			opts = append(opts, client.InNamespace(ns))
		}
		if err := about(c.List(ctx, &list, opts...), "list", "connections", listNS, ""); err != nil {
			return err
		}
		if len(list.Items) == 0 {
			if allNamespaces {
				say(o.streams.ErrOut, "No connections found.\n")
			} else {
				say(o.streams.ErrOut, "No connections found in namespace %s.\n", ns)
			}
			return nil
		}
		if both {
			say(o.streams.Out, "CONNECTIONS\n")
		}
		return connectionTable(o.streams.Out, list.Items, allNamespaces)
	}
	return nil
}

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 6, 4, 3, ' ', 0) }

func connectorTable(w io.Writer, items []v1alpha1.Connector) error {
	tw := newTable(w)
	say(tw, "NAME\tTYPE\tREADY\tCONNECTIONS\tSTATUS\n")
	for i := range items {
		c := &items[i]
		ready, msg := readiness(c.Status.Conditions, c.Generation)
		say(tw, "%s\t%s\t%s\t%d/%d\t%s\n", c.Name, c.Spec.Type, ready,
			c.Status.ReadyConnections, c.Status.Connections, msg)
	}
	return tw.Flush()
}

func connectionTable(w io.Writer, items []v1alpha1.Connection, withNamespace bool) error {
	tw := newTable(w)
	if withNamespace {
		say(tw, "NAMESPACE\t")
	}
	say(tw, "NAME\tTYPE\tREADY\tITEMS\tLAST SYNC\tSUSPENDED\tSTATUS\n")
	now := time.Now()
	for i := range items {
		c := &items[i]
		ready, msg := readiness(c.Status.Conditions, c.Generation)
		items, last := none, none
		if c.Spec.Sync != nil && c.Spec.Sync.Sink != nil {
			items = "0"
		}
		if s := c.Status.Sync; s != nil {
			items = strconv.FormatInt(s.ItemsDelivered, 10)
			last = age(now, s.LastSyncTime)
		}
		suspended := "False"
		if c.Spec.Sync != nil && c.Spec.Sync.Suspend {
			suspended = "True"
		}
		if withNamespace {
			say(tw, "%s\t", c.Namespace)
		}
		say(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Name, cell(string(c.Status.Type)), ready, items, last, suspended, msg)
	}
	return tw.Flush()
}

// readiness is what the READY and STATUS columns say: the Ready condition, Unknown while
// the operator has not looked at the current generation.
func readiness(conds []metav1.Condition, generation int64) (ready, message string) {
	c := meta.FindStatusCondition(conds, v1alpha1.ReadyCondition)
	switch {
	case c == nil:
		return string(metav1.ConditionUnknown), "waiting for the operator's first reconcile"
	case c.ObservedGeneration < generation:
		return string(metav1.ConditionUnknown), oneLine(fmt.Sprintf("reconciling generation %d (was: %s)", generation, c.Message))
	default:
		return string(c.Status), cell(oneLine(c.Message))
	}
}

// age is a kubectl-style age ("5s", "3m2s") of t, or "-".
func age(now time.Time, t *metav1.Time) string {
	if t == nil || t.IsZero() {
		return none
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

// ago is age for sentences: "5s ago".
func ago(now time.Time, t *metav1.Time) string {
	if t == nil || t.IsZero() {
		return "never"
	}
	return duration.HumanDuration(now.Sub(t.Time)) + " ago"
}

func cell(s string) string {
	if s == "" {
		return none
	}
	return s
}

// oneLine keeps a message on its table row or tree line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

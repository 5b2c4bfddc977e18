// Package plugin is the kubectl plugin kubectl-connectors (cmd/kubectl-connectors is its
// thin main): health tables, a status tree, and the requests a user makes of a
// Connection, against whatever cluster the kubeconfig names.
//
//	kubectl connectors get [connectors|connections] [-n NS | -A]
//	kubectl connectors status conn/NAME [-n NS]
//	kubectl connectors sync conn/NAME     (requested-at annotation, waits for lastHandledReconcileAt)
//	kubectl connectors resync conn/NAME   (spec.sync.resyncRequest, waits for lastHandledResyncRequest)
//	kubectl connectors suspend|resume conn/NAME
//
// It reads and writes only through the API server, with the caller's own identity and
// kubeconfig (--kubeconfig, --context, -n and the rest of kubectl's flags, from
// k8s.io/cli-runtime). It never prints a Secret's values: status reads a referenced
// Secret only to list its key names.
//
// Main's exit code is 0 on success and 1 on any error; a NotFound or Forbidden answer is
// said in one line naming the object and the caller's missing permission.
package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
)

// Name is how kubectl finds the plugin on PATH (kubectl connectors ...).
const Name = "kubectl-connectors"

// Main runs the plugin with args (without the program name) and returns its exit code.
func Main(args []string, streams genericiooptions.IOStreams) int {
	cmd := NewCommand(streams)
	cmd.SetArgs(args)
	if err := cmd.Execute(); err != nil {
		say(streams.ErrOut, "Error: %s\n", describe(err))
		return 1
	}
	return 0
}

// NewCommand is the root command; its output goes to streams.
func NewCommand(streams genericiooptions.IOStreams) *cobra.Command {
	o := &options{streams: streams, flags: genericclioptions.NewConfigFlags(true)}
	root := &cobra.Command{
		Use: "kubectl-connectors",
		// kubectl runs kubectl-connectors as `kubectl connectors`: usage lines say so.
		Annotations: map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl connectors"},
		Short:       "Health, status and requests of connector-operator's Connectors and Connections",
		Long: "kubectl connectors shows the health of Connectors and Connections, the status tree of one\n" +
			"Connection, and asks the operator to sync, resync, suspend or resume one.\n" +
			"Secret values are never read out: status lists a Secret's key names only.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	root.SetIn(streams.In)
	o.flags.AddFlags(root.PersistentFlags())
	root.AddCommand(o.getCommand(), o.statusCommand(), o.syncCommand(), o.resyncCommand(),
		o.suspendCommand(true), o.suspendCommand(false))
	return root
}

// options are shared by every subcommand.
type options struct {
	streams genericiooptions.IOStreams
	flags   *genericclioptions.ConfigFlags
}

// scheme knows client-go's kinds and this module's.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(v1alpha1.AddToScheme(s))
	return s
}()

// client builds a direct client from the kubeconfig flags and returns it with the
// namespace the flags (or the kubeconfig's context) name.
func (o *options) client() (client.Client, string, error) {
	cfg, err := o.flags.ToRESTConfig()
	if err != nil {
		return nil, "", err
	}
	ns, _, err := o.flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil, "", err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, "", fmt.Errorf("connecting to the cluster: %w", err)
	}
	return c, ns, nil
}

// objectError names what an API error was about, for describe.
type objectError struct {
	kind, namespace, name string // name "" for a list
	verb                  string
	err                   error
}

func (e *objectError) Error() string { return e.err.Error() }
func (e *objectError) Unwrap() error { return e.err }

// about wraps err (when it is one) with the object it concerns.
func about(err error, verb, kind, namespace, name string) error {
	if err == nil {
		return nil
	}
	return &objectError{kind: kind, namespace: namespace, name: name, verb: verb, err: err}
}

func (e *objectError) what() string {
	switch {
	case e.name == "" && e.namespace == "":
		return e.kind
	case e.name == "":
		return fmt.Sprintf("%s in namespace %s", e.kind, e.namespace)
	case e.namespace == "":
		return fmt.Sprintf("%s %s", e.kind, e.name)
	default:
		return fmt.Sprintf("%s %s/%s", e.kind, e.namespace, e.name)
	}
}

// describe says what went wrong in one line: NotFound and Forbidden name the object and
// the verb, so that the reader knows what to fix (a name, a namespace, a RoleBinding).
func describe(err error) string {
	var oe *objectError
	hasObject := errors.As(err, &oe)
	switch {
	case hasObject && apierrors.IsNotFound(err):
		return oe.what() + " not found"
	case hasObject && apierrors.IsForbidden(err):
		return fmt.Sprintf("forbidden: you may not %s %s: %s", oe.verb, oe.what(), apiMessage(err))
	case apierrors.IsUnauthorized(err):
		return "unauthorized: the cluster refused the kubeconfig's credentials (" + apiMessage(err) + ")"
	default:
		return err.Error()
	}
}

func apiMessage(err error) string {
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		return st.Status().Message
	}
	return err.Error()
}

// target parses a Connection argument: conn/NAME, connection/NAME, connections/NAME,
// connection.connectors.unified.dev/NAME, or a bare NAME.
func target(arg string) (string, error) {
	kind, name, ok := strings.Cut(arg, "/")
	if !ok {
		name, kind = arg, "conn"
	}
	switch strings.ToLower(kind) {
	case "conn", "connection", "connections", "connection.connectors.unified.dev", "connections.connectors.unified.dev":
	default:
		return "", fmt.Errorf("%q is not a Connection: write conn/NAME", arg)
	}
	if name == "" || strings.Contains(name, "/") {
		return "", fmt.Errorf("%q: write conn/NAME", arg)
	}
	return name, nil
}

// connectionArg is the Args validator of the commands that take one Connection.
func connectionArg(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("%s takes one Connection, for example: kubectl connectors %s conn/NAME", cmd.Name(), cmd.Name())
	}
	_, err := target(args[0])
	return err
}

// eventsOf returns the Events (events.k8s.io) about the Connection, oldest first.
func eventsOf(ctx context.Context, c client.Client, conn *v1alpha1.Connection) ([]eventsv1.Event, error) {
	var list eventsv1.EventList
	if err := c.List(ctx, &list, client.InNamespace(conn.Namespace),
		client.MatchingFields{"regarding.name": conn.Name, "regarding.kind": "Connection"}); err != nil {
		return nil, err
	}
	out := list.Items[:0]
	for _, e := range list.Items {
		// A deleted and re-created Connection of the same name is another object.
		if e.Regarding.UID == "" || e.Regarding.UID == conn.UID {
			out = append(out, e)
		}
	}
	sortEvents(out)
	return out, nil
}

// eventTime is when an Event last happened, whichever field its writer filled.
func eventTime(e eventsv1.Event) time.Time {
	switch {
	case e.Series != nil && !e.Series.LastObservedTime.IsZero():
		return e.Series.LastObservedTime.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	case !e.DeprecatedLastTimestamp.IsZero():
		return e.DeprecatedLastTimestamp.Time
	default:
		return e.CreationTimestamp.Time
	}
}

// say writes to the user's terminal or pipe; a failed write there has nowhere better to
// be reported.
func say(w io.Writer, format string, args ...any) { _, _ = fmt.Fprintf(w, format, args...) }

// stdStreams are the process's own.
func stdStreams() genericiooptions.IOStreams {
	return genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
}

// Run is Main on the process's arguments and streams.
func Run() int { return Main(os.Args[1:], stdStreams()) }

// Package syncer is the sync engine: per Connection, per container, it reads what changed
// at the vendor in update order and delivers it to the Connection's sink as CloudEvents
// batches, moving the cursor kept in status.sync only past items the sink acknowledged.
//
// The engine runs only on the leader, in goroutines of its own: a long backfill never
// holds a reconcile worker nor delays another Connection's probe. The Connection
// reconciler tells it what to sync (Ensure, Remove, Trigger) and reads back its State to
// set the Synced condition; the engine asks for that reconcile through Notify.
//
// Status: the engine writes status.sync only (a merge patch of that one field), never
// conditions, so the reconciler stays the single writer of conditions. Cursor writes are
// throttled (PersistEvery, and always at the end of a container): a crash repeats at most
// that window, which the at-least-once contract allows.
package syncer

import (
	"context"
	"github.com/unified-connectors/connector-operator/internal/wait"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/internal/egress"
	"github.com/unified-connectors/connector-operator/internal/vendorclient"
)

// Defaults for Engine fields left zero.
const (
	DefaultPersistEvery  = 5 * time.Second
	DefaultSinkTimeout   = 30 * time.Second
	DefaultParallel      = 4
	DefaultSyncInterval  = 15 * time.Minute
	DefaultPruneInterval = 24 * time.Hour
	// DefaultPersistEveryItems bounds, in items, what a crash can make the sink receive
	// twice: status.sync is written at least every this many acknowledged items.
	DefaultPersistEveryItems = 500
	// MaxContainers is how many containers a Connection with an empty
	// spec.scope.containers tracks (the bound of an explicit list too); beyond it the
	// sync stalls with ScopeTooLarge rather than outgrow etcd's object size limit.
	MaxContainers  = 1000
	maxSinkBackoff = 10 * time.Second
	// Retries after a failed run: exponential from retryMin, capped at retryMax and at
	// the sync interval.
	retryMin = time.Second
	retryMax = 5 * time.Minute
	// minSettle is the least a cursor trails the newest delivered instant, even with no
	// look-back: an item may still be written in that very millisecond.
	minSettle = time.Minute
	// Cursor memory: ids remembered per container, shared out of a per-Connection budget.
	maxSeenPerConnection = 8000
	minSeenPerContainer  = 8
	maxSeenPerContainer  = 5000
	maxContainerName     = 128
	pageSize             = 100
	snapshotChunk        = 1000
)

// State is what the engine knows about a Connection's sync, for its Synced condition.
type State struct {
	// Reason is a condition reason: Progressing (first run not finished), Succeeded,
	// Suspended, SinkUnavailable, SinkRejected, EgressDenied, VendorUnreachable,
	// RateLimited, CredentialsRejected, ...
	Reason string
	// Message is safe to show: it never carries a credential or a sink URL's secrets.
	Message string
	// Stalled marks a problem only a human can fix; the engine waits for a change.
	Stalled bool
	// Synced is true when the last run delivered everything it read.
	Synced bool
}

// Engine syncs every Connection that has a sink. Start it with the manager (leader only).
type Engine struct {
	// Client reads Connections and writes status.sync.
	Client client.Client
	// Reader reads Secrets live (sink authorization).
	Reader client.Reader
	// Vendors builds each Connection's vendor client.
	Vendors *vendorclient.Factory
	// SinkEgress guards sink destinations (egress.Sink with the insecure flag applied).
	SinkEgress egress.Policy
	// Notify asks the reconciler to look at a Connection again (State changed).
	Notify func(client.ObjectKey)
	// PersistEvery throttles cursor writes during a run.
	PersistEvery time.Duration
	// PersistEveryItems writes the cursors at least every this many items.
	PersistEveryItems int
	// SinkTimeout bounds one POST to the sink.
	SinkTimeout time.Duration
	// Parallel bounds the containers of one Connection synced at once.
	Parallel int

	mu      sync.Mutex
	ctx     context.Context // set by Start; nil before
	workers map[client.ObjectKey]*worker
}

// NeedLeaderElection makes the engine run on the leader only: two replicas syncing the
// same Connection would race on its cursors.
func (e *Engine) NeedLeaderElection() bool { return true }

// Start runs the engine until ctx ends, then waits for every worker to stop.
func (e *Engine) Start(ctx context.Context) error {
	e.mu.Lock()
	e.ctx = ctx
	for _, w := range e.workers {
		w.start(ctx)
	}
	e.mu.Unlock()
	<-ctx.Done()
	e.mu.Lock()
	workers := make([]*worker, 0, len(e.workers))
	for _, w := range e.workers {
		workers = append(workers, w)
	}
	e.mu.Unlock()
	for _, w := range workers {
		<-w.done
	}
	return nil
}

// Ensure makes the engine sync conn (which has a sink) with connector. inputs identifies
// what a stalled sync waits for (the generations and the sink Secret's version): a new
// value resumes it.
//
// A Connection is its UID, not its name: when the name now belongs to a new object (a
// delete and re-create coalesced in the workqueue, kubectl replace --force), the old
// worker stops, with its cursors and its sink, and a new one starts from the new object.
func (e *Engine) Ensure(conn *v1alpha1.Connection, connector *v1alpha1.Connector, inputs string) {
	key := client.ObjectKeyFromObject(conn)
	e.mu.Lock()
	if e.workers == nil {
		e.workers = map[client.ObjectKey]*worker{}
	}
	w, ok := e.workers[key]
	if ok && w.uid != conn.UID {
		delete(e.workers, key)
		e.mu.Unlock()
		w.stop()
		e.Ensure(conn, connector, inputs)
		return
	}
	defer e.mu.Unlock()
	if !ok {
		w = newWorker(e, key, conn.UID)
		e.workers[key] = w
	}
	// The spec first: a worker started before it would find nothing to run, consume its
	// first wake-up, and then wait for a timer that is not set yet.
	w.update(conn.DeepCopy(), connector.DeepCopy(), inputs)
	if !ok && e.ctx != nil {
		w.start(e.ctx)
	}
}

// Remove stops syncing the Connection named key (deleted, or its sink removed).
func (e *Engine) Remove(key client.ObjectKey) {
	e.mu.Lock()
	w, ok := e.workers[key]
	delete(e.workers, key)
	e.mu.Unlock()
	if ok {
		w.stop()
	}
}

// Trigger asks for an immediate incremental sync of the given containers (all when
// none) on a user's request (requested-at). It also resumes a stalled sync: a human asked
// for it.
func (e *Engine) Trigger(key client.ObjectKey, containers ...string) {
	e.trigger(key, containers, true)
}

// TriggerWebhook asks for an immediate incremental sync of the given containers (all
// when none) after a verified webhook. Unlike Trigger it never resumes a stalled sync: a
// vendor event is not a human fixing the sink, and a webhook storm must not turn a
// SinkRejected Connection into a hot loop.
func (e *Engine) TriggerWebhook(key client.ObjectKey, containers ...string) {
	e.trigger(key, containers, false)
}

func (e *Engine) trigger(key client.ObjectKey, containers []string, resume bool) {
	e.mu.Lock()
	w, ok := e.workers[key]
	e.mu.Unlock()
	if ok {
		w.trigger(containers, resume)
	}
}

// State returns the sync state of the Connection named key.
func (e *Engine) State(key client.ObjectKey) (State, bool) {
	e.mu.Lock()
	w, ok := e.workers[key]
	e.mu.Unlock()
	if !ok {
		return State{}, false
	}
	return w.getState(), true
}

func (e *Engine) persistEvery() time.Duration {
	if e.PersistEvery > 0 {
		return e.PersistEvery
	}
	return DefaultPersistEvery
}

func (e *Engine) persistEveryItems() int {
	if e.PersistEveryItems > 0 {
		return e.PersistEveryItems
	}
	return DefaultPersistEveryItems
}

func (e *Engine) notify(key client.ObjectKey) {
	if e.Notify != nil {
		e.Notify(key)
	}
}

// worker owns one Connection's sync: its goroutine, its schedule and its cursors.
type worker struct {
	e    *Engine
	key  client.ObjectKey
	uid  types.UID
	wake chan struct{}
	done chan struct{}

	mu        sync.Mutex
	conn      *v1alpha1.Connection
	connector *v1alpha1.Connector
	inputs    string
	stalledAt string          // inputs when the sync stalled; "" when not stalled
	pending   map[string]bool // containers asked for by triggers
	all       bool            // a trigger asked for every container
	cancelRun context.CancelFunc
	cancel    context.CancelFunc
	state     State
	status    *v1alpha1.SyncStatus // authoritative copy of status.sync once loaded
	hasStatus bool                 // the object has a status to patch a field of
}

func newWorker(e *Engine, key client.ObjectKey, uid types.UID) *worker {
	return &worker{
		e: e, key: key, uid: uid,
		wake:  make(chan struct{}, 1),
		done:  make(chan struct{}),
		state: State{Reason: v1alpha1.ProgressingReason, Message: "sync scheduled"},
		all:   true, // the first run, right after creation, covers everything
	}
}

func (w *worker) start(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	w.mu.Lock()
	w.cancel = cancel
	w.mu.Unlock()
	go w.loop(ctx)
	w.poke()
}

func (w *worker) stop() {
	w.mu.Lock()
	cancel := w.cancel
	w.mu.Unlock()
	if cancel != nil {
		cancel()
		<-w.done
	}
}

func (w *worker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *worker) update(conn *v1alpha1.Connection, connector *v1alpha1.Connector, inputs string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	first := w.conn == nil
	changed := !first && (w.conn.Generation != conn.Generation || w.connector.Generation != connector.Generation)
	w.conn, w.connector = conn, connector
	if inputs != w.inputs {
		w.inputs = inputs
		if w.stalledAt != "" {
			w.stalledAt = "" // a human changed something: try again
			w.all = true
			w.poke()
		}
	}
	if changed {
		// A new spec (scope, sink, since, resync, suspend…) runs at once. A run in
		// progress stops promptly and starts over with it; cursors are kept, so
		// acknowledged items are not sent again.
		if w.cancelRun != nil {
			w.cancelRun()
		}
		w.all = true
		w.poke()
	}
}

func (w *worker) trigger(containers []string, resume bool) {
	w.mu.Lock()
	if !resume && w.stalledAt != "" && w.stalledAt == w.inputs {
		w.mu.Unlock()
		return
	}
	if len(containers) == 0 {
		w.all = true
	} else {
		if w.pending == nil {
			w.pending = map[string]bool{}
		}
		for _, c := range containers {
			w.pending[c] = true
		}
	}
	if resume {
		w.stalledAt = ""
	}
	w.mu.Unlock()
	w.poke()
}

func (w *worker) getState() State {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.state
}

// setState records s and asks for a reconcile when it changed.
func (w *worker) setState(s State) {
	w.mu.Lock()
	changed := w.state != s
	w.state = s
	w.mu.Unlock()
	if changed {
		w.e.notify(w.key)
	}
}

// loop is the worker's goroutine: wait for the timer or a wake-up, run, schedule.
//
// The schedule has one deadline for the next full run (every container): the sync
// interval after a full run succeeded, a backoff after any run failed, or the next
// prune. A partial run (a webhook's containers) neither postpones nor replaces it, so
// webhooks never starve the periodic sync.
func (w *worker) loop(ctx context.Context) {
	defer close(w.done)
	logger := log.FromContext(ctx).WithValues("connection", w.key.String())
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var nextFull time.Time // zero: none scheduled (the first run is full)
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-timer.C:
		}
		if !nextFull.IsZero() && !time.Now().Before(nextFull) {
			w.mu.Lock()
			w.all = true
			w.mu.Unlock()
		}
		conn, connector, only, ok := w.next()
		if !ok {
			continue
		}
		runCtx, cancel := context.WithCancel(ctx)
		w.mu.Lock()
		w.cancelRun = cancel
		w.mu.Unlock()
		res := w.e.run(logr.NewContext(runCtx, logger), w, conn, connector, only)
		cancel()
		w.mu.Lock()
		w.cancelRun = nil
		w.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		if res.cancelled {
			continue // the spec changed: the update that cancelled us also woke us
		}
		interval := syncInterval(conn, connector)
		switch {
		case res.failed:
			// Transient: seconds, not a whole interval (honouring Retry-After).
			failures++
			nextFull = time.Now().Add(max(res.retryAfter, retryDelay(failures, interval)))
		case only == nil:
			failures = 0
			nextFull = time.Now().Add(wait.Jitter(interval))
		}
		w.mu.Lock()
		if due := nextPrune(conn, w.status); !due.IsZero() && due.Before(nextFull) {
			nextFull = due
		}
		w.mu.Unlock()
		timer.Reset(max(0, time.Until(nextFull)))
	}
}

// retryDelay is the pause before retrying after the n-th failure in a row: exponential
// with full jitter, from retryMin up to retryMax and never beyond the sync interval.
func retryDelay(n int, interval time.Duration) time.Duration {
	return wait.Jitter(min(retryMax, interval, retryMin<<min(n-1, 20)))
}

// next returns what to run now, or ok=false when nothing should run (suspended or
// stalled).
func (w *worker) next() (conn *v1alpha1.Connection, connector *v1alpha1.Connector, only map[string]bool, ok bool) {
	w.mu.Lock()
	conn, connector = w.conn, w.connector
	if conn == nil || conn.Spec.Sync == nil || conn.Spec.Sync.Sink == nil {
		w.mu.Unlock()
		return nil, nil, nil, false
	}
	if conn.Spec.Sync.Suspend {
		w.mu.Unlock()
		w.setState(State{Reason: v1alpha1.SuspendedReason, Message: "sync is suspended (spec.sync.suspend)"})
		return nil, nil, nil, false
	}
	if w.stalledAt != "" && w.stalledAt == w.inputs {
		w.mu.Unlock()
		return nil, nil, nil, false
	}
	if !w.all {
		only = w.pending
	}
	w.all, w.pending = false, nil
	w.mu.Unlock()
	return conn, connector, only, true
}

func syncInterval(conn *v1alpha1.Connection, connector *v1alpha1.Connector) time.Duration {
	switch {
	case conn.Spec.Sync.Interval != nil:
		return conn.Spec.Sync.Interval.Duration
	case connector.Spec.Defaults.SyncInterval != nil:
		return connector.Spec.Defaults.SyncInterval.Duration
	default:
		return DefaultSyncInterval
	}
}

func pruneInterval(conn *v1alpha1.Connection) time.Duration {
	if p := conn.Spec.Sync.PruneInterval; p != nil && p.Duration > 0 {
		return p.Duration
	}
	return DefaultPruneInterval
}

package syncer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/unified-connectors/connector-operator/internal/wait"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors"
	outcomes "github.com/unified-connectors/connector-operator/internal/outcome"
	"github.com/unified-connectors/connector-operator/internal/vendorclient"
)

// Secret key of a sink's secretRef.
const keyAuthorization = "authorization"

// errStalled ends a run that needs a human; the worker waits for a change.
var errStalled = errors.New("sync stalled")

// runResult is how a run ended, for the worker's schedule.
type runResult struct {
	// cancelled: the spec changed or the engine stopped; the canceller woke the worker.
	cancelled bool
	// failed: a transient failure; the worker retries with backoff.
	failed bool
	// retryAfter is the pause a vendor or sink asked for, 0 when none.
	retryAfter time.Duration
}

// run is one sync of a Connection: the containers in only (all when nil), then pruning
// where due. Failures are recorded in the worker's State.
func (e *Engine) run(ctx context.Context, w *worker, conn *v1alpha1.Connection, connector *v1alpha1.Connector, only map[string]bool) runResult {
	r := &runner{e: e, w: w, conn: conn, source: "/namespaces/" + conn.Namespace + "/connections/" + conn.Name,
		lookback: lookback(conn, connector)}
	err := r.run(ctx, connector, only)
	switch {
	case err == nil:
		return runResult{}
	case ctx.Err() != nil:
		return runResult{cancelled: true}
	case errors.Is(err, errStalled):
		w.mu.Lock()
		w.stalledAt = w.inputs
		w.mu.Unlock()
		return runResult{}
	default:
		log.FromContext(ctx).Info("sync run failed; retrying with backoff", "error", err.Error())
		res := runResult{failed: true, retryAfter: connectors.RetryAfterOf(err)}
		var se *SinkError
		if errors.As(err, &se) {
			res.retryAfter = se.RetryAfter
		}
		return res
	}
}

// runner holds one run's state.
type runner struct {
	e      *Engine
	w      *worker
	conn   *v1alpha1.Connection
	source string
	vendor connectors.Client
	sink   *sink
	// lookback is the window re-read behind each container's cursor.
	lookback time.Duration
	// seenCap bounds each container cursor's remembered ids (status size).
	seenCap int

	mu          sync.Mutex
	lastPersist time.Time
	// unpersisted counts items acknowledged since the last status write.
	unpersisted int
}

func (r *runner) run(ctx context.Context, connector *v1alpha1.Connector, only map[string]bool) error {
	res, err := r.e.Vendors.ClientFor(ctx, r.conn, connector)
	if err != nil {
		return r.fail(err)
	}
	r.vendor = res.Client
	if r.sink, err = r.e.sinkFor(ctx, r.conn); err != nil {
		return r.fail(err)
	}
	if err := r.loadStatus(ctx); err != nil {
		return err
	}
	containers, err := r.containers(ctx)
	if err != nil {
		return r.fail(err)
	}
	if st, ok := r.vendor.(connectors.Streamer); ok && st.Streaming() {
		if err := r.stream(ctx, st); err != nil {
			return r.fail(err)
		}
		return nil
	}
	if !r.w.getState().Synced {
		r.w.setState(State{Reason: v1alpha1.ProgressingReason, Message: "syncing"})
	}

	// Containers of one Connection sync in parallel; the Connection's vendor client keeps
	// them within its rate limit together.
	parallel := r.e.Parallel
	if parallel <= 0 {
		parallel = DefaultParallel
	}
	sem := make(chan struct{}, parallel)
	errs := make(chan error, len(containers))
	var wg sync.WaitGroup
	for _, c := range containers {
		if only != nil && !only[c.Key] {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs <- ctx.Err()
				return
			}
			defer func() { <-sem }()
			errs <- r.syncContainer(ctx, c)
		}()
	}
	wg.Wait()
	close(errs)
	var first error
	for err := range errs {
		if err != nil && first == nil {
			first = err
		}
	}
	full := only == nil
	if first == nil && full {
		first = r.prune(ctx, containers)
	}

	now := metav1.NewTime(time.Now().Truncate(time.Second))
	r.w.mu.Lock()
	r.w.status.LastSyncTime = &now
	if first == nil && full {
		// Only a run over every container may say the Connection is in sync.
		r.w.status.LastSuccessfulSyncTime = &now
	}
	r.w.mu.Unlock()
	if err := r.persist(ctx, true); err != nil && first == nil {
		first = err
	}
	if first != nil {
		return r.fail(first)
	}
	// A partial run (a webhook's containers) keeps the verdict of the last full run: it
	// says nothing of the containers it did not run.
	if full || r.w.getState().Synced {
		r.w.setState(State{Reason: v1alpha1.SucceededReason, Synced: true,
			Message: fmt.Sprintf("%d items delivered", r.itemsDelivered())})
	}
	return nil
}

// fail records why the run failed and turns problems only a human can fix into
// errStalled. Sink failures are classified here (the sink is the engine's own); every
// other failure through internal/outcome, as the reconciler does.
func (r *runner) fail(err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	var o *outcomes.Error
	var se *SinkError
	switch {
	case errors.As(err, &se) && se.Egress:
		o = outcomes.Stalling(v1alpha1.EgressDeniedReason, "%w", se)
	case errors.As(err, &se) && se.Rejected:
		o = outcomes.Stalling(v1alpha1.SinkRejectedReason, "%w", se)
	case errors.As(err, &se):
		o = outcomes.Waiting(v1alpha1.SinkUnavailableReason, se.RetryAfter, "%w", se)
	default:
		// A vendor error, a Problem of the client factory, or (untyped) an unreachable
		// vendor.
		o = outcomes.Vendor(err)
	}
	r.w.setState(State{Reason: o.Reason, Message: o.Message, Stalled: o.Stalled()})
	if o.Stalled() {
		// No retry on the sync interval: the worker waits for its inputs (the
		// Connection, its Connector, its Secrets) to change.
		return errStalled
	}
	return err
}

// loadStatus reads status.sync once per worker (the engine's copy is authoritative
// afterwards) and applies a new resyncRequest.
func (r *runner) loadStatus(ctx context.Context) error {
	r.w.mu.Lock()
	defer r.w.mu.Unlock()
	if r.w.status == nil {
		// A live read: the cache may predate the last write of a previous leader.
		var live v1alpha1.Connection
		if err := r.e.Client.Get(ctx, client.ObjectKeyFromObject(r.conn), &live); err != nil {
			return err
		}
		if live.UID != r.conn.UID {
			return fmt.Errorf("connection %s was re-created (uid %s, not %s)", r.w.key, live.UID, r.conn.UID)
		}
		r.w.status = &v1alpha1.SyncStatus{}
		if live.Status.Sync != nil {
			r.w.status = live.Status.Sync.DeepCopy()
		}
		r.w.hasStatus = !equality.Semantic.DeepEqual(live.Status, v1alpha1.ConnectionStatus{})
	}
	if req := r.conn.Spec.Sync.ResyncRequest; req != "" && req != r.w.status.LastHandledResyncRequest {
		// Rewind every cursor to spec.sync.since, and a stream to a new snapshot.
		for i := range r.w.status.Containers {
			r.w.status.Containers[i].Cursor = ""
		}
		r.w.status.Position = ""
		r.w.status.LastHandledResyncRequest = req
	}
	return nil
}

// containers resolves the containers in scope and aligns status.sync.containers with
// them: new ones start from since, removed ones leave status.
func (r *runner) containers(ctx context.Context) ([]connectors.Container, error) {
	var all []connectors.Container
	cursor := ""
	for {
		page, err := r.vendor.Containers(ctx, cursor, pageSize)
		if err != nil {
			return nil, err
		}
		all = append(all, page.Items...)
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if scope := r.conn.Spec.Scope.Containers; len(scope) == 0 && len(all) > MaxContainers {
		// No requeue: status (etcd) cannot hold this many cursors; a human must choose.
		return nil, &vendorclient.Problem{Reason: v1alpha1.ScopeTooLargeReason, Message: fmt.Sprintf(
			"the credential sees %d containers and spec.scope.containers is empty: a Connection syncs at most %d; list the containers to sync in spec.scope.containers (or split them over several Connections)",
			len(all), MaxContainers)}
	} else if len(scope) > 0 {
		byKey := map[string]connectors.Container{}
		for _, c := range all {
			byKey[c.Key] = c
		}
		all = all[:0]
		for _, key := range scope {
			if c, ok := byKey[key]; ok {
				all = append(all, c)
			} else {
				// Not visible to this credential (yet): keep it in scope by key; the
				// vendor's answer will say what is wrong.
				all = append(all, connectors.Container{Key: key})
			}
		}
	}
	r.w.mu.Lock()
	defer r.w.mu.Unlock()
	keep := make([]v1alpha1.ContainerSyncStatus, 0, len(all))
	for _, c := range all {
		name := truncate(c.Name, maxContainerName)
		cs := v1alpha1.ContainerSyncStatus{Key: c.Key, Name: name}
		if i := slices.IndexFunc(r.w.status.Containers, func(s v1alpha1.ContainerSyncStatus) bool { return s.Key == c.Key }); i >= 0 {
			cs = r.w.status.Containers[i]
			cs.Name = name
		}
		keep = append(keep, cs)
	}
	r.w.status.Containers = keep
	r.seenCap = seenCap(len(all))
	return all, nil
}

// stream syncs a Connection whose source hands out an ordered change log: the
// provider's Stream runs until ctx ends or it fails, and the engine delivers each batch
// and stores its position (status.sync.position) once the sink acknowledged it. The
// provider confirms a position at its source only after deliver returned, so a crash
// repeats at most what was acknowledged since the last confirmation. status.sync is
// written only when a position moved (throttled as the per-container cursors are), and
// once when the stream first catches up: an idle stream writes nothing.
func (r *runner) stream(ctx context.Context, st connectors.Streamer) error {
	r.w.mu.Lock()
	from := r.w.status.Position
	r.w.mu.Unlock()
	if !r.w.getState().Synced {
		r.w.setState(State{Reason: v1alpha1.ProgressingReason, Message: "streaming changes"})
	}
	moved := false
	return st.Stream(ctx, from, func(ctx context.Context, b connectors.StreamBatch) error {
		if len(b.Items) > 0 {
			if err := r.deliver(ctx, b.Items); err != nil {
				return err
			}
		}
		counts := map[string]int{}
		for _, it := range b.Items {
			counts[it.Container]++
		}
		now := metav1.NewTime(time.Now().Truncate(time.Second))
		r.w.mu.Lock()
		if b.Position != "" && b.Position != r.w.status.Position {
			r.w.status.Position = b.Position
			moved = true
		}
		for key, n := range counts {
			if cs := r.containerStatus(key); cs != nil {
				cs.ItemsDelivered += int64(n)
				cs.LastSyncTime = &now
			}
		}
		r.w.status.ItemsDelivered += int64(len(b.Items))
		caughtUpFirst := b.CaughtUp && !r.w.state.Synced
		if moved || caughtUpFirst {
			r.w.status.LastSyncTime = &now
			if b.CaughtUp {
				r.w.status.LastSuccessfulSyncTime = &now
			}
		}
		r.w.mu.Unlock()
		itemsDelivered.WithLabelValues(r.conn.Namespace, r.conn.Name).Add(float64(len(b.Items)))
		r.mu.Lock()
		r.unpersisted += len(b.Items)
		r.mu.Unlock()
		if caughtUpFirst {
			r.w.setState(State{Reason: v1alpha1.SucceededReason, Synced: true,
				Message: fmt.Sprintf("%d items delivered; streaming", r.itemsDelivered())})
		}
		if !moved && !caughtUpFirst {
			return nil
		}
		persisted, err := r.persistIfDue(ctx, caughtUpFirst)
		if persisted {
			moved = false
		}
		return err
	})
}

// syncContainer delivers what changed in one container since its cursor.
//
// The walk asks for the items updated at or after the cursor's From, skips those the
// cursor has seen and delivers the rest in batches. After each acknowledged batch, From
// moves up to min(walk position, now - look-back): every item updated before the walk
// position has been delivered, and anything older than the look-back window is
// assumed visible at the vendor. At the end of a complete walk, From may pass the last
// instant walked once that instant is outside the window.
func (r *runner) syncContainer(ctx context.Context, c connectors.Container) error {
	cur, since := r.cursorOf(c.Key)
	safe := time.Now().Add(-max(r.lookback, minSettle))
	var pos time.Time // update instant of the last item walked
	batchSize := int(r.conn.Spec.Sync.Sink.BatchSize)
	if batchSize <= 0 {
		batchSize = 100
	}
	batch := make([]connectors.Item, 0, batchSize)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := r.deliver(ctx, batch); err != nil {
			return err
		}
		for _, it := range batch {
			cur.Add(it)
		}
		cur.Settle(earliest(pos, safe))
		cur.Trim(r.seenCap)
		r.acknowledge(c.Key, cur, len(batch))
		batch = batch[:0]
		return r.persist(ctx, false)
	}

	// The next vendor page is fetched while the current batch is delivered: the run
	// takes about as long as the slower of vendor and sink, not their sum.
	ctx, stop := context.WithCancel(ctx)
	defer stop() // ends the page walk if delivery fails first
	pages := r.pages(ctx, c, since)
	for p := range pages {
		if p.err != nil {
			return errors.Join(p.err, flush())
		}
		for _, it := range p.items {
			if it.UpdatedAt.After(pos) {
				pos = it.UpdatedAt
			}
			if cur.Delivered(it) {
				continue
			}
			batch = append(batch, it)
			if len(batch) == batchSize {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if !pos.IsZero() {
		// The walk is complete: every item updated at or before pos was delivered, and
		// when pos lies outside the window nothing more can appear there.
		cur.Settle(earliest(pos.Add(time.Nanosecond), safe))
		r.acknowledge(c.Key, cur, 0)
	}
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	r.w.mu.Lock()
	if cs := r.containerStatus(c.Key); cs != nil {
		cs.LastSyncTime = &now
	}
	r.w.mu.Unlock()
	syncLag.WithLabelValues(r.conn.Namespace, r.conn.Name, c.Key).Set(lag(cur))
	// A finished container's cursor does not wait for slower siblings.
	return r.persist(ctx, true)
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// page is one vendor page of changes, or the error that ended the walk.
type page struct {
	items []connectors.Item
	err   error
}

// pages walks a container's changes since since in a goroutine of its own, one page
// ahead of the consumer. The channel closes after the last page or an error; ctx's end
// stops the walk.
func (r *runner) pages(ctx context.Context, c connectors.Container, since time.Time) <-chan page {
	out := make(chan page, 1)
	go func() {
		defer close(out)
		cursor := ""
		for {
			p, err := r.vendor.Changes(ctx, connectors.ChangeQuery{
				Container: c, Since: since, Filter: r.conn.Spec.Scope.Filter, Cursor: cursor, Limit: pageSize,
			})
			select {
			case out <- page{items: p.Items, err: err}:
			case <-ctx.Done():
				return
			}
			if err != nil || p.NextCursor == "" {
				return
			}
			cursor = p.NextCursor
		}
	}()
	return out
}

// cursorOf returns a container's cursor and the instant to ask the vendor from.
func (r *runner) cursorOf(key string) (Cursor, time.Time) {
	r.w.mu.Lock()
	defer r.w.mu.Unlock()
	var cur Cursor
	if cs := r.containerStatus(key); cs != nil {
		parsed, err := ParseCursor(cs.Cursor)
		if err == nil {
			cur = parsed
		}
		// An unreadable cursor starts the container over: repeats, never losses.
	}
	if cur.From.IsZero() && len(cur.Seen) == 0 && r.conn.Spec.Sync.Since != nil {
		cur.From = r.conn.Spec.Sync.Since.Time
	}
	return cur, cur.From
}

// containerStatus finds a container's status entry. Must be called with w.mu held.
func (r *runner) containerStatus(key string) *v1alpha1.ContainerSyncStatus {
	for i := range r.w.status.Containers {
		if r.w.status.Containers[i].Key == key {
			return &r.w.status.Containers[i]
		}
	}
	return nil
}

// acknowledge moves a container's cursor past n items the sink accepted.
func (r *runner) acknowledge(key string, cur Cursor, n int) {
	r.w.mu.Lock()
	defer r.w.mu.Unlock()
	if cs := r.containerStatus(key); cs != nil {
		cs.Cursor = cur.Encode()
		cs.ItemsDelivered += int64(n)
	}
	r.w.status.ItemsDelivered += int64(n)
	itemsDelivered.WithLabelValues(r.conn.Namespace, r.conn.Name).Add(float64(n))
	r.mu.Lock()
	r.unpersisted += n
	r.mu.Unlock()
}

func (r *runner) itemsDelivered() int64 {
	r.w.mu.Lock()
	defer r.w.mu.Unlock()
	return r.w.status.ItemsDelivered
}

// deliver POSTs items as one batch, retrying 5xx, 429 and transport failures with
// backoff (honouring Retry-After) until the sink accepts or refuses for good.
func (r *runner) deliver(ctx context.Context, items []connectors.Item) error {
	events := make([]cloudevents.Event, 0, len(items))
	for _, it := range items {
		it.Connection = connectors.ConnectionRef{Namespace: r.conn.Namespace, Name: r.conn.Name}
		ev, err := itemEvent(r.source, it)
		if err != nil {
			return err
		}
		events = append(events, ev)
	}
	return r.post(ctx, events)
}

func (r *runner) post(ctx context.Context, events []cloudevents.Event) error {
	unavailable := false
	for attempt := 0; ; attempt++ {
		start := time.Now()
		err := r.sink.post(ctx, events)
		sinkLatency.Observe(time.Since(start).Seconds())
		batchesTotal.WithLabelValues(outcome(err)).Inc()
		var se *SinkError
		switch {
		case err == nil:
			if unavailable {
				r.w.setState(State{Reason: v1alpha1.ProgressingReason, Message: "sink recovered; syncing"})
			}
			return nil
		case !errors.As(err, &se) || se.Rejected:
			return err
		}
		if !unavailable {
			unavailable = true
			r.w.setState(State{Reason: v1alpha1.SinkUnavailableReason, Message: se.Error() + "; retrying"})
		}
		pause := se.RetryAfter
		if pause <= 0 {
			pause = wait.Jitter(min(maxSinkBackoff, time.Duration(100<<min(attempt, 10))*time.Millisecond))
		}
		if err := wait.Sleep(ctx, pause); err != nil {
			return err
		}
	}
}

// persist writes status.sync when final, or when PersistEvery has passed or
// PersistEveryItems items were acknowledged since the last write: a crash repeats at most
// that many items (or that long a window), whichever comes first.
func (r *runner) persist(ctx context.Context, final bool) error {
	_, err := r.persistIfDue(ctx, final)
	return err
}

// persistIfDue is persist, also saying whether it wrote.
func (r *runner) persistIfDue(ctx context.Context, final bool) (bool, error) {
	r.mu.Lock()
	due := final || time.Since(r.lastPersist) >= r.e.persistEvery() || r.unpersisted >= r.e.persistEveryItems()
	if due {
		r.lastPersist = time.Now()
		r.unpersisted = 0
	}
	r.mu.Unlock()
	if !due {
		return false, nil
	}
	r.w.mu.Lock()
	st, hasStatus := r.w.status.DeepCopy(), r.w.hasStatus
	r.w.mu.Unlock()
	err := r.patchSync(ctx, st, hasStatus)
	if err != nil && !hasStatus {
		// Someone (the reconciler) wrote status first: patch the field instead.
		err = r.patchSync(ctx, st, true)
	}
	if err == nil {
		r.w.mu.Lock()
		r.w.hasStatus = true
		r.w.mu.Unlock()
	}
	return true, client.IgnoreNotFound(err)
}

// patchSync writes st as status.sync of the Connection this worker syncs, and of no
// namesake created since (kubectl replace --force): a JSON patch that first tests the
// UID, so another object's cursors can never land in its status. When the Connection
// has no status yet, the patch adds one (after testing that it is still absent, so a
// status written meanwhile is never replaced).
func (r *runner) patchSync(ctx context.Context, st *v1alpha1.SyncStatus, hasStatus bool) error {
	ops := []map[string]any{{"op": "test", "path": "/metadata/uid", "value": r.conn.UID}}
	if hasStatus {
		ops = append(ops, map[string]any{"op": "add", "path": "/status/sync", "value": st})
	} else {
		ops = append(ops,
			map[string]any{"op": "test", "path": "/status", "value": nil},
			map[string]any{"op": "add", "path": "/status", "value": map[string]any{"sync": st}})
	}
	body, err := json.Marshal(ops)
	if err != nil {
		return err
	}
	statusWrites.Inc()
	target := &v1alpha1.Connection{}
	target.Namespace, target.Name = r.conn.Namespace, r.conn.Name
	// status.sync alone: conditions stay the reconciler's.
	return r.e.Client.Status().Patch(ctx, target, client.RawPatch(types.JSONPatchType, body))
}

// sinkFor builds the sink client, reading its authorization live.
func (e *Engine) sinkFor(ctx context.Context, conn *v1alpha1.Connection) (*sink, error) {
	spec := conn.Spec.Sync.Sink
	if err := e.SinkEgress.CheckURL(string(spec.URL)); err != nil {
		return nil, &SinkError{Rejected: true, Egress: true, Reason: err.Error()}
	}
	s := &sink{url: string(spec.URL), http: e.SinkEgress.Client(0), timeout: e.SinkTimeout}
	if s.timeout == 0 {
		s.timeout = DefaultSinkTimeout
	}
	if ref := spec.SecretRef; ref != nil {
		secret, err := vendorclient.ReadSecret(ctx, e.Reader, conn.Namespace, ref.Name)
		if err != nil {
			return nil, err
		}
		if err := vendorclient.RequireKeys(secret, keyAuthorization); err != nil {
			return nil, err
		}
		s.authorization = strings.TrimSpace(string(secret.Data[keyAuthorization]))
	}
	return s, nil
}

// prune sends, per container due for it, the ids of every live item as snapshot events.
// A container's first backfill counts as its first snapshot (the consumer has just
// received every item), so the first snapshot follows one pruneInterval later.
func (r *runner) prune(ctx context.Context, containers []connectors.Container) error {
	every := pruneInterval(r.conn)
	for _, c := range containers {
		r.w.mu.Lock()
		var last *metav1.Time
		if cs := r.containerStatus(c.Key); cs != nil {
			last = cs.LastPruneTime
		}
		r.w.mu.Unlock()
		if last != nil && time.Since(last.Time) < every {
			continue
		}
		at, mode := time.Now(), ""
		if last != nil {
			var err error
			if at, mode, err = r.pruneContainer(ctx, c, last.Time); err != nil {
				return err
			}
		}
		pruned := metav1.NewTime(at.Truncate(time.Second))
		r.w.mu.Lock()
		if cs := r.containerStatus(c.Key); cs != nil {
			cs.LastPruneTime, cs.LastPruneMode = &pruned, mode
		}
		r.w.mu.Unlock()
	}
	return nil
}

// pruneContainer tells the sink what of c was deleted since the last prune: the
// vendor's deletion log when it keeps one that reaches back that far (item.deleted
// events), else a full snapshot. It returns how far the prune reaches and its mode.
func (r *runner) pruneContainer(ctx context.Context, c connectors.Container, since time.Time) (time.Time, string, error) {
	now := time.Now()
	if dl, ok := r.vendor.(connectors.DeletionLog); ok {
		deleted, covered, complete, err := dl.DeletedBetween(ctx, c, since, now)
		switch {
		case errors.Is(err, errors.ErrUnsupported):
		case err != nil:
			return time.Time{}, "", err
		case complete:
			batch := int(r.conn.Spec.Sync.Sink.BatchSize)
			if batch <= 0 {
				batch = 100
			}
			for start := 0; start < len(deleted); start += batch {
				if err := r.deliver(ctx, deleted[start:min(start+batch, len(deleted))]); err != nil {
					return time.Time{}, "", err
				}
			}
			return covered, v1alpha1.PruneModeDeletionLog, nil
		}
		// The log no longer reaches back to the last prune (purged): only every live
		// id tells the sink what went.
	}
	return now, v1alpha1.PruneModeSnapshot, r.snapshot(ctx, c)
}

// nextPrune is when the earliest container is due for a snapshot; zero when none has
// finished its first backfill.
func nextPrune(conn *v1alpha1.Connection, st *v1alpha1.SyncStatus) time.Time {
	var next time.Time
	if st == nil {
		return next
	}
	for _, cs := range st.Containers {
		if cs.LastPruneTime == nil {
			continue
		}
		if due := cs.LastPruneTime.Add(pruneInterval(conn)); next.IsZero() || due.Before(next) {
			next = due
		}
	}
	return next
}

// snapshot streams one container's live ids in chunks; the last chunk is marked final.
func (r *runner) snapshot(ctx context.Context, c connectors.Container) error {
	at := time.Now()
	id := fmt.Sprintf("%s-%s-%d", r.conn.UID, c.Key, at.UnixMilli())
	chunk, ids := 0, make([]string, 0, snapshotChunk)
	send := func(final bool) error {
		ev, err := snapshotEvent(r.source, Snapshot{SnapshotID: id, Container: c.Key, Chunk: chunk, Final: final, IDs: ids}, at)
		if err != nil {
			return err
		}
		if err := r.post(ctx, []cloudevents.Event{ev}); err != nil {
			return err
		}
		chunk++
		ids = ids[:0]
		return nil
	}
	cursor := ""
	for {
		page, err := r.vendor.LiveIDs(ctx, c, cursor)
		if err != nil {
			return err
		}
		for _, itemID := range page.Items {
			ids = append(ids, itemID)
			if len(ids) == snapshotChunk {
				if err := send(false); err != nil {
					return err
				}
			}
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	return send(true)
}

func lag(cur Cursor) float64 {
	if cur.Latest().IsZero() {
		return 0
	}
	return time.Since(cur.Latest()).Seconds()
}

// lookback is the window re-read behind each cursor: the Connection's, else the
// Connector's default, else the connector's own.
func lookback(conn *v1alpha1.Connection, connector *v1alpha1.Connector) time.Duration {
	switch {
	case conn.Spec.Sync.Lookback != nil:
		return conn.Spec.Sync.Lookback.Duration
	case connector.Spec.Defaults.Lookback != nil:
		return connector.Spec.Defaults.Lookback.Duration
	}
	if p, ok := connectors.Get(string(connector.Spec.Type)); ok {
		if lb, ok := p.(connectors.Lookbacker); ok {
			return lb.DefaultLookback()
		}
	}
	return 0
}

// seenCap shares the cursors' budget of remembered ids among a Connection's containers,
// so status.sync stays far below etcd's object size limit whatever the scope.
func seenCap(containers int) int {
	return min(maxSeenPerContainer, max(minSeenPerContainer, maxSeenPerConnection/max(containers, 1)))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func outcome(err error) string {
	var se *SinkError
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &se) && se.Status != 0:
		return strconv.Itoa(se.Status)
	default:
		return "error"
	}
}

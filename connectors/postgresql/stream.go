package postgresql

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/connectors/postgresql/pgrepl"
)

// Logical replication (spec.postgresql.mode logicalReplication) is change data capture
// through one publication and one replication slot per Connection, both named
// replicationName (connectors_<UID>):
//
//	Run                   Does
//	first (position "")   EnsurePublication; drop a slot of that name; CREATE_REPLICATION_SLOT
//	                      with an exported snapshot; every table read inside that snapshot
//	                      by primary-key keyset; then the stream from the slot's consistent
//	                      point, on the same replication connection
//	crash mid-snapshot    the keyset walk resumes after the last delivered row, in a fresh
//	                      REPEATABLE READ snapshot; then the stream from the slot's
//	                      confirmed position (see resumeSnapshot for why that is exact)
//	later                 the stream from the slot's confirmed position
//
// The slot's confirmed position (confirmed_flush_lsn) is the cursor: it moves only past
// the end of transactions whose every change the sink acknowledged, so a restart repeats
// at most what was delivered since the last confirmation and never loses a change. The
// engine's status.sync.position (streamPosition) records the snapshot's progress and the
// last delivered commit; it names the slot, so a resync (position "") or a position of
// another slot starts over.
const (
	// defaultStreamBatch is the batch size when spec.sync.sink.batchSize is unset.
	defaultStreamBatch = 100
	// createSlotTimeout bounds CREATE_REPLICATION_SLOT, which waits for the transactions
	// running on the server to end.
	createSlotTimeout = 2 * time.Minute
	// maxPositionBytes is what status.sync.position holds.
	maxPositionBytes = 8 << 10
	// maxPendingAge is how long a delivered-to-be change waits for its batch to fill
	// while changes keep coming (a quiet stream delivers at once, when it turns idle).
	maxPendingAge = time.Second
	// keepAliveEvery is how often the slot hears from us while the sink takes its time
	// (the server ends a replication connection silent for wal_sender_timeout, 60 s).
	keepAliveEvery = 10 * time.Second
	// snapshotIdleTimeout replaces the sessions' 60 s idle_in_transaction_session_timeout
	// inside the snapshot transaction, which stays idle while the sink takes a batch.
	snapshotIdleTimeout = "15min"
	// slotBusyWait is how long a later run waits for a slot an earlier connection still
	// holds (its walsender ends shortly after it) before it reports the slot busy.
	slotBusyWait = 5 * time.Second
	// streamCloseTimeout bounds the last status update and the end of the copy.
	streamCloseTimeout = 5 * time.Second
)

// streamPosition is status.sync.position in mode logicalReplication, as JSON.
type streamPosition struct {
	// Slot is the slot the position belongs to.
	Slot string `json:"slot"`
	// Done are the tables whose snapshot the sink acknowledged completely, each as
	// tableHash (short, so 100 tables fit).
	Done []string `json:"done,omitempty"`
	// Table and After: the table being snapshotted (tableHash) and the primary key
	// values (text) of its last delivered row.
	Table string   `json:"table,omitempty"`
	After []string `json:"after,omitempty"`
	// SnapshotDone: every table in scope was in Done when the position was written.
	SnapshotDone bool `json:"snapshotDone,omitempty"`
	// LSN is the slot's consistent point during the first snapshot, then the end of the
	// last delivered transaction (for people: the slot's confirmed position is the cursor).
	LSN string `json:"lsn,omitempty"`
}

// encode is the position as JSON, at most maxPositionBytes: when After is too long for
// that, it is left out, and a restart reads that table again from its first row.
func (p streamPosition) encode() string {
	b, _ := json.Marshal(p)
	if len(b) > maxPositionBytes {
		p.Table, p.After = "", nil
		b, _ = json.Marshal(p)
	}
	return string(b)
}

// tableHash names a table in a position: 12 hex digits of the SHA-256 of its name.
func tableHash(name string) string {
	h := sha256.Sum256([]byte(name))
	return hex.EncodeToString(h[:6])
}

// replTable is a table in scope, as the stream sees it.
type replTable struct {
	*table
	ref  pgrepl.TableName
	hash string
	// jsonCols are the json and jsonb columns, which the stream hands over as their text
	// (as the pool's type map does for reads).
	jsonCols map[string]bool
}

// replicator is one Stream call.
type replicator struct {
	c       *client
	slot    string
	batch   int
	tables  []*replTable
	byRef   map[pgrepl.TableName]*replTable
	deliver func(context.Context, connectors.StreamBatch) error
	log     logr.Logger
}

// Streaming is true in mode logicalReplication.
func (c *client) Streaming() bool { return c.mode == logicalReplication }

// Stream runs logical replication from position (see the comment on the constants
// above): the snapshot when position asks for one, then the change stream until ctx
// ends (it returns ctx's error), deliver fails (its error) or the source fails (a
// *connectors.Error: KindStreamLost when the slot is gone).
func (c *client) Stream(ctx context.Context, position string, deliver func(context.Context, connectors.StreamBatch) error) error {
	err := c.stream(ctx, position, deliver)
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

func (c *client) stream(ctx context.Context, position string, deliver func(context.Context, connectors.StreamBatch) error) error {
	slot, err := c.slotName()
	if err != nil {
		return newError(connectors.KindInvalid, "logical replication", err.Error(), nil)
	}
	r := &replicator{c: c, slot: slot, batch: defaultStreamBatch, deliver: deliver,
		byRef: map[pgrepl.TableName]*replTable{}, log: logr.FromContextOrDiscard(ctx).WithValues("slot", slot)}
	if conn := c.connection(); conn != nil && conn.Spec.Sync != nil && conn.Spec.Sync.Sink != nil && conn.Spec.Sync.Sink.BatchSize > 0 {
		r.batch = int(conn.Spec.Sync.Sink.BatchSize)
	}
	if err := r.resolveTables(ctx); err != nil {
		return err
	}
	refs := make([]pgrepl.TableName, len(r.tables))
	for i, t := range r.tables {
		refs[i] = t.ref
	}
	op := "create publication " + slot
	err = c.replWithConn(ctx, op, func(conn *pgx.Conn) error {
		return c.replicationError(op, slot, connectors.KindInvalid, pgrepl.EnsurePublication(ctx, conn, slot, refs))
	})
	if err != nil {
		return err
	}
	var pos streamPosition
	if position != "" {
		if err := json.Unmarshal([]byte(position), &pos); err != nil {
			r.log.Info("status.sync.position is not a logical replication position; starting over with a new snapshot")
			pos = streamPosition{}
		}
	}
	if pos.Slot != slot {
		return r.fresh(ctx)
	}
	return r.resume(ctx, pos)
}

// resolveTables reads the catalog of every table in scope (afresh: a column added since
// the last run counts).
func (r *replicator) resolveTables(ctx context.Context) error {
	for _, ts := range r.c.set.tables {
		if !r.c.set.inScope(ts.name) {
			continue
		}
		t, err := r.c.table(ctx, ts.name, true)
		if err != nil {
			return err
		}
		rt := &replTable{table: t, ref: pgrepl.TableName{Schema: ts.schema, Name: ts.rel}, hash: tableHash(ts.name), jsonCols: map[string]bool{}}
		for _, col := range t.columns {
			if col.typeOID == pgtype.JSONOID || col.typeOID == pgtype.JSONBOID {
				rt.jsonCols[col.name] = true
			}
		}
		r.tables = append(r.tables, rt)
		r.byRef[rt.ref] = rt
	}
	if len(r.tables) == 0 {
		return invalid("logical replication", "no table in scope: spec.scope.containers names none of spec.postgresql.tables")
	}
	return nil
}

// fresh starts over: a new slot, every table read in its exported snapshot, then the
// stream from the slot's consistent point on the same replication connection.
func (r *replicator) fresh(ctx context.Context) error {
	op := "create replication slot " + r.slot
	err := r.c.replWithConn(ctx, op, func(conn *pgx.Conn) error {
		// A slot of this name holds a position nobody stored: it would skip the changes
		// the new snapshot does not hold.
		return r.c.replicationError(op, r.slot, connectors.KindInvalid, pgrepl.DropSlot(ctx, conn, r.slot))
	})
	if err != nil {
		return err
	}
	rc, err := r.connect(ctx)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			closeQuietly(ctx, rc)
		}
	}()
	cctx, cancel := context.WithTimeout(ctx, createSlotTimeout)
	consistent, snapshot, err := pgrepl.CreateSlot(cctx, rc, r.slot)
	cancel()
	if err != nil {
		if cctx.Err() != nil && ctx.Err() == nil {
			return newError(connectors.KindUnavailable, op, fmt.Sprintf("CREATE_REPLICATION_SLOT waits for every transaction running on the server to end; one has been open for more than %s", createSlotTimeout), err)
		}
		return r.c.replicationError(op, r.slot, connectors.KindInvalid, err)
	}
	r.log.Info("replication slot created; reading the tables in its snapshot", "consistentPoint", consistent.String())
	pos := streamPosition{Slot: r.slot, LSN: consistent.String()}
	if err := r.snapshot(ctx, snapshot, &pos, r.tables); err != nil {
		return err
	}
	st, err := pgrepl.StartStream(ctx, rc, r.streamOptions(consistent))
	if err != nil {
		return r.c.replicationError("start replication from slot "+r.slot, r.slot, connectors.KindUnavailable, err)
	}
	ok = true
	return r.run(ctx, st, pos)
}

// resume continues from a position of this slot: the snapshot of the tables it does not
// list as done (a crash mid-snapshot, or tables added to the scope), then the stream from
// the slot's confirmed position.
func (r *replicator) resume(ctx context.Context, pos streamPosition) error {
	if err := r.checkSlot(ctx); err != nil {
		return err
	}
	inScope := map[string]bool{}
	for _, t := range r.tables {
		inScope[t.hash] = true
	}
	pos.Done = slices.DeleteFunc(slices.Clone(pos.Done), func(h string) bool { return !inScope[h] })
	var todo []*replTable
	for _, t := range r.tables {
		if !slices.Contains(pos.Done, t.hash) {
			todo = append(todo, t)
		}
	}
	if len(todo) > 0 {
		r.log.Info("reading tables the slot's snapshot did not finish", "tables", len(todo))
		// resumeSnapshot: a fresh REPEATABLE READ snapshot is as good as the slot's own.
		if err := r.snapshot(ctx, "", &pos, todo); err != nil {
			return err
		}
	}
	rc, err := r.connect(ctx)
	if err != nil {
		return err
	}
	st, err := pgrepl.StartStream(ctx, rc, r.streamOptions(0))
	if err != nil {
		closeQuietly(ctx, rc)
		return r.c.replicationError("start replication from slot "+r.slot, r.slot, connectors.KindUnavailable, err)
	}
	return r.run(ctx, st, pos)
}

// checkSlot makes sure the slot a stored position points into can still stream.
func (r *replicator) checkSlot(ctx context.Context) error {
	op := "read replication slot " + r.slot
	deadline := time.Now().Add(slotBusyWait)
	for {
		var info pgrepl.SlotInfo
		err := r.c.replWithConn(ctx, op, func(conn *pgx.Conn) error {
			var err error
			info, err = pgrepl.Slot(ctx, conn, r.slot)
			return r.c.replicationError(op, r.slot, connectors.KindInvalid, err)
		})
		switch {
		case err != nil:
			return err
		case !info.Exists:
			return slotLostError(op, r.slot, "it does not exist (it was dropped, or the server was replaced)")
		case info.WALStatus == "lost":
			return slotLostError(op, r.slot, "its WAL was removed (the server keeps at most max_slot_wal_keep_size of WAL for a slot)")
		case info.Database != "" && info.Database != r.c.set.database:
			return slotLostError(op, r.slot, "it belongs to database "+quoteName(info.Database)+", not "+quoteName(r.c.set.database)+" (baseURL changed)")
		case !info.Active:
			return nil
		case time.Now().After(deadline):
			return newError(connectors.KindUnavailable, op, fmt.Sprintf("replication slot %s is active for PID %d: another connection (an earlier leader of the operator?) streams from it; retried until it lets go", r.slot, info.ActivePID), nil)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (r *replicator) streamOptions(from pgrepl.LSN) pgrepl.StreamOptions {
	return pgrepl.StreamOptions{Slot: r.slot, Publication: r.slot, From: from, MaxChanges: r.batch}
}

// connect opens the replication connection, with the pool's settings (TLS, the egress
// guard's dialer, the credential).
func (r *replicator) connect(ctx context.Context) (*pgconn.PgConn, error) {
	op := "replication connection"
	cfg, err := r.c.connConfig(ctx)
	if err != nil {
		return nil, r.c.mapError(op, "", err)
	}
	rc, err := pgrepl.ConnectReplication(ctx, cfg)
	if err != nil {
		return nil, r.c.replicationError(op, r.slot, connectors.KindUnavailable, err)
	}
	return rc, nil
}

// snapshot reads the tables todo, in the exported snapshot (or, when exported is "", a
// fresh REPEATABLE READ snapshot), by primary-key keyset in batches, resuming the table
// pos.Table after pos.After, and delivers them with pos recording the progress.
//
// resumeSnapshot: why a fresh snapshot after a crash (or for a table added later) loses
// nothing. The slot's confirmed position never moves during a snapshot (the stream has
// not started), so the stream that follows replays every change committed since the
// slot's consistent point, or, for a table added later, since the slot's confirmed
// position, which precedes the ALTER PUBLICATION that added it (EnsurePublication runs
// before the snapshot is taken). A row of the fresh snapshot is its state at some instant
// after that point; every change to it after that instant is in the stream, which comes
// after the snapshot's batches. So the last item delivered for every row is its current
// state (or its deletion). Rows changed in between arrive more than once, and the stream
// may deliver a state older than the snapshot's before it reaches the newer ones: the
// sink sees them in that order and ends at the right state.
func (r *replicator) snapshot(ctx context.Context, exported string, pos *streamPosition, todo []*replTable) error {
	op := "snapshot of the tables"
	return r.c.replWithConn(ctx, op, func(conn *pgx.Conn) error {
		err := pgrepl.InSnapshot(ctx, conn, exported, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SET LOCAL idle_in_transaction_session_timeout = '"+snapshotIdleTimeout+"'"); err != nil {
				return r.c.mapError(op, "", err)
			}
			var at time.Time
			if err := tx.QueryRow(ctx, "SELECT now()").Scan(&at); err != nil {
				return r.c.mapError(op, "", err)
			}
			at = at.UTC()
			pending := make([]connectors.Item, 0, r.batch)
			flush := func() error {
				pos.SnapshotDone = len(pos.Done) == len(r.tables)
				b := connectors.StreamBatch{Items: pending, Position: pos.encode()}
				pending = make([]connectors.Item, 0, r.batch)
				return r.deliver(ctx, b)
			}
			for _, t := range todo {
				var after []string
				if pos.Table == t.hash {
					after = pos.After
				}
				for {
					n := 0
					err := r.readPage(ctx, tx, t, after, r.batch, func(it connectors.Item, pk []string) error {
						n++
						if it.UpdatedAt.IsZero() {
							it.UpdatedAt = at
						}
						pending = append(pending, it)
						pos.Table, pos.After, after = t.hash, pk, pk
						if len(pending) >= r.batch {
							return flush()
						}
						return nil
					})
					if err != nil {
						return err
					}
					if n < r.batch {
						break
					}
				}
				pos.Done = append(pos.Done, t.hash)
				pos.Table, pos.After = "", nil
			}
			// Also when nothing is pending: the position says the snapshot is done.
			return flush()
		})
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return r.c.replicationError(op, r.slot, connectors.KindUnavailable, err)
		}
		return nil
	})
}

// readPage reads up to limit rows of t after the primary key values after (all when
// nil), in key order, and calls f with each row's item and key.
func (r *replicator) readPage(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, t *replTable, after []string, limit int, f func(connectors.Item, []string) error) error {
	op := "SELECT " + t.name
	sql := "SELECT t.* FROM " + t.ident + " t"
	args := make([]any, len(after))
	if after != nil {
		sql += " WHERE (" + t.pkList() + ") > (" + params(1, len(t.pk)) + ")"
		for i, v := range after {
			args[i] = v
		}
	}
	sql += " ORDER BY " + t.pkList() + " LIMIT " + strconv.Itoa(limit)
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return r.c.mapError(op, t.name, err)
	}
	defer rows.Close()
	cols := fieldNames(rows)
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return r.c.mapError(op, t.name, err)
		}
		it, pk, err := t.row(cols, vals)
		if err != nil {
			return err
		}
		if err := f(it, pk); err != nil {
			rows.Close()
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return r.c.mapError(op, t.name, err)
	}
	return nil
}

func fieldNames(rows pgx.Rows) []string {
	fds := rows.FieldDescriptions()
	cols := make([]string, len(fds))
	for i, fd := range fds {
		cols[i] = fd.Name
	}
	return cols
}

// row is the item of one row and its primary key values as text (rowItem, as the
// readers map rows: the same id whichever way a row was read).
func (t *replTable) row(cols []string, vals []any) (connectors.Item, []string, error) {
	it, rp, err := t.rowItem(cols, vals)
	return it, rp.pk, err
}

// keyTexts are the primary key values (in key order) among cols and vals, as text: the
// same texts item puts in the id.
func (t *replTable) keyTexts(cols []string, vals []any) ([]string, error) {
	pk := make([]string, len(t.pk))
	for i, k := range t.pk {
		j := slices.Index(cols, k)
		if j < 0 || j >= len(vals) {
			return nil, invalid("replicate "+t.name, fmt.Sprintf("the change of table %s carries no value of primary key column %s: "+
				"set REPLICA IDENTITY FULL on the table, or REPLICA IDENTITY USING INDEX on a unique index of the primaryKey columns", t.name, quoteName(k)))
		}
		s, err := pkText(vals[j])
		if err != nil {
			return nil, invalid("replicate "+t.name, fmt.Sprintf("primary key column %s: %v", quoteName(k), err))
		}
		pk[i] = s
	}
	return pk, nil
}

// deletion is the item that reports the row with primary key pk deleted; its UpdatedAt
// is set at commit.
func (t *replTable) deletion(pk []string) connectors.Item {
	return connectors.Item{ID: t.itemID(pk), Key: t.key(pk), Kind: connectors.KindRow, Container: t.name, Type: Type, Deleted: true}
}

// values are a change's new row, json and jsonb columns as their text.
func (t *replTable) values(ch *pgrepl.Change) []any {
	vals := slices.Clone(ch.Values)
	if len(t.jsonCols) == 0 {
		return vals
	}
	for i, col := range ch.Columns {
		if t.jsonCols[col] && i < len(ch.ValuesText) && ch.ValuesText[i] != nil {
			vals[i] = *ch.ValuesText[i]
		}
	}
	return vals
}

// run streams changes until ctx ends, deliver fails or the stream does. Items pile up
// across transactions and go out when a batch is full, when the oldest waited
// maxPendingAge, or when the stream is idle; each batch's position is the end of the
// last transaction it holds completely, which is confirmed to the server once deliver
// accepted the batch. A transaction larger than a batch goes out in several; only the
// last carries its end.
func (r *replicator) run(ctx context.Context, st *pgrepl.Stream, pos streamPosition) (err error) {
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), streamCloseTimeout)
		defer cancel()
		if cerr := st.Close(cctx); cerr != nil && err == nil && ctx.Err() == nil {
			r.log.Info("closing the replication stream", "error", cerr.Error())
		}
	}()
	pos.Table, pos.After, pos.SnapshotDone = "", nil, true
	var (
		pending []connectors.Item
		// commits are the ends of the transactions in pending: n items of pending belong
		// to transactions that ended at or before lsn.
		commits   []commitMark
		txStart   int // pending[txStart:] belong to the open transaction
		since     time.Time
		confirmed pgrepl.LSN
		last      pgrepl.LSN // end of the last complete transaction received
	)
	send := func(n int, caughtUp bool) error {
		items := pending[:n:n]
		for i := range items {
			if items[i].UpdatedAt.IsZero() {
				// A part of a transaction larger than a batch: its commit time is not
				// known yet.
				items[i].UpdatedAt = time.Now().UTC()
			}
		}
		end := pgrepl.LSN(0)
		k := 0
		for k < len(commits) && commits[k].n <= n {
			end = commits[k].lsn
			k++
		}
		if n == len(pending) && last > end {
			end = last // transactions without items to deliver (other tables, empty)
		}
		b := connectors.StreamBatch{Items: items, CaughtUp: caughtUp}
		if end > confirmed {
			pos.LSN = end.String()
			b.Position = pos.encode()
		}
		if err := r.deliverAlive(ctx, st, b); err != nil {
			return err
		}
		if end > confirmed {
			st.Confirm(end)
			confirmed = end
			// Reported at once (a 34-byte status update): a crash then repeats at most
			// the batch in flight, counted in items, not a second of them.
			if err := st.Flush(ctx); err != nil {
				return r.c.replicationError("stream from slot "+r.slot, r.slot, connectors.KindUnavailable, err)
			}
		}
		pending = append([]connectors.Item(nil), pending[n:]...)
		commits = commits[k:]
		for i := range commits {
			commits[i].n -= n
		}
		txStart = max(0, txStart-n)
		since = time.Now()
		return nil
	}
	for {
		b, err := st.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return r.c.replicationError("stream from slot "+r.slot, r.slot, connectors.KindUnavailable, err)
		}
		if b.Idle {
			if len(pending) == 0 && last <= confirmed {
				// Nothing pending: the engine marks the Connection Synced the first time.
				if err := r.deliver(ctx, connectors.StreamBatch{CaughtUp: true}); err != nil {
					return err
				}
				continue
			}
			for len(pending) > r.batch {
				if err := send(r.batch, false); err != nil {
					return err
				}
			}
			if err := send(len(pending), true); err != nil {
				return err
			}
			continue
		}
		if len(pending) == 0 {
			since = time.Now()
		}
		for i := range b.Changes {
			if err := r.change(ctx, &b.Changes[i], &pending); err != nil {
				return err
			}
		}
		if b.Commit {
			at := b.CommitTime.UTC()
			for i := txStart; i < len(pending); i++ {
				if pending[i].UpdatedAt.IsZero() {
					pending[i].UpdatedAt = at
				}
			}
			txStart = len(pending)
			last = b.EndLSN
			if k := len(commits) - 1; k >= 0 && commits[k].n == len(pending) {
				commits[k].lsn = b.EndLSN // a transaction with nothing to deliver
			} else {
				commits = append(commits, commitMark{n: len(pending), lsn: b.EndLSN})
			}
		}
		for len(pending) >= r.batch {
			if err := send(r.batch, false); err != nil {
				return err
			}
		}
		if len(pending) > 0 && time.Since(since) >= maxPendingAge {
			if err := send(len(pending), false); err != nil {
				return err
			}
		}
	}
}

// commitMark is the end of a transaction whose items are the first n pending ones.
type commitMark struct {
	n   int
	lsn pgrepl.LSN
}

// deliverAlive is deliver, while the replication connection keeps telling the server it
// is alive (the sink may take longer than wal_sender_timeout to accept a batch).
func (r *replicator) deliverAlive(ctx context.Context, st *pgrepl.Stream, b connectors.StreamBatch) error {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(keepAliveEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				// An error is Next's to report, after deliver.
				_ = st.Flush(ctx)
			}
		}
	}()
	err := r.deliver(ctx, b)
	close(done)
	wg.Wait()
	return err
}

// change appends the items of one change to out.
func (r *replicator) change(ctx context.Context, ch *pgrepl.Change, out *[]connectors.Item) error {
	t := r.byRef[ch.Table]
	if t == nil {
		// A table no longer in scope (its changes decoded before ALTER PUBLICATION).
		return nil
	}
	switch ch.Op {
	case pgrepl.Truncate:
		// Not delivered: the sink learns which rows went only at a resync.
		r.log.Info("TRUNCATE of a replicated table: its rows' deletions are not delivered; set spec.sync.resyncRequest to deliver the table again", "table", t.name)
		return nil
	case pgrepl.Delete:
		pk, err := t.keyTexts(ch.KeyColumns, ch.Key)
		if err != nil {
			return err
		}
		*out = append(*out, t.deletion(pk))
		return nil
	case pgrepl.Insert, pgrepl.Update:
	default:
		return nil
	}
	vals := t.values(ch)
	it, pk, err := t.row(ch.Columns, vals)
	if err != nil {
		return err
	}
	if ch.Op == pgrepl.Update && ch.Key != nil {
		// The key changed (or REPLICA IDENTITY FULL sent the old row): the old id is gone.
		if old, err := t.keyTexts(ch.KeyColumns, ch.Key); err == nil && !slices.Equal(old, pk) {
			*out = append(*out, t.deletion(old))
		}
	}
	if slices.Contains(ch.Unchanged, true) {
		// A TOASTed value the update did not touch was not sent: read the row again. What
		// it reads may be newer than this change; the changes in between follow anyway.
		cols, vals, found, err := r.reread(ctx, t, pk)
		if err != nil {
			return err
		}
		if !found {
			// Deleted since: its deletion follows in the stream.
			return nil
		}
		if it, _, err = t.row(cols, vals); err != nil {
			return err
		}
	}
	*out = append(*out, it)
	return nil
}

// reread reads the row of t with primary key pk.
func (r *replicator) reread(ctx context.Context, t *replTable, pk []string) (cols []string, vals []any, found bool, err error) {
	op := "SELECT " + t.name
	p, err := r.c.pool(ctx)
	if err != nil {
		return nil, nil, false, r.c.mapError(op, t.name, err)
	}
	conds := make([]string, len(t.pk))
	args := make([]any, len(t.pk))
	for i, k := range t.pk {
		conds[i] = col(k) + " = $" + strconv.Itoa(i+1)
		args[i] = pk[i]
	}
	rows, err := p.Query(ctx, "SELECT t.* FROM "+t.ident+" t WHERE "+strings.Join(conds, " AND "), args...)
	if err != nil {
		return nil, nil, false, r.c.mapError(op, t.name, err)
	}
	defer rows.Close()
	cols = fieldNames(rows)
	if rows.Next() {
		vals, err = rows.Values()
		if err != nil {
			return nil, nil, false, r.c.mapError(op, t.name, err)
		}
		found = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, false, r.c.mapError(op, t.name, err)
	}
	return cols, vals, found, nil
}

// closeQuietly closes a replication connection that never started streaming.
func closeQuietly(ctx context.Context, rc *pgconn.PgConn) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), streamCloseTimeout)
	defer cancel()
	_ = rc.Close(cctx)
}

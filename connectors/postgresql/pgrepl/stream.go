package pgrepl

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"
)

const (
	// defaultMaxChanges bounds a batch when StreamOptions.MaxChanges is 0.
	defaultMaxChanges = 500
	// defaultIdleAfter is StreamOptions.IdleAfter when 0.
	defaultIdleAfter = 500 * time.Millisecond
	// defaultStatusInterval is StreamOptions.StatusInterval when 0; the server's
	// wal_sender_timeout (60 s by default) must be longer.
	defaultStatusInterval = 10 * time.Second
	// closeDrainTimeout bounds how long Close waits for the server to end the copy.
	closeDrainTimeout = 5 * time.Second
)

// ConnectReplication opens a replication connection (replication=database) from cfg, a pgconn
// config built by the caller (with its TLS and DialFunc; it must come from pgconn.ParseConfig).
// cfg is not modified: a copy gets RuntimeParams["replication"] = "database" and a context
// watcher that only sets deadlines, since a cancel request would end the replication stream
// (Stream.Next waits with deadlines).
func ConnectReplication(ctx context.Context, cfg *pgconn.Config) (*pgconn.PgConn, error) {
	c := cfg.Copy()
	if c.RuntimeParams == nil {
		c.RuntimeParams = map[string]string{}
	}
	c.RuntimeParams["replication"] = "database"
	c.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: pc.Conn()}
	}
	rc, err := pgconn.ConnectConfig(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("pgrepl: replication connection: %w", err)
	}
	return rc, nil
}

// CreateSlot runs CREATE_REPLICATION_SLOT name LOGICAL pgoutput EXPORT_SNAPSHOT on rc and returns
// the consistent point (changes committed after it are streamed, those before are in the
// snapshot) and the exported snapshot's name. The snapshot stays valid only until rc runs another
// command, so the caller reads it on another (regular) connection with InSnapshot before calling
// StartStream on rc. The server waits for transactions running at that moment to end, so a long
// transaction on the source holds CreateSlot (bounded by ctx).
func CreateSlot(ctx context.Context, rc *pgconn.PgConn, name string) (consistent LSN, snapshot string, err error) {
	if err := checkName("slot", name); err != nil {
		return 0, "", err
	}
	res, err := pglogrepl.CreateReplicationSlot(ctx, rc, name, "pgoutput", pglogrepl.CreateReplicationSlotOptions{
		Mode:           pglogrepl.LogicalReplication,
		SnapshotAction: "EXPORT_SNAPSHOT",
	})
	if err != nil {
		return 0, "", fmt.Errorf("pgrepl: create slot %q: %w", name, err)
	}
	consistent, err = pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		return 0, "", fmt.Errorf("pgrepl: create slot %q: consistent point: %w", name, err)
	}
	return consistent, res.SnapshotName, nil
}

// Op is a change kind.
type Op int

// The change kinds.
const (
	Insert Op = iota + 1
	Update
	Delete
	// Truncate is a TRUNCATE of Table: every row is gone; only Op and Table are set. The caller
	// decides what that means for what it delivered (for example delete all of the table's rows,
	// or snapshot the table again).
	Truncate
)

// String is the change kind in lower case.
func (o Op) String() string {
	switch o {
	case Insert:
		return "insert"
	case Update:
		return "update"
	case Delete:
		return "delete"
	case Truncate:
		return "truncate"
	}
	return fmt.Sprintf("Op(%d)", int(o))
}

// Change is one decoded row change. Its slices of column names are shared between the changes of
// one relation: read them, do not modify them.
type Change struct {
	// Op is the change kind.
	Op Op
	// Table is the relation as the Relation message names it.
	Table TableName
	// Columns and Values are the new row (Insert, Update) with every column of the relation in
	// order; nil for Delete and Truncate. Values are decoded with pgx's type map from pgoutput's
	// text format: int16/int32/int64, string, time.Time, bool, float32/float64, pgtype.Numeric,
	// []byte (bytea), map[string]any/[]any (json, jsonb), []any (arrays), [16]byte (uuid), ...;
	// nil for NULL; types the map does not know (enums, domains over them, extension types) and
	// values it fails to decode are their text, a string.
	Columns []string
	Values  []any
	// Unchanged[i] marks a TOASTed column whose value pgoutput did not send ('u'): an UPDATE that
	// did not touch a value stored out of line. Values[i] and ValuesText[i] are then nil and the
	// caller must read the row again if it needs that column.
	Unchanged []bool
	// ValuesText is Values in PostgreSQL's text form, the bytes pgoutput sent; nil entry for NULL
	// or unchanged.
	ValuesText []*string

	// KeyColumns are the relation's replica identity columns, as the Relation message flags
	// them: the primary key under REPLICA IDENTITY DEFAULT, the index's columns under USING
	// INDEX, every column under FULL. Set for Insert, Update and Delete.
	KeyColumns []string
	// Key and KeyText are the old row's values of KeyColumns, when pgoutput sent an old row:
	// always for Delete; for Update only when it changed the key (a 'K' tuple) or under
	// REPLICA IDENTITY FULL (an 'O' tuple, every column, so compare KeyText with ValuesText to
	// see whether the key changed). Nil otherwise: the key is then in Values. Under DEFAULT the
	// 'K' tuple pgoutput sends carries every column, the non-key ones as NULL; only the key
	// columns are kept here. KeyText entries are nil for NULL.
	Key     []any
	KeyText []*string
}

// Batch is what Next returns: changes of one transaction in commit order, possibly split into
// several batches for a large transaction (at most MaxChanges each, Commit only on the last).
// A committed transaction with no published change (older servers send those) is a batch with
// no changes and Commit set: confirm it like any other.
type Batch struct {
	// Changes are the decoded changes, in the order the transaction made them.
	Changes []Change
	// Commit is true when the batch ends its transaction; then CommitLSN, EndLSN and CommitTime
	// are set. EndLSN is the position to Confirm once everything up to it was delivered.
	Commit     bool
	CommitLSN  LSN
	EndLSN     LSN
	CommitTime time.Time
	// Idle is true for an empty batch returned when no data arrived for IdleAfter between
	// transactions: the stream is caught up with what the server had.
	Idle bool
	// ServerWALEnd is the server's WAL end as last reported (keepalive or XLogData), for lag.
	ServerWALEnd LSN
}

// StreamOptions configure StartStream.
type StreamOptions struct {
	// Slot and Publication are the slot to stream from and the publication whose tables it
	// decodes.
	Slot, Publication string
	// From is where to start: 0 for the slot's confirmed_flush_lsn (START_REPLICATION ... LOGICAL
	// 0/0). The server never goes back before the slot's confirmed position.
	From LSN
	// MaxChanges bounds a batch; default 500.
	MaxChanges int
	// IdleAfter is how long Next waits for data before it returns an Idle batch; default 500ms.
	IdleAfter time.Duration
	// StatusInterval is how often Next sends a standby status update at least; default 10s. It
	// must be shorter than the server's wal_sender_timeout (60 s by default), and the caller
	// must call Next (or Flush) at least that often, or the server ends the connection.
	StatusInterval time.Duration
}

// Stream is a started logical replication stream on a replication connection. Next, Flush and
// Close must not run concurrently with each other; Confirm may be called from any goroutine.
type Stream struct {
	rc      *pgconn.PgConn
	o       StreamOptions
	typeMap *pgtype.Map
	rels    map[uint32]*relation

	// confirmed is what the caller confirmed (never below the slot's position at start).
	confirmed atomic.Uint64
	// delivered is the EndLSN of the last committed batch Next returned.
	delivered LSN
	// caughtUp is the WAL end of the latest keepalive received between transactions: the server
	// had sent everything before it, so once every delivered transaction is confirmed, nothing
	// the caller still needs lies before it.
	caughtUp     LSN
	serverWALEnd LSN

	inTx    bool
	pending []Change
	commit  *pglogrepl.CommitMessage

	nextStatus time.Time
	err        error // sticky: the stream cannot go on
}

// errClosed is Next's answer after Close.
var errClosed = errors.New("pgrepl: stream closed")

// StartStream issues START_REPLICATION SLOT slot LOGICAL from (proto_version '1',
// publication_names '<publication>') on rc. A slot whose WAL is gone gives an error that
// errors.Is ErrSlotLost.
func StartStream(ctx context.Context, rc *pgconn.PgConn, o StreamOptions) (*Stream, error) {
	if err := checkName("slot", o.Slot); err != nil {
		return nil, err
	}
	if err := checkName("publication", o.Publication); err != nil {
		return nil, err
	}
	if o.MaxChanges <= 0 {
		o.MaxChanges = defaultMaxChanges
	}
	if o.IdleAfter <= 0 {
		o.IdleAfter = defaultIdleAfter
	}
	if o.StatusInterval <= 0 {
		o.StatusInterval = defaultStatusInterval
	}
	// The slot's own position is the floor of every status update: a position below it, as an
	// early keepalive reports while the server re-reads WAL from restart_lsn, would move
	// confirmed_flush_lsn back on servers that allow it (and make changes arrive again).
	floor, err := slotConfirmed(ctx, rc, o.Slot)
	if err != nil {
		return nil, err
	}
	floor = max(floor, o.From)
	err = pglogrepl.StartReplication(ctx, rc, o.Slot, o.From, pglogrepl.StartReplicationOptions{
		Mode: pglogrepl.LogicalReplication,
		PluginArgs: []string{
			"proto_version '1'",
			// The name is checked against nameRe: no quote can end the literal.
			"publication_names '" + o.Publication + "'",
		},
	})
	if err != nil {
		return nil, fmt.Errorf("pgrepl: start replication from slot %q: %w", o.Slot, classify(err))
	}
	s := &Stream{
		rc:         rc,
		o:          o,
		typeMap:    pgtype.NewMap(),
		rels:       map[uint32]*relation{},
		nextStatus: time.Now().Add(o.StatusInterval),
	}
	s.confirmed.Store(uint64(floor))
	return s, nil
}

// slotConfirmed reads the slot's confirmed_flush_lsn on the replication connection (simple
// query protocol, the only one a walsender speaks; the name is checked against nameRe, so the
// literal is safe). 0 when the slot is missing: START_REPLICATION then says so.
func slotConfirmed(ctx context.Context, rc *pgconn.PgConn, slot string) (LSN, error) {
	res, err := rc.Exec(ctx, "SELECT confirmed_flush_lsn::text FROM pg_catalog.pg_replication_slots WHERE slot_name = '"+slot+"'").ReadAll()
	if err != nil {
		return 0, fmt.Errorf("pgrepl: read slot %q: %w", slot, err)
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || res[0].Rows[0][0] == nil {
		return 0, nil
	}
	lsn, err := pglogrepl.ParseLSN(string(res[0].Rows[0][0]))
	if err != nil {
		return 0, fmt.Errorf("pgrepl: read slot %q: %w", slot, err)
	}
	return lsn, nil
}

// Next blocks until a batch is ready, or returns an Idle batch when no data arrived for
// IdleAfter between transactions. Meanwhile it answers keepalives that ask for a reply and sends
// a standby status update at least every StatusInterval, with the confirmed position. A server
// error is returned as is (a *pgconn.PgError), wrapped with ErrSlotLost when the slot is lost;
// after such an error, or a broken connection, every later Next returns it again. A done ctx
// returns its error and leaves the stream usable.
//
// A slot invalidated while it streams ends the connection on the server's side (the walsender is
// terminated, SQLSTATE 57P01); the error is then not ErrSlotLost: the next StartStream says so.
func (s *Stream) Next(ctx context.Context) (Batch, error) {
	if s.err != nil {
		return Batch{}, s.err
	}
	if b, ok := s.ready(); ok {
		return b, nil
	}
	idleAt := time.Now().Add(s.o.IdleAfter)
	for {
		if !time.Now().Before(s.nextStatus) {
			if err := s.sendStatus(); err != nil {
				return Batch{}, s.fail(err)
			}
		}
		rctx, cancel := context.WithDeadline(ctx, minTime(idleAt, s.nextStatus))
		msg, err := s.rc.ReceiveMessage(rctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return Batch{}, ctx.Err()
			}
			if !pgconn.Timeout(err) {
				return Batch{}, s.fail(err)
			}
			if time.Now().Before(idleAt) {
				continue
			}
			if len(s.pending) > 0 {
				// A transaction paused mid-way (the server spilled it to disk, or is slow): hand
				// over what arrived rather than hold it.
				return s.take(len(s.pending), false), nil
			}
			if !s.inTx {
				return Batch{Idle: true, ServerWALEnd: s.serverWALEnd}, nil
			}
			idleAt = time.Now().Add(s.o.IdleAfter)
			continue
		}
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			data, err := s.handle(m.Data)
			if err != nil {
				return Batch{}, s.fail(err)
			}
			if data {
				idleAt = time.Now().Add(s.o.IdleAfter)
			}
			if b, ok := s.ready(); ok {
				return b, nil
			}
		case *pgproto3.ErrorResponse:
			return Batch{}, s.fail(pgconn.ErrorResponseToPgError(m))
		case *pgproto3.CopyDone:
			return Batch{}, s.fail(errors.New("the server ended the replication stream"))
		default:
			// NoticeResponse, ParameterStatus: nothing for the stream.
		}
	}
}

// fail makes err sticky (wrapped with ErrSlotLost when it is one) and returns it.
func (s *Stream) fail(err error) error {
	s.err = fmt.Errorf("pgrepl: stream from slot %q: %w", s.o.Slot, classify(err))
	return s.err
}

// handle processes one CopyData message; data tells whether it was XLogData (not a keepalive).
func (s *Stream) handle(buf []byte) (data bool, err error) {
	if len(buf) == 0 {
		return false, errors.New("empty CopyData message")
	}
	switch buf[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		k, err := pglogrepl.ParsePrimaryKeepaliveMessage(buf[1:])
		if err != nil {
			return false, err
		}
		s.serverWALEnd = max(s.serverWALEnd, k.ServerWALEnd)
		if !s.inTx {
			s.caughtUp = max(s.caughtUp, k.ServerWALEnd)
		}
		if k.ReplyRequested {
			return false, s.sendStatus()
		}
		return false, nil
	case pglogrepl.XLogDataByteID:
		x, err := pglogrepl.ParseXLogData(buf[1:])
		if err != nil {
			return true, err
		}
		s.serverWALEnd = max(s.serverWALEnd, x.ServerWALEnd)
		return true, s.decode(x.WALData)
	default:
		return false, fmt.Errorf("unexpected CopyData message %q", buf[0])
	}
}

// ready returns the batch to hand over now, if any: MaxChanges changes as soon as more are
// waiting (a full batch waits for the next message, so a transaction of exactly MaxChanges
// changes comes as one batch with its commit), or everything up to a commit.
func (s *Stream) ready() (Batch, bool) {
	if len(s.pending) > s.o.MaxChanges {
		return s.take(s.o.MaxChanges, false), true
	}
	if s.commit != nil {
		return s.take(len(s.pending), true), true
	}
	return Batch{}, false
}

// take hands over the first n pending changes, with the commit when commit is set.
func (s *Stream) take(n int, commit bool) Batch {
	b := Batch{ServerWALEnd: s.serverWALEnd}
	if n > 0 {
		b.Changes = s.pending[:n:n]
		s.pending = append([]Change(nil), s.pending[n:]...)
	}
	if commit {
		b.Commit = true
		b.CommitLSN = s.commit.CommitLSN
		b.EndLSN = s.commit.TransactionEndLSN
		b.CommitTime = s.commit.CommitTime
		s.delivered = max(s.delivered, b.EndLSN)
		s.commit = nil
	}
	return b
}

// Confirm records lsn as delivered: the written, flushed and applied positions of the next
// standby status update, which the server keeps as the slot's confirmed_flush_lsn. It never
// moves backwards. Call it only with the EndLSN of a committed batch whose changes (and those of
// every batch before it) the caller fully delivered.
func (s *Stream) Confirm(lsn LSN) {
	for {
		cur := s.confirmed.Load()
		if uint64(lsn) <= cur || s.confirmed.CompareAndSwap(cur, uint64(lsn)) {
			return
		}
	}
}

// Flush sends a standby status update with the confirmed position now. The server records it
// asynchronously; pg_replication_slots shows it shortly after.
func (s *Stream) Flush(ctx context.Context) error {
	if s.err != nil {
		return s.err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.sendStatus(); err != nil {
		return s.fail(err)
	}
	return nil
}

// position is what the next status update reports: the confirmed position or, once every
// delivered transaction is confirmed, the latest keepalive's WAL end seen between transactions,
// whichever is later. The second keeps a slot whose tables are quiet from holding back the WAL of
// all the others (the server sends nothing for transactions without published changes).
func (s *Stream) position() LSN {
	c := LSN(s.confirmed.Load())
	if c >= s.delivered && s.caughtUp > c {
		return s.caughtUp
	}
	return c
}

func (s *Stream) sendStatus() error {
	p := s.position()
	err := pglogrepl.SendStandbyStatusUpdate(context.Background(), s.rc, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: p,
		WALFlushPosition: p,
		WALApplyPosition: p,
	})
	if err != nil {
		return fmt.Errorf("send standby status: %w", err)
	}
	s.nextStatus = time.Now().Add(s.o.StatusInterval)
	return nil
}

// Close ends the stream: a last status update with the confirmed position, CopyDone (waiting at
// most a few seconds, within ctx, for the server to end the copy), then closes rc. Its error is
// that of the last status update, which a caller that confirmed something may want to know.
func (s *Stream) Close(ctx context.Context) error {
	var err error
	if s.err == nil && !s.rc.IsClosed() {
		if err = s.sendStatus(); err == nil {
			s.endCopy(ctx)
		}
	}
	if s.err == nil {
		s.err = errClosed
	}
	_ = s.rc.Close(ctx)
	if err != nil {
		return fmt.Errorf("pgrepl: close stream from slot %q: %w", s.o.Slot, err)
	}
	return nil
}

// endCopy sends CopyDone and drains what the server still sends until it is ready for a query.
func (s *Stream) endCopy(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, closeDrainTimeout)
	defer cancel()
	s.rc.Frontend().Send(&pgproto3.CopyDone{})
	if err := s.rc.Frontend().Flush(); err != nil {
		return
	}
	for {
		msg, err := s.rc.ReceiveMessage(ctx)
		if err != nil {
			return
		}
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			return
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

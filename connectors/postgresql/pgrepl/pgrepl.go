// Package pgrepl is the database-facing layer of PostgreSQL change data capture (Connection mode
// logicalReplication): one publication and one logical replication slot (plugin pgoutput,
// protocol version 1) per Connection, an initial snapshot consistent with the slot, then a
// stream of decoded row changes whose slot position (confirmed_flush_lsn) is the cursor. It knows
// nothing about Kubernetes, sinks or items: it decodes to Go values.
//
//	Call                      Connection          Does
//	EnsurePublication         regular (pgx)       CREATE PUBLICATION ... FOR TABLE, or ALTER ... SET TABLE
//	Slot                      regular             the slot as pg_replication_slots reports it
//	ConnectReplication        -                   a replication=database connection (rc)
//	CreateSlot                rc                  CREATE_REPLICATION_SLOT ... LOGICAL pgoutput EXPORT_SNAPSHOT
//	InSnapshot                regular             read the exported snapshot (before rc runs anything else)
//	StartStream               rc                  START_REPLICATION SLOT ... LOGICAL (from the slot's position)
//	Stream.Next / Confirm     rc                  batches of changes per transaction / the delivered position
//	Stream.Flush / Close      rc                  report the position now / end the stream
//	DropSlot, DropPublication regular             remove what the Connection owned
//
// A first run: EnsurePublication, ConnectReplication, CreateSlot, InSnapshot (read every table),
// StartStream from the consistent point, Next/Confirm. A later run: ConnectReplication,
// StartStream (From 0: the slot's confirmed position), Next/Confirm.
//
// Privileges (verified by TestPrivileges against a real server): a non-superuser role needs the
// REPLICATION attribute for the replication connection (CREATE_REPLICATION_SLOT,
// START_REPLICATION) and for pg_drop_replication_slot; CREATE on the database and ownership of
// every published table for CREATE/ALTER PUBLICATION ... FOR TABLE (or a DBA creates the
// publication); SELECT on the tables for the snapshot. pg_terminate_backend of a slot's holder
// works for backends of the same role. A logical replication connection (replication=database)
// matches pg_hba.conf lines of its database, not the "replication" keyword.
//
// Names: slot and publication names must be lower-case letters, digits and underscores (at most
// 63): PostgreSQL itself requires that of slot names, and pgoutput reads publication_names as
// unquoted identifiers (so a name with capitals could never be found). Tables are always quoted
// with pgx.Identifier, so they may hold capitals, spaces or quotes.
//
// Servers: PostgreSQL 13 or later (pg_replication_slots.wal_status, publish_via_partition_root).
package pgrepl

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// LSN is a WAL position (log sequence number).
type LSN = pglogrepl.LSN

// TableName is a schema-qualified table. It is never concatenated raw into SQL: it is quoted with
// pgx.Identifier{Schema, Name}.Sanitize().
type TableName struct{ Schema, Name string }

// String is the table quoted as SQL would name it, "schema"."name".
func (t TableName) String() string { return t.sanitize() }

func (t TableName) sanitize() string { return pgx.Identifier{t.Schema, t.Name}.Sanitize() }

// ErrSlotLost is returned (wrapped, with the server's error) when the replication slot can no
// longer stream because the WAL it needed was removed (wal_status lost, for example after
// max_slot_wal_keep_size was exceeded). The slot must be dropped and the Connection snapshotted
// again.
var ErrSlotLost = errors.New("replication slot lost: its WAL was removed")

// nameRe is what slot and publication names must match (see the package doc).
var nameRe = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// snapshotRe is the form of an exported snapshot name (pg_export_snapshot, "%08X-%08X-%d").
var snapshotRe = regexp.MustCompile(`^[0-9A-F]+-[0-9A-F]+-[0-9]+$`)

// dropPollInterval is how often DropSlot looks whether a terminated holder released the slot.
const dropPollInterval = 50 * time.Millisecond

func checkName(kind, name string) error {
	if !nameRe.MatchString(name) {
		return fmt.Errorf("pgrepl: %s name %q: want 1 to 63 lower-case letters, digits or underscores", kind, name)
	}
	return nil
}

// SlotInfo is a slot as pg_replication_slots reports it.
type SlotInfo struct {
	// Name is the slot's name.
	Name string
	// Exists is false when no slot has that name (the other fields are then zero).
	Exists bool
	// Database is the database the (logical) slot belongs to; slot names are cluster-wide, so a
	// slot of another database with the same name is not this Connection's.
	Database string
	// Active is true while a connection streams from the slot; ActivePID is its backend.
	Active    bool
	ActivePID int32
	// ConfirmedFlush is confirmed_flush_lsn: changes committed before it are never sent again.
	ConfirmedFlush LSN
	// RestartLSN is restart_lsn, the oldest WAL the slot needs (0 once the slot is lost).
	RestartLSN LSN
	// RetainedBytes is pg_current_wal_lsn() - restart_lsn (WAL the slot holds back), 0 when unknown.
	RetainedBytes int64
	// WALStatus is wal_status: reserved, extended, unreserved or lost.
	WALStatus string
}

// Slot reads the slot name from pg_replication_slots. A missing slot is SlotInfo{Name: name}
// with Exists false, not an error.
func Slot(ctx context.Context, conn *pgx.Conn, name string) (SlotInfo, error) {
	info := SlotInfo{Name: name}
	var (
		db, walStatus      *string
		pid                *int32
		confirmed, restart *string
		retained           *int64
	)
	err := conn.QueryRow(ctx, `SELECT database, active, active_pid, confirmed_flush_lsn::text, restart_lsn::text,
	pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END, restart_lsn)::bigint,
	wal_status
FROM pg_catalog.pg_replication_slots WHERE slot_name = $1`, name).
		Scan(&db, &info.Active, &pid, &confirmed, &restart, &retained, &walStatus)
	if errors.Is(err, pgx.ErrNoRows) {
		return info, nil
	}
	if err != nil {
		return SlotInfo{}, fmt.Errorf("pgrepl: read slot %q: %w", name, err)
	}
	info.Exists = true
	if db != nil {
		info.Database = *db
	}
	if pid != nil {
		info.ActivePID = *pid
	}
	if retained != nil && *retained > 0 {
		info.RetainedBytes = *retained
	}
	if walStatus != nil {
		info.WALStatus = *walStatus
	}
	for _, p := range []struct {
		s   *string
		lsn *LSN
	}{{confirmed, &info.ConfirmedFlush}, {restart, &info.RestartLSN}} {
		if p.s == nil {
			continue
		}
		lsn, err := pglogrepl.ParseLSN(*p.s)
		if err != nil {
			return SlotInfo{}, fmt.Errorf("pgrepl: read slot %q: %w", name, err)
		}
		*p.lsn = lsn
	}
	return info, nil
}

// readWrite runs f in an explicit READ WRITE transaction: the caller's sessions default to
// read-only (default_transaction_read_only), which would refuse the DDL.
func readWrite(ctx context.Context, conn *pgx.Conn, f func(pgx.Tx) error) error {
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadWrite})
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := f(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// publishAll is what the publication publishes: every kind of change the stream decodes.
const publishAll = "publish = 'insert, update, delete, truncate'"

// EnsurePublication creates publication name FOR TABLE tables (publishing insert, update, delete
// and truncate; a partitioned table's changes reported under its own name,
// publish_via_partition_root), or, when it exists with other tables or options, sets them (ALTER
// PUBLICATION ... SET TABLE / SET (...)). It runs in an explicit READ WRITE transaction. Only
// identifiers quoted with pgx.Identifier.Sanitize enter the SQL; values are parameters.
//
// It refuses a table without a replica identity (no primary key under REPLICA IDENTITY DEFAULT,
// or REPLICA IDENTITY NOTHING): once such a table is in a publication that publishes updates and
// deletes, PostgreSQL fails every UPDATE and DELETE on it, in the tenant's own application.
func EnsurePublication(ctx context.Context, conn *pgx.Conn, name string, tables []TableName) error {
	if err := checkName("publication", name); err != nil {
		return err
	}
	if len(tables) == 0 {
		return fmt.Errorf("pgrepl: publication %q: no tables", name)
	}
	want := map[TableName]bool{}
	for _, t := range tables {
		if t.Schema == "" || t.Name == "" {
			return fmt.Errorf("pgrepl: publication %q: table %s: schema and name are required", name, t)
		}
		if want[t] {
			return fmt.Errorf("pgrepl: publication %q: table %s listed twice", name, t)
		}
		want[t] = true
	}
	pub := pgx.Identifier{name}.Sanitize()
	list := make([]string, len(tables))
	for i, t := range tables {
		list[i] = t.sanitize()
	}
	tableList := strings.Join(list, ", ")

	err := readWrite(ctx, conn, func(tx pgx.Tx) error {
		for _, t := range tables {
			if err := checkReplicaIdentity(ctx, tx, t); err != nil {
				return err
			}
		}
		var allTables, ins, upd, del, trunc, viaRoot bool
		err := tx.QueryRow(ctx, `SELECT puballtables, pubinsert, pubupdate, pubdelete, pubtruncate, pubviaroot
FROM pg_catalog.pg_publication WHERE pubname = $1`, name).Scan(&allTables, &ins, &upd, &del, &trunc, &viaRoot)
		if errors.Is(err, pgx.ErrNoRows) {
			_, err = tx.Exec(ctx, "CREATE PUBLICATION "+pub+" FOR TABLE "+tableList+
				" WITH ("+publishAll+", publish_via_partition_root = true)")
			return err
		}
		if err != nil {
			return err
		}
		if allTables {
			// SET TABLE is refused on such a publication; someone else made it: a human decides.
			return fmt.Errorf("publication is FOR ALL TABLES, not the operator's FOR TABLE list")
		}
		rows, err := tx.Query(ctx, `SELECT schemaname, tablename FROM pg_catalog.pg_publication_tables WHERE pubname = $1`, name)
		if err != nil {
			return err
		}
		have, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (TableName, error) {
			var t TableName
			err := r.Scan(&t.Schema, &t.Name)
			return t, err
		})
		if err != nil {
			return err
		}
		same := len(have) == len(want)
		for _, t := range have {
			same = same && want[t]
		}
		if !same {
			if _, err := tx.Exec(ctx, "ALTER PUBLICATION "+pub+" SET TABLE "+tableList); err != nil {
				return err
			}
		}
		if !ins || !upd || !del || !trunc || !viaRoot {
			if _, err := tx.Exec(ctx, "ALTER PUBLICATION "+pub+" SET ("+publishAll+", publish_via_partition_root = true)"); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pgrepl: ensure publication %q: %w", name, err)
	}
	return nil
}

// checkReplicaIdentity refuses a table whose UPDATE and DELETE PostgreSQL would fail once it is
// published (see EnsurePublication), and anything that is not a table.
func checkReplicaIdentity(ctx context.Context, tx pgx.Tx, t TableName) error {
	var ident, kind string
	var hasPK bool
	err := tx.QueryRow(ctx, `SELECT c.relreplident::text, c.relkind::text,
	EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2`, t.Schema, t.Name).Scan(&ident, &kind, &hasPK)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("table %s does not exist", t)
	}
	if err != nil {
		return err
	}
	if kind != "r" && kind != "p" {
		return fmt.Errorf("%s is not a table (relkind %q)", t, kind)
	}
	if ident == "n" || (ident == "d" && !hasPK) {
		return fmt.Errorf("table %s has no replica identity (no primary key, or REPLICA IDENTITY NOTHING): "+
			"publishing it would make PostgreSQL refuse its UPDATEs and DELETEs; add a primary key or "+
			"set REPLICA IDENTITY FULL or USING INDEX", t)
	}
	return nil
}

// DropPublication drops publication name if it exists (READ WRITE transaction).
func DropPublication(ctx context.Context, conn *pgx.Conn, name string) error {
	if err := checkName("publication", name); err != nil {
		return err
	}
	err := readWrite(ctx, conn, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "DROP PUBLICATION IF EXISTS "+pgx.Identifier{name}.Sanitize())
		return err
	})
	if err != nil {
		return fmt.Errorf("pgrepl: drop publication %q: %w", name, err)
	}
	return nil
}

// DropSlot drops the replication slot name (pg_drop_replication_slot) if it exists. When a
// connection holds it (active), DropSlot terminates that backend (pg_terminate_backend) and waits,
// bounded by ctx, until the slot is released. Dropping a missing slot is not an error. Slot names
// are cluster-wide and DropSlot does not look at the slot's database: a caller that may share a
// cluster with other databases checks SlotInfo.Database first.
func DropSlot(ctx context.Context, conn *pgx.Conn, name string) error {
	if err := checkName("slot", name); err != nil {
		return err
	}
	for {
		info, err := Slot(ctx, conn, name)
		if err != nil {
			return err
		}
		if !info.Exists {
			return nil
		}
		if info.Active && info.ActivePID != 0 {
			if _, err := conn.Exec(ctx, "SELECT pg_catalog.pg_terminate_backend($1)", info.ActivePID); err != nil {
				return fmt.Errorf("pgrepl: drop slot %q: terminate its holder: %w", name, err)
			}
			if err := waitReleased(ctx, conn, name, info.ActivePID); err != nil {
				return err
			}
		}
		_, err = conn.Exec(ctx, "SELECT pg_catalog.pg_drop_replication_slot($1)", name)
		var pe *pgconn.PgError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &pe) && pe.Code == "42704": // undefined_object: dropped meanwhile
			return nil
		case errors.As(err, &pe) && pe.Code == "55006": // object_in_use: a holder came back
			continue
		default:
			return fmt.Errorf("pgrepl: drop slot %q: %w", name, err)
		}
	}
}

// waitReleased polls until slot name is no longer held by pid.
func waitReleased(ctx context.Context, conn *pgx.Conn, name string, pid int32) error {
	t := time.NewTicker(dropPollInterval)
	defer t.Stop()
	for {
		info, err := Slot(ctx, conn, name)
		if err != nil {
			return err
		}
		if !info.Exists || !info.Active || info.ActivePID != pid {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgrepl: drop slot %q: its holder (pid %d) did not release it: %w", name, pid, ctx.Err())
		case <-t.C:
		}
	}
}

// InSnapshot runs f in a REPEATABLE READ READ ONLY transaction on conn that imports snapshot (an
// exported snapshot name, from CreateSlot) or, when snapshot is "", a fresh REPEATABLE READ
// snapshot. SET TRANSACTION SNAPSHOT takes no parameters, so the name is checked against the form
// PostgreSQL gives it before it enters the statement. f's error is returned as is.
func InSnapshot(ctx context.Context, conn *pgx.Conn, snapshot string, f func(pgx.Tx) error) error {
	if snapshot != "" && !snapshotRe.MatchString(snapshot) {
		return fmt.Errorf("pgrepl: snapshot name %q is not of the form PostgreSQL exports", snapshot)
	}
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("pgrepl: begin snapshot transaction: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if snapshot != "" {
		if _, err := tx.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+snapshot+"'"); err != nil {
			return fmt.Errorf("pgrepl: import snapshot %s: %w", snapshot, err)
		}
	}
	if err := f(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// slotLost tells whether err is the server refusing to stream from an invalidated slot. The
// SQLSTATE alone (55000 object_not_in_prerequisite_state) also covers unrelated refusals (a
// physical slot, wal_level), so the message decides: PostgreSQL 13 to 15 say "cannot read from
// logical replication slot", 16 and later "can no longer get changes from replication slot";
// a walsender that finds its WAL gone says "requested WAL segment ... has already been removed"
// (58P01). Servers with lc_messages other than English are not recognized here; Slot's
// WALStatus "lost" says the same thing.
func slotLost(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case "55000":
		return strings.Contains(pe.Message, "can no longer get changes from replication slot") ||
			(strings.Contains(pe.Message, "cannot read from logical replication slot") &&
				strings.Contains(pe.Detail, "invalidated"))
	case "58P01":
		return strings.Contains(pe.Message, "has already been removed")
	}
	return false
}

// classify wraps err with ErrSlotLost when it is one (see slotLost).
func classify(err error) error {
	if slotLost(err) {
		return fmt.Errorf("%w: %w", ErrSlotLost, err)
	}
	return err
}

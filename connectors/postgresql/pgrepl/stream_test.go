package pgrepl

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/unified-connectors/connector-operator/internal/pgtest"
)

func TestLargeTransactionSplitsIntoBatches(t *testing.T) {
	exec(t, srv(t), `CREATE TABLE bulk (id int PRIMARY KEY)`)
	c, rc := newCDC(t, srv(t), "bulk", TableName{"public", "bulk"})
	st := c.start(rc, StreamOptions{MaxChanges: 100})
	exec(t, srv(t), `INSERT INTO bulk SELECT generate_series(1, 250)`)
	exec(t, srv(t), `INSERT INTO bulk SELECT generate_series(251, 350)`)

	var sizes []int
	var commitsAt []bool
	var all []string
	for len(commitsAt) == 0 || !commitsAt[len(commitsAt)-1] || len(all) < 350 {
		b := nextData(t, st)
		sizes = append(sizes, len(b.Changes))
		commitsAt = append(commitsAt, b.Commit)
		all = append(all, ids(b.Changes, 0)...)
		if b.Commit != (b.EndLSN != 0) || b.Commit != !b.CommitTime.IsZero() {
			t.Fatalf("batch commit %v with end %s, time %v", b.Commit, b.EndLSN, b.CommitTime)
		}
	}
	// 250 changes: 100, 100, then 50 with the commit; exactly 100: one batch with its commit.
	if !slices.Equal(sizes, []int{100, 100, 50, 100}) || !slices.Equal(commitsAt, []bool{false, false, true, true}) {
		t.Fatalf("batch sizes %v, commits %v", sizes, commitsAt)
	}
	for i, id := range all {
		if id != strconv.Itoa(i+1) {
			t.Fatalf("change %d is row %s: order lost", i, id)
		}
	}
}

func TestConfirmIsTheCursor(t *testing.T) {
	ctx := testCtx(t)
	exec(t, srv(t), `CREATE TABLE cursor_rows (id int PRIMARY KEY)`)
	c, rc := newCDC(t, srv(t), "cursor", TableName{"public", "cursor_rows"})
	st := c.start(rc, StreamOptions{IdleAfter: 200 * time.Millisecond})

	// Nothing written yet: an Idle batch, empty.
	b, err := st.Next(ctx)
	if err != nil || !b.Idle || len(b.Changes) != 0 || b.Commit {
		t.Fatalf("first Next on a quiet table: %+v, %v", b, err)
	}

	exec(t, srv(t), `INSERT INTO cursor_rows VALUES (1)`)
	b1 := nextData(t, st)
	st.Confirm(b1.EndLSN)
	st.Confirm(b1.EndLSN - 1) // never backwards
	if err := st.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	poll(t, "confirmed_flush_lsn to reach the confirmed EndLSN", func() (bool, error) {
		info, err := Slot(ctx, c.conn, c.slot)
		return info.ConfirmedFlush >= b1.EndLSN, err
	})

	// Delivered but not confirmed: it comes again after a restart, with what was written meanwhile.
	exec(t, srv(t), `INSERT INTO cursor_rows VALUES (2)`)
	b2 := nextData(t, st)
	if got := ids(b2.Changes, 0); !slices.Equal(got, []string{"2"}) || !b2.Commit {
		t.Fatalf("second batch %v", got)
	}
	if err := st.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Next(ctx); err == nil {
		t.Fatal("Next after Close succeeded")
	}
	info, err := Slot(ctx, c.conn, c.slot)
	if err != nil {
		t.Fatal(err)
	}
	if info.ConfirmedFlush >= b2.CommitLSN || info.Active {
		t.Fatalf("after Close: confirmed %s (second commit at %s), active %v", info.ConfirmedFlush, b2.CommitLSN, info.Active)
	}
	exec(t, srv(t), `INSERT INTO cursor_rows VALUES (3)`)

	st2 := c.restart(StreamOptions{IdleAfter: 200 * time.Millisecond})
	var got []string
	for _, tx := range commits(t, st2, 2) {
		got = append(got, ids(tx, 0)...)
	}
	if rest := untilIdle(t, st2); len(rest) != 0 {
		got = append(got, ids(rest, 0)...)
	}
	if !slices.Equal(got, []string{"2", "3"}) {
		t.Fatalf("after restart from the slot: %v, want 2 and 3 (1 was confirmed)", got)
	}
}

func TestQuietSlotAdvancesOverOtherTables(t *testing.T) {
	ctx := testCtx(t)
	exec(t, srv(t), `CREATE TABLE quiet (id int PRIMARY KEY); CREATE TABLE busy (id int PRIMARY KEY)`)
	c, rc := newCDC(t, srv(t), "quiet", TableName{"public", "quiet"})
	st := c.start(rc, StreamOptions{IdleAfter: 100 * time.Millisecond, StatusInterval: 100 * time.Millisecond})
	exec(t, srv(t), `INSERT INTO busy SELECT generate_series(1, 1000)`)
	var before LSN
	if err := c.conn.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&before); err != nil {
		t.Fatal(err)
	}
	exec(t, srv(t), `INSERT INTO busy VALUES (1001)`)
	// Nothing of busy is delivered, yet the slot moves past its WAL instead of holding it.
	poll(t, "the slot to move past WAL of unpublished tables", func() (bool, error) {
		b, err := st.Next(ctx)
		if err != nil {
			return false, err
		}
		if len(b.Changes) != 0 {
			t.Fatalf("changes of an unpublished table: %+v", b.Changes)
		}
		info, err := Slot(ctx, c.conn, c.slot)
		return info.ConfirmedFlush > before, err
	})
	// A delivered but unconfirmed transaction stops that: the slot waits for Confirm.
	exec(t, srv(t), `INSERT INTO quiet VALUES (1)`)
	b := nextData(t, st)
	exec(t, srv(t), `INSERT INTO busy VALUES (1002)`)
	untilIdle(t, st)
	untilIdle(t, st)
	if err := st.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	info, err := Slot(ctx, c.conn, c.slot)
	if err != nil {
		t.Fatal(err)
	}
	if info.ConfirmedFlush >= b.CommitLSN {
		t.Fatalf("slot at %s passed an unconfirmed commit at %s", info.ConfirmedFlush, b.CommitLSN)
	}
	st.Confirm(b.EndLSN)
	poll(t, "the slot to move past the confirmed commit", func() (bool, error) {
		if _, err := st.Next(ctx); err != nil {
			return false, err
		}
		info, err := Slot(ctx, c.conn, c.slot)
		return info.ConfirmedFlush >= b.EndLSN, err
	})
}

func TestDropSlotHeldByAStream(t *testing.T) {
	ctx := testCtx(t)
	exec(t, srv(t), `CREATE TABLE held (id int PRIMARY KEY)`)
	c, rc := newCDC(t, srv(t), "held", TableName{"public", "held"})
	st := c.start(rc, StreamOptions{IdleAfter: 100 * time.Millisecond})
	if b, err := st.Next(ctx); err != nil || !b.Idle {
		t.Fatalf("Next: %+v %v", b, err)
	}
	info, err := Slot(ctx, c.conn, c.slot)
	if err != nil || !info.Active || info.ActivePID == 0 || info.Database != db || info.WALStatus != "reserved" || info.RestartLSN == 0 {
		t.Fatalf("slot while streaming: %+v %v", info, err)
	}
	// c.conn is read-only by default, as the caller's sessions are.
	if err := DropSlot(ctx, c.conn, c.slot); err != nil {
		t.Fatal(err)
	}
	if info, err := Slot(ctx, c.conn, c.slot); err != nil || info.Exists {
		t.Fatalf("slot after DropSlot: %+v %v", info, err)
	}
	if err := DropSlot(ctx, c.conn, c.slot); err != nil {
		t.Fatalf("dropping a missing slot: %v", err)
	}
	// The stream's backend was terminated: Next says so, and keeps saying so.
	var nextErr error
	for nextErr == nil {
		_, nextErr = st.Next(ctx)
	}
	if ctx.Err() != nil || errors.Is(nextErr, ErrSlotLost) {
		t.Fatalf("Next after the slot was dropped: %v", nextErr)
	}
	if _, err := st.Next(ctx); err == nil {
		t.Fatal("Next went on after a failure")
	}
	t.Logf("stream after DropSlot: %v", nextErr)
}

func TestSlotLost(t *testing.T) {
	ctx := testCtx(t)
	s := pgtest.Start(t, pgtest.Options{Databases: []string{db}, Settings: []string{"max_slot_wal_keep_size = '1MB'"}})
	exec(t, s, `CREATE TABLE wide (id serial PRIMARY KEY, pad text)`)
	c, rc := newCDC(t, s, "lost", TableName{"public", "wide"})
	if err := rc.Close(ctx); err != nil { // the slot is not consumed from here on
		t.Fatal(err)
	}
	for round := 0; ; round++ {
		info, err := Slot(ctx, c.conn, c.slot)
		if err != nil {
			t.Fatal(err)
		}
		if info.WALStatus == "lost" {
			if info.RestartLSN != 0 || info.RetainedBytes != 0 {
				t.Fatalf("lost slot: %+v", info)
			}
			break
		}
		if round == 20 {
			t.Fatalf("slot not lost after %d rounds of WAL: %+v", round, info)
		}
		exec(t, s, `INSERT INTO wide (pad) SELECT repeat(md5(g::text), 32) FROM generate_series(1, 2000) g`)
		exec(t, s, `SELECT pg_switch_wal()`)
		exec(t, s, `CHECKPOINT`)
		exec(t, s, `CHECKPOINT`)
	}
	_, err := StartStream(ctx, replication(t, s, "", ""), StreamOptions{Slot: c.slot, Publication: c.pub})
	var pe *pgconn.PgError
	if !errors.Is(err, ErrSlotLost) || !errors.As(err, &pe) || pe.Code != "55000" {
		t.Fatalf("StartStream on a lost slot: %v", err)
	}
	t.Logf("StartStream on a lost slot: %v (SQLSTATE %s, detail %q)", err, pe.Code, pe.Detail)
	// A lost slot can still be dropped, to be created again.
	if err := DropSlot(ctx, c.conn, c.slot); err != nil {
		t.Fatal(err)
	}
}

func TestPrivileges(t *testing.T) {
	ctx := testCtx(t)
	pw, plainPW := password(t), password(t)
	if err := srv(t).CreateRole(ctx, "cdc_user", pw, "REPLICATION"); err != nil {
		t.Fatal(err)
	}
	if err := srv(t).CreateRole(ctx, "plain_user", plainPW); err != nil {
		t.Fatal(err)
	}
	exec(t, srv(t), `GRANT CREATE ON DATABASE app TO cdc_user;
		CREATE TABLE priv_own (id int PRIMARY KEY); ALTER TABLE priv_own OWNER TO cdc_user;
		INSERT INTO priv_own VALUES (1);
		CREATE TABLE priv_other (id int PRIMARY KEY); GRANT SELECT ON priv_other TO cdc_user, plain_user;
		ALTER TABLE priv_own REPLICA IDENTITY DEFAULT`)
	noSecret := func(err error) {
		t.Helper()
		if err != nil && (strings.Contains(err.Error(), pw) || strings.Contains(err.Error(), plainPW)) {
			t.Fatalf("an error carries the password: %v", err)
		}
	}
	denied := func(what string, err error) {
		t.Helper()
		noSecret(err)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42501" {
			t.Fatalf("%s: %v, want insufficient_privilege", what, err)
		}
		t.Logf("%s: %v", what, err)
	}

	// Without the REPLICATION attribute there is no replication connection; without CREATE on
	// the database, no publication.
	_, err := ConnectReplication(ctx, userCfg(t, srv(t), "plain_user", plainPW))
	denied("replication connection without REPLICATION", err)
	plain := regular(t, srv(t), "plain_user", plainPW)
	denied("publication without CREATE on the database", EnsurePublication(ctx, plain, "priv_pub", []TableName{{"public", "priv_other"}}))

	// With REPLICATION and CREATE: only tables it owns can be published.
	conn := regular(t, srv(t), "cdc_user", pw)
	denied("publication of a table it does not own", EnsurePublication(ctx, conn, "priv_pub", []TableName{{"public", "priv_other"}}))
	if err := EnsurePublication(ctx, conn, "priv_pub", []TableName{{"public", "priv_own"}}); err != nil {
		noSecret(err)
		t.Fatal(err)
	}
	rc := replication(t, srv(t), "cdc_user", pw)
	_, snap, err := CreateSlot(ctx, rc, "priv_slot")
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := InSnapshot(ctx, conn, snap, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT count(*) FROM priv_own`).Scan(&n)
	}); err != nil || n != 1 {
		t.Fatalf("snapshot as cdc_user: %d rows, %v", n, err)
	}
	st, err := StartStream(ctx, rc, StreamOptions{Slot: "priv_slot", Publication: "priv_pub"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close(context.Background()) }()
	exec(t, srv(t), `INSERT INTO priv_own VALUES (2)`)
	if got := ids(commits(t, st, 1)[0], 0); !slices.Equal(got, []string{"2"}) {
		t.Fatalf("stream as cdc_user: %v", got)
	}
	// It may terminate its own stream's backend and drop the slot, and drop the publication.
	if err := DropSlot(ctx, conn, "priv_slot"); err != nil {
		t.Fatal(err)
	}
	if err := DropPublication(ctx, conn, "priv_pub"); err != nil {
		t.Fatal(err)
	}
}

func TestNextDeadlineAndCloseReportsConfirmed(t *testing.T) {
	ctx := testCtx(t)
	exec(t, srv(t), `CREATE TABLE closing (id int PRIMARY KEY)`)
	c, rc := newCDC(t, srv(t), "closing", TableName{"public", "closing"})
	st := c.start(rc, StreamOptions{IdleAfter: 30 * time.Second})

	// A caller's deadline ends Next with its error; the stream goes on afterwards.
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err := st.Next(short)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next past its deadline: %v", err)
	}
	exec(t, srv(t), `INSERT INTO closing VALUES (1)`)
	b := nextData(t, st)
	if got := ids(b.Changes, 0); !slices.Equal(got, []string{"1"}) || !b.Commit {
		t.Fatalf("after the deadline: %v", got)
	}
	// Confirmed, never flushed (the status interval is 10 s): Close reports it.
	st.Confirm(b.EndLSN)
	if err := st.Close(ctx); err != nil {
		t.Fatal(err)
	}
	poll(t, "Close's status update to reach the slot", func() (bool, error) {
		info, err := Slot(ctx, c.conn, c.slot)
		return info.ConfirmedFlush >= b.EndLSN && !info.Active, err
	})
}

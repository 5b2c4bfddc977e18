package postgresql

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/connectors/postgresql/pgrepl"
)

// SlotFinalizer keeps a logicalReplication Connection until its replication slot and
// publication are dropped: a slot left behind makes the server keep WAL for it forever.
const SlotFinalizer = "connectors.unified.dev/replication-slot"

// replicationPrefix starts the names of the slot and the publication of a Connection.
const replicationPrefix = "connectors_"

var (
	_ connectors.Streamer          = (*client)(nil)
	_ connectors.ExternalResources = (*client)(nil)
)

// replicationName is the name of a Connection's slot and of its publication:
// connectors_ and the Connection's UID without dashes (43 characters for a UID as the API
// server makes them). Slot names are cluster-wide; the UID keeps Connections of other
// namespaces, clusters or databases of the same server apart, and a re-created Connection
// of the same name from the slot its predecessor may have left behind.
func replicationName(uid string) (string, error) {
	var b strings.Builder
	b.WriteString(replicationPrefix)
	for _, r := range strings.ToLower(uid) {
		switch {
		case r == '-':
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_':
			b.WriteRune(r)
		default:
			return "", fmt.Errorf("postgresql: the Connection's UID %q is not a UID", uid)
		}
	}
	if b.Len() == len(replicationPrefix) {
		return "", errors.New("postgresql: the Connection has no UID yet: its replication slot is named after it")
	}
	if b.Len() > 63 {
		return "", fmt.Errorf("postgresql: the Connection's UID %q is too long for a slot name", uid)
	}
	return b.String(), nil
}

// slotName is replicationName of the client's Connection.
func (c *client) slotName() (string, error) {
	conn := c.connection()
	if conn == nil {
		return "", errors.New("postgresql: the client serves no Connection: no replication slot")
	}
	return replicationName(string(conn.UID))
}

// connection is the Connection the client serves, nil in static checks. It reads the
// client's conn field (cfg.Connection, set in newClient); until the client has that field,
// stream.go, resources.go and stream_test.go build only with -tags postgresql_stream.
func (c *client) connection() *v1alpha1.Connection { return c.conn }

// Finalizer is SlotFinalizer in mode logicalReplication, else "" (a Connection that
// still carries it after a switch to cursorColumn is then released).
func (c *client) Finalizer() string {
	if c.mode == logicalReplication {
		return SlotFinalizer
	}
	return ""
}

// replWithConn runs f on a connection of the pool.
func (c *client) replWithConn(ctx context.Context, op string, f func(*pgx.Conn) error) error {
	p, err := c.pool(ctx)
	if err != nil {
		return c.mapError(op, "", err)
	}
	pc, err := p.Acquire(ctx)
	if err != nil {
		return c.mapError(op, "", err)
	}
	defer pc.Release()
	return f(pc.Conn())
}

// Release drops the Connection's replication slot (terminating a connection that still
// streams from it) and then its publication, whatever the mode; either being absent is
// not an error. The slot goes first: it is what makes the server keep WAL.
func (c *client) Release(ctx context.Context) error {
	name, err := c.slotName()
	if err != nil {
		// Without a UID no slot was ever named after this Connection.
		return nil
	}
	return c.replWithConn(ctx, "drop replication slot "+name, func(conn *pgx.Conn) error {
		if err := pgrepl.DropSlot(ctx, conn, name); err != nil {
			return c.replicationError("drop replication slot "+name, name, connectors.KindInvalid, err)
		}
		if err := pgrepl.DropPublication(ctx, conn, name); err != nil {
			return c.replicationError("drop publication "+name, name, connectors.KindInvalid, err)
		}
		return nil
	})
}

// Report fills status.postgresql from pg_replication_slots: the slot, the publication,
// the confirmed position, the WAL the slot retains and its wal_status. Outside
// logicalReplication, with no slot left, status.postgresql is removed.
func (c *client) Report(ctx context.Context, st *v1alpha1.ConnectionStatus) error {
	name, err := c.slotName()
	if err != nil {
		if c.mode != logicalReplication {
			st.PostgreSQL = nil
			return nil
		}
		return newError(connectors.KindInvalid, "read replication slot", err.Error(), nil)
	}
	var info pgrepl.SlotInfo
	err = c.replWithConn(ctx, "read replication slot "+name, func(conn *pgx.Conn) error {
		var err error
		info, err = pgrepl.Slot(ctx, conn, name)
		return c.replicationError("read replication slot "+name, name, connectors.KindInvalid, err)
	})
	if err != nil {
		return err
	}
	if !info.Exists && c.mode != logicalReplication {
		st.PostgreSQL = nil
		return nil
	}
	ps := &v1alpha1.PostgreSQLStatus{Slot: name, Publication: name}
	if info.Exists {
		if info.ConfirmedFlush != 0 {
			ps.ConfirmedLSN = info.ConfirmedFlush.String()
		}
		ps.RetainedWALBytes = info.RetainedBytes
		ps.WALStatus = info.WALStatus
	}
	st.PostgreSQL = ps
	return nil
}

// replicationError maps a failure of a replication step (publication, slot, stream) on
// slot to a *connectors.Error: a lost or missing slot is KindStreamLost, a slot another
// process streams from is KindUnavailable (transient: an old leader's connection ends,
// or DropSlot ends it), refused privileges say which ones replication needs, transport
// failures go through mapError. Anything else is pgrepl's own refusal (a table without
// replica identity, a publication FOR ALL TABLES), whose message names tables and never
// values: it is kind other (KindInvalid for setup steps, KindUnavailable for a stream
// that broke off).
func (c *client) replicationError(op, slot string, other connectors.ErrorKind, err error) error {
	if err == nil {
		return nil
	}
	var ce *connectors.Error
	if errors.As(err, &ce) {
		return err
	}
	if errors.Is(err, pgrepl.ErrSlotLost) {
		return slotLostError(op, slot, "its WAL was removed (the server keeps at most max_slot_wal_keep_size of WAL for a slot)")
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "42501":
			return newError(connectors.KindAuth, op, fmt.Sprintf("role %q may not do this (%s): logicalReplication needs a role with the REPLICATION attribute "+
				"(ALTER ROLE %s REPLICATION) that owns every table in spec.postgresql.tables and has CREATE on the database (for CREATE PUBLICATION)",
				c.user, pe.Message, pgx.Identifier{c.user}.Sanitize()), safePgError{code: pe.Code, kind: connectors.KindAuth})
		case pe.Code == "55006":
			// "replication slot "x" is active for PID n": names the slot and a PID only.
			return newError(connectors.KindUnavailable, op, pe.Message+": another connection (an earlier leader of the operator?) streams from the slot; retried until it lets go",
				safePgError{code: pe.Code, kind: connectors.KindUnavailable})
		case pe.Code == "42704" && strings.Contains(pe.Message, "replication slot"):
			return slotLostError(op, slot, "it does not exist (it was dropped)")
		}
		return c.mapError(op, "", err)
	}
	if isTransport(err) {
		return c.mapError(op, "", err)
	}
	return newError(other, op, strings.TrimPrefix(err.Error(), "pgrepl: "), nil)
}

// isTransport reports whether err is a connection-level failure (dial, TLS, I/O, a
// closed connection or pool, a deadline, the egress guard) rather than a refusal.
func isTransport(err error) bool {
	var ne net.Error
	var ce *pgconn.ConnectError
	var denied egressDenied
	_, tlsFailed := tlsFailure(err)
	return errors.As(err, &ne) || errors.As(err, &ce) || errors.As(err, &denied) || tlsFailed ||
		pgconn.SafeToRetry(err) || pgconn.Timeout(err) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, puddle.ErrClosedPool) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// slotLostError is the KindStreamLost error of a slot that can no longer stream.
func slotLostError(op, slot, why string) error {
	return newError(connectors.KindStreamLost, op, "replication slot "+slot+" can no longer stream: "+why+
		"; the changes since its last confirmed position are gone. Set spec.sync.resyncRequest to a new value: "+
		"the slot is then dropped and made again from a new snapshot of the tables", nil)
}

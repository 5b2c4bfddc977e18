package postgresql

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"

	"github.com/unified-connectors/connector-operator/connectors"
)

// egressDenied is what the operator's egress guard refuses a destination with
// (internal/egress.DeniedError, which connectors may not import).
type egressDenied interface{ EgressDenied() bool }

func newError(kind connectors.ErrorKind, op, reason string, err error) *connectors.Error {
	return &connectors.Error{Kind: kind, Vendor: Type, Op: op, Reason: reason, Err: err}
}

func invalid(op, reason string) error { return newError(connectors.KindInvalid, op, reason, nil) }

func notFound(op, reason string) error { return newError(connectors.KindNotFound, op, reason, nil) }

func unsupported(op, reason string) error {
	return newError(connectors.KindUnsupported, op, reason, nil)
}

// mapError turns a pgx or network failure of op into a *connectors.Error. The reason is
// PostgreSQL's own message only for the classes whose messages name objects (roles,
// databases, tables, columns), never for data errors, whose messages may quote values.
// table names the table op read ("" for none), for the reasons that need it.
func (c *client) mapError(op, table string, err error) error {
	if err == nil {
		return nil
	}
	var ce *connectors.Error
	if errors.As(err, &ce) {
		return err
	}
	var denied egressDenied
	if errors.As(err, &denied) && denied.EgressDenied() {
		return newError(connectors.KindEgressDenied, op, "the egress policy refuses "+c.set.hostPort()+": "+rootMessage(err), err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return c.mapPgError(op, table, pgErr)
	}
	if reason, ok := tlsFailure(err); ok {
		return newError(connectors.KindUnavailable, op, reason+"; check spec.postgresql.caRef (the CA that signs the server's certificate) and sslMode, and that baseURL's host is a name the certificate holds", err)
	}
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return newError(connectors.KindUnavailable, op, "no answer from "+c.set.hostPort()+" in time", err)
	case errors.Is(err, puddle.ErrClosedPool):
		return newError(connectors.KindUnavailable, op, errPoolClosed.Error(), err)
	}
	if strings.Contains(err.Error(), "server refused TLS connection") {
		return newError(connectors.KindUnavailable, op, "the server at "+c.set.hostPort()+" does not offer TLS; enable ssl on the server (sslMode disable is for local development only)", err)
	}
	var ne net.Error
	var oe *net.OpError
	var de *net.DNSError
	switch {
	case errors.As(err, &de):
		return newError(connectors.KindUnavailable, op, "cannot resolve "+c.set.host, err)
	case errors.As(err, &oe), errors.As(err, &ne), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return newError(connectors.KindUnavailable, op, "cannot reach "+c.set.hostPort()+": "+rootMessage(err), err)
	}
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) || pgconn.SafeToRetry(err) {
		return newError(connectors.KindUnavailable, op, "cannot connect to "+c.set.hostPort()+": "+rootMessage(err), err)
	}
	return newError(connectors.KindUnavailable, op, "the connection failed: "+rootMessage(err), err)
}

// rootMessage is the innermost error's text: pgx's wrappers repeat the user and the
// database; the root is the cause (connection refused, i/o timeout).
func rootMessage(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err.Error()
		}
		err = next
	}
}

// tlsFailure recognizes a failed check of the server's certificate.
func tlsFailure(err error) (string, bool) {
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	var cv *tls.CertificateVerificationError
	var ae tls.AlertError
	switch {
	case errors.As(err, &ua):
		return "the server's certificate is not signed by a trusted CA (x509: unknown authority)", true
	case errors.As(err, &he):
		return "the server's certificate is not valid for " + he.Host, true
	case errors.As(err, &ci):
		return "the server's certificate is invalid: " + ci.Error(), true
	case errors.As(err, &cv):
		return "the server's certificate failed verification by the CA: " + rootMessage(cv), true
	case errors.As(err, &ae):
		return "the TLS handshake failed: " + ae.Error(), true
	}
	return "", false
}

// mapPgError classifies an error the server answered (SQLSTATE).
func (c *client) mapPgError(op, table string, e *pgconn.PgError) error {
	code := e.Code
	kind, reason := connectors.KindInvalid, ""
	switch {
	case code == "28P01" || code == "28000":
		// "password authentication failed for user "x"", "no pg_hba.conf entry for …",
		// "role "x" is not permitted to log in": names the role, never the password.
		kind, reason = connectors.KindAuth, e.Message
	case code == "42501":
		kind = connectors.KindAuth
		reason = e.Message
		if table != "" {
			reason = fmt.Sprintf("role %q may not read table %s (%s): it needs USAGE on the schema and SELECT on the table", c.user, table, e.Message)
		}
	case code == "3D000":
		kind, reason = connectors.KindNotFound, e.Message
	case code == "42P01":
		kind, reason = connectors.KindNotFound, e.Message
		if table != "" {
			reason = "table " + table + " does not exist: " + e.Message
		}
	case code == "3F000":
		kind, reason = connectors.KindNotFound, e.Message
	case code == "42703":
		reason = e.Message
		if table != "" {
			reason = "table " + table + ": " + e.Message
		}
	case code == "25006":
		reason = "the session is read only: " + e.Message
	case code == "57014":
		kind, reason = connectors.KindUnavailable, "the statement was cancelled (statement_timeout is 30s): add an index on the table's cursorColumn and primary key"
	case code == "53300" || code == "53400":
		kind, reason = connectors.KindUnavailable, "the server has no connection to spare: "+e.Message
	case strings.HasPrefix(code, "53") || strings.HasPrefix(code, "57P") || strings.HasPrefix(code, "08") || strings.HasPrefix(code, "58"):
		kind, reason = connectors.KindUnavailable, e.Message
	case code == "40001" || code == "40P01" || code == "55P03" || code == "55006":
		kind, reason = connectors.KindUnavailable, "transient conflict (SQLSTATE "+code+"), try again"
	case code == "0A000" && strings.Contains(e.Message, "cached plan"):
		// The table changed shape; pgx drops its cached statement, the next call works.
		kind, reason = connectors.KindUnavailable, "the table's definition changed during the call, try again"
	case code == "XX000" || code == "XX001" || code == "XX002":
		kind, reason = connectors.KindUnavailable, "internal server error (SQLSTATE "+code+")"
	case strings.HasPrefix(code, "22"):
		// Data exceptions quote the offending value: say which, not what.
		reason = "the server refused a value (SQLSTATE " + code + ")"
	default:
		reason = "the server refused the statement (SQLSTATE " + code + ")"
	}
	return &connectors.Error{Kind: kind, Vendor: Type, Op: op, Reason: reason, Err: safePgError{code: code, kind: kind}}
}

// safePgError stands in for a *pgconn.PgError in Error.Err: the server's detail and
// hint may quote row values. It keeps the SQLSTATE for errors.As.
type safePgError struct {
	code string
	kind connectors.ErrorKind
}

func (e safePgError) Error() string { return "SQLSTATE " + e.code }

// SQLState is the error's SQLSTATE.
func (e safePgError) SQLState() string { return e.code }

// sqlState returns the SQLSTATE an error of this package (or pgx) carries, "" for none.
func sqlState(err error) string {
	var s interface{ SQLState() string }
	if errors.As(err, &s) {
		return s.SQLState()
	}
	return ""
}

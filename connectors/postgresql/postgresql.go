// Package postgresql is the PostgreSQL connector: the tables a Connection lists
// (spec.postgresql.tables) of one database, read over the PostgreSQL wire protocol with
// pgx through a small pool per Connection. Every row is an item of kind "row". It
// registers itself as the "postgresql" provider; import it for its side effect:
//
//	import _ "github.com/unified-connectors/connector-operator/connectors/postgresql"
//
// Calls (t is the table, quoted; every value is a bind parameter):
//
//	Identity    SELECT current_user, version(), … then, per table in scope, the catalog
//	            (pg_class, pg_namespace, pg_attribute, pg_index) and its privileges
//	Containers  spec.postgresql.tables, no I/O
//	Items       SELECT t.* FROM t [WHERE c >= $since] [AND (pk…) > ($…)] ORDER BY pk… LIMIT n
//	Item        SELECT t.* FROM t WHERE k1 = $1 AND …
//	Search      SELECT t.*, ts_rank(…) FROM t, websearch_to_tsquery('simple', $1) q WHERE … @@ q
//	Changes     SELECT t.* FROM t WHERE c >= $since [AND (c, pk…) > ($…)] ORDER BY c, pk… LIMIT n
//	LiveIDs     SELECT pk… FROM t [WHERE (pk…) > ($…)] ORDER BY pk… LIMIT 1001
//
// Sessions are read only (default_transaction_read_only), bounded (statement_timeout 30s,
// idle_in_transaction_session_timeout 60s) and in UTC. Identifiers are written raw in the
// spec and always quoted here (pgx.Identifier.Sanitize); no tenant text is ever part of
// a statement's text. Errors are *connectors.Error naming the operation ("SELECT
// public.orders"), never a password, a statement or a row's values.
//
// Change order is not commit order: see Provider.DefaultLookback.
package postgresql

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors"
)

// Type is the Connector spec.type this package serves.
const Type = "postgresql"

// Secret keys of the password auth method (DESIGN.md).
const (
	KeyUsername = "username"
	KeyPassword = "password"
	// KeyTLSCert and KeyTLSKey are an optional client certificate (PEM), presented
	// when both are set.
	KeyTLSCert = "tls.crt"
	KeyTLSKey  = "tls.key"
)

// Sync modes, as spec.postgresql.mode spells them.
const (
	cursorColumn       = v1alpha1.PostgreSQLModeCursorColumn
	logicalReplication = v1alpha1.PostgreSQLModeLogicalReplication
)

// DefaultLookback is how far behind its cursor a cursorColumn sync re-reads every run.
const DefaultLookback = 5 * time.Minute

// defaultProvider is the registered provider: its pools outlive the Clients built on
// them.
var defaultProvider = &Provider{}

func init() { connectors.Register(defaultProvider) }

var (
	_ connectors.Provider            = (*Provider)(nil)
	_ connectors.Lookbacker          = (*Provider)(nil)
	_ connectors.ConnectionForgetter = (*Provider)(nil)
	_ connectors.Client              = (*client)(nil)
)

// Provider builds PostgreSQL Clients. It keeps one connection pool per Connection
// (Config.Key) across Clients, replaced when the Connection's connection settings change
// and closed by ForgetConnection. The zero value is ready to use.
type Provider struct {
	mu    sync.Mutex
	pools map[string]*poolEntry
}

// Type returns "postgresql".
func (*Provider) Type() string { return Type }

// DefaultLookback is 5 minutes: the out-of-order commit window of cursorColumn mode. An
// application sets updated_at when its statement runs (now() is even the transaction's
// start), but the row becomes visible only at commit: a transaction that began earlier
// and commits later brings rows whose updated_at is older than rows a sync has already
// read past. The sync engine therefore re-reads this window behind its cursor on every
// run and remembers the ids it delivered there, so the repeats stay bounded. A writing
// transaction open longer than the look-back can still be missed in cursorColumn mode;
// set spec.sync.lookback above the longest one, or use logicalReplication, which reads
// the commit order itself and is exact.
func (*Provider) DefaultLookback() time.Duration { return DefaultLookback }

// Describe is PostgreSQL's Description: password auth (username and password, and an
// optional client certificate), rows, a change feed with snapshots (and deletions in
// logicalReplication mode), ranked full-text search; no create, no comments. The
// database follows the sink's egress policy.
func (*Provider) Describe() connectors.Description {
	return connectors.Description{
		Auth: []connectors.AuthSpec{{
			Method:       connectors.AuthPassword,
			SecretKeys:   []string{KeyUsername, KeyPassword},
			OptionalKeys: []string{KeyTLSCert, KeyTLSKey},
		}},
		ItemKinds: []string{connectors.KindRow},
		Capabilities: connectors.Capabilities{
			ChangeFeed: true, Search: true, RankedSearch: true, Snapshots: true, Deletions: true,
		},
		Egress: connectors.EgressDatabase,
	}
}

// Validate checks cfg without I/O: baseURL is postgres:// or postgresql://
// host[:port]/dbname without userinfo, query or fragment; spec.postgresql.sslMode is
// verify-full (the default), require (a warning: the server is not authenticated) or
// disable (only with --allow-insecure-vendor-urls). When cfg.Connection is set it must
// have spec.postgresql with tables whose names parse, no spec.scope.filter, and
// spec.scope.containers naming listed tables only.
func (*Provider) Validate(cfg connectors.Config) ([]string, error) {
	s, err := parseSettings(cfg)
	if err != nil {
		return nil, err
	}
	return s.warnings, nil
}

// NewClient returns a Client for cfg without I/O; the pool is made (or reused) on the
// first call that needs the database.
func (p *Provider) NewClient(cfg connectors.Config) (connectors.Client, error) {
	return p.newClient(cfg)
}

// ForgetConnection closes the pool of Connection key, if there is one.
func (p *Provider) ForgetConnection(key string) {
	p.mu.Lock()
	e := p.pools[key]
	delete(p.pools, key)
	p.mu.Unlock()
	if e != nil {
		e.close()
	}
}

// Close closes every pool the provider holds (tests, shutdown).
func (p *Provider) Close() {
	p.mu.Lock()
	pools := p.pools
	p.pools = nil
	p.mu.Unlock()
	for _, e := range pools {
		e.close()
	}
}

// client is one Connection's handle on its database. It is safe for concurrent use and
// never shows the credential (String).
type client struct {
	prov *Provider
	key  string
	set  settings
	// mode is spec.postgresql.mode: cursorColumn or logicalReplication.
	mode string
	// conn is the Connection the client serves (UID, spec.sync); nil in Validate.
	conn *v1alpha1.Connection

	user, password string
	cert           *tls.Certificate // client certificate, nil when none

	dial          func(ctx context.Context, network, address string) (net.Conn, error)
	readRef       func(ctx context.Context, ref v1alpha1.KeyReference) ([]byte, error)
	allowInsecure bool

	mu    sync.Mutex
	entry *poolEntry // the pool this client settled on, nil before the first call
}

func (p *Provider) newClient(cfg connectors.Config) (*client, error) {
	s, err := parseSettings(cfg)
	if err != nil {
		return nil, err
	}
	v := cfg.Credentials.Values
	c := &client{
		prov: p, key: cfg.Key, set: s, mode: s.mode, conn: cfg.Connection,
		user: v[KeyUsername], password: v[KeyPassword],
		dial: cfg.Dial, readRef: cfg.ReadRef, allowInsecure: cfg.AllowInsecure,
	}
	if c.user == "" {
		return nil, fmt.Errorf("postgresql: credentials need a %s (and a %s)", KeyUsername, KeyPassword)
	}
	crt, key := v[KeyTLSCert], v[KeyTLSKey]
	switch {
	case crt != "" && key != "":
		pair, err := tls.X509KeyPair([]byte(crt), []byte(key))
		if err != nil {
			// Never the PEM itself, nor the parser's words about it.
			return nil, &connectors.Error{Kind: connectors.KindAuth, Vendor: Type, Op: "client certificate",
				Reason: "the Secret's tls.crt and tls.key are not a PEM certificate and its private key"}
		}
		c.cert = &pair
	case crt != "" || key != "":
		return nil, &connectors.Error{Kind: connectors.KindAuth, Vendor: Type, Op: "client certificate",
			Reason: "the Secret has only one of tls.crt and tls.key: a client certificate needs both"}
	}
	return c, nil
}

// String describes the client without its credential.
func (c *client) String() string {
	return fmt.Sprintf("postgresql.client{%s/%s %s}", c.set.hostPort(), c.set.database, c.set.sslMode)
}

// GoString is String, so that %#v redacts as well.
func (c *client) GoString() string { return c.String() }

package postgresql

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors"
)

// Pool bounds: a Connection is one tenant's reader, not a connection hog.
const (
	poolMaxConns          = 4
	poolMinConns          = 0
	poolMaxConnIdleTime   = 5 * time.Minute
	poolHealthCheckPeriod = time.Minute
	connectTimeout        = 10 * time.Second
	// catalogTTL is how long a table's catalog facts (columns, primary key) are kept
	// per pool before they are read again.
	catalogTTL = 5 * time.Minute
)

// runtimeParams are every session's settings: read only whatever the role may do,
// bounded statements and idle transactions, timestamps in UTC, and a name a DBA can
// find in pg_stat_activity.
func runtimeParams() map[string]string {
	return map[string]string{
		"default_transaction_read_only":       "on",
		"statement_timeout":                   "30s",
		"idle_in_transaction_session_timeout": "60s",
		"TimeZone":                            "UTC",
		"application_name":                    "connector-operator",
	}
}

// poolEntry is one Connection's pool and what the provider knows about its tables.
type poolEntry struct {
	pool *pgxpool.Pool
	fp   [sha256.Size]byte

	mu      sync.Mutex
	catalog map[string]catalogEntry // by table name as written
}

type catalogEntry struct {
	cat *catalog
	at  time.Time
}

func (e *poolEntry) close() {
	// Close waits for acquired connections to come back; a Client still reading
	// through the old pool must not hold the caller up.
	go e.pool.Close()
}

func (e *poolEntry) cached(name string) *catalog {
	e.mu.Lock()
	defer e.mu.Unlock()
	ce, ok := e.catalog[name]
	if !ok || time.Since(ce.at) > catalogTTL {
		return nil
	}
	return ce.cat
}

func (e *poolEntry) remember(name string, cat *catalog) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.catalog == nil {
		e.catalog = map[string]catalogEntry{}
	}
	e.catalog[name] = catalogEntry{cat: cat, at: time.Now()}
}

func (e *poolEntry) forget(name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.catalog, name)
}

// fingerprint identifies a pool's connection settings: a pool is reused while it is
// unchanged.
func fingerprint(parts ...[]byte) [sha256.Size]byte {
	h := sha256.New()
	var n [8]byte
	for _, p := range parts {
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write(p)
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// pool returns the Connection's pool, made on first use (or when the connection
// settings changed since the provider made the one it holds).
func (c *client) pool(ctx context.Context) (*pgxpool.Pool, error) {
	e, err := c.poolEntry(ctx)
	if err != nil {
		return nil, err
	}
	return e.pool, nil
}

func (c *client) poolEntry(ctx context.Context) (*poolEntry, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entry != nil {
		return c.entry, nil
	}
	ca, err := c.caBundle(ctx)
	if err != nil {
		return nil, err
	}
	var crt, key []byte
	if c.cert != nil {
		for _, der := range c.cert.Certificate {
			crt = append(crt, der...)
		}
		key, _ = x509.MarshalPKCS8PrivateKey(c.cert.PrivateKey)
	}
	fp := fingerprint([]byte(c.set.baseURL), []byte(c.set.sslMode), ca, []byte(c.user), []byte(c.password), crt, key)
	e, err := c.prov.entry(c.key, fp, func() (*pgxpool.Pool, error) {
		cfg, err := c.poolConfig(ca)
		if err != nil {
			return nil, err
		}
		return pgxpool.NewWithConfig(context.WithoutCancel(ctx), cfg)
	})
	if err != nil {
		return nil, err
	}
	c.entry = e
	return e, nil
}

// entry returns the pool of key made with settings fp, replacing (and closing) one made
// with other settings.
func (p *Provider) entry(key string, fp [sha256.Size]byte, build func() (*pgxpool.Pool, error)) (*poolEntry, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e := p.pools[key]; e != nil {
		if e.fp == fp {
			return e, nil
		}
		delete(p.pools, key)
		e.close()
	}
	pool, err := build()
	if err != nil {
		return nil, err
	}
	e := &poolEntry{pool: pool, fp: fp}
	if p.pools == nil {
		p.pools = map[string]*poolEntry{}
	}
	p.pools[key] = e
	return e, nil
}

// caBundle reads spec.postgresql.caRef (verify-full only); nil means the system roots.
func (c *client) caBundle(ctx context.Context) ([]byte, error) {
	if c.set.sslMode != v1alpha1.SSLModeVerifyFull || c.set.caRef == nil {
		return nil, nil
	}
	op := "read spec.postgresql.caRef"
	if c.readRef == nil {
		return nil, &connectors.Error{Kind: connectors.KindInvalid, Vendor: Type, Op: op,
			Reason: "spec.postgresql.caRef is set but the operator cannot read ConfigMaps or Secrets here"}
	}
	b, err := c.readRef(ctx, *c.set.caRef)
	if err != nil {
		return nil, &connectors.Error{Kind: connectors.KindInvalid, Vendor: Type, Op: op,
			Reason: "cannot read " + c.set.caRef.Kind + " " + c.set.caRef.Name + " key " + c.set.caRef.Key + " (spec.postgresql.caRef)", Err: err}
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, &connectors.Error{Kind: connectors.KindInvalid, Vendor: Type, Op: op,
			Reason: "the CA bundle spec.postgresql.caRef names is empty"}
	}
	return b, nil
}

// tlsConfig is the TLS of sslMode: verify-full checks the chain against ca (else the
// system roots) and the name against baseURL's host; require encrypts only; disable is
// nil (plain text, refused unless --allow-insecure-vendor-urls).
func (c *client) tlsConfig(ca []byte) (*tls.Config, error) {
	var cfg *tls.Config
	switch c.set.sslMode {
	case v1alpha1.SSLModeDisable:
		if !c.allowInsecure {
			return nil, &connectors.Error{Kind: connectors.KindEgressDenied, Vendor: Type, Op: "connect",
				Reason: "sslMode disable needs --allow-insecure-vendor-urls"}
		}
		return nil, nil
	case v1alpha1.SSLModeRequire:
		// Encryption only, as documented for sslMode require: nothing is verified.
		cfg = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // sslMode require, by the tenant's choice
	default:
		cfg = &tls.Config{ServerName: c.set.host}
		if len(ca) > 0 {
			roots := x509.NewCertPool()
			if !roots.AppendCertsFromPEM(ca) {
				return nil, &connectors.Error{Kind: connectors.KindInvalid, Vendor: Type, Op: "read spec.postgresql.caRef",
					Reason: "the CA bundle spec.postgresql.caRef names holds no PEM certificate"}
			}
			cfg.RootCAs = roots
		}
	}
	cfg.MinVersion = tls.VersionTLS12
	if c.cert != nil {
		cfg.Certificates = []tls.Certificate{*c.cert}
	}
	return cfg, nil
}

// poolConfig builds the pool's configuration field by field. It starts from
// pgxpool.ParseConfig("") for the defaults pgx requires, and then sets every field the
// environment (PGHOST, PGSSLMODE, PGOPTIONS, PGTARGETSESSIONATTRS, …) could have set.
func (c *client) poolConfig(ca []byte) (*pgxpool.Config, error) {
	tlsCfg, err := c.tlsConfig(ca)
	if err != nil {
		return nil, err
	}
	pc, err := pgxpool.ParseConfig("")
	if err != nil {
		return nil, &connectors.Error{Kind: connectors.KindInvalid, Vendor: Type, Op: "connect",
			Reason: "cannot build a connection configuration (check the operator's PG* environment variables)"}
	}
	pc.MaxConns, pc.MinConns = poolMaxConns, poolMinConns
	pc.MinIdleConns = 0
	pc.MaxConnIdleTime = poolMaxConnIdleTime
	pc.HealthCheckPeriod = poolHealthCheckPeriod
	pc.AfterConnect = func(_ context.Context, conn *pgx.Conn) error {
		registerTypes(conn.TypeMap())
		return nil
	}
	cc := pc.ConnConfig
	cc.Host = c.set.host
	cc.Port = c.set.port
	cc.Database = c.set.database
	cc.User = c.user
	cc.Password = c.password
	cc.TLSConfig = tlsCfg
	cc.Fallbacks = nil
	cc.ConnectTimeout = connectTimeout
	cc.RuntimeParams = runtimeParams()
	cc.ValidateConnect = nil
	cc.AfterConnect = nil
	cc.KerberosSrvName, cc.KerberosSpn = "", ""
	cc.SSLNegotiation = ""
	cc.SSLCertMode = "allow"
	cc.MinProtocolVersion, cc.MaxProtocolVersion = "3.0", "3.0"
	cc.ChannelBinding = "prefer"
	cc.RequireAuth = ""
	cc.OAuthTokenProvider = nil
	if c.dial != nil {
		// The egress guard: it checks every address the host resolves to, at dial time.
		cc.DialFunc = pgconn.DialFunc(c.dial)
	} else {
		cc.DialFunc = (&net.Dialer{Timeout: connectTimeout, KeepAlive: 5 * time.Minute}).DialContext
	}
	return pc, nil
}

// connConfig is a fresh copy of the pool's connection settings (TLS, dialer, session
// parameters, credentials), for a connection of its own such as a replication one.
func (c *client) connConfig(ctx context.Context) (*pgconn.Config, error) {
	p, err := c.pool(ctx)
	if err != nil {
		return nil, err
	}
	cc := p.Config().ConnConfig.Copy()
	return &cc.Config, nil
}

// registerTypes makes json and jsonb values decode to their JSON text (a string), so
// that Item.Fields carries them exactly (numbers of any size included) instead of a
// float64-rounded re-encoding. Other scans of json into Go values work as before.
func registerTypes(m *pgtype.Map) {
	m.RegisterType(&pgtype.Type{Name: "json", OID: pgtype.JSONOID, Codec: &pgtype.JSONCodec{Marshal: json.Marshal, Unmarshal: unmarshalJSONText}})
	m.RegisterType(&pgtype.Type{Name: "jsonb", OID: pgtype.JSONBOID, Codec: &pgtype.JSONBCodec{Marshal: json.Marshal, Unmarshal: unmarshalJSONText}})
}

func unmarshalJSONText(data []byte, v any) error {
	if p, ok := v.(*any); ok {
		*p = string(data)
		return nil
	}
	return json.Unmarshal(data, v)
}

// errPoolClosed is what a Client sees when its pool was replaced or forgotten.
var errPoolClosed = errors.New("the connection pool was closed (settings changed or the Connection went)")

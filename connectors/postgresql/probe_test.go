package postgresql

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors"
)

// ordersTable creates schema.orders (id, updated_at, title, body) and returns its spec.
func ordersTable(t testing.TB, schema string) v1alpha1.PostgreSQLTable {
	t.Helper()
	q := pgx.Identifier{schema, "orders"}.Sanitize()
	exec(t, "CREATE TABLE "+q+" (id bigint PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT now(), title text, body text)")
	return v1alpha1.PostgreSQLTable{Name: schema + ".orders", CursorColumn: "updated_at", TitleColumn: "title", TextColumns: []string{"title", "body"}}
}

func TestIdentityReady(t *testing.T) {
	s := schemaFor(t)
	c := newClient(t, config(t, []v1alpha1.PostgreSQLTable{ordersTable(t, s)}))
	id, err := c.Identity(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if id.AccountID != readerRole || id.DisplayName != readerRole || id.Organization != testDB || id.TimeZone != "UTC" {
		t.Fatalf("identity = %+v", id)
	}
	if !strings.HasPrefix(id.ServerVersion, "15") {
		t.Fatalf("ServerVersion = %q, want 15.x", id.ServerVersion)
	}
}

func TestIdentityWrongPassword(t *testing.T) {
	cfg := config(t, nil)
	cfg.Credentials.Values[KeyPassword] = "wrong-" + readerPassword
	_, err := newClient(t, cfg).Identity(testContext(t))
	wantKind(t, err, connectors.KindAuth)
	if !strings.Contains(err.Error(), "password authentication failed") || !strings.Contains(err.Error(), readerRole) {
		t.Fatalf("error = %v", err)
	}
	if strings.Contains(err.Error(), cfg.Credentials.Values[KeyPassword]) {
		t.Fatalf("error shows the password: %v", err)
	}
}

func TestIdentityNoSelectNamesTheTable(t *testing.T) {
	s := schemaFor(t)
	orders := ordersTable(t, s)
	exec(t, "CREATE TABLE "+pgx.Identifier{s, "secret"}.Sanitize()+" (id int PRIMARY KEY, updated_at timestamptz NOT NULL)")
	exec(t, "REVOKE SELECT ON "+pgx.Identifier{s, "secret"}.Sanitize()+" FROM "+readerRole)
	secret := v1alpha1.PostgreSQLTable{Name: s + ".secret", CursorColumn: "updated_at"}
	c := newClient(t, config(t, []v1alpha1.PostgreSQLTable{orders, secret}))
	_, err := c.Identity(testContext(t))
	wantKind(t, err, connectors.KindAuth)
	if !strings.Contains(err.Error(), s+".secret") || !strings.Contains(err.Error(), "SELECT") {
		t.Fatalf("error does not name the table and the privilege: %v", err)
	}
	// The read itself says the same.
	_, err = c.Changes(testContext(t), connectors.ChangeQuery{Container: connectors.Container{Key: s + ".secret"}})
	wantKind(t, err, connectors.KindAuth)

}

func TestIdentityNoSchemaUsage(t *testing.T) {
	s := schemaFor(t)
	orders := ordersTable(t, s)
	exec(t, "REVOKE USAGE ON SCHEMA "+pgx.Identifier{s}.Sanitize()+" FROM "+readerRole)
	_, err := newClient(t, config(t, []v1alpha1.PostgreSQLTable{orders})).Identity(testContext(t))
	wantKind(t, err, connectors.KindAuth)
	if !strings.Contains(err.Error(), "USAGE") || !strings.Contains(err.Error(), orders.Name) {
		t.Fatalf("error = %v", err)
	}
}

func TestIdentityScopeNarrowsTheCheck(t *testing.T) {
	s := schemaFor(t)
	orders := ordersTable(t, s)
	missing := v1alpha1.PostgreSQLTable{Name: s + ".missing", CursorColumn: "updated_at"}
	cfg := config(t, []v1alpha1.PostgreSQLTable{orders, missing})
	cfg.Connection.Spec.Scope.Containers = []string{orders.Name}
	if _, err := newClient(t, cfg).Identity(testContext(t)); err != nil {
		t.Fatalf("a table outside spec.scope.containers was checked: %v", err)
	}
}

func TestIdentityMissingTable(t *testing.T) {
	s := schemaFor(t)
	c := newClient(t, config(t, []v1alpha1.PostgreSQLTable{{Name: s + ".missing", CursorColumn: "updated_at"}}))
	_, err := c.Identity(testContext(t))
	wantKind(t, err, connectors.KindNotFound)
	if !strings.Contains(err.Error(), s+".missing") {
		t.Fatalf("error = %v", err)
	}
}

func TestIdentityMissingDatabase(t *testing.T) {
	cfg := config(t, nil)
	cfg.BaseURL = srv.URL("nosuchdb")
	_, err := newClient(t, cfg).Identity(testContext(t))
	wantKind(t, err, connectors.KindNotFound)
	if !strings.Contains(err.Error(), "nosuchdb") {
		t.Fatalf("error = %v", err)
	}
}

func TestIdentityTableChecks(t *testing.T) {
	s := schemaFor(t)
	orders := ordersTable(t, s)
	exec(t, "CREATE TABLE "+pgx.Identifier{s, "nopk"}.Sanitize()+" (id int, updated_at timestamptz)")
	exec(t, "CREATE TABLE "+pgx.Identifier{s, "textcur"}.Sanitize()+" (id int PRIMARY KEY, updated_at text)")
	cases := []struct {
		name  string
		table v1alpha1.PostgreSQLTable
		want  []string
	}{
		{"no primary key", v1alpha1.PostgreSQLTable{Name: s + ".nopk", CursorColumn: "updated_at"}, []string{"no primary key", "primaryKey"}},
		{"missing cursor column", v1alpha1.PostgreSQLTable{Name: orders.Name, CursorColumn: "modified"}, []string{`"modified"`, "cursorColumn", orders.Name}},
		{"missing text column", v1alpha1.PostgreSQLTable{Name: orders.Name, CursorColumn: "updated_at", TextColumns: []string{"Body"}}, []string{`"Body"`, "textColumns"}},
		{"missing title column", v1alpha1.PostgreSQLTable{Name: orders.Name, CursorColumn: "updated_at", TitleColumn: "name"}, []string{`"name"`, "titleColumn"}},
		{"missing primary key column", v1alpha1.PostgreSQLTable{Name: orders.Name, CursorColumn: "updated_at", PrimaryKey: []string{"key"}}, []string{`"key"`, "primaryKey"}},
		{"cursor column not a timestamp", v1alpha1.PostgreSQLTable{Name: s + ".textcur", CursorColumn: "updated_at"}, []string{"timestamptz or timestamp", "text"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newClient(t, config(t, []v1alpha1.PostgreSQLTable{tc.table})).Identity(testContext(t))
			wantKind(t, err, connectors.KindInvalid)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not say %q", err, w)
				}
			}
		})
	}
	// A primary key given in the spec serves a table without one.
	given := v1alpha1.PostgreSQLTable{Name: s + ".nopk", CursorColumn: "updated_at", PrimaryKey: []string{"id"}}
	if _, err := newClient(t, config(t, []v1alpha1.PostgreSQLTable{given})).Identity(testContext(t)); err != nil {
		t.Fatal(err)
	}
}

func TestTLSVerifyFullAgainstTheWrongCA(t *testing.T) {
	cfg := config(t, nil)
	cfg.ReadRef = func(context.Context, v1alpha1.KeyReference) ([]byte, error) { return srv.OtherCAPEM, nil }
	_, err := newClient(t, cfg).Identity(testContext(t))
	wantKind(t, err, connectors.KindUnavailable)
	if !strings.Contains(err.Error(), "CA") || !strings.Contains(err.Error(), "caRef") {
		t.Fatalf("error does not point at the CA: %v", err)
	}
	// A name the certificate does not hold fails the same way, naming it.
	cfg = config(t, nil)
	cfg.BaseURL = strings.Replace(srv.URL(testDB), "127.0.0.1", "127.0.0.2", 1)
	cfg.Dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, net.JoinHostPort(srv.Host, strconv.Itoa(srv.Port)))
	}
	_, err = newClient(t, cfg).Identity(testContext(t))
	wantKind(t, err, connectors.KindUnavailable)
	if !strings.Contains(err.Error(), "127.0.0.2") {
		t.Fatalf("error does not name the host: %v", err)
	}
	// verify-full with the right CA is every other test.
}

func TestSSLModeRequireEncryptsWithoutVerifying(t *testing.T) {
	cfg := config(t, nil)
	cfg.Connector.PostgreSQL = &v1alpha1.PostgreSQLConnectorSpec{SSLMode: v1alpha1.SSLModeRequire}
	cfg.ReadRef = nil
	c := newClient(t, cfg)
	if got := sslOf(t, c); got != "true" {
		t.Fatalf("ssl = %s", got)
	}
}

func TestSSLModeDisable(t *testing.T) {
	cfg := config(t, nil)
	cfg.Connector.PostgreSQL = &v1alpha1.PostgreSQLConnectorSpec{SSLMode: v1alpha1.SSLModeDisable}
	if _, err := prov.NewClient(cfg); err == nil || !strings.Contains(err.Error(), "--allow-insecure-vendor-urls") {
		t.Fatalf("NewClient = %v", err)
	}
	cfg.AllowInsecure = true
	if got := sslOf(t, newClient(t, cfg)); got != "false" {
		t.Fatalf("ssl = %s", got)
	}
}

// sslOf is pg_stat_ssl.ssl of a session of c's pool.
func sslOf(t *testing.T, c *client) string {
	t.Helper()
	p, err := c.pool(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	var ssl bool
	if err := p.QueryRow(testContext(t), "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil {
		t.Fatal(c.mapError("ssl", "", err))
	}
	if ssl {
		return "true"
	}
	return "false"
}

func TestClientCertificatePresented(t *testing.T) {
	crt, key, err := srv.ClientCert(readerRole)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config(t, nil)
	cfg.Credentials.Values[KeyTLSCert] = string(crt)
	cfg.Credentials.Values[KeyTLSKey] = string(key)
	c := newClient(t, cfg)
	p, err := c.pool(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	var dn *string
	if err := p.QueryRow(testContext(t), "SELECT client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&dn); err != nil {
		t.Fatal(err)
	}
	if dn == nil || !strings.Contains(*dn, "CN="+readerRole) {
		t.Fatalf("client_dn = %v, want CN=%s", dn, readerRole)
	}
	// Without one, none.
	p, err = newClient(t, config(t, nil)).pool(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	dn = nil
	if err := p.QueryRow(testContext(t), "SELECT client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&dn); err != nil {
		t.Fatal(err)
	}
	if dn != nil {
		t.Fatalf("client_dn = %q without a certificate", *dn)
	}
}

func TestSessionsAreReadOnlyAndBounded(t *testing.T) {
	s := schemaFor(t)
	orders := ordersTable(t, s)
	exec(t, "GRANT INSERT ON "+pgx.Identifier{s, "orders"}.Sanitize()+" TO "+readerRole)
	c := newClient(t, config(t, []v1alpha1.PostgreSQLTable{orders}))
	p, err := c.pool(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Exec(testContext(t), "INSERT INTO "+pgx.Identifier{s, "orders"}.Sanitize()+" (id) VALUES (1)")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "25006" {
		t.Fatalf("a write through the pool: %v, want SQLSTATE 25006 (read_only_sql_transaction)", err)
	}
	for setting, want := range map[string]string{
		"statement_timeout": "30s", "idle_in_transaction_session_timeout": "1min", "TimeZone": "UTC",
		"default_transaction_read_only": "on", "application_name": "connector-operator",
	} {
		var got string
		if err := p.QueryRow(testContext(t), "SELECT current_setting($1)", setting).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s = %q, want %q", setting, got, want)
		}
	}
	if n := p.Config().MaxConns; n != 4 {
		t.Errorf("MaxConns = %d", n)
	}
}

// deniedError is what the operator's egress guard answers (internal/egress.DeniedError).
type deniedError struct{}

func (deniedError) Error() string      { return "egress: 127.0.0.1 is loopback" }
func (deniedError) EgressDenied() bool { return true }

func TestEgressDenied(t *testing.T) {
	cfg := config(t, nil)
	dialed := 0
	cfg.Dial = func(context.Context, string, string) (net.Conn, error) {
		dialed++
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: deniedError{}}
	}
	_, err := newClient(t, cfg).Identity(testContext(t))
	wantKind(t, err, connectors.KindEgressDenied)
	if dialed == 0 {
		t.Fatal("the Dial of the Config was not used")
	}
}

func TestUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	cfg := config(t, nil)
	cfg.BaseURL = "postgres://" + addr + "/" + testDB
	_, err = newClient(t, cfg).Identity(testContext(t))
	wantKind(t, err, connectors.KindUnavailable)
}

func TestPoolPerConnection(t *testing.T) {
	cfg := config(t, nil)
	a, b := newClient(t, cfg), newClient(t, cfg)
	pa, err := a.pool(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if pb, _ := b.pool(testContext(t)); pb != pa {
		t.Fatal("two clients of one Connection with the same settings have two pools")
	}
	other := config(t, nil)
	po, _ := newClient(t, other).pool(testContext(t))
	if po == pa {
		t.Fatal("two Connections share a pool")
	}
	// A new password replaces the pool; the old one is closed.
	changed := cfg
	changed.Credentials.Values = map[string]string{KeyUsername: readerRole, KeyPassword: "new-password"}
	pc, _ := newClient(t, changed).pool(testContext(t))
	if pc == pa {
		t.Fatal("the pool outlived a password change")
	}
	pollClosed(t, pa)
	prov.ForgetConnection(changed.Key)
	pollClosed(t, pc)
	// A client made after the pool was forgotten makes a new one.
	if pn, err := newClient(t, cfg).pool(testContext(t)); err != nil || pn == pc {
		t.Fatalf("after ForgetConnection: %v", err)
	}
}

// pollClosed waits until p refuses connections (Close runs in the background).
func pollClosed(t *testing.T, p interface {
	Ping(context.Context) error
}) {
	t.Helper()
	ctx := testContext(t)
	for ctx.Err() == nil {
		if err := p.Ping(ctx); err != nil && strings.Contains(err.Error(), "closed pool") {
			return
		}
	}
	t.Fatal("the pool was not closed")
}

func TestConnConfigIsACopy(t *testing.T) {
	c := newClient(t, config(t, nil))
	cc, err := c.connConfig(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if cc.User != readerRole || cc.TLSConfig == nil || cc.TLSConfig.ServerName != "127.0.0.1" || cc.RuntimeParams["default_transaction_read_only"] != "on" {
		t.Fatalf("connConfig = %+v", cc)
	}
	cc.RuntimeParams["replication"] = "database"
	again, _ := c.connConfig(testContext(t))
	if _, shared := again.RuntimeParams["replication"]; shared {
		t.Fatal("connConfig hands out the pool's own map")
	}
	conn, err := pgconn.ConnectConfig(testContext(t), again)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.Close(testContext(t))
}

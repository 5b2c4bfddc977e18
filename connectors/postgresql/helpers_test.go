package postgresql

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/internal/pgtest"
)

// One server for the package; each test works in a schema of its own.
var (
	srv *pgtest.Server
	// prov is the provider the tests' clients share, as the operator's do.
	prov = &Provider{}
	// readerPassword is the password of role reader, which every test reads as.
	readerPassword string
)

const (
	testDB     = "app"
	readerRole = "reader"
)

func TestMain(m *testing.M) {
	if fuzzingOnly() {
		// The fuzz targets need no server: a fuzzing run (and each of its workers, which
		// run TestMain too) does not start one.
		os.Exit(m.Run())
	}
	var err error
	if srv, err = pgtest.New(pgtest.Options{Databases: []string{testDB}}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	readerPassword = randomHex(16)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	err = srv.CreateRole(ctx, readerRole, readerPassword)
	cancel()
	code := 1
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	} else {
		code = m.Run()
	}
	prov.Close()
	if err := srv.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

// fuzzingOnly reports whether this process only fuzzes: a fuzz worker, or -fuzz with
// -run='^$' (make fuzz).
func fuzzingOnly() bool {
	flag.Parse()
	value := func(name string) string {
		if f := flag.Lookup(name); f != nil {
			return f.Value.String()
		}
		return ""
	}
	return value("test.fuzzworker") == "true" || (value("test.fuzz") != "" && value("test.run") == "^$")
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// exec runs statements as the superuser in the test database.
func exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	if err := srv.Exec(testContext(t), testDB, sql, args...); err != nil {
		t.Fatal(err)
	}
}

// schemaFor creates a fresh schema for the test, readable by reader (USAGE, and SELECT
// on every table created in it afterwards), and returns its name.
func schemaFor(t testing.TB) string {
	t.Helper()
	name := "s_" + strings.ToLower(strings.NewReplacer("/", "_", " ", "_", "#", "_").Replace(t.Name()))
	if len(name) > 50 {
		name = name[:50]
	}
	name += "_" + randomHex(3)
	q := pgx.Identifier{name}.Sanitize()
	exec(t, "CREATE SCHEMA "+q)
	exec(t, "GRANT USAGE ON SCHEMA "+q+" TO "+readerRole)
	exec(t, "ALTER DEFAULT PRIVILEGES IN SCHEMA "+q+" GRANT SELECT ON TABLES TO "+readerRole)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = srv.Exec(ctx, testDB, "DROP SCHEMA "+q+" CASCADE")
	})
	return name
}

// config is a Config for reader against the test database, TLS verified against the
// server's CA, serving tables.
type testOpt func(*connectors.Config)

func config(t testing.TB, tables []v1alpha1.PostgreSQLTable, opts ...testOpt) connectors.Config {
	cfg := connectors.Config{
		BaseURL: srv.URL(testDB),
		Connector: &v1alpha1.ConnectorSpec{PostgreSQL: &v1alpha1.PostgreSQLConnectorSpec{
			SSLMode: v1alpha1.SSLModeVerifyFull,
			CARef:   &v1alpha1.KeyReference{Kind: "ConfigMap", Name: "pg-ca", Key: "ca.crt"},
		}},
		Credentials: connectors.Credentials{Method: connectors.AuthPassword, Values: map[string]string{
			KeyUsername: readerRole, KeyPassword: readerPassword,
		}},
		Key: "test/" + t.Name() + "/" + randomHex(3),
		ReadRef: func(_ context.Context, ref v1alpha1.KeyReference) ([]byte, error) {
			if ref.Name != "pg-ca" || ref.Key != "ca.crt" {
				return nil, errors.New("no such ConfigMap key")
			}
			return srv.CAPEM, nil
		},
	}
	if tables != nil {
		cfg.Connection = &v1alpha1.Connection{Spec: v1alpha1.ConnectionSpec{
			PostgreSQL: &v1alpha1.PostgreSQLConnectionSpec{Mode: v1alpha1.PostgreSQLModeCursorColumn, Tables: tables},
		}}
	}
	for _, o := range opts {
		o(&cfg)
	}
	return cfg
}

// newClient builds a client of prov for cfg; its pool is forgotten at test end.
func newClient(t testing.TB, cfg connectors.Config) *client {
	t.Helper()
	c, err := prov.newClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prov.ForgetConnection(cfg.Key) })
	return c
}

func wantKind(t testing.TB, err error, kind connectors.ErrorKind) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s", kind)
	}
	if got := connectors.KindOf(err); got != kind {
		t.Fatalf("got %v (kind %q), want kind %s", err, got, kind)
	}
	if strings.Contains(err.Error(), readerPassword) {
		t.Fatalf("error shows the password: %v", err)
	}
}

// walkChanges reads every page of Changes since since.
func walkChanges(t testing.TB, c *client, container string, since time.Time, limit int) []connectors.Item {
	t.Helper()
	ctx := testContext(t)
	var all []connectors.Item
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 100000 {
			t.Fatal("Changes does not end")
		}
		p, err := c.Changes(ctx, connectors.ChangeQuery{Container: connectors.Container{Key: container}, Since: since, Cursor: cursor, Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, p.Items...)
		if p.NextCursor == "" {
			return all
		}
		cursor = p.NextCursor
	}
}

// pkOf is an item's primary key values as they are in its id.
func pkOf(t testing.TB, it connectors.Item) []string {
	t.Helper()
	_, pk, ok := decodeItemID(it.ID)
	if !ok {
		t.Fatalf("item id %q does not decode", it.ID)
	}
	return pk
}

package pgtest

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// orphanEnv makes the test binary a parent that starts a server, reports it and waits to be
// SIGKILLed (TestServerDiesWithParent).
const orphanEnv = "PGTEST_ORPHAN_CHILD"

// shared is one server for the tests that only connect to it.
var shared *Server

func TestMain(m *testing.M) {
	if os.Getenv(orphanEnv) == "1" {
		orphanChild()
		return
	}
	var err error
	if shared, err = New(Options{Databases: []string{"app"}}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if err := shared.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

func orphanChild() {
	s, err := New(Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("%d %d %s\n", s.proc.Pid, s.Port, s.Dir)
	select {} // until the parent test SIGKILLs us
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// connect opens a TCP connection from a libpq-style DSN.
func connect(ctx context.Context, t *testing.T, dsn string) (*pgx.Conn, error) {
	t.Helper()
	c, err := pgx.Connect(ctx, dsn)
	if err == nil {
		t.Cleanup(func() { _ = c.Close(context.Background()) })
	}
	return c, err
}

func queryString(ctx context.Context, t *testing.T, c *pgx.Conn, sql string) string {
	t.Helper()
	var v string
	if err := c.QueryRow(ctx, sql).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

// createRole creates a role on the shared server and drops it when the test ends, so tests
// repeat (-count).
func createRole(ctx context.Context, t *testing.T, name, password string, attrs ...string) {
	t.Helper()
	if err := shared.CreateRole(ctx, name, password, attrs...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := shared.Exec(context.Background(), "postgres", "DROP ROLE "+pgx.Identifier{name}.Sanitize()); err != nil {
			t.Errorf("drop role %s: %v", name, err)
		}
	})
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestStartConfiguresAndCloseRemovesEverything(t *testing.T) {
	ctx := testContext(t)
	s, err := New(Options{Databases: []string{"one", "two-with-dash"}, Settings: []string{"max_connections = 50"}})
	if err != nil {
		t.Fatal(err)
	}
	pid := s.proc.Pid
	kids := childrenOf(pid)
	if len(kids) == 0 {
		t.Error("no children of the postmaster found (checkpointer, walwriter, ...)")
	}
	c, err := s.SuperConn(ctx, "two-with-dash")
	if err != nil {
		_ = s.Close()
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, name := range []string{"max_connections", "wal_level", "max_replication_slots", "max_wal_senders", "ssl", "fsync", "listen_addresses"} {
		got[name] = queryString(ctx, t, c, "SHOW "+name)
	}
	_ = c.Close(ctx)
	want := map[string]string{"max_connections": "50", "wal_level": "logical", "max_replication_slots": "20",
		"max_wal_senders": "20", "ssl": "on", "fsync": "off", "listen_addresses": "127.0.0.1"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("SHOW %s = %q, want %q", k, got[k], v)
		}
	}
	if err := s.Exec(ctx, "one", "CREATE TABLE t (id int)"); err != nil {
		t.Errorf("database one: %v", err)
	}

	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if processAlive(pid) {
		t.Errorf("postmaster %d still running after Close", pid)
	}
	for _, k := range kids {
		if processAlive(k) {
			t.Errorf("postmaster child %d still running after Close", k)
		}
	}
	if _, err := os.Stat(s.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Dir %s after Close: %v, want it gone", s.Dir, err)
	}
	if conn, err := net.DialTimeout("tcp", net.JoinHostPort(s.Host, strconv.Itoa(s.Port)), 5*time.Second); err == nil {
		_ = conn.Close()
		t.Errorf("port %d still accepts connections after Close", s.Port)
	}
}

func TestStartFailureShowsTheLog(t *testing.T) {
	_, err := New(Options{Settings: []string{"max_connections = plenty"}})
	if err == nil {
		t.Fatal("New with a bad setting succeeded")
	}
	msg := err.Error()
	if i := strings.Index(msg, "(cluster files kept in "); i >= 0 {
		dir := strings.TrimSuffix(msg[i+len("(cluster files kept in "):], ")")
		if _, serr := os.Stat(filepath.Join(dir, "postgres.log")); serr != nil {
			t.Errorf("log of the failed start not kept: %v", serr)
		}
		if strings.HasPrefix(dir, os.TempDir()) || strings.HasPrefix(dir, "/tmp/") {
			_ = os.RemoveAll(dir)
		}
	} else {
		t.Errorf("start error does not say where the files are: %v", err)
	}
	if !strings.Contains(msg, `invalid value for parameter "max_connections"`) {
		t.Errorf("start error lacks the server's complaint from its log: %v", err)
	}
}

func TestTLSVerifyFullWithCAAndNotWithOtherCA(t *testing.T) {
	ctx := testContext(t)
	c, err := connect(ctx, t, shared.SuperDSN("app"))
	if err != nil {
		t.Fatalf("SuperDSN with CAPEM: %v", err)
	}
	if ssl := queryString(ctx, t, c, "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()"); ssl != "true" {
		t.Errorf("pg_stat_ssl.ssl = %s, want true", ssl)
	}
	if db := queryString(ctx, t, c, "SELECT current_database()"); db != "app" {
		t.Errorf("current_database() = %q, want app", db)
	}

	other := writeFile(t, "other.crt", shared.OtherCAPEM)
	dsn := strings.Replace(shared.SuperDSN("app"), "sslrootcert="+url.QueryEscape(shared.CAFile), "sslrootcert="+url.QueryEscape(other), 1)
	if dsn == shared.SuperDSN("app") {
		t.Fatal("could not swap sslrootcert in SuperDSN")
	}
	_, err = connect(ctx, t, dsn)
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("verify-full against OtherCAPEM: err = %v, want x509.UnknownAuthorityError", err)
	}
	if err != nil && strings.Contains(err.Error(), shared.SuperPassword()) {
		t.Error("connection error holds the password")
	}

	// The certificate names every loopback spelling a client may use.
	block, _ := pem.Decode(must(os.ReadFile(filepath.Join(shared.Dir, "server.crt"))))
	cert := must(x509.ParseCertificate(block.Bytes))
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(shared.CAPEM)
	for _, name := range []string{"127.0.0.1", "::1", "localhost"} {
		if _, err := cert.Verify(x509.VerifyOptions{DNSName: name, Roots: roots}); err != nil {
			t.Errorf("server certificate for %s: %v", name, err)
		}
	}
	if cert.NotAfter.Sub(cert.NotBefore) > 26*time.Hour {
		t.Errorf("server certificate valid %s, want about a day", cert.NotAfter.Sub(cert.NotBefore))
	}
}

func TestCreateRoleLogsInWithSCRAM(t *testing.T) {
	ctx := testContext(t)
	const password = `it's "secret" \ pw`
	createRole(ctx, t, "Repl User", password, "REPLICATION")
	cfg := must(pgx.ParseConfig(shared.SuperDSN("app")))
	cfg.User, cfg.Password = "Repl User", password
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("login as the created role over TLS: %v", err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	if u := queryString(ctx, t, c, "SELECT current_user"); u != "Repl User" {
		t.Errorf("current_user = %q", u)
	}
	if m := queryString(ctx, t, c, "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()"); m != "true" {
		t.Errorf("ssl = %s, want true", m)
	}
	var verifier string
	var repl bool
	if err := shared.Exec(ctx, "postgres", "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	sc := must(shared.SuperConn(ctx, "postgres"))
	defer func() { _ = sc.Close(ctx) }()
	if err := sc.QueryRow(ctx, "SELECT rolpassword, rolreplication FROM pg_authid WHERE rolname = $1", "Repl User").Scan(&verifier, &repl); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(verifier, "SCRAM-SHA-256$") || !repl {
		t.Errorf("role stored as %.14q..., replication %v; want a SCRAM verifier and REPLICATION", verifier, repl)
	}

	// Plain TCP is allowed too (refusing it is the client's job).
	plain := cfg.Copy()
	plain.TLSConfig, plain.Fallbacks = nil, nil
	pc, err := pgx.ConnectConfig(ctx, plain)
	if err != nil {
		t.Fatalf("login over plain TCP: %v", err)
	}
	_ = pc.Close(ctx)

	wrong := cfg.Copy()
	wrong.Password = "not it"
	if wc, err := pgx.ConnectConfig(ctx, wrong); err == nil {
		_ = wc.Close(ctx)
		t.Error("a wrong password logged in")
	}

	// A failing CreateRole says why without the password, in the error and in the server log.
	err = shared.CreateRole(ctx, "Repl User", password)
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("duplicate CreateRole: err = %v, want already exists", err)
	}
	if err != nil && strings.Contains(err.Error(), "secret") {
		t.Error("CreateRole error holds the password")
	}
	if log := must(os.ReadFile(shared.LogFile)); strings.Contains(string(log), "secret") {
		t.Error("server log holds the password")
	}
	if err := shared.CreateRole(ctx, "x", "y", "LOGIN; DROP TABLE t"); err == nil {
		t.Error("CreateRole accepted an attribute with a semicolon")
	}
}

func TestLogicalReplicationSlot(t *testing.T) {
	ctx := testContext(t)
	c := must(shared.SuperConn(ctx, "app"))
	defer func() { _ = c.Close(ctx) }()
	var lsn string
	if err := c.QueryRow(ctx, "SELECT lsn::text FROM pg_create_logical_replication_slot('t', 'pgoutput')").Scan(&lsn); err != nil {
		t.Fatalf("create logical slot: %v", err)
	}
	if _, err := c.Exec(ctx, "SELECT pg_drop_replication_slot('t')"); err != nil {
		t.Fatalf("drop slot: %v", err)
	}

	// A REPLICATION role reaches the walsender over TLS, both logical (replication=database)
	// and physical (replication=true, the pg_hba "replication" lines).
	createRole(ctx, t, "walsender", "walsender-pw", "REPLICATION")
	for _, mode := range []string{"database", "true"} {
		cfg := must(pgconn.ParseConfig(shared.SuperDSN("app") + "&replication=" + mode))
		cfg.User, cfg.Password = "walsender", "walsender-pw"
		rc, err := pgconn.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Errorf("replication=%s connection: %v", mode, err)
			continue
		}
		res, err := rc.Exec(ctx, "IDENTIFY_SYSTEM").ReadAll()
		if err != nil || len(res) != 1 || len(res[0].Rows) != 1 {
			t.Errorf("replication=%s IDENTIFY_SYSTEM: %v %v", mode, res, err)
		}
		_ = rc.Close(ctx)
	}
}

func TestClientCertAccepted(t *testing.T) {
	ctx := testContext(t)
	certPEM, keyPEM, err := shared.ClientCert("certuser")
	if err != nil {
		t.Fatal(err)
	}
	createRole(ctx, t, "certuser", "certuser-pw")
	cfg := must(pgx.ParseConfig(shared.SuperDSN("app") + "&sslcert=" + url.QueryEscape(writeFile(t, "tls.crt", certPEM)) +
		"&sslkey=" + url.QueryEscape(writeFile(t, "tls.key", keyPEM))))
	cfg.User, cfg.Password = "certuser", "certuser-pw"
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect presenting the client certificate: %v", err)
	}
	defer func() { _ = c.Close(ctx) }()
	if dn := queryString(ctx, t, c, "SELECT coalesce(client_dn, '') FROM pg_stat_ssl WHERE pid = pg_backend_pid()"); dn != "/CN=certuser" {
		t.Errorf("pg_stat_ssl.client_dn = %q, want /CN=certuser (the certificate was not presented or not verified)", dn)
	}
}

func TestKillDropsConnectionsAndRestartRecovers(t *testing.T) {
	ctx := testContext(t)
	s := Start(t, Options{})
	c, err := connect(ctx, t, s.SuperDSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	pid := s.proc.Pid
	kids := childrenOf(pid)
	if err := s.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	for _, p := range append(kids, pid) {
		if processAlive(p) {
			t.Errorf("server process %d alive after Kill", p)
		}
	}
	if err := c.Ping(ctx); err == nil {
		t.Error("a connection opened before Kill still answers")
	}
	if nc, err := pgx.Connect(ctx, s.SuperDSN("postgres")); err == nil {
		_ = nc.Close(ctx)
		t.Error("a new connection succeeded after Kill")
	}

	// A port taken meanwhile is retried, then reported; DSNs handed out keep their port.
	l, err := net.Listen("tcp", net.JoinHostPort(s.Host, strconv.Itoa(s.Port)))
	if err != nil {
		t.Fatalf("listen on the killed server's port: %v", err)
	}
	err = s.Restart()
	_ = l.Close()
	if err == nil || !strings.Contains(err.Error(), "stays taken") {
		t.Errorf("Restart with the port taken: err = %v, want stays taken", err)
	}
	if err := s.Restart(); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	rc, err := connect(ctx, t, s.SuperDSN("postgres"))
	if err != nil {
		t.Fatalf("connect after Restart: %v", err)
	}
	if err := rc.Ping(ctx); err != nil {
		t.Errorf("ping after Restart: %v", err)
	}
}

// TestServerDiesWithParent SIGKILLs a process that started a server: no Close runs, yet the
// postmaster must go (parent-death signal) and its backends after it.
func TestServerDiesWithParent(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), orphanEnv+"=1")
	cmd.Stderr = os.Stderr
	out := must(cmd.StdoutPipe())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("child reported no server: %v", err)
	}
	var pid, port int
	var dir string
	if _, err := fmt.Sscanf(line, "%d %d %s", &pid, &port, &dir); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("child said %q: %v", line, err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) }) // the killed child could not
	if !processAlive(pid) {
		t.Fatalf("postmaster %d not running while its parent lives", pid)
	}
	kids := childrenOf(pid)
	if len(kids) == 0 {
		t.Error("no children of the postmaster found (checkpointer, walwriter, ...)")
	}

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	deadline := time.Now().Add(30 * time.Second)
	for processAlive(pid) {
		if time.Now().After(deadline) {
			crash(pid)
			t.Fatalf("postmaster %d still running 30s after its parent was SIGKILLed", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := waitGone(kids); err != nil {
		t.Errorf("children outlived the postmaster: %v", err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

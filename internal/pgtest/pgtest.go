// Package pgtest starts a throwaway, real PostgreSQL server for tests and for make dev.
//
// Each Server is a fresh cluster (initdb) in its own temporary directory under /tmp, listening on
// a free 127.0.0.1 port with TLS (a certificate this package issues at start) and on a Unix
// socket in that directory. It is configured the way the PostgreSQL connector needs a source to
// be: wal_level = logical with room for replication slots and WAL senders. Durability is off
// (fsync, synchronous_commit, full_page_writes) because nothing outlives the test.
//
//	Call                         Who                    Does
//	New(opts) / Close            TestMain, hack/dev     start a cluster / fast shutdown and remove its directory
//	Start(t, opts)               a test                 New with t.Cleanup(Close), t.Fatal on error
//	SuperDSN, URL, CAPEM         tests of the connector DSNs and PEMs a client (the operator) is handed
//	Exec, CreateDatabase,        test setup             statements as the superuser over the Unix socket
//	CreateRole, SuperConn
//	ClientCert                   tls.crt/tls.key tests  a client certificate the server verifies against CAPEM
//	Kill, Restart                lost-connection tests  crash the server (SIGKILL) and bring it back
//
// The harness itself talks to the server over the Unix socket with trust authentication, so a
// test can break TCP, TLS or passwords without losing its own way in. TCP clients authenticate
// with SCRAM-SHA-256, over TLS or plain TCP alike (pg_hba.conf allows both: refusing plain TCP is
// the client's job under test, not the server's).
//
// The server's processes never outlive the process that started them: the postmaster gets
// SIGKILL when its parent dies (Linux parent-death signal), even when the parent was SIGKILLed
// and no cleanup ran, and its backends exit when they see the postmaster gone.
//
// The server binaries come from /usr/lib/postgresql/15/bin, else pg_config --bindir, else the
// newest /usr/lib/postgresql/<version>/bin, else PATH; `make postgres` installs them. PostgreSQL refuses to run as root, so under euid 0 the cluster
// is owned by and run as the postgres user.
package pgtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	// superUser is the bootstrap superuser initdb creates.
	superUser = "postgres"
	// startTimeout bounds initdb plus the wait for the server to accept connections.
	startTimeout = 60 * time.Second
	// stopTimeout bounds a fast shutdown before Close falls back to SIGKILL.
	stopTimeout = 30 * time.Second
	// bindAttempts is how many free ports New tries when another process takes the one it picked.
	bindAttempts = 5
	// logTailBytes is how much of the server log a start error carries.
	logTailBytes = 4096
	// maxSocketDirLen keeps "<dir>/.s.PGSQL.<port>" under the 108-byte sun_path limit.
	maxSocketDirLen = 80
)

// Server is one running throwaway PostgreSQL cluster. Its exported fields are read-only.
type Server struct {
	// Host is the address the server listens on: always "127.0.0.1".
	Host string
	// Port is the TCP port the server listens on (and the number of its Unix socket).
	Port int
	// CAPEM is the PEM of the test CA that signed the server certificate (SANs: 127.0.0.1, ::1,
	// localhost). The server also verifies presented client certificates against it.
	CAPEM []byte
	// OtherCAPEM is the PEM of a second CA that signed nothing this server presents (for
	// wrong-CA tests).
	OtherCAPEM []byte
	// Dir is the root of the cluster's files: the data directory, certificates, log and Unix
	// socket. Close removes it.
	Dir string
	// CAFile is the path of a file holding CAPEM (the sslrootcert of SuperDSN).
	CAFile string
	// LogFile is the path of the server log (stderr of the postmaster).
	LogFile string

	password string
	bin      string
	cred     *syscall.Credential
	ca       *authority

	mu      sync.Mutex
	proc    *os.Process
	exited  chan struct{} // closed when proc has been waited for
	closed  bool
	logFile *os.File
}

// Options configure New and Start.
type Options struct {
	// Databases to create at start (owned by the superuser). Default: none besides "postgres".
	Databases []string
	// Settings are extra postgresql.conf lines ("max_connections = 50"); they come after, and so
	// override, the package's own.
	Settings []string
	// Port is the loopback port to listen on (make dev's fixed address); 0 picks a free one.
	Port int
}

// Start is New for a test: the server is closed by t.Cleanup, and a start failure is t.Fatal.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return s
}

// New initialises a cluster in a fresh temporary directory, starts it and waits until it accepts
// connections. The caller must Close it. When the server does not come up, the error carries the
// tail of its log and the directory is kept for inspection.
func New(opts Options) (*Server, error) {
	bin, err := findBinDir()
	if err != nil {
		return nil, err
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(tempRoot(), "pg")
	if err != nil {
		return nil, fmt.Errorf("pgtest: temporary directory: %w", err)
	}
	s := &Server{Host: "127.0.0.1", Dir: dir, bin: bin, cred: cred}
	ok := false
	defer func() {
		if !ok {
			_ = s.stopProcess()
			if s.logFile != nil {
				_ = s.logFile.Close()
			}
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := s.setup(ctx, opts); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	start := s.startFreePort
	if opts.Port != 0 {
		start = func(ctx context.Context) error { return s.start(ctx, opts.Port) }
	}
	if err := start(ctx); err != nil {
		return nil, fmt.Errorf("%w\n(cluster files kept in %s)", err, dir)
	}
	ok = true
	for _, db := range opts.Databases {
		if err := s.CreateDatabase(ctx, db); err != nil {
			return nil, errors.Join(err, s.Close())
		}
	}
	return s, nil
}

// setup writes the certificates, runs initdb and writes the configuration.
func (s *Server) setup(ctx context.Context, opts Options) error {
	pw := make([]byte, 24)
	if _, err := rand.Read(pw); err != nil {
		return fmt.Errorf("pgtest: superuser password: %w", err)
	}
	s.password = hex.EncodeToString(pw)

	ca, err := newAuthority("pgtest CA")
	if err != nil {
		return err
	}
	other, err := newAuthority("pgtest other CA")
	if err != nil {
		return err
	}
	certPEM, keyPEM, err := ca.issue("localhost", true)
	if err != nil {
		return err
	}
	s.ca, s.CAPEM, s.OtherCAPEM = ca, ca.certPEM, other.certPEM
	s.CAFile = filepath.Join(s.Dir, "ca.crt")
	s.LogFile = filepath.Join(s.Dir, "postgres.log")
	files := []struct {
		name string
		data []byte
	}{
		{"ca.crt", ca.certPEM},
		{"server.crt", certPEM},
		{"server.key", keyPEM},
		{"pwfile", []byte(s.password + "\n")},
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(s.Dir, f.name), f.data, 0o600); err != nil {
			return fmt.Errorf("pgtest: write %s: %w", f.name, err)
		}
	}
	if err := s.chown(s.Dir, "ca.crt", "server.crt", "server.key", "pwfile"); err != nil {
		return err
	}

	data := filepath.Join(s.Dir, "data")
	cmd := s.command(ctx, "initdb", "-D", data, "-U", superUser, "--pwfile="+filepath.Join(s.Dir, "pwfile"),
		"--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions")
	out, err := cmd.CombinedOutput()
	_ = os.Remove(filepath.Join(s.Dir, "pwfile"))
	if err != nil {
		return fmt.Errorf("pgtest: initdb: %w\n%s", err, tail(out, logTailBytes))
	}

	conf := []string{
		"",
		"# pgtest",
		"listen_addresses = '127.0.0.1'",
		"unix_socket_directories = " + quoteConf(s.Dir),
		"max_connections = 100",
		"shared_buffers = 32MB",
		"wal_level = logical",
		"max_replication_slots = 20",
		"max_wal_senders = 20",
		"ssl = on",
		"ssl_cert_file = " + quoteConf(filepath.Join(s.Dir, "server.crt")),
		"ssl_key_file = " + quoteConf(filepath.Join(s.Dir, "server.key")),
		"ssl_ca_file = " + quoteConf(s.CAFile),
		"fsync = off",
		"synchronous_commit = off",
		"full_page_writes = off",
		"timezone = 'UTC'",
		"logging_collector = off",
		// A failed statement is otherwise logged whole, and CREATE ROLE ... PASSWORD carries a
		// password in its text.
		"log_min_error_statement = panic",
	}
	conf = append(conf, opts.Settings...)
	if err := appendFile(filepath.Join(data, "postgresql.conf"), strings.Join(conf, "\n")+"\n"); err != nil {
		return err
	}
	hba := strings.Join([]string{
		"# pgtest: the harness comes in over the Unix socket; TCP clients use SCRAM, with or without TLS.",
		"local all all trust",
		"hostssl all all 127.0.0.1/32 scram-sha-256",
		"hostssl replication all 127.0.0.1/32 scram-sha-256",
		"host all all 127.0.0.1/32 scram-sha-256",
		"host replication all 127.0.0.1/32 scram-sha-256",
	}, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(data, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return fmt.Errorf("pgtest: write pg_hba.conf: %w", err)
	}
	if err := s.chown(data, "pg_hba.conf"); err != nil {
		return err
	}
	lf, err := os.OpenFile(s.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("pgtest: open log: %w", err)
	}
	s.logFile = lf
	return nil
}

// startFreePort starts the postmaster on a free port, picking another when the chosen one is
// taken between picking and binding.
func (s *Server) startFreePort(ctx context.Context) error {
	var err error
	for range bindAttempts {
		var port int
		if port, err = freePort(); err != nil {
			return err
		}
		err = s.start(ctx, port)
		if !errors.Is(err, errBind) {
			return err
		}
	}
	return err
}

// errBind marks a start that failed because the port was taken.
var errBind = errors.New("port in use")

// start runs the postmaster on port and waits until it accepts connections on the Unix socket.
func (s *Server) start(ctx context.Context, port int) error {
	s.Port = port
	before := logSize(s.LogFile)
	cmd := s.command(context.Background(), "postgres", "-D", filepath.Join(s.Dir, "data"), "-p", strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = s.logFile, s.logFile
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.mu.Lock()
	s.proc, s.exited = cmd.Process, exited
	s.mu.Unlock()

	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		pingCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := s.ping(pingCtx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			log := readFrom(s.LogFile, before)
			if bytes.Contains(log, []byte("could not bind")) || bytes.Contains(log, []byte("Address already in use")) {
				return errBind
			}
			return fmt.Errorf("pgtest: postgres exited at start (%s); log tail:\n%s", cmd.ProcessState, tail(log, logTailBytes))
		case <-ctx.Done():
			_ = s.stopProcess()
			return fmt.Errorf("pgtest: postgres did not accept connections within %s (last: %v); log tail:\n%s",
				startTimeout, err, tail(readFrom(s.LogFile, before), logTailBytes))
		case <-tick.C:
		}
	}
}

// ping connects once over the Unix socket.
func (s *Server) ping(ctx context.Context) error {
	c, err := s.SuperConn(ctx, "postgres")
	if err != nil {
		return err
	}
	return c.Close(ctx)
}

// Close stops the server with a fast shutdown (SIGKILL when that takes over 30 s) and removes
// Dir. It is safe to call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	stopErr := s.stopProcess()
	if s.logFile != nil {
		_ = s.logFile.Close()
	}
	if err := os.RemoveAll(s.Dir); err != nil {
		return errors.Join(stopErr, fmt.Errorf("pgtest: remove %s: %w", s.Dir, err))
	}
	return stopErr
}

// stopProcess shuts the postmaster down fast and waits until it and its children are gone.
func (s *Server) stopProcess() error {
	s.mu.Lock()
	proc, exited := s.proc, s.exited
	s.proc = nil
	s.mu.Unlock()
	if proc == nil {
		return nil
	}
	kids := childrenOf(proc.Pid)
	// SIGINT is PostgreSQL's fast shutdown: roll back open transactions, disconnect, checkpoint;
	// the postmaster exits after its children.
	_ = proc.Signal(syscall.SIGINT)
	var err error
	select {
	case <-exited:
	case <-time.After(stopTimeout):
		err = fmt.Errorf("pgtest: postgres did not shut down within %s; killed", stopTimeout)
		kids = append(kids, crash(proc.Pid)...)
		<-exited
	}
	return errors.Join(err, waitGone(kids))
}

// Kill crashes the server: SIGKILL to the postmaster and all its children, so every connection
// drops at once and nothing shuts down cleanly. It returns once they are gone. Restart brings
// the server back (with crash recovery); Close still removes Dir.
func (s *Server) Kill() error {
	s.mu.Lock()
	proc, exited := s.proc, s.exited
	s.proc = nil
	s.mu.Unlock()
	if proc == nil {
		return errors.New("pgtest: server is not running")
	}
	kids := crash(proc.Pid)
	<-exited
	return waitGone(kids)
}

// Restart stops the server (fast shutdown) when it runs and starts it again on the same port and
// data directory, waiting until it accepts connections. After Kill this is a crash recovery.
func (s *Server) Restart() error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return errors.New("pgtest: server is closed")
	}
	if err := s.stopProcess(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	var err error
	// Same port, so DSNs handed out stay valid; a taken port is retried, not replaced.
	for range bindAttempts {
		if err = s.start(ctx, s.Port); !errors.Is(err, errBind) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("pgtest: restart: port %d stays taken", s.Port)
}

// SuperPassword is the superuser's password (random per server).
func (s *Server) SuperPassword() string { return s.password }

// SuperDSN is a URL for the superuser over TCP with TLS verified against CAPEM:
// postgres://postgres:<password>@127.0.0.1:<port>/<db>?sslmode=verify-full&sslrootcert=<CAFile>.
// It holds the password: do not log it.
func (s *Server) SuperDSN(db string) string {
	u := s.url(db)
	u.User = url.UserPassword(superUser, s.password)
	u.RawQuery = url.Values{"sslmode": {"verify-full"}, "sslrootcert": {s.CAFile}}.Encode()
	return u.String()
}

// URL is postgres://127.0.0.1:<port>/<db>, without credentials or parameters: what a
// connector's baseURL holds.
func (s *Server) URL(db string) string {
	u := s.url(db)
	return u.String()
}

func (s *Server) url(db string) *url.URL {
	return &url.URL{Scheme: "postgres", Host: net.JoinHostPort(s.Host, strconv.Itoa(s.Port)), Path: "/" + db}
}

// SuperConn connects to db as the superuser over the Unix socket (trust authentication, so it
// keeps working while a test changes TCP, TLS or passwords).
func (s *Server) SuperConn(ctx context.Context, db string) (*pgx.Conn, error) {
	dsn := "host=" + quoteKV(s.Dir) + " port=" + strconv.Itoa(s.Port) + " user=" + superUser +
		" dbname=" + quoteKV(db) + " sslmode=disable connect_timeout=10"
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("pgtest: connection config: %w", err)
	}
	cfg.Fallbacks = nil
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgtest: connect to %q as superuser: %w", db, err)
	}
	return c, nil
}

// Exec runs sql in db as the superuser.
func (s *Server) Exec(ctx context.Context, db, sql string, args ...any) error {
	c, err := s.SuperConn(ctx, db)
	if err != nil {
		return err
	}
	defer func() { _ = c.Close(context.Background()) }()
	if _, err := c.Exec(ctx, sql, args...); err != nil {
		return fmt.Errorf("pgtest: exec in %q: %w", db, err)
	}
	return nil
}

// CreateDatabase creates database name, owned by the superuser.
func (s *Server) CreateDatabase(ctx context.Context, name string) error {
	return s.Exec(ctx, "postgres", "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
}

// roleAttr is what CreateRole accepts as an attribute: keywords and numbers, as in REPLICATION,
// CREATEDB or CONNECTION LIMIT 5.
var roleAttr = regexp.MustCompile(`^[A-Za-z0-9_ ]+$`)

// CreateRole creates a LOGIN role with the password (stored as a SCRAM-SHA-256 verifier) and the
// extra attributes attrs, such as "REPLICATION" or "CONNECTION LIMIT 5".
func (s *Server) CreateRole(ctx context.Context, name, password string, attrs ...string) error {
	for _, a := range attrs {
		if !roleAttr.MatchString(a) {
			return fmt.Errorf("pgtest: role attribute %q: only letters, digits, _ and spaces", a)
		}
	}
	// Utility statements take no parameters; a literal is safe with standard_conforming_strings
	// (on by default) once its quotes are doubled.
	sql := "CREATE ROLE " + pgx.Identifier{name}.Sanitize() + " LOGIN PASSWORD '" +
		strings.ReplaceAll(password, "'", "''") + "'"
	if len(attrs) > 0 {
		sql += " " + strings.Join(attrs, " ")
	}
	if err := s.Exec(ctx, "postgres", sql); err != nil {
		// The statement holds the password; the server's message does not.
		return fmt.Errorf("pgtest: create role %q: %w", name, errors.Unwrap(err))
	}
	return nil
}

// ClientCert issues a client certificate for user (CN=user), signed by the CA the server trusts
// (CAPEM). It returns the certificate and its PKCS#8 key as PEM, the contents of tls.crt and
// tls.key.
func (s *Server) ClientCert(user string) (certPEM, keyPEM []byte, err error) {
	return s.ca.issue(user, false)
}

// command builds an exec.Cmd for a server binary that runs as the cluster's owner and dies with
// its parent.
func (s *Server) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, name), args...)
	cmd.Dir = s.Dir
	cmd.Env = serverEnv()
	cmd.SysProcAttr = sysProcAttr(s.cred)
	return cmd
}

// chown hands dir and the named files in it to the postgres user when running as root.
func (s *Server) chown(dir string, names ...string) error {
	if s.cred == nil {
		return nil
	}
	for _, p := range append([]string{""}, names...) {
		if err := os.Chown(filepath.Join(dir, p), int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			return fmt.Errorf("pgtest: chown: %w", err)
		}
	}
	return nil
}

// findBinDir finds the directory holding initdb and postgres.
func findBinDir() (string, error) {
	const debian = "/usr/lib/postgresql/15/bin"
	if isExec(filepath.Join(debian, "initdb")) && isExec(filepath.Join(debian, "postgres")) {
		return debian, nil
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dir := strings.TrimSpace(string(out))
		if isExec(filepath.Join(dir, "initdb")) && isExec(filepath.Join(dir, "postgres")) {
			return dir, nil
		}
	}
	// Another Debian major version, newest first.
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
	for _, dir := range dirs {
		if isExec(filepath.Join(dir, "initdb")) && isExec(filepath.Join(dir, "postgres")) {
			return dir, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(p)
		if isExec(filepath.Join(dir, "postgres")) {
			return dir, nil
		}
	}
	return "", errors.New("pgtest: PostgreSQL server binaries (initdb, postgres) not found in " + debian +
		", pg_config --bindir, /usr/lib/postgresql/*/bin or PATH; run `make postgres` to install them")
}

// pgMajor is the version in /usr/lib/postgresql/<version>/bin (0 when not a number).
func pgMajor(bin string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(bin)))
	return n
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// serverCredential is the postgres user's identity when running as root (PostgreSQL refuses
// root), nil otherwise.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(superUser)
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root needs a %q user to run the server as (make postgres creates it): %w", superUser, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgtest: uid of %q: %w", superUser, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgtest: gid of %q: %w", superUser, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// serverEnv is the environment minus libpq's PG* variables, which would steer initdb and the
// server, and with a C locale.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C")
}

// tempRoot is os.TempDir when it is short enough for a Unix socket path, else /tmp.
func tempRoot() string {
	if d := os.TempDir(); len(d)+len("/pg0123456789") < maxSocketDirLen {
		return d
	}
	return "/tmp"
}

// freePort asks the kernel for a free 127.0.0.1 port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: pick a port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("pgtest: pick a port: %w", err)
	}
	return port, nil
}

// quoteConf quotes a postgresql.conf string value.
func quoteConf(v string) string { return "'" + strings.ReplaceAll(v, "'", "''") + "'" }

// quoteKV quotes a libpq key=value connection string value.
func quoteKV(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	if _, err := f.WriteString(text); err != nil {
		_ = f.Close()
		return fmt.Errorf("pgtest: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	return nil
}

func logSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// readFrom reads path from offset on (the log of one start attempt).
func readFrom(path string, offset int64) []byte {
	b, err := os.ReadFile(path)
	if err != nil || offset > int64(len(b)) {
		return nil
	}
	return b[offset:]
}

// tail is the last n bytes of b, from a line start.
func tail(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	b = b[len(b)-n:]
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	return b
}

// Package postgresql_test runs the operator end to end against a real PostgreSQL 15
// server (internal/pgtest): the manager as the operator's ServiceAccount
// (internal/testenv) with AllowInsecureVendorURLs (the database listens on loopback), a
// recording sink (internal/syncer/sinktest) and the HTTP API on a loopback listener,
// called with a TokenRequest token. One server and one envtest serve the package; each
// test has roles, tables, Connectors and Connections of its own. A test that needs the
// real binary (TestSIGKILLMidStream) runs it as a shard of its own
// (--watch-label-selector), so the in-process manager, which takes every other
// Connection, never touches its Connection. TestMain searches the manager's logs (the
// binary's too), every Event, every status and every API answer for the passwords the
// suite handed out.
package postgresql_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/controllers"
	"github.com/unified-connectors/connector-operator/internal/api"
	"github.com/unified-connectors/connector-operator/internal/leakcheck"
	"github.com/unified-connectors/connector-operator/internal/logging"
	"github.com/unified-connectors/connector-operator/internal/manager"
	"github.com/unified-connectors/connector-operator/internal/pgtest"
	"github.com/unified-connectors/connector-operator/internal/syncer/sinktest"
	"github.com/unified-connectors/connector-operator/internal/testenv"
)

const (
	operatorNS = "connector-system"
	tenant     = "team-pg"
	usersNS    = "pg-users"
	db         = "app"
	timeout    = 90 * time.Second // a busy 2-core machine
	poll       = 100 * time.Millisecond

	eventUpserted = "dev.unified.connectors.item.upserted"
	eventDeleted  = "dev.unified.connectors.item.deleted"
	slotFinalizer = "connectors.unified.dev/replication-slot"
)

var (
	env     *suite
	envOnce sync.Once
	envErr  error
	logs    = &leakcheck.Buffer{}
	answers = &leakcheck.Buffer{} // every API answer (headers and body)
	secrets = &leakcheck.Secrets{}
)

type suite struct {
	test   *testenv.Environment
	k8s    client.Client // direct, admin
	pg     *pgtest.Server
	apiURL string
	token  string // the API caller's bearer token
	cancel context.CancelFunc
	done   chan struct{}

	mu  sync.Mutex
	cas map[*pgtest.Server]string // the ConfigMap holding each server's CA

	// The real binary, built in the background from the start (TestSIGKILLMidStream).
	buildOnce sync.Once
	build     chan struct{}
	binary    string
	buildErr  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if env != nil {
		if leaks := findLeaks(); len(leaks) > 0 {
			fmt.Fprintln(os.Stderr, "FAIL: credentials leaked:", strings.Join(leaks, "; "))
			code = 1
		}
		env.cancel()
		<-env.done
		if refused := env.test.Refused(); len(refused) > 0 {
			fmt.Fprintf(os.Stderr, "FAIL: the API server refused the manager: %q\n", refused)
			code = 1
		}
		if env.build != nil {
			<-env.build
			if env.binary != "" {
				_ = os.RemoveAll(strings.TrimSuffix(env.binary, "/manager"))
			}
		}
		_ = env.test.Stop()
		if err := env.pg.Close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	os.Exit(code)
}

// findLeaks searches logs, Events, status and API answers for every password.
func findLeaks() []string {
	ctx := context.Background()
	var written strings.Builder
	var events corev1.EventList
	if err := env.k8s.List(ctx, &events); err == nil {
		for _, e := range events.Items {
			fmt.Fprintf(&written, "%s %s\n", e.Reason, e.Message)
		}
	}
	var conns v1alpha1.ConnectionList
	if err := env.k8s.List(ctx, &conns); err == nil {
		for _, c := range conns.Items {
			b, _ := json.Marshal(c.Status)
			written.Write(b)
		}
	}
	var cnrs v1alpha1.ConnectorList
	if err := env.k8s.List(ctx, &cnrs); err == nil {
		for _, c := range cnrs.Items {
			b, _ := json.Marshal(c.Status)
			written.Write(b)
		}
	}
	return leakcheck.Find(map[string]string{"logs": logs.String(), "Events and status": written.String(),
		"API answers": answers.String()}, secrets.All())
}

// testEnv starts the suite on first use.
func testEnv(tb testing.TB) *suite {
	tb.Helper()
	envOnce.Do(func() { env, envErr = startSuite() })
	if envErr != nil {
		tb.Fatalf("starting the suite: %v", envErr)
	}
	return env
}

func startSuite() (*suite, error) {
	// Every verbosity, to search for credentials.
	var out io.Writer = logs
	if os.Getenv("POSTGRESQL_TEST_LOGS") != "" {
		out = io.MultiWriter(logs, os.Stderr)
	}
	logger, err := logging.New(logging.Options{Format: "json", Verbosity: 10}, out)
	if err != nil {
		return nil, err
	}
	ctrl.SetLogger(logger)
	s := &suite{cas: map[*pgtest.Server]string{}}
	// A slot no test consumes any more must not fill the disk.
	if s.pg, err = pgtest.New(pgtest.Options{Databases: []string{db}, Settings: []string{"max_slot_wal_keep_size = '64MB'"}}); err != nil {
		return nil, err
	}
	s.test, err = testenv.Start(testenv.Options{Scheme: manager.Scheme, Namespace: operatorNS, Namespaces: []string{tenant, usersNS}})
	if err != nil {
		_ = s.pg.Close()
		return nil, err
	}
	s.k8s = s.test.Client
	s.startBuild()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.apiURL = "http://" + ln.Addr().String()
	mgr, err := manager.New(s.test.ManagerConfig, manager.Options{
		Namespace: operatorNS, MetricsBindAddress: "0", HealthProbeBindAddress: "0",
		AllowInsecureVendorURLs: true,
		// Every Connection but the one the real binary syncs (TestSIGKILLMidStream).
		WatchLabelSelector: "!" + manager.ShardLabel,
		Controllers:        controllers.ControllerOptions{RetryMinBackoff: 100 * time.Millisecond, RetryMaxBackoff: time.Second},
		API:                api.Options{Listener: ln, VendorTimeout: 10 * time.Second},
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan struct{})
	go func() {
		defer close(s.done)
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "manager stopped:", err)
		}
	}()
	if s.token, err = caller(s); err != nil {
		return nil, err
	}
	secrets.Remember(s.token)
	return s, nil
}

// caller is the token of a ServiceAccount that may list Connectors and read, search and
// create the tenant's data.
func caller(s *suite) (string, error) {
	group := v1alpha1.GroupVersion.Group
	return s.test.Caller(context.Background(), usersNS, "caller", map[string][]rbacv1.PolicyRule{
		"": {{APIGroups: []string{group}, Resources: []string{"connectors"}, Verbs: []string{"list"}}},
		tenant: {
			{APIGroups: []string{group}, Resources: []string{"connections"}, Verbs: []string{"get", "list"}},
			{APIGroups: []string{group}, Resources: []string{"connections/data"}, Verbs: []string{"get", "create"}},
		},
	})
}

// caConfigMap returns the ConfigMap (in the operator's namespace, key ca.crt) holding
// srv's CA, creating it on first use.
func (s *suite) caConfigMap(t *testing.T, srv *pgtest.Server) string {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if name, ok := s.cas[srv]; ok {
		return name
	}
	name := "pg-ca"
	if len(s.cas) > 0 {
		name = fmt.Sprintf("pg-ca-%d", len(s.cas))
	}
	must(t, s.k8s.Create(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: operatorNS, Name: name},
		Data: map[string]string{"ca.crt": string(srv.CAPEM)}}))
	s.cas[srv] = name
	return name
}

// connector creates a postgresql Connector on srv's database app with sslMode
// verify-full against srv's CA; mutate may change its spec.
func (s *suite) connector(t *testing.T, name string, srv *pgtest.Server, mutate func(*v1alpha1.ConnectorSpec)) {
	t.Helper()
	spec := v1alpha1.ConnectorSpec{Type: v1alpha1.ConnectorTypePostgreSQL, BaseURL: v1alpha1.EndpointURL(srv.URL(db)),
		AuthMethods: []v1alpha1.AuthMethod{v1alpha1.AuthMethodPassword},
		PostgreSQL: &v1alpha1.PostgreSQLConnectorSpec{SSLMode: v1alpha1.SSLModeVerifyFull,
			CARef: &v1alpha1.KeyReference{Kind: "ConfigMap", Name: s.caConfigMap(t, srv), Key: "ca.crt"}}}
	if mutate != nil {
		mutate(&spec)
	}
	must(t, s.k8s.Create(context.Background(), &v1alpha1.Connector{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}))
}

// roleSeq keeps role names unique across the package.
var roleSeq atomic.Int32

// role creates a login role on srv with a fresh password (remembered for the leak
// check) and attrs, and a Secret in the tenant namespace holding its username and
// password. It returns the role's name, which is also the Secret's.
func (s *suite) role(t *testing.T, srv *pgtest.Server, attrs ...string) string {
	t.Helper()
	name := fmt.Sprintf("r%d_%s", roleSeq.Add(1), strings.ToLower(regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "_")))
	if len(name) > 40 {
		name = name[:40]
	}
	name = strings.TrimRight(name, "_")
	password := secrets.Token("pg-password")
	must(t, srv.CreateRole(context.Background(), name, password, attrs...))
	s.secret(t, strings.ReplaceAll(name, "_", "-"), name, password)
	return name
}

// secret creates the tenant's Secret name with a PostgreSQL role's credentials.
func (s *suite) secret(t *testing.T, name, username, password string) {
	t.Helper()
	must(t, s.k8s.Create(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: name},
		StringData: map[string]string{"username": username, "password": password}}))
}

// secretOf is the name of the Secret role created for a role.
func secretOf(role string) string { return strings.ReplaceAll(role, "_", "-") }

// connection creates a Connection of connector in the tenant namespace, authenticating
// with the Secret secret, syncing tables in mode; sinkURL "" means probe only.
func (s *suite) connection(t *testing.T, name, connector, secret string, pgSpec v1alpha1.PostgreSQLConnectionSpec, sinkURL string, batch int32, mutate func(*v1alpha1.Connection)) *v1alpha1.Connection {
	t.Helper()
	c := &v1alpha1.Connection{ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: name}, Spec: v1alpha1.ConnectionSpec{
		ConnectorRef: v1alpha1.ConnectorReference{Name: connector},
		Auth:         v1alpha1.AuthSpec{Method: v1alpha1.AuthMethodPassword, SecretRef: v1alpha1.SecretReference{Name: secret}},
		PostgreSQL:   &pgSpec,
	}}
	if sinkURL != "" {
		// Hourly: runs come from creation, spec changes and requested-at only.
		c.Spec.Sync = &v1alpha1.SyncSpec{Interval: &metav1.Duration{Duration: time.Hour},
			Sink: &v1alpha1.SinkSpec{URL: v1alpha1.URL(sinkURL), BatchSize: batch}}
	}
	if mutate != nil {
		mutate(c)
	}
	must(t, s.k8s.Create(context.Background(), c))
	return c
}

// table is a spec.postgresql.tables entry.
func table(name, cursor, title string, text ...string) v1alpha1.PostgreSQLTable {
	return v1alpha1.PostgreSQLTable{Name: name, CursorColumn: cursor, TitleColumn: title, TextColumns: text}
}

func cursorMode(tables ...v1alpha1.PostgreSQLTable) v1alpha1.PostgreSQLConnectionSpec {
	return v1alpha1.PostgreSQLConnectionSpec{Mode: v1alpha1.PostgreSQLModeCursorColumn, Tables: tables}
}

func replicationMode(tables ...v1alpha1.PostgreSQLTable) v1alpha1.PostgreSQLConnectionSpec {
	return v1alpha1.PostgreSQLConnectionSpec{Mode: v1alpha1.PostgreSQLModeLogicalReplication, Tables: tables}
}

// requestNow sets the requested-at annotation: a probe and a sync run at once. It
// first waits for the next whole second and returns it: status times are whole seconds,
// so only a run that ended after the request reads as at or after the returned instant
// (see synced).
func (s *suite) requestNow(t *testing.T, name string) time.Time {
	t.Helper()
	at := time.Now().Truncate(time.Second).Add(time.Second)
	time.Sleep(time.Until(at))
	s.update(t, name, func(c *v1alpha1.Connection) {
		if c.Annotations == nil {
			c.Annotations = map[string]string{}
		}
		c.Annotations[v1alpha1.RequestedAtAnnotation] = time.Now().Format(time.RFC3339Nano)
	})
	return at
}

// update patches the Connection with mutate, retrying on conflicts.
func (s *suite) update(t *testing.T, name string, mutate func(*v1alpha1.Connection)) {
	t.Helper()
	NewWithT(t).Eventually(func() error {
		c := &v1alpha1.Connection{}
		if err := s.k8s.Get(context.Background(), client.ObjectKey{Namespace: tenant, Name: name}, c); err != nil {
			return err
		}
		patch := client.MergeFromWithOptions(c.DeepCopy(), client.MergeFromWithOptimisticLock{})
		mutate(c)
		return s.k8s.Patch(context.Background(), c, patch)
	}, timeout, poll).Should(Succeed())
}

func (s *suite) get(g Gomega, name string) v1alpha1.Connection {
	var c v1alpha1.Connection
	g.Expect(s.k8s.Get(context.Background(), client.ObjectKey{Namespace: tenant, Name: name}, &c)).To(Succeed())
	return c
}

func condition(c v1alpha1.Connection, typ string) metav1.Condition {
	if cond := meta.FindStatusCondition(c.Status.Conditions, typ); cond != nil {
		return *cond
	}
	return metav1.Condition{Type: typ, Status: "absent"}
}

// ready waits until the Connection is Ready.
func (s *suite) ready(t *testing.T, name string) v1alpha1.Connection {
	t.Helper()
	var got v1alpha1.Connection
	NewWithT(t).Eventually(func(g Gomega) {
		got = s.get(g, name)
		r := condition(got, v1alpha1.ReadyCondition)
		g.Expect(r.Status).To(Equal(metav1.ConditionTrue), "%s: %s", r.Reason, r.Message)
	}, timeout, poll).Should(Succeed())
	return got
}

// synced waits for a run that ended at or after since with Synced=True.
func (s *suite) synced(t *testing.T, name string, since time.Time) v1alpha1.Connection {
	t.Helper()
	var got v1alpha1.Connection
	NewWithT(t).Eventually(func(g Gomega) {
		got = s.get(g, name)
		sc := condition(got, v1alpha1.SyncedCondition)
		g.Expect(sc.Status).To(Equal(metav1.ConditionTrue), "%s: %s", sc.Reason, sc.Message)
		g.Expect(got.Status.Sync).NotTo(BeNil())
		g.Expect(got.Status.Sync.LastSuccessfulSyncTime).NotTo(BeNil())
		g.Expect(got.Status.Sync.LastSuccessfulSyncTime.Time).To(BeTemporally(">=", since.Truncate(time.Second)))
	}, timeout, poll).Should(Succeed())
	return got
}

// gone waits until the Connection no longer exists.
func (s *suite) gone(t *testing.T, name string) {
	t.Helper()
	NewWithT(t).Eventually(func() bool {
		err := s.k8s.Get(context.Background(), client.ObjectKey{Namespace: tenant, Name: name}, &v1alpha1.Connection{})
		return client.IgnoreNotFound(err) == nil && err != nil
	}, timeout, poll).Should(BeTrue(), "connection %s still exists", name)
}

// slotName is the replication slot (and publication) of a logicalReplication
// Connection: connectors_ and its UID without dashes.
func slotName(uid types.UID) string {
	return "connectors_" + strings.ReplaceAll(string(uid), "-", "")
}

// exec runs statements on srv's database app as the superuser.
func exec(t testing.TB, srv *pgtest.Server, sql string, args ...any) {
	t.Helper()
	must(t, srv.Exec(context.Background(), db, sql, args...))
}

// queryInt runs a query answering one integer (as the superuser).
func queryInt(t testing.TB, srv *pgtest.Server, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	withConn(t, srv, func(c *pgx.Conn) { must(t, c.QueryRow(context.Background(), sql, args...).Scan(&n)) })
	return n
}

func withConn(t testing.TB, srv *pgtest.Server, f func(*pgx.Conn)) {
	t.Helper()
	c, err := srv.SuperConn(context.Background(), db)
	must(t, err)
	defer func() { _ = c.Close(context.Background()) }()
	f(c)
}

// slotExists reports whether srv has the replication slot name, and the publication.
func slotExists(t testing.TB, srv *pgtest.Server, name string) (slot, publication bool) {
	t.Helper()
	return queryInt(t, srv, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1", name) > 0,
		queryInt(t, srv, "SELECT count(*) FROM pg_publication WHERE pubname = $1", name) > 0
}

// rowEvent is one item event the sink acknowledged.
type rowEvent struct {
	Type      string
	EventID   string
	ID        string         `json:"id"`
	Key       string         `json:"key"`
	Kind      string         `json:"kind"`
	Title     string         `json:"title"`
	Text      string         `json:"text"`
	Container string         `json:"container"`
	UpdatedAt time.Time      `json:"updatedAt"`
	Fields    map[string]any `json:"fields"`
}

// rowEvents decodes the sink's item.upserted and item.deleted events, in order.
func rowEvents(t testing.TB, sink *sinktest.Sink) []rowEvent {
	t.Helper()
	var out []rowEvent
	for _, e := range sink.Events() {
		if e.Type != eventUpserted && e.Type != eventDeleted {
			continue
		}
		var r rowEvent
		must(t, json.Unmarshal(e.Data, &r))
		r.Type, r.EventID = e.Type, e.ID
		out = append(out, r)
	}
	return out
}

// num reads a JSON number field as an int64 (-1 when absent or not a number).
func num(fields map[string]any, name string) int64 {
	switch v := fields[name].(type) {
	case float64:
		return int64(v)
	case json.Number:
		n, _ := v.Int64()
		return n
	case string:
		var n int64
		if _, err := fmt.Sscan(v, &n); err == nil {
			return n
		}
	}
	return -1
}

// call sends one API request and decodes the envelope's data (or, for an error, the
// envelope) into out, failing unless the status is want. It records the answer for the
// leak check.
func (s *suite) call(t *testing.T, method, path string, body any, want int, out any) {
	t.Helper()
	var resp *http.Response
	var b []byte
	deadline := time.Now().Add(timeout)
	for {
		var rd io.Reader
		if body != nil {
			raw, err := json.Marshal(body)
			must(t, err)
			rd = bytes.NewReader(raw)
		}
		req, err := http.NewRequest(method, s.apiURL+path, rd)
		must(t, err)
		req.Header.Set("Authorization", "Bearer "+s.token)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err = apiClient.Do(req)
		must(t, err)
		b, err = io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		must(t, err)
		record(resp, b)
		// RBAC reaches the authorizer through informers: a fresh binding may be refused
		// for a moment.
		if resp.StatusCode != http.StatusForbidden || time.Now().After(deadline) {
			break
		}
		time.Sleep(poll)
	}
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, b, want)
	}
	if out == nil {
		return
	}
	var envl struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
	}
	must(t, json.Unmarshal(b, &envl))
	raw := envl.Data
	if envl.Status != "ok" {
		raw = b
	}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("%s %s: decoding %s: %v", method, path, b, err)
	}
}

var apiClient = &http.Client{Timeout: 30 * time.Second}

func record(resp *http.Response, body []byte) {
	var buf bytes.Buffer
	_ = resp.Header.Write(&buf)
	buf.Write(body)
	buf.WriteByte('\n')
	_, _ = answers.Write(buf.Bytes())
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// configMap is a ConfigMap in the operator's namespace holding a CA bundle as ca.crt.
func configMap(name string, pem []byte) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: operatorNS, Name: name},
		Data: map[string]string{"ca.crt": string(pem)}}
}

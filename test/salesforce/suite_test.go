// Package salesforce_test runs the operator end to end with the Salesforce provider: the
// manager as the operator's ServiceAccount (internal/testenv) against fake orgs
// (connectors/salesforce/salesforcetest) over real HTTP, a recording sink
// (internal/syncer/sinktest) and the HTTP API on a loopback listener, called with
// TokenRequest tokens. Each test has an org of its own, so that expiring sessions or a
// spent API allowance in one cannot disturb another; they run in parallel. TestMain
// searches the manager's logs, every Event, every status and every API answer for the
// credentials the suite handed out or saw issued.
package salesforce_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors/salesforce/salesforcetest"
	"github.com/unified-connectors/connector-operator/controllers"
	"github.com/unified-connectors/connector-operator/internal/api"
	"github.com/unified-connectors/connector-operator/internal/leakcheck"
	"github.com/unified-connectors/connector-operator/internal/logging"
	"github.com/unified-connectors/connector-operator/internal/manager"
	"github.com/unified-connectors/connector-operator/internal/testenv"
)

const (
	operatorNS = "connector-system"
	tenant     = "team-sf"
	usersNS    = "sf-users"
	apiVersion = "v" + salesforcetest.LatestAPIVersion
	timeout    = 90 * time.Second // a busy 2-core machine
	poll       = 100 * time.Millisecond
)

var (
	env     *suite
	envOnce sync.Once
	envErr  error
	logs    = &leakcheck.Buffer{}
	answers = &leakcheck.Buffer{} // every API answer (headers and body)
	secrets = &leakcheck.Secrets{}
)

// remember adds credentials the org issued. A Salesforce access token starts with the
// org's 15-character Id and "!", which status shows (it is no secret): the part after
// the "!" is.
func remember(values ...string) {
	for _, v := range values {
		if _, after, ok := strings.Cut(v, "!"); ok {
			v = after
		}
		secrets.Remember(v)
	}
}

type suite struct {
	test    *testenv.Environment
	k8s     client.Client // direct, admin
	apiURL  string
	token   string // the API caller's bearer token
	cancel  context.CancelFunc
	done    chan struct{}
	startup time.Time
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
		_ = env.test.Stop()
	}
	os.Exit(code)
}

// findLeaks searches logs, Events, status and API answers for every credential.
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

// TestLeakCheckFindsCredentials makes sure the leak check would see a credential of
// this suite's kinds, whole or in part.
func TestLeakCheckFindsCredentials(t *testing.T) {
	access := "00DHs0000000001!AQfake" + strings.Repeat("x", 40)
	_, secret, _ := strings.Cut(access, "!")
	if got := leakcheck.Find(map[string]string{"logs": `"token":"` + secret[3:20] + `"`}, []string{secret}); len(got) != 1 {
		t.Errorf("part of an access token was not found: %v", got)
	}
	if got := leakcheck.Find(map[string]string{"status": `"organization":"00DHs0000000001MAA"`}, []string{secret}); len(got) != 0 {
		t.Errorf("the org Id (no secret) was reported: %v", got)
	}
}

// testEnv starts the suite on first use.
func testEnv(tb testing.TB) *suite {
	tb.Helper()
	envOnce.Do(func() { env, envErr = startSuite() })
	if envErr != nil {
		tb.Fatalf("starting the envtest suite: %v", envErr)
	}
	return env
}

func startSuite() (*suite, error) {
	// Every verbosity, to search for credentials.
	var out io.Writer = logs
	if os.Getenv("SALESFORCE_TEST_LOGS") != "" {
		out = io.MultiWriter(logs, os.Stderr)
	}
	logger, err := logging.New(logging.Options{Format: "json", Verbosity: 10}, out)
	if err != nil {
		return nil, err
	}
	ctrl.SetLogger(logger)
	s := &suite{startup: time.Now()}
	s.test, err = testenv.Start(testenv.Options{Scheme: manager.Scheme, Namespace: operatorNS, Namespaces: []string{tenant, usersNS}})
	if err != nil {
		return nil, err
	}
	s.k8s = s.test.Client
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.apiURL = "http://" + ln.Addr().String()
	mgr, err := manager.New(s.test.ManagerConfig, manager.Options{
		Namespace: operatorNS, MetricsBindAddress: "0", HealthProbeBindAddress: "0",
		AllowInsecureVendorURLs: true,
		Controllers:             controllers.ControllerOptions{RetryMinBackoff: 100 * time.Millisecond, RetryMaxBackoff: time.Second},
		API:                     api.Options{Listener: ln, VendorTimeout: 10 * time.Second},
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

// caller is the token of a ServiceAccount that may list Connectors, read, search and
// create the tenant's data, and authorize its Connections (update connections/credentials).
func caller(s *suite) (string, error) {
	group := v1alpha1.GroupVersion.Group
	return s.test.Caller(context.Background(), usersNS, "caller", map[string][]rbacv1.PolicyRule{
		"": {{APIGroups: []string{group}, Resources: []string{"connectors"}, Verbs: []string{"list"}}},
		tenant: {
			{APIGroups: []string{group}, Resources: []string{"connections"}, Verbs: []string{"get", "list"}},
			{APIGroups: []string{group}, Resources: []string{"connections/data"}, Verbs: []string{"get", "create"}},
			{APIGroups: []string{group}, Resources: []string{"connections/credentials"}, Verbs: []string{"update"}},
		},
	})
}

// org is one fake org with a connected app of its own: client credentials run as an
// integration user; the web server flow consents as the org's default user. Every
// token the org's token endpoint answers is remembered for the leak check, client
// credentials sessions (which the operator keeps in memory only) included.
type org struct {
	*salesforcetest.Server
	srv                    *httptest.Server
	clientID, clientSecret string
	integration            salesforcetest.User
}

// URL is the org's My Domain root.
func (o *org) URL() string { return o.srv.URL }

func newOrg(t *testing.T) *org {
	t.Helper()
	o := &org{Server: salesforcetest.New()}
	fake := o.Handler()
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/services/oauth2/token" {
			fake.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		fake.ServeHTTP(rec, r)
		var answer struct {
			AccessToken  string `json:"access_token"`
			RefreshToken string `json:"refresh_token"`
		}
		if json.Unmarshal(rec.Body.Bytes(), &answer) == nil {
			remember(answer.AccessToken, answer.RefreshToken)
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(func() { o.srv.Close(); o.Close() })
	o.integration = o.AddUser(salesforcetest.User{Username: "int@" + t.Name() + ".example", Name: "Ivy Integration", TimeZone: "Europe/Paris"})
	o.clientID = "3MVG9" + strings.ReplaceAll(t.Name(), "/", "_")
	o.clientSecret = secrets.Token("sf-client-secret")
	o.AddClient(salesforcetest.Client{ID: o.clientID, Secret: o.clientSecret, RunAs: o.integration.ID})
	return o
}

// connector creates a salesforce Connector on o allowing methods; with oauth2 it gets a
// client Secret in the operator's namespace.
func (s *suite) connector(t *testing.T, name string, o *org, methods ...v1alpha1.AuthMethod) {
	t.Helper()
	ctx := context.Background()
	spec := v1alpha1.ConnectorSpec{Type: v1alpha1.ConnectorTypeSalesforce, BaseURL: v1alpha1.EndpointURL(o.URL()),
		AuthMethods: methods, Salesforce: &v1alpha1.SalesforceSpec{APIVersion: apiVersion},
		RateLimit: v1alpha1.RateLimitSpec{RequestsPerSecond: 200, Burst: 200}}
	for _, m := range methods {
		if m == v1alpha1.AuthMethodOAuth2 {
			must(t, s.k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: operatorNS, Name: name + "-client"},
				StringData: map[string]string{"clientID": o.clientID, "clientSecret": o.clientSecret}}))
			spec.OAuth2 = &v1alpha1.OAuth2Spec{ClientSecretRef: v1alpha1.SecretReference{Name: name + "-client"},
				Scopes: []string{"api", "refresh_token"}}
		}
	}
	must(t, s.k8s.Create(ctx, &v1alpha1.Connector{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}))
}

// clientCredentialsSecret creates the tenant's Secret with o's connected app.
func (s *suite) clientCredentialsSecret(t *testing.T, name string, o *org) {
	t.Helper()
	must(t, s.k8s.Create(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: name},
		StringData: map[string]string{"clientID": o.clientID, "clientSecret": o.clientSecret}}))
}

// connection creates a Connection in the tenant namespace.
func (s *suite) connection(t *testing.T, name, connector string, method v1alpha1.AuthMethod, secret string, mutate func(*v1alpha1.ConnectionSpec)) *v1alpha1.Connection {
	t.Helper()
	c := &v1alpha1.Connection{ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: name}, Spec: v1alpha1.ConnectionSpec{
		ConnectorRef: v1alpha1.ConnectorReference{Name: connector},
		Auth:         v1alpha1.AuthSpec{Method: method, SecretRef: v1alpha1.SecretReference{Name: secret}},
	}}
	if mutate != nil {
		mutate(&c.Spec)
	}
	must(t, s.k8s.Create(context.Background(), c))
	return c
}

// syncTo is a mutate function for connection: sync to sinkURL, hourly (runs come from
// creation and requested-at only).
func syncTo(sinkURL string, batch int32, containers ...string) func(*v1alpha1.ConnectionSpec) {
	return func(spec *v1alpha1.ConnectionSpec) {
		spec.Scope.Containers = containers
		spec.Sync = &v1alpha1.SyncSpec{Interval: &metav1.Duration{Duration: time.Hour},
			Sink: &v1alpha1.SinkSpec{URL: v1alpha1.URL(sinkURL), BatchSize: batch}}
	}
}

// requestNow sets the requested-at annotation: a probe and a sync run at once.
func (s *suite) requestNow(t *testing.T, name string) {
	t.Helper()
	c := &v1alpha1.Connection{}
	must(t, s.k8s.Get(context.Background(), client.ObjectKey{Namespace: tenant, Name: name}, c))
	patch := client.MergeFrom(c.DeepCopy())
	if c.Annotations == nil {
		c.Annotations = map[string]string{}
	}
	c.Annotations[v1alpha1.RequestedAtAnnotation] = time.Now().Format(time.RFC3339Nano)
	must(t, s.k8s.Patch(context.Background(), c, patch))
}

func condition(c v1alpha1.Connection, typ string) metav1.Condition {
	if cond := meta.FindStatusCondition(c.Status.Conditions, typ); cond != nil {
		return *cond
	}
	return metav1.Condition{Type: typ, Status: "absent"}
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
		resp, err = noRedirects.Do(req)
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

// status sends one API request without a body and returns the answer's status code.
func (s *suite) status(t *testing.T, method, path string) int {
	t.Helper()
	req, err := http.NewRequest(method, s.apiURL+path, nil)
	must(t, err)
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := noRedirects.Do(req)
	must(t, err)
	b, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	must(t, err)
	record(resp, b)
	return resp.StatusCode
}

// noRedirects lets a test see the API's and the vendor's redirects.
var noRedirects = &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
	return http.ErrUseLastResponse
}}

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

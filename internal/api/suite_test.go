package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
	"github.com/unified-connectors/connector-operator/controllers"
	"github.com/unified-connectors/connector-operator/internal/api"
	"github.com/unified-connectors/connector-operator/internal/leakcheck"
	"github.com/unified-connectors/connector-operator/internal/logging"
	"github.com/unified-connectors/connector-operator/internal/manager"
	"github.com/unified-connectors/connector-operator/internal/testenv"
)

// The envtest suite: one kube-apiserver for the package (internal/testenv), started on
// first use (so that fuzzing and the parser tests need none), with the real manager
// (controllers and API) serving plain HTTP on loopback. The manager acts as the operator's
// ServiceAccount, which holds only the RBAC config/rbac ships: its TokenReviews,
// SubjectAccessReviews and Secret writes are checked against the shipped role. Users are ServiceAccounts with tokens from the
// TokenRequest API and real Roles and RoleBindings; vendors are atlassiantest fakes.

const (
	operatorNamespace = "connector-system"
	usersNamespace    = "api-users"
	// searchDeadline is the server's per-source search deadline in this suite.
	searchDeadline = 2 * time.Second
	// readyTimeout bounds waiting for the reconciler.
	readyTimeout = 30 * time.Second
)

type suite struct {
	testEnv *testenv.Environment
	k8s     client.Client // direct, admin: never a stale cache
	cache   client.Client // the manager's cached client, which the API reads
	clients kubernetes.Interface
	baseURL string // http://127.0.0.1:port
	cancel  context.CancelFunc
	done    chan struct{}
}

var (
	env      *suite
	envOnce  sync.Once
	envErr   error
	logs     = &leakcheck.Buffer{}
	answers  = &leakcheck.Buffer{} // every API answer (headers and body), for the leak check
	secrets  = &leakcheck.Secrets{}
	specOnce sync.Once
	spec     *openapi3.T
	router   routers.Router
	specErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if env != nil {
		if leaks := findLeaks(); len(leaks) > 0 {
			fmt.Fprintln(os.Stderr, "FAIL: credentials leaked:", strings.Join(leaks, "; "))
			code = 1
		}
		env.cancel()
		<-env.done
		// Some refusals are quiet (an Event, a retried write); none is expected.
		if refused := env.testEnv.Refused(); len(refused) > 0 {
			fmt.Fprintf(os.Stderr, "FAIL: the API server refused the manager (config/rbac lacks a verb the code needs): %q\n", refused)
			code = 1
		}
		if err := env.testEnv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping envtest:", err)
		}
	}
	os.Exit(code)
}

// testEnv returns the suite, starting it on first use; without a control plane it fails
// and says how to get one.
func testEnv(tb testing.TB) *suite {
	tb.Helper()
	envOnce.Do(func() { env, envErr = startSuite() })
	if envErr != nil {
		tb.Fatalf("starting the envtest suite: %v", envErr)
	}
	return env
}

func startSuite() (*suite, error) {
	// Capture the manager's logs at every verbosity to search them for credentials.
	logger, err := logging.New(logging.Options{Format: "json", Verbosity: 10}, logs)
	if err != nil {
		return nil, err
	}
	ctrl.SetLogger(logger)

	s := &suite{}
	s.testEnv, err = testenv.Start(testenv.Options{Namespace: operatorNamespace, Namespaces: []string{usersNamespace}, Scheme: manager.Scheme})
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			_ = s.testEnv.Stop()
		}
	}()
	s.k8s = s.testEnv.Client
	if s.clients, err = kubernetes.NewForConfig(s.testEnv.Config); err != nil {
		return nil, err
	}
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.baseURL = "http://" + ln.Addr().String()
	mgr, err := manager.New(s.testEnv.ManagerConfig, manager.Options{
		Namespace:               operatorNamespace,
		MetricsBindAddress:      "0",
		HealthProbeBindAddress:  "0",
		AllowInsecureVendorURLs: true,
		Controllers:             controllers.ControllerOptions{RetryMinBackoff: 100 * time.Millisecond, RetryMaxBackoff: time.Second},
		API: api.Options{
			Listener:            ln,
			SearchSourceTimeout: searchDeadline,
			VendorTimeout:       5 * time.Second,
		},
	})
	if err != nil {
		return nil, err
	}
	s.cache = mgr.GetClient()
	var mctx context.Context
	mctx, s.cancel = context.WithCancel(ctx)
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		if err := mgr.Start(mctx); err != nil {
			fmt.Fprintln(os.Stderr, "manager stopped:", err)
		}
	}()
	// Wait until the API answers.
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := http.Get(s.baseURL + "/openapi.json")
		if err == nil {
			_ = resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the API did not start: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ok = true
	return s, nil
}

// findLeaks searches the logs and every API answer for any credential of the suite.
func findLeaks() []string {
	return leakcheck.Find(map[string]string{"logs": logs.String(), "API answers": answers.String()}, secrets.All())
}

// TestLeakCheck makes sure the leak check finds a credential, whole or in part.
func TestLeakCheck(t *testing.T) {
	token := "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLW9mLXRoZS10b2tlbi1mb3ItdGVzdHM"
	api := "apitoken-0123456789abcdefghijklmn"
	if got := leakcheck.Find(map[string]string{"x": "Bearer " + token}, []string{token}); len(got) != 1 {
		t.Errorf("a whole token was not found: %v", got)
	}
	if got := leakcheck.Find(map[string]string{"x": `"...` + api[5:25] + `..."`}, []string{api}); len(got) != 1 {
		t.Errorf("part of a token was not found: %v", got)
	}
	if got := leakcheck.Find(map[string]string{"x": "eyJhbGciOiJSUzI1NiJ9 header only"}, []string{token}); len(got) != 0 {
		t.Errorf("a JWT header alone counted as a leak: %v", got)
	}
}

// assertNoLeaks fails t if a credential appeared so far.
func assertNoLeaks(t *testing.T) {
	t.Helper()
	if leaks := findLeaks(); len(leaks) > 0 {
		t.Errorf("credentials leaked: %v", leaks)
	}
}

// --- users and RBAC -------------------------------------------------------------

// user is a ServiceAccount with a token from the TokenRequest API.
type user struct {
	name, username, token string
}

func (s *suite) newUser(t testing.TB, prefix string) user {
	t.Helper()
	ctx := context.Background()
	name := prefix + "-" + rand.String(5)
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: usersNamespace, Name: name}}
	must(t, s.k8s.Create(ctx, sa))
	tr, err := s.clients.CoreV1().ServiceAccounts(usersNamespace).CreateToken(ctx, name,
		&authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}, metav1.CreateOptions{})
	must(t, err)
	secrets.Remember(tr.Status.Token)
	return user{name: name, username: "system:serviceaccount:" + usersNamespace + ":" + name, token: tr.Status.Token}
}

func (u user) subject() rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: u.name, Namespace: usersNamespace}
}

// rule is a PolicyRule in group connectors.unified.dev.
func rule(resource string, verbs ...string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{resource}, Verbs: verbs}
}

// grant binds a Role with rules in ns to u.
func (s *suite) grant(t testing.TB, u user, ns string, rules ...rbacv1.PolicyRule) {
	t.Helper()
	ctx := context.Background()
	name := u.name + "-" + rand.String(4)
	must(t, s.k8s.Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Rules: rules}))
	must(t, s.k8s.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{u.subject()},
	}))
	s.waitAllowed(t, u, ns, rules[0])
}

// grantCluster binds a ClusterRole with rules to u cluster-wide.
func (s *suite) grantCluster(t testing.TB, u user, rules ...rbacv1.PolicyRule) {
	t.Helper()
	ctx := context.Background()
	name := u.name + "-" + rand.String(4)
	must(t, s.k8s.Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}))
	must(t, s.k8s.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects:   []rbacv1.Subject{u.subject()},
	}))
	s.waitAllowed(t, u, "", rules[0])
}

// waitAllowed waits until the API server's authorizer applies a new binding (it learns
// of RBAC objects through informers), so that no test depends on that lag.
func (s *suite) waitAllowed(t testing.TB, u user, ns string, r rbacv1.PolicyRule) {
	t.Helper()
	resource, sub, _ := strings.Cut(r.Resources[0], "/")
	name := ""
	if len(r.ResourceNames) > 0 {
		name = r.ResourceNames[0]
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		sar := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
			User:   u.username,
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + usersNamespace, "system:authenticated"},
			ResourceAttributes: &authzv1.ResourceAttributes{
				Namespace: ns, Verb: r.Verbs[0], Group: v1alpha1.GroupVersion.Group, Resource: resource, Subresource: sub, Name: name,
			},
		}}
		must(t, s.k8s.Create(context.Background(), sar))
		if sar.Status.Allowed {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is still not allowed %v in %q", u.name, r, ns)
		}
	}
}

// --- vendors and Connections -----------------------------------------------------

// site is a fake Atlassian site with one account and a Connector pointing at it.
type site struct {
	fake      *atlassiantest.Server
	account   atlassiantest.Account
	connector *v1alpha1.Connector
}

func (s *suite) newSite(t testing.TB, typ v1alpha1.ConnectorType, mutate ...func(*v1alpha1.Connector)) *site {
	t.Helper()
	fake := atlassiantest.NewServer()
	t.Cleanup(fake.Close)
	acct := atlassiantest.Account{
		ID: "5b10ac8d82e05b22cc7d4ef5", DisplayName: "Mia Krystof", Email: "mia@example.com",
		APIToken: secrets.Token("apitoken"),
	}
	fake.AddAccount(acct)
	cnr := &v1alpha1.Connector{
		ObjectMeta: metav1.ObjectMeta{Name: "site-" + rand.String(6)},
		Spec: v1alpha1.ConnectorSpec{
			Type:        typ,
			BaseURL:     v1alpha1.EndpointURL(fake.URL()),
			AuthMethods: []v1alpha1.AuthMethod{v1alpha1.AuthMethodAPIToken},
			// The API's own figures, not the rate limit's, are what the tests look at.
			RateLimit: v1alpha1.RateLimitSpec{RequestsPerSecond: 1000, Burst: 10000},
		},
	}
	for _, m := range mutate {
		m(cnr)
	}
	ctx := context.Background()
	must(t, s.k8s.Create(ctx, cnr))
	t.Cleanup(func() { _ = s.k8s.Delete(context.Background(), cnr) })
	return &site{fake: fake, account: acct, connector: cnr}
}

func (s *suite) newNamespace(t testing.TB, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: prefix + "-" + rand.String(6)}}
	must(t, s.k8s.Create(context.Background(), ns))
	return ns.Name
}

// newConnection makes an apiToken Connection of st in ns with its Secret.
func (s *suite) newConnection(t testing.TB, ns, name string, st *site, mutate ...func(*v1alpha1.Connection)) client.ObjectKey {
	t.Helper()
	ctx := context.Background()
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-credentials"},
		StringData: map[string]string{"email": st.account.Email, "apiToken": st.account.APIToken},
	}
	must(t, s.k8s.Create(ctx, secret))
	conn := &v1alpha1.Connection{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.ConnectionSpec{
			ConnectorRef: v1alpha1.ConnectorReference{Name: st.connector.Name},
			Auth:         v1alpha1.AuthSpec{Method: v1alpha1.AuthMethodAPIToken, SecretRef: v1alpha1.SecretReference{Name: secret.Name}},
		},
	}
	for _, m := range mutate {
		m(conn)
	}
	must(t, s.k8s.Create(ctx, conn))
	return client.ObjectKeyFromObject(conn)
}

// waitReady waits until the API's cache sees every Connection Ready.
func (s *suite) waitReady(t testing.TB, keys ...client.ObjectKey) {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	for _, key := range keys {
		for {
			var conn v1alpha1.Connection
			err := s.cache.Get(context.Background(), key, &conn)
			if err == nil && meta.IsStatusConditionTrue(conn.Status.Conditions, v1alpha1.ReadyCondition) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("connection %s not Ready in the cache after %s: %+v (err %v)", key, readyTimeout, conn.Status.Conditions, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// --- HTTP ------------------------------------------------------------------------

var httpClient = &http.Client{
	Timeout: 30 * time.Second,
	// Authorize answers 302: look at it rather than follow it.
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Transport:     &http.Transport{MaxIdleConnsPerHost: 64},
}

// answer is one API answer.
type answer struct {
	status int
	header http.Header
	body   []byte
	// env is the decoded envelope; nil for a body that is not JSON.
	env map[string]any
}

func (a answer) code() string { s, _ := a.env["code"].(string); return s }

func (a answer) data() map[string]any { d, _ := a.env["data"].(map[string]any); return d }

func (a answer) items() []any { l, _ := a.data()["items"].([]any); return l }

// req is one request of a test.
type req struct {
	method, path, token string
	body                []byte
	header              map[string]string
}

// do sends r to the suite's API, records the answer for the leak check, and checks it
// against the OpenAPI document: every answer of every test is a check of the document.
func (s *suite) do(t testing.TB, r req) answer {
	t.Helper()
	if r.method == "" {
		r.method = http.MethodGet
	}
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	hr, err := http.NewRequest(r.method, s.baseURL+r.path, body)
	must(t, err)
	if r.token != "" {
		hr.Header.Set("Authorization", "Bearer "+r.token)
	}
	if r.body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	resp, err := httpClient.Do(hr)
	must(t, err)
	b, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	must(t, err)
	a := answer{status: resp.StatusCode, header: resp.Header, body: b}
	_ = json.Unmarshal(b, &a.env)
	// The answer only: the request's query may hold an authorization code by design.
	_, _ = fmt.Fprintf(answers, "%s -> %d %v %s\n", r.method, resp.StatusCode, resp.Header, b)
	if resp.Header.Get("X-Request-Id") == "" {
		t.Errorf("%s %s: no X-Request-Id", r.method, r.path)
	}
	if err := checkAgainstSpec(hr, resp, b); err != nil {
		t.Errorf("%s %s -> %d does not match openapi.json: %v\nbody: %s", r.method, r.path, resp.StatusCode, err, b)
	}
	return a
}

func loadSpec() (*openapi3.T, routers.Router, error) {
	specOnce.Do(func() {
		loader := openapi3.NewLoader()
		spec, specErr = loader.LoadFromData(api.OpenAPI())
		if specErr != nil {
			return
		}
		if specErr = spec.Validate(loader.Context); specErr != nil {
			return
		}
		router, specErr = gorillamux.NewRouter(spec)
		// /docs answers HTML: check it as a string.
		openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder)
	})
	return spec, router, specErr
}

// checkAgainstSpec validates an answer with kin-openapi: its status must be declared
// for the route, and its headers and body must match. An answer for a path the document
// does not have must be a NOT_FOUND error envelope.
func checkAgainstSpec(hr *http.Request, resp *http.Response, body []byte) error {
	doc, rt, err := loadSpec()
	if err != nil {
		return fmt.Errorf("loading openapi.json: %w", err)
	}
	route, params, err := rt.FindRoute(hr)
	if err != nil {
		// Unknown path or method: a NOT_FOUND envelope.
		schema := doc.Components.Schemas["Error"].Value
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			return fmt.Errorf("not JSON: %w", err)
		}
		if err := schema.VisitJSON(v); err != nil {
			return err
		}
		if resp.StatusCode != http.StatusNotFound {
			return fmt.Errorf("unrouted request answered %d, want 404", resp.StatusCode)
		}
		return nil
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: hr, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
		},
		Status:  resp.StatusCode,
		Header:  resp.Header,
		Body:    io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	return openapi3filter.ValidateResponse(context.Background(), in)
}

// path joins escaped segments.
func path(segments ...string) string {
	var b strings.Builder
	for _, s := range segments {
		b.WriteString("/" + url.PathEscape(s))
	}
	return b.String()
}

func connPath(ns, name string, rest ...string) string {
	return "/api/v1/namespaces/" + url.PathEscape(ns) + "/connections/" + url.PathEscape(name) + path(rest...)
}

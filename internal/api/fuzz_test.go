package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-logr/logr"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
	_ "github.com/unified-connectors/connector-operator/connectors/jira"
	"github.com/unified-connectors/connector-operator/internal/egress"
	"github.com/unified-connectors/connector-operator/internal/oauth"
	"github.com/unified-connectors/connector-operator/internal/vendorclient"
	"github.com/unified-connectors/connector-operator/internal/vendorhttp"
)

// fuzzToken is the only bearer token the fuzzed server's fake TokenReview accepts.
const fuzzToken = "fuzz-token"

// fuzzServer is an API server over a fake client (TokenReview accepts fuzzToken,
// SubjectAccessReview allows all but namespace "denied") with one Ready Jira Connection,
// team/jira, on an in-process fake site: requests reach the parsers, the handlers and
// the vendor.
func fuzzServer(t testing.TB) *Server {
	s, _ := fuzzServerAndSite(t)
	return s
}

func fuzzServerAndSite(t testing.TB) (*Server, *atlassiantest.Server) {
	fakeSite := atlassiantest.NewServer()
	t.Cleanup(fakeSite.Close)
	acct := atlassiantest.Account{ID: "acct", DisplayName: "Fuzz", Email: "fuzz@example.com", APIToken: "fuzz-api-token"}
	fakeSite.AddAccount(acct)
	fakeSite.CreateIssue("PRJA", "Fuzzed issue", "Some text.", time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))

	ready := []metav1.Condition{{Type: v1alpha1.ReadyCondition, Status: metav1.ConditionTrue, Reason: v1alpha1.SucceededReason, LastTransitionTime: metav1.Now()}}
	objs := []client.Object{
		&v1alpha1.Connector{
			ObjectMeta: metav1.ObjectMeta{Name: "site"},
			Spec: v1alpha1.ConnectorSpec{Type: v1alpha1.ConnectorTypeJira, BaseURL: v1alpha1.EndpointURL(fakeSite.URL()), Deployment: "cloud",
				RateLimit: v1alpha1.RateLimitSpec{RequestsPerSecond: 1000, Burst: 10000}},
			Status: v1alpha1.ConnectorStatus{Conditions: ready},
		},
		&v1alpha1.Connection{
			ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "jira", UID: "uid-jira"},
			Spec: v1alpha1.ConnectionSpec{ConnectorRef: v1alpha1.ConnectorReference{Name: "site"},
				Auth: v1alpha1.AuthSpec{Method: v1alpha1.AuthMethodAPIToken, SecretRef: v1alpha1.SecretReference{Name: "creds"}}},
			// Served: Ready, with a valid credential (policy.Servable).
			Status: v1alpha1.ConnectionStatus{Type: v1alpha1.ConnectorTypeJira, Conditions: append(slices.Clone(ready), metav1.Condition{
				Type: v1alpha1.CredentialsValidCondition, Status: metav1.ConditionTrue, Reason: v1alpha1.SucceededReason, LastTransitionTime: metav1.Now()})},
		},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "creds"},
			Data: map[string][]byte{"email": []byte(acct.Email), "apiToken": []byte(acct.APIToken)}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}},
	}
	c := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(objs...).WithInterceptorFuncs(interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			switch o := obj.(type) {
			case *authnv1.TokenReview:
				if o.Spec.Token == fuzzToken {
					o.Status = authnv1.TokenReviewStatus{Authenticated: true, User: authnv1.UserInfo{Username: "fuzzer", Groups: []string{"g"}}}
				}
				return nil
			case *authzv1.SubjectAccessReview:
				o.Status.Allowed = o.Spec.ResourceAttributes.Namespace != "denied"
				return nil
			}
			return c.Create(ctx, obj, opts...)
		},
	}).Build()
	vendors := &vendorclient.Factory{
		Reader:    c,
		Vendors:   &vendorhttp.Pool{Egress: egress.Vendor.WithAllowInsecure(true)},
		Refresher: &oauth.Refresher{Client: c, Reader: c, Holder: "fuzz"},
		Namespace: "operator",
	}
	s, err := New(Deps{Client: c, Reader: c, APIReader: c, Vendors: vendors, Namespace: "operator", Logger: logr.Discard()},
		Options{BindAddress: "127.0.0.1:0", VendorTimeout: 2 * time.Second, SearchSourceTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return s, fakeSite
}

// FuzzRequest sends arbitrary methods, request targets, bodies and headers through the
// whole server: routing, authentication, request parsing, cursors, handlers. Whatever
// arrives, the answer is a well-formed envelope with a known code and its status, and
// never a 5xx; the search parser's successes respect its bounds.
func FuzzRequest(f *testing.F) {
	seeds := []struct{ method, target, body, tenant, requestID string }{
		{"GET", "/api/v1/connectors", "", "", ""},
		{"GET", "/api/v1/connectors", "", "team", "abc"},
		{"GET", "/api/v1/namespaces/team/connections", "", "", ""},
		{"GET", "/api/v1/namespaces/team/connections/jira", "", "", ""},
		{"GET", "/api/v1/namespaces/denied/connections/jira", "", "", ""},
		{"GET", "/api/v1/namespaces/team/connections/jira/containers?limit=2", "", "", ""},
		{"GET", "/api/v1/namespaces/team/connections/jira/items?container=PRJA&limit=5&updatedSince=2024-01-01T00:00:00Z", "", "", ""},
		{"GET", "/api/v1/namespaces/team/connections/jira/items?container=PRJA&cursor=c1.eyJzIjoiYSIsImMiOiJiIn0", "", "", ""},
		{"GET", "/api/v1/namespaces/team/connections/jira/items/PRJA-1", "", "", ""},
		{"GET", "/api/v1/namespaces/team/connections/jira/items/PRJA-1/comments?cursor=x", "", "", ""},
		{"POST", "/api/v1/namespaces/team/connections/jira/items", `{"container":"PRJA","title":"t","text":"x"}`, "", ""},
		{"POST", "/api/v1/namespaces/team/connections/jira/items", `{"container":"PRJA","title":"t","x":1}`, "", ""},
		{"POST", "/api/v1/namespaces/team/connections/jira/items", `{"container":`, "", ""},
		{"GET", "/api/v1/search?q=fuzzed&limit=3", "", "", ""},
		{"GET", "/api/v1/search?q=fuzzed&namespaces=team,other&connections=team/jira,jira&kind=issue&timeout=500ms", "", "team", ""},
		{"GET", "/api/v1/search?q=x&cursor=s1.AAAA", "", "", ""},
		{"GET", "/oauth/v1/namespaces/team/connections/jira/authorize", "", "", ""},
		{"GET", "/oauth/v1/callback?state=v1.a.b&code=c", "", "", ""},
		{"GET", "/oauth/v1/callback?error=access_denied", "", "", ""},
		{"DELETE", "/api/v1/connectors", "", "", ""},
		{"GET", "/api/v1//x/../y", "", "", "id with spaces"},
		{"GET", "/api/v1/namespaces/%ZZ/connections", "", "", ""},
	}
	for _, s := range seeds {
		f.Add(s.method, s.target, []byte(s.body), s.tenant, s.requestID)
	}
	srv := fuzzServer(f)
	f.Fuzz(func(t *testing.T, method, target string, body []byte, tenant, requestID string) {
		// Only what an HTTP/1.1 server would hand a handler: a token method and an
		// origin-form target.
		if method == "" || strings.ContainsAny(method, " \t\r\n()<>@,;:\\\"/[]?={}") || !utf8.ValidString(method) || len(method) > 16 {
			return
		}
		u, err := url.ParseRequestURI(target)
		if err != nil || !strings.HasPrefix(target, "/") || strings.ContainsAny(target, " \r\n\t") || len(body) > 2*maxBodyBytes {
			return
		}
		r := &http.Request{
			Method: method, URL: u, RequestURI: target, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{"Authorization": {"Bearer " + fuzzToken}, "Content-Type": {"application/json"}},
			Body:   http.NoBody, Host: "api.example.com", RemoteAddr: "127.0.0.1:1234",
		}
		if len(body) > 0 {
			r.Body, r.ContentLength = httpBody(body), int64(len(body))
		}
		if tenant != "" && !strings.ContainsAny(tenant, "\r\n") {
			r.Header.Set("X-Tenant-Id", tenant)
		}
		if requestID != "" && !strings.ContainsAny(requestID, "\r\n") {
			r.Header.Set("X-Request-Id", requestID)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r = r.WithContext(ctx)
		w := httptest.NewRecorder()
		srv.Handler().ServeHTTP(w, r)

		if w.Code >= 500 {
			t.Fatalf("%s %s -> %d %s", method, target, w.Code, w.Body)
		}
		id := w.Header().Get("X-Request-Id")
		if id == "" || len(id) > maxRequestIDLen {
			t.Fatalf("X-Request-Id %q", id)
		}
		if strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") || (u.Path == "/openapi.json" && w.Code == 200) {
			return
		}
		var env struct {
			Status, Code, Message, RequestID string
			Data                             json.RawMessage
		}
		if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil {
			t.Fatalf("%s %s -> %d: not JSON: %q", method, target, w.Code, w.Body)
		}
		switch env.Status {
		case statusOK:
			if w.Code >= 400 || len(env.Data) == 0 {
				t.Fatalf("ok envelope with %d: %s", w.Code, w.Body)
			}
		case statusError:
			if want, known := statusOf[env.Code]; !known || want != w.Code || env.Message == "" || env.RequestID != id {
				t.Fatalf("%s %s -> %d %s", method, target, w.Code, w.Body)
			}
		default:
			t.Fatalf("no envelope: %s", w.Body)
		}

		// The parsers' own guarantees on the same input.
		if sr, aerr := parseSearch(u.RawQuery, ""); aerr == nil {
			if sr.text == "" || utf8.RuneCountInString(sr.text) > maxQueryLen || sr.limit < 1 || sr.limit > maxSearchLimit {
				t.Fatalf("parseSearch accepted %+v", sr)
			}
			if sr.cursor != "" {
				if c, aerr := decodeSearchCursor(sr.cursor, sr.fingerprint()); aerr == nil {
					again, aerr := decodeSearchCursor(encodeSearchCursor(c), sr.fingerprint())
					if aerr != nil || len(again.Sources) != len(c.Sources) {
						t.Fatalf("search cursor does not round-trip: %+v", c)
					}
				}
			}
		}
		if ir, aerr := parseItems(u.RawQuery); aerr == nil && (ir.limit < 1 || ir.limit > maxLimit || ir.container == "") {
			t.Fatalf("parseItems accepted %+v", ir)
		}
	})
}

func httpBody(b []byte) *bodyReader { return &bodyReader{Reader: bytes.NewReader(b)} }

type bodyReader struct{ *bytes.Reader }

func (bodyReader) Close() error { return nil }

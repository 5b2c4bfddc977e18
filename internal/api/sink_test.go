package api_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/internal/syncer/sinktest"
)

// TestReadsSurviveASinkOutage: a Connection whose sink answers 503 is Ready=False
// SinkUnavailable (Ready summarises credential and sync), but its credential is valid,
// so the API still reads and searches through it. A Connection whose credential the
// vendor rejected is still refused, in reads and in search.
func TestReadsSurviveASinkOutage(t *testing.T) {
	s := testEnv(t)
	st := s.newSite(t, v1alpha1.ConnectorTypeJira)
	seedNeedles(st.fake)
	sink := sinktest.NewServer()
	t.Cleanup(sink.Close)
	sink.Fail(sinktest.Failure{Status: http.StatusServiceUnavailable})
	ns := s.newNamespace(t, "sink-down")
	key := s.newConnection(t, ns, "jira", st, func(c *v1alpha1.Connection) {
		c.Spec.Sync = &v1alpha1.SyncSpec{Sink: &v1alpha1.SinkSpec{URL: v1alpha1.URL(sink.URL())}}
	})
	// A credential the vendor does not know.
	must(t, s.k8s.Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "unknown-token"},
		StringData: map[string]string{"email": st.account.Email, "apiToken": secrets.Token("unknown-apitoken")},
	}))
	rejected := s.newConnection(t, ns, "jira-rejected", st, func(c *v1alpha1.Connection) {
		c.Spec.Auth.SecretRef.Name = "unknown-token"
	})

	waitCached(t, s, key, func(c *v1alpha1.Connection) bool {
		r := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ReadyCondition)
		return r != nil && r.Status == metav1.ConditionFalse && r.Reason == v1alpha1.SinkUnavailableReason &&
			meta.IsStatusConditionTrue(c.Status.Conditions, v1alpha1.CredentialsValidCondition)
	})
	waitCached(t, s, rejected, func(c *v1alpha1.Connection) bool {
		r := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ReadyCondition)
		return r != nil && r.Reason == v1alpha1.CredentialsRejectedReason
	})
	if sink.Attempts() == 0 {
		t.Fatal("the sink was never asked")
	}

	u := s.newUser(t, "sink-reader")
	s.grant(t, u, ns, rule("connections/data", "get"))
	a := s.do(t, req{path: connPath(ns, "jira", "items") + "?container=PRJA", token: u.token})
	if a.status != http.StatusOK || len(a.items()) != 4 {
		t.Errorf("items through a Connection whose sink is down: %d %s, want 200 with 4 items", a.status, a.body)
	}
	a = s.do(t, req{path: connPath(ns, "jira", "containers"), token: u.token})
	if a.status != http.StatusOK || len(a.items()) != 1 {
		t.Errorf("containers through a Connection whose sink is down: %d %s, want 200 with PRJA", a.status, a.body)
	}
	a = s.do(t, req{path: connPath(ns, "jira-rejected", "items") + "?container=PRJA", token: u.token})
	if a.status != http.StatusConflict || a.code() != "CONNECTION_NOT_READY" {
		t.Errorf("items through a rejected credential: %d %s, want 409 CONNECTION_NOT_READY", a.status, a.body)
	}

	a = s.do(t, req{path: "/api/v1/search?q=needle&namespaces=" + ns, token: u.token})
	if a.status != http.StatusOK || len(a.items()) != 3 {
		t.Fatalf("search with a sink down: %d %s, want 200 with the 3 needles", a.status, a.body)
	}
	for _, src := range a.data()["sources"].([]any) {
		m := src.(map[string]any)
		switch m["name"] {
		case "jira":
			if m["status"] != "ok" || m["count"].(float64) != 3 {
				t.Errorf("search source whose sink is down: %v, want ok with 3", m)
			}
		case "jira-rejected":
			if m["status"] != "error" || m["code"] != "CONNECTION_NOT_READY" {
				t.Errorf("search source with a rejected credential: %v, want error CONNECTION_NOT_READY", m)
			}
		}
	}

	// Ready still says the sink is down.
	var conn v1alpha1.Connection
	must(t, s.k8s.Get(context.Background(), key, &conn))
	if r := meta.FindStatusCondition(conn.Status.Conditions, v1alpha1.ReadyCondition); r == nil || r.Reason != v1alpha1.SinkUnavailableReason {
		t.Errorf("Ready %+v, want False SinkUnavailable", r)
	}
	assertNoLeaks(t)
}

// waitCached waits until the API's cache holds the Connection in the wanted state.
func waitCached(t *testing.T, s *suite, key client.ObjectKey, ok func(*v1alpha1.Connection) bool) {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	for {
		var conn v1alpha1.Connection
		if err := s.cache.Get(context.Background(), key, &conn); err == nil && ok(&conn) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("connection %s did not reach the wanted state in the cache: %+v", key, conn.Status.Conditions)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

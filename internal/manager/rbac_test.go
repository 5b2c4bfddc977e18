package manager_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/internal/api"
	"github.com/unified-connectors/connector-operator/internal/manager"
	"github.com/unified-connectors/connector-operator/internal/syncer"
)

// TestManagerWritesWithTheShippedRBAC: the manager, acting as the operator's
// ServiceAccount with nothing but the roles config/rbac ships, takes the leader Lease,
// patches Connector and Connection status, records Events, and its webhook receiver
// (served by the HTTP API on every replica) annotates a Connection. Each is a verb the
// shipped roles could lack; admin credentials would hide that.
func TestManagerWritesWithTheShippedRBAC(t *testing.T) {
	e := controlPlane(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Elected: leases get, create and update in the operator's namespace.
	startManager(t, manager.Options{LeaderElection: true, AllowInsecureVendorURLs: true,
		API: api.Options{Listener: ln}})
	ctx := context.Background()

	ns := "tenant-rbac"
	must(t, e.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	hook := []byte("webhook-secret-for-the-rbac-test")
	must(t, e.Client.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hook"},
		Data: map[string][]byte{"secret": hook}}))
	cnr := &v1alpha1.Connector{ObjectMeta: metav1.ObjectMeta{Name: "rbac"},
		// Nothing answers there: the reconciler records that in status all the same.
		Spec: v1alpha1.ConnectorSpec{Type: v1alpha1.ConnectorTypeJira, BaseURL: "http://127.0.0.1:1"}}
	must(t, e.Client.Create(ctx, cnr))
	conn := &v1alpha1.Connection{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "rbac"},
		Spec: v1alpha1.ConnectionSpec{
			ConnectorRef: v1alpha1.ConnectorReference{Name: cnr.Name},
			Auth:         v1alpha1.AuthSpec{Method: v1alpha1.AuthMethodAPIToken, SecretRef: v1alpha1.SecretReference{Name: "missing"}},
			Webhook:      &v1alpha1.WebhookSpec{SecretRef: v1alpha1.SecretReference{Name: "hook"}},
		},
	}
	must(t, e.Client.Create(ctx, conn))

	// connectors/status and connections/status: patch.
	eventually(t, "the Connector's status", func() bool {
		var got v1alpha1.Connector
		return e.Client.Get(ctx, client.ObjectKeyFromObject(cnr), &got) == nil &&
			meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ReadyCondition) != nil
	})
	eventually(t, "the Connection's status", func() bool {
		var got v1alpha1.Connection
		return e.Client.Get(ctx, client.ObjectKeyFromObject(conn), &got) == nil &&
			meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ReadyCondition) != nil
	})
	// events (events.k8s.io): create.
	eventually(t, "an Event about the Connection", func() bool {
		var events eventsv1.EventList
		if e.Client.List(ctx, &events, client.InNamespace(ns)) != nil {
			return false
		}
		for _, ev := range events.Items {
			if ev.Regarding.Name == conn.Name && ev.ReportingController != "" {
				return true
			}
		}
		return false
	})

	// connections: patch, by the receiver of a signed webhook.
	body := []byte(fmt.Sprintf(`{"webhookEvent":"jira:issue_updated","timestamp":%d,"issue":{"id":"10001","key":"PRJA-1","fields":{"project":{"key":"PRJA"}}}}`,
		time.Now().UnixMilli()))
	req, err := http.NewRequest(http.MethodPost, "http://"+ln.Addr().String()+"/webhooks/v1/namespaces/"+ns+"/connections/"+conn.Name, bytes.NewReader(body))
	must(t, err)
	req.Header.Set("X-Hub-Signature", syncer.Sign(hook, body))
	var status int
	eventually(t, "the API to answer", func() bool {
		resp, err := http.DefaultClient.Do(req.Clone(ctx))
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		req.Body, _ = req.GetBody()
		status = resp.StatusCode
		return true
	})
	if status != http.StatusAccepted {
		t.Fatalf("a signed webhook answered %d, want 202", status)
	}
	var got v1alpha1.Connection
	must(t, e.Client.Get(ctx, client.ObjectKeyFromObject(conn), &got))
	annotated := false
	for k := range got.Annotations {
		annotated = annotated || strings.HasPrefix(k, syncer.WebhookAnnotationPrefix)
	}
	if !annotated {
		t.Errorf("the webhook left no annotation: %v", got.Annotations)
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s", what)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

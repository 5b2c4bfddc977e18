package syncer_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
	"github.com/unified-connectors/connector-operator/internal/egress"
	"github.com/unified-connectors/connector-operator/internal/syncer"
	"github.com/unified-connectors/connector-operator/internal/syncer/sinktest"
	"github.com/unified-connectors/connector-operator/internal/vendorclient"
	"github.com/unified-connectors/connector-operator/internal/vendorhttp"
)

// startEngine runs the sync engine alone (no reconciler), so a test can hand it the exact
// sequence of Ensure calls a coalesced workqueue produces.
func startEngine(t testing.TB) *syncer.Engine {
	t.Helper()
	controlPlane(t)
	e := &syncer.Engine{
		Client: k8s, Reader: k8s,
		Vendors: &vendorclient.Factory{Reader: k8s, Vendors: &vendorhttp.Pool{Egress: egress.Vendor.WithAllowInsecure(true)},
			Namespace: operatorNamespace},
		SinkEgress:   egress.Sink.WithAllowInsecure(true),
		PersistEvery: persistEvery,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = e.Start(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return e
}

// TestRecreatedConnectionIsANewConnection: a Connection deleted and re-created under the
// same name (kubectl replace --force, Argo CD Replace=true), with the delete coalesced
// away, is a new Connection: the old worker's cursors never reach the new object's
// status, and the new sink receives everything since `since`.
func TestRecreatedConnectionIsANewConnection(t *testing.T) {
	g := NewWithT(t)
	s := newSite(t, "UTC")
	s.fake.SeedJira(atlassiantest.JiraSeed{Projects: 1, IssuesPerProject: 300, Seed: 21, Start: time.Now().Add(-24 * time.Hour)})
	e := startEngine(t)
	ctx := context.Background()
	var connector v1alpha1.Connector
	must(t, k8s.Get(ctx, client.ObjectKey{Name: s.jira}, &connector))

	key := s.connection(s.jira, nil)
	old := get(t, key)
	e.Ensure(old, &connector, "inputs")
	g.Eventually(func() int { return s.sink.Check().Distinct }, time.Minute).Should(Equal(300))
	g.Eventually(func() int64 {
		if st := get(t, key).Status.Sync; st != nil {
			return st.ItemsDelivered
		}
		return 0
	}, 10*time.Second).Should(Equal(int64(300)))

	// Replace: delete and create again under the same name, with a new sink and no status.
	must(t, k8s.Delete(ctx, old))
	g.Eventually(func() bool { return apierrors.IsNotFound(k8s.Get(ctx, key, &v1alpha1.Connection{})) }, 10*time.Second).Should(BeTrue())
	newSink := sinktest.NewServer()
	t.Cleanup(newSink.Close)
	replacement := &v1alpha1.Connection{}
	replacement.Namespace, replacement.Name = key.Namespace, key.Name
	replacement.Spec = *old.Spec.DeepCopy()
	replacement.Spec.Sync.Sink.URL = v1alpha1.URL(newSink.URL())
	must(t, k8s.Create(ctx, replacement))
	g.Expect(replacement.UID).NotTo(Equal(old.UID))

	// The old worker runs once more (a timer, a trigger) before the coalesced reconcile:
	// its status write must not land on the new object.
	s.sink.Reset()
	e.Trigger(key)
	g.Consistently(func() *v1alpha1.SyncStatus { return get(t, key).Status.Sync }, 3*time.Second, 100*time.Millisecond).Should(BeNil(),
		"the old Connection's cursors never reach the new object")

	// The reconcile sees only the new object: Ensure without a Remove first.
	e.Ensure(get(t, key), &connector, "inputs")
	g.Eventually(func() int { return newSink.Check().Distinct }, time.Minute).Should(Equal(300), "the new sink receives everything")
	g.Eventually(func() int64 {
		if st := get(t, key).Status.Sync; st != nil {
			return st.ItemsDelivered
		}
		return 0
	}, 10*time.Second).Should(Equal(int64(300)), "the new object's own count, not the old one's")
	g.Expect(newSink.Check().Duplicates).To(BeZero())
	g.Expect(s.sink.Check().Deliveries).To(BeZero(), "the old sink receives nothing after the replacement")
}

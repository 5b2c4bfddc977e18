package controllers_test

import (
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/internal/syncer/sinktest"
)

var _ = Describe("A refused Connection", func() {
	const timeout = 30 * time.Second

	It("stops syncing at once, even while its spec changes", func(ctx SpecContext) {
		s := newSite(ctx, v1alpha1.ConnectorTypeJira, func(c *v1alpha1.Connector) {
			c.Spec.AllowedNamespaces = &metav1.LabelSelector{MatchLabels: map[string]string{"tenant": "yes"}}
		})
		s.fake.AddJiraProject("PRJ", "Project")
		s.fake.CreateIssue("PRJ", "first issue", "before the refusal", time.Now().Add(-time.Minute))
		sink := sinktest.NewServer()
		DeferCleanup(sink.Close)
		searches := func() int {
			n := 0
			for _, r := range s.fake.Requests() {
				if strings.Contains(r.Path, "/search") {
					n++
				}
			}
			return n
		}

		ns := newNamespace(ctx, map[string]string{"tenant": "yes"})
		createSecret(ctx, ns, "jira", map[string]string{"email": s.account.Email, "apiToken": s.account.APIToken})
		conn := &v1alpha1.Connection{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "conn-" + rand.String(6)},
			Spec: v1alpha1.ConnectionSpec{
				ConnectorRef: v1alpha1.ConnectorReference{Name: s.connector.Name},
				Auth:         v1alpha1.AuthSpec{Method: v1alpha1.AuthMethodAPIToken, SecretRef: v1alpha1.SecretReference{Name: "jira"}},
				Scope:        v1alpha1.ScopeSpec{Containers: []string{"PRJ"}},
				// The shortest interval: a sync still running would show within 30 s.
				Sync: &v1alpha1.SyncSpec{Interval: &metav1.Duration{Duration: 10 * time.Second}, Sink: &v1alpha1.SinkSpec{URL: v1alpha1.URL(sink.URL())}},
			},
		}
		Expect(k8s.Create(ctx, conn)).To(Succeed())
		key := client.ObjectKeyFromObject(conn)

		By("syncing while admitted")
		Eventually(conditionOf(ctx, key, v1alpha1.SyncedCondition), timeout).Should(haveStatusReason(metav1.ConditionTrue, v1alpha1.SucceededReason))
		Expect(sink.Events()).To(HaveLen(1))

		By("taking away the namespace label its Connector's allowedNamespaces needs")
		nsObj := &corev1.Namespace{}
		Expect(k8s.Get(ctx, client.ObjectKey{Name: ns}, nsObj)).To(Succeed())
		nsObj.Labels = map[string]string{"tenant": "no"}
		Expect(k8s.Update(ctx, nsObj)).To(Succeed())
		Eventually(conditionOf(ctx, key, v1alpha1.StalledCondition), timeout).Should(haveStatusReason(metav1.ConditionTrue, v1alpha1.NamespaceNotAllowedReason))
		Expect(conditionOf(ctx, key, v1alpha1.SyncedCondition)()).To(BeNil(), "Synced is not reported for a Connection that is not synced")

		By("changing the vendor's content and the Connection's spec while refused")
		events, calls := len(sink.Events()), searches()
		s.fake.CreateIssue("PRJ", "second issue", "after the refusal", time.Now())
		live := getConn(ctx, key)
		patch := client.MergeFrom(live.DeepCopy())
		live.Spec.Sync.Suspend = true
		Expect(k8s.Patch(ctx, live, patch)).To(Succeed())

		By("seeing nothing delivered and nothing asked of the vendor for 30 s")
		Consistently(func() []int { return []int{len(sink.Events()), searches()} }, 30*time.Second, time.Second).
			Should(Equal([]int{events, calls}))
		Expect(conditionOf(ctx, key, v1alpha1.ReadyCondition)()).To(haveStatusReason(metav1.ConditionFalse, v1alpha1.NamespaceNotAllowedReason))
	})
})

package controllers_test

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
)

// site is one fake Atlassian site with one account and a Connector pointing at it. Each
// spec gets its own, so request counts on the fake belong to that spec alone.
type site struct {
	fake      *atlassiantest.Server
	account   atlassiantest.Account
	connector *v1alpha1.Connector
}

func newSite(ctx context.Context, typ v1alpha1.ConnectorType, mutate ...func(*v1alpha1.Connector)) *site {
	fake := atlassiantest.NewServer()
	DeferCleanup(fake.Close)
	acct := atlassiantest.Account{
		ID:          "5b10ac8d82e05b22cc7d4ef5",
		DisplayName: "Mia Krystof",
		Email:       "mia@example.com",
		TimeZone:    "Australia/Sydney",
		APIToken:    secrets.Token("apitoken"),
		PAT:         secrets.Token("pat"),
	}
	fake.AddAccount(acct)
	cnr := &v1alpha1.Connector{
		ObjectMeta: metav1.ObjectMeta{Name: "site-" + rand.String(6)},
		Spec: v1alpha1.ConnectorSpec{
			Type:        typ,
			BaseURL:     v1alpha1.EndpointURL(fake.URL()),
			AuthMethods: []v1alpha1.AuthMethod{v1alpha1.AuthMethodAPIToken, v1alpha1.AuthMethodPAT},
		},
	}
	for _, m := range mutate {
		m(cnr)
	}
	Expect(k8s.Create(ctx, cnr)).To(Succeed())
	DeferCleanup(func(ctx context.Context) { _ = k8s.Delete(ctx, cnr) })
	return &site{fake: fake, account: acct, connector: cnr}
}

func newNamespace(ctx context.Context, labels map[string]string) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "tenant-" + rand.String(6), Labels: labels}}
	Expect(k8s.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

func createSecret(ctx context.Context, ns, name string, data map[string]string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, StringData: data}
	Expect(k8s.Create(ctx, s)).To(Succeed())
	return s
}

func createConnection(ctx context.Context, ns, connector string, method v1alpha1.AuthMethod, secret string) client.ObjectKey {
	conn := &v1alpha1.Connection{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "conn-" + rand.String(6)},
		Spec: v1alpha1.ConnectionSpec{
			ConnectorRef: v1alpha1.ConnectorReference{Name: connector},
			Auth:         v1alpha1.AuthSpec{Method: method, SecretRef: v1alpha1.SecretReference{Name: secret}},
		},
	}
	Expect(k8s.Create(ctx, conn)).To(Succeed())
	return client.ObjectKeyFromObject(conn)
}

// getConn reads a Connection straight from the API server.
func getConn(ctx context.Context, key client.ObjectKey) *v1alpha1.Connection {
	conn := &v1alpha1.Connection{}
	Expect(k8s.Get(ctx, key, conn)).To(Succeed())
	return conn
}

// conditionOf returns a func for Eventually: the condition of a type, or nil.
func conditionOf(ctx context.Context, key client.ObjectKey, typ string) func() *metav1.Condition {
	return func() *metav1.Condition {
		return meta.FindStatusCondition(getConn(ctx, key).Status.Conditions, typ)
	}
}

func haveStatusReason(s metav1.ConditionStatus, reason string) OmegaMatcher {
	return And(Not(BeNil()), HaveField("Status", s), HaveField("Reason", reason))
}

// kstatusOf computes the kstatus health of an object as Flux and Argo CD read it.
func kstatusOf(ctx context.Context, key client.ObjectKey) func() status.Status {
	return func() status.Status {
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(getConn(ctx, key))
		Expect(err).NotTo(HaveOccurred())
		res, err := status.Compute(&unstructured.Unstructured{Object: u})
		Expect(err).NotTo(HaveOccurred())
		return res.Status
	}
}

var _ = Describe("Connection", func() {
	const timeout = 20 * time.Second

	It("becomes Ready with the vendor identity for a valid API token", func(ctx SpecContext) {
		s := newSite(ctx, v1alpha1.ConnectorTypeJira)
		ns := newNamespace(ctx, nil)
		createSecret(ctx, ns, "jira", map[string]string{"email": s.account.Email, "apiToken": s.account.APIToken})
		key := createConnection(ctx, ns, s.connector.Name, v1alpha1.AuthMethodAPIToken, "jira")

		Eventually(conditionOf(ctx, key, v1alpha1.ReadyCondition), timeout).Should(haveStatusReason(metav1.ConditionTrue, v1alpha1.SucceededReason))
		conn := getConn(ctx, key)
		Expect(conn.Status.Identity).To(Equal(&v1alpha1.IdentityStatus{AccountID: s.account.ID, DisplayName: s.account.DisplayName, TimeZone: s.account.TimeZone}))
		Expect(conn.Status.Type).To(Equal(v1alpha1.ConnectorTypeJira))
		Expect(conn.Status.Probe).NotTo(BeNil())
		Expect(conn.Status.Probe.LastTime).NotTo(BeNil())
		Expect(conn.Status.ObservedGeneration).To(Equal(conn.Generation))
		for _, c := range conn.Status.Conditions {
			Expect(c.ObservedGeneration).To(Equal(conn.Generation), "condition %s", c.Type)
		}
		Expect(meta.IsStatusConditionTrue(conn.Status.Conditions, v1alpha1.CredentialsValidCondition)).To(BeTrue())
		Expect(meta.FindStatusCondition(conn.Status.Conditions, v1alpha1.StalledCondition)).To(BeNil())
		Expect(meta.FindStatusCondition(conn.Status.Conditions, v1alpha1.ReconcilingCondition)).To(BeNil())
		Expect(kstatusOf(ctx, key)()).To(Equal(status.CurrentStatus))

		By("counting it on the Connector")
		Eventually(func() []int32 {
			c := &v1alpha1.Connector{}
			Expect(k8s.Get(ctx, client.ObjectKeyFromObject(s.connector), c)).To(Succeed())
			return []int32{c.Status.Connections, c.Status.ReadyConnections}
		}, timeout).Should(Equal([]int32{1, 1}))
	})

	It("becomes Ready with a personal access token against Confluence", func(ctx SpecContext) {
		s := newSite(ctx, v1alpha1.ConnectorTypeConfluence)
		ns := newNamespace(ctx, nil)
		createSecret(ctx, ns, "wiki", map[string]string{"token": s.account.PAT})
		key := createConnection(ctx, ns, s.connector.Name, v1alpha1.AuthMethodPAT, "wiki")

		Eventually(conditionOf(ctx, key, v1alpha1.ReadyCondition), timeout).Should(haveStatusReason(metav1.ConditionTrue, v1alpha1.SucceededReason))
		Expect(getConn(ctx, key).Status.Identity.AccountID).To(Equal(s.account.ID))
		Expect(s.fake.CountRequests("/wiki/rest/api/user/current")).To(BeNumerically(">=", 1))
	})

	It("stalls on a rejected token without retrying in a loop, and recovers when the Secret is fixed", func(ctx SpecContext) {
		s := newSite(ctx, v1alpha1.ConnectorTypeJira)
		ns := newNamespace(ctx, nil)
		secret := createSecret(ctx, ns, "jira", map[string]string{"email": s.account.Email, "apiToken": secrets.Token("wrong")})
		key := createConnection(ctx, ns, s.connector.Name, v1alpha1.AuthMethodAPIToken, "jira")

		Eventually(conditionOf(ctx, key, v1alpha1.CredentialsValidCondition), timeout).Should(haveStatusReason(metav1.ConditionFalse, v1alpha1.CredentialsRejectedReason))
		Expect(conditionOf(ctx, key, v1alpha1.StalledCondition)()).To(haveStatusReason(metav1.ConditionTrue, v1alpha1.CredentialsRejectedReason))
		Expect(conditionOf(ctx, key, v1alpha1.ReadyCondition)()).To(haveStatusReason(metav1.ConditionFalse, v1alpha1.CredentialsRejectedReason))
		Expect(kstatusOf(ctx, key)()).To(Equal(status.FailedStatus))

		By("making at most 2 vendor calls over the following 30 s")
		Consistently(func() int { return s.fake.CountRequests("/rest/api/3/myself") }, 30*time.Second, time.Second).Should(BeNumerically("<=", 2))

		By("fixing the Secret, without touching the Connection")
		generation := getConn(ctx, key).Generation
		secret.StringData = map[string]string{"apiToken": s.account.APIToken}
		Expect(k8s.Update(ctx, secret)).To(Succeed())
		Eventually(conditionOf(ctx, key, v1alpha1.ReadyCondition), 10*time.Second).Should(haveStatusReason(metav1.ConditionTrue, v1alpha1.SucceededReason))
		Expect(conditionOf(ctx, key, v1alpha1.StalledCondition)()).To(BeNil())
		Expect(getConn(ctx, key).Generation).To(Equal(generation))
		Expect(kstatusOf(ctx, key)()).To(Equal(status.CurrentStatus))
	})

	DescribeTable("reports why it cannot work",
		func(ctx SpecContext, setup func(ctx context.Context, s *site, ns string) client.ObjectKey, reason string) {
			s := newSite(ctx, v1alpha1.ConnectorTypeJira, func(c *v1alpha1.Connector) {
				c.Spec.AllowedNamespaces = &metav1.LabelSelector{MatchLabels: map[string]string{"tenant": "yes"}}
			})
			ns := newNamespace(ctx, map[string]string{"tenant": "yes"})
			key := setup(ctx, s, ns)
			Eventually(conditionOf(ctx, key, v1alpha1.ReadyCondition), timeout).Should(haveStatusReason(metav1.ConditionFalse, reason))
			Expect(conditionOf(ctx, key, v1alpha1.StalledCondition)()).To(haveStatusReason(metav1.ConditionTrue, reason))
			Expect(kstatusOf(ctx, key)()).To(Equal(status.FailedStatus))
			Expect(s.fake.CountRequests("/rest/api/3/myself")).To(BeZero(), "nothing to ask the vendor")
		},
		Entry("missing Secret", func(ctx context.Context, s *site, ns string) client.ObjectKey {
			return createConnection(ctx, ns, s.connector.Name, v1alpha1.AuthMethodAPIToken, "absent")
		}, v1alpha1.SecretNotFoundReason),
		Entry("Secret missing a key", func(ctx context.Context, s *site, ns string) client.ObjectKey {
			createSecret(ctx, ns, "partial", map[string]string{"email": s.account.Email})
			return createConnection(ctx, ns, s.connector.Name, v1alpha1.AuthMethodAPIToken, "partial")
		}, v1alpha1.SecretInvalidReason),
		Entry("namespace not allowed", func(ctx context.Context, s *site, _ string) client.ObjectKey {
			other := newNamespace(ctx, map[string]string{"tenant": "no"})
			createSecret(ctx, other, "jira", map[string]string{"email": s.account.Email, "apiToken": s.account.APIToken})
			return createConnection(ctx, other, s.connector.Name, v1alpha1.AuthMethodAPIToken, "jira")
		}, v1alpha1.NamespaceNotAllowedReason),
		Entry("auth method not allowed", func(ctx context.Context, s *site, ns string) client.ObjectKey {
			createSecret(ctx, ns, "oauth", map[string]string{"accessToken": secrets.Token("access")})
			return createConnection(ctx, ns, s.connector.Name, v1alpha1.AuthMethodOAuth2, "oauth")
		}, v1alpha1.AuthMethodNotAllowedReason),
		Entry("missing Connector", func(ctx context.Context, s *site, ns string) client.ObjectKey {
			createSecret(ctx, ns, "jira", map[string]string{"email": s.account.Email, "apiToken": s.account.APIToken})
			return createConnection(ctx, ns, "no-such-connector", v1alpha1.AuthMethodAPIToken, "jira")
		}, v1alpha1.ConnectorNotFoundReason),
	)

	It("admits a Connection once its namespace is labelled in", func(ctx SpecContext) {
		s := newSite(ctx, v1alpha1.ConnectorTypeJira, func(c *v1alpha1.Connector) {
			c.Spec.AllowedNamespaces = &metav1.LabelSelector{MatchLabels: map[string]string{"tenant": "yes"}}
		})
		ns := newNamespace(ctx, nil)
		createSecret(ctx, ns, "jira", map[string]string{"email": s.account.Email, "apiToken": s.account.APIToken})
		key := createConnection(ctx, ns, s.connector.Name, v1alpha1.AuthMethodAPIToken, "jira")
		Eventually(conditionOf(ctx, key, v1alpha1.ReadyCondition), timeout).Should(haveStatusReason(metav1.ConditionFalse, v1alpha1.NamespaceNotAllowedReason))

		nsObj := &corev1.Namespace{}
		Expect(k8s.Get(ctx, client.ObjectKey{Name: ns}, nsObj)).To(Succeed())
		nsObj.Labels = map[string]string{"tenant": "yes"}
		Expect(k8s.Update(ctx, nsObj)).To(Succeed())
		Eventually(conditionOf(ctx, key, v1alpha1.ReadyCondition), timeout).Should(haveStatusReason(metav1.ConditionTrue, v1alpha1.SucceededReason))
	})

	It("retries a vendor 503 with backoff and recovers when the vendor does", func(ctx SpecContext) {
		s := newSite(ctx, v1alpha1.ConnectorTypeJira)
		s.fake.SetFault(atlassiantest.Fault{Status: 503})
		ns := newNamespace(ctx, nil)
		createSecret(ctx, ns, "jira", map[string]string{"email": s.account.Email, "apiToken": s.account.APIToken})
		key := createConnection(ctx, ns, s.connector.Name, v1alpha1.AuthMethodAPIToken, "jira")

		Eventually(conditionOf(ctx, key, v1alpha1.ReadyCondition), timeout).Should(haveStatusReason(metav1.ConditionFalse, v1alpha1.VendorUnreachableReason))
		Expect(conditionOf(ctx, key, v1alpha1.ReconcilingCondition)()).To(haveStatusReason(metav1.ConditionTrue, v1alpha1.VendorUnreachableReason))
		Expect(conditionOf(ctx, key, v1alpha1.StalledCondition)()).To(BeNil())
		Expect(kstatusOf(ctx, key)()).To(Equal(status.InProgressStatus))
		Eventually(func() int { return s.fake.CountRequests("/rest/api/3/myself") }, timeout).Should(BeNumerically(">=", 2), "retried")

		s.fake.ClearFault()
		Eventually(conditionOf(ctx, key, v1alpha1.ReadyCondition), timeout).Should(haveStatusReason(metav1.ConditionTrue, v1alpha1.SucceededReason))
		Expect(kstatusOf(ctx, key)()).To(Equal(status.CurrentStatus))
	})

	It("waits out a 429's Retry-After, even when something else wakes it, then recovers", func(ctx SpecContext) {
		const retryAfter = 3 * time.Second
		s := newSite(ctx, v1alpha1.ConnectorTypeJira)
		s.fake.SetFault(atlassiantest.Fault{Status: 429, RetryAfter: retryAfter})
		ns := newNamespace(ctx, nil)
		secret := createSecret(ctx, ns, "jira", map[string]string{"email": s.account.Email, "apiToken": s.account.APIToken})
		key := createConnection(ctx, ns, s.connector.Name, v1alpha1.AuthMethodAPIToken, "jira")

		Eventually(conditionOf(ctx, key, v1alpha1.ReadyCondition), timeout).Should(haveStatusReason(metav1.ConditionFalse, v1alpha1.RateLimitedReason))
		Expect(kstatusOf(ctx, key)()).To(Equal(status.InProgressStatus))

		By("touching the Secret inside the window")
		secret.Labels = map[string]string{"touched": "yes"}
		Expect(k8s.Update(ctx, secret)).To(Succeed())

		Eventually(func() int { return s.fake.CountRequests("/rest/api/3/myself") }, timeout).Should(BeNumerically(">=", 3))
		s.fake.ClearFault()
		Eventually(conditionOf(ctx, key, v1alpha1.ReadyCondition), timeout).Should(haveStatusReason(metav1.ConditionTrue, v1alpha1.SucceededReason))

		By("checking that no request arrived inside a Retry-After window")
		reqs := s.fake.Requests()
		for i := 1; i < len(reqs); i++ {
			if reqs[i-1].Status == 429 {
				Expect(reqs[i].Time.Sub(reqs[i-1].Time)).To(BeNumerically(">=", retryAfter),
					"request %d came %s after a 429 asking for %s", i, reqs[i].Time.Sub(reqs[i-1].Time), retryAfter)
			}
		}
	})

	It("probes again at once when asked with the requested-at annotation", func(ctx SpecContext) {
		s := newSite(ctx, v1alpha1.ConnectorTypeJira)
		ns := newNamespace(ctx, nil)
		createSecret(ctx, ns, "jira", map[string]string{"email": s.account.Email, "apiToken": s.account.APIToken})
		key := createConnection(ctx, ns, s.connector.Name, v1alpha1.AuthMethodAPIToken, "jira")
		Eventually(conditionOf(ctx, key, v1alpha1.ReadyCondition), timeout).Should(haveStatusReason(metav1.ConditionTrue, v1alpha1.SucceededReason))
		before := s.fake.CountRequests("/rest/api/3/myself")

		conn := getConn(ctx, key)
		patch := client.MergeFrom(conn.DeepCopy())
		conn.Annotations = map[string]string{v1alpha1.RequestedAtAnnotation: "2026-11-21T10:00:00Z"}
		Expect(k8s.Patch(ctx, conn, patch)).To(Succeed())

		Eventually(func() string { return getConn(ctx, key).Status.LastHandledReconcileAt }, timeout).Should(Equal("2026-11-21T10:00:00Z"))
		Expect(s.fake.CountRequests("/rest/api/3/myself")).To(BeNumerically(">", before))
	})

	It("goes InProgress while it works on a new generation", func(ctx SpecContext) {
		s := newSite(ctx, v1alpha1.ConnectorTypeJira)
		// The probe takes 8 s (under the 10 s call deadline): long enough to observe the
		// work in progress, which is announced before the probe starts.
		s.fake.SetFault(atlassiantest.Fault{Latency: 8 * time.Second})
		ns := newNamespace(ctx, nil)
		createSecret(ctx, ns, "jira", map[string]string{"email": s.account.Email, "apiToken": s.account.APIToken})
		key := createConnection(ctx, ns, s.connector.Name, v1alpha1.AuthMethodAPIToken, "jira")
		// InProgress from the start (the CRD defaults status.observedGeneration to -1, so
		// the operator need not write a Reconciling condition first) until the probe ends.
		Consistently(kstatusOf(ctx, key), 3*time.Second, 200*time.Millisecond).Should(Equal(status.InProgressStatus))
		Eventually(kstatusOf(ctx, key), timeout).Should(Equal(status.CurrentStatus))
	})
})

var _ = Describe("Connector", func() {
	It("refuses a vendor at a metadata address with EgressDenied, even in dev mode", func(ctx SpecContext) {
		cnr := &v1alpha1.Connector{
			ObjectMeta: metav1.ObjectMeta{Name: "metadata-" + rand.String(6)},
			Spec:       v1alpha1.ConnectorSpec{Type: v1alpha1.ConnectorTypeJira, BaseURL: "https://169.254.169.254"},
		}
		Expect(k8s.Create(ctx, cnr)).To(Succeed())
		DeferCleanup(func(ctx context.Context) { _ = k8s.Delete(ctx, cnr) })
		Eventually(func() *metav1.Condition {
			c := &v1alpha1.Connector{}
			Expect(k8s.Get(ctx, client.ObjectKeyFromObject(cnr), c)).To(Succeed())
			return meta.FindStatusCondition(c.Status.Conditions, v1alpha1.StalledCondition)
		}, 20*time.Second).Should(haveStatusReason(metav1.ConditionTrue, v1alpha1.EgressDeniedReason))
	})

	It("needs its OAuth2 client Secret, and becomes Ready when it appears", func(ctx SpecContext) {
		s := newSite(ctx, v1alpha1.ConnectorTypeJira, func(c *v1alpha1.Connector) {
			c.Spec.AuthMethods = []v1alpha1.AuthMethod{v1alpha1.AuthMethodOAuth2}
			c.Spec.CloudID = "11223344-a1b2-3b33-c444-def123456789"
			c.Spec.OAuth2 = &v1alpha1.OAuth2Spec{ClientSecretRef: v1alpha1.SecretReference{Name: "oauth-client-" + rand.String(5)}}
		})
		key := client.ObjectKeyFromObject(s.connector)
		ready := func() *metav1.Condition {
			c := &v1alpha1.Connector{}
			Expect(k8s.Get(ctx, key, c)).To(Succeed())
			return meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ReadyCondition)
		}
		Eventually(ready, 20*time.Second).Should(haveStatusReason(metav1.ConditionFalse, v1alpha1.SecretNotFoundReason))

		createSecret(ctx, operatorNamespace, s.connector.Spec.OAuth2.ClientSecretRef.Name,
			map[string]string{"clientID": "client-id", "clientSecret": secrets.Token("client-secret")})
		Eventually(ready, 20*time.Second).Should(haveStatusReason(metav1.ConditionTrue, v1alpha1.SucceededReason))
	})
})

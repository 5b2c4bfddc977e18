package controllers_test

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
)

var _ = Describe("OAuth2 Connection", func() {
	const timeout = 20 * time.Second

	// oauthSite is a fake site whose Connector allows oauth2 through the fake's own
	// authorization server and gateway, with its client Secret in place.
	oauthSite := func(ctx context.Context) (*site, string) {
		clientID, clientSecret := "client-"+rand.String(6), secrets.Token("client-secret")
		var fakeURL string
		s := newSite(ctx, v1alpha1.ConnectorTypeJira, func(c *v1alpha1.Connector) {
			fakeURL = string(c.Spec.BaseURL)
			c.Spec.AuthMethods = []v1alpha1.AuthMethod{v1alpha1.AuthMethodOAuth2}
			c.Spec.CloudID = atlassiantest.CloudID
			c.Spec.OAuth2 = &v1alpha1.OAuth2Spec{
				ClientSecretRef: v1alpha1.SecretReference{Name: clientID},
				Scopes:          []string{"read:jira-work", "offline_access"},
				AuthorizeURL:    v1alpha1.URL(fakeURL + "/authorize"),
				TokenURL:        v1alpha1.URL(fakeURL + "/oauth/token"),
				APIBaseURL:      v1alpha1.URL(fakeURL),
			}
		})
		s.fake.AddOAuthClient(clientID, clientSecret)
		createSecret(ctx, operatorNamespace, clientID, map[string]string{"clientID": clientID, "clientSecret": clientSecret})
		return s, clientID
	}

	It("refreshes an expired access token, stores the rotated refresh token, and goes Ready", func(ctx SpecContext) {
		s, clientID := oauthSite(ctx)
		access, refresh, _ := s.fake.IssueOAuthTokens(clientID, s.account.ID)
		secrets.Remember(access, refresh)
		ns := newNamespace(ctx, nil)
		secret := createSecret(ctx, ns, "oauth", map[string]string{
			"accessToken": access, "refreshToken": refresh,
			"expiry": time.Now().Add(-time.Minute).UTC().Format(time.RFC3339),
		})
		key := createConnection(ctx, ns, s.connector.Name, v1alpha1.AuthMethodOAuth2, "oauth")

		Eventually(conditionOf(ctx, key, v1alpha1.ReadyCondition), timeout).Should(haveStatusReason(metav1.ConditionTrue, v1alpha1.SucceededReason))
		conn := getConn(ctx, key)
		Expect(conn.Status.Identity.AccountID).To(Equal(s.account.ID))
		Expect(conn.Status.Credentials).NotTo(BeNil())
		Expect(conn.Status.Credentials.ExpiresAt.Time).To(BeTemporally(">", time.Now().Add(50*time.Minute)))
		Expect(conn.Status.Credentials.LastRefreshTime).NotTo(BeNil())
		Expect(kstatusOf(ctx, key)()).To(Equal(status.CurrentStatus))

		var stored corev1.Secret
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(secret), &stored)).To(Succeed())
		Expect(string(stored.Data["refreshToken"])).NotTo(Equal(refresh), "the rotated refresh token was stored")
		secrets.Remember(string(stored.Data["accessToken"]), string(stored.Data["refreshToken"]))
		Expect(s.fake.CountRequests("/ex/jira/"+atlassiantest.CloudID+"/rest/api/3/myself")).To(BeNumerically(">=", 1), "called through the gateway")
	})

	It("stalls with RefreshFailed and a Warning Event when the refresh token is revoked", func(ctx SpecContext) {
		s, clientID := oauthSite(ctx)
		access, refresh, _ := s.fake.IssueOAuthTokens(clientID, s.account.ID)
		secrets.Remember(access, refresh)
		s.fake.RevokeRefreshToken(refresh)
		ns := newNamespace(ctx, nil)
		createSecret(ctx, ns, "oauth", map[string]string{
			"accessToken": access, "refreshToken": refresh,
			"expiry": time.Now().Add(-time.Minute).UTC().Format(time.RFC3339),
		})
		key := createConnection(ctx, ns, s.connector.Name, v1alpha1.AuthMethodOAuth2, "oauth")

		Eventually(conditionOf(ctx, key, v1alpha1.ReadyCondition), timeout).Should(haveStatusReason(metav1.ConditionFalse, v1alpha1.RefreshFailedReason))
		Expect(conditionOf(ctx, key, v1alpha1.StalledCondition)()).To(haveStatusReason(metav1.ConditionTrue, v1alpha1.RefreshFailedReason))
		Expect(kstatusOf(ctx, key)()).To(Equal(status.FailedStatus))
		Eventually(func() []string {
			var list eventsv1.EventList
			Expect(k8s.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
			var reasons []string
			for _, e := range list.Items {
				if e.Type == corev1.EventTypeWarning {
					reasons = append(reasons, e.Reason)
				}
			}
			return reasons
		}, timeout).Should(ContainElement(v1alpha1.RefreshFailedReason))
	})
})

package salesforce_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors/salesforce/salesforcetest"
	"github.com/unified-connectors/connector-operator/internal/syncer/sinktest"
)

var dataPath = salesforcetest.APIPath(salesforcetest.LatestAPIVersion)

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

func (s *suite) get(g Gomega, name string) v1alpha1.Connection {
	var c v1alpha1.Connection
	g.Expect(s.k8s.Get(context.Background(), client.ObjectKey{Namespace: tenant, Name: name}, &c)).To(Succeed())
	return c
}

// synced waits for a run that ended after since with Synced=True.
func (s *suite) synced(t *testing.T, name string, since time.Time) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		c := s.get(g, name)
		sc := condition(c, v1alpha1.SyncedCondition)
		g.Expect(sc.Status).To(Equal(metav1.ConditionTrue), "%s: %s", sc.Reason, sc.Message)
		g.Expect(c.Status.Sync).NotTo(BeNil())
		g.Expect(c.Status.Sync.LastSuccessfulSyncTime).NotTo(BeNil())
		g.Expect(c.Status.Sync.LastSuccessfulSyncTime.Time).To(BeTemporally(">=", since.Truncate(time.Second)))
	}, timeout, poll).Should(Succeed())
}

// 1. clientCredentials: the tenant's connected app → probe → Ready, identity from
// userinfo. Also the API's view of the type: capabilities, comments on Cases only.
func TestClientCredentialsProbe(t *testing.T) {
	t.Parallel()
	s, g := testEnv(t), NewWithT(t)
	o := newOrg(t)
	account, err := o.Insert("Account", salesforcetest.Fields{"Name": "Acme Corporation"})
	must(t, err)
	caseID, err := o.Insert("Case", salesforcetest.Fields{"Subject": "Cannot log in", "AccountId": account})
	must(t, err)
	_, err = o.AddComment(caseID, "We reset the password.")
	must(t, err)

	s.connector(t, "sf-cc", o, v1alpha1.AuthMethodClientCredentials)
	s.clientCredentialsSecret(t, "cc-app", o)
	s.connection(t, "cc", "sf-cc", v1alpha1.AuthMethodClientCredentials, "cc-app", nil)
	got := s.ready(t, "cc")
	g.Expect(got.Status.Type).To(BeEquivalentTo("salesforce"))
	g.Expect(got.Status.Identity).NotTo(BeNil())
	g.Expect(got.Status.Identity.AccountID).To(Equal(o.integration.ID))
	g.Expect(got.Status.Identity.DisplayName).To(Equal("Ivy Integration"))
	grants := o.TokenGrants()
	g.Expect(grants).NotTo(BeEmpty())
	g.Expect(grants[0].GrantType).To(Equal("client_credentials"))
	g.Expect(grants[0].ClientID).To(Equal(o.clientID))

	var list struct {
		Items []struct {
			Name         string          `json:"name"`
			Type         string          `json:"type"`
			ItemKinds    []string        `json:"itemKinds"`
			Capabilities map[string]bool `json:"capabilities"`
		} `json:"items"`
	}
	s.call(t, http.MethodGet, "/api/v1/connectors", nil, http.StatusOK, &list)
	found := false
	for _, c := range list.Items {
		if c.Name == "sf-cc" {
			found = true
			g.Expect(c.Type).To(Equal("salesforce"))
			g.Expect(c.ItemKinds).To(Equal([]string{"record"}))
			g.Expect(c.Capabilities).To(Equal(map[string]bool{"create": true, "comments": true, "changeFeed": true,
				"search": true, "rankedSearch": false, "snapshots": true, "deletions": true}))
		}
	}
	g.Expect(found).To(BeTrue(), "GET /api/v1/connectors lists sf-cc")

	base := "/api/v1/namespaces/" + tenant + "/connections/cc/items/"
	var problem struct{ Code string }
	s.call(t, http.MethodGet, base+account+"/comments", nil, http.StatusNotImplemented, &problem)
	g.Expect(problem.Code).To(Equal("NOT_SUPPORTED"))
	var comments struct {
		Items []struct {
			Text string `json:"text"`
		} `json:"items"`
	}
	s.call(t, http.MethodGet, base+caseID+"/comments", nil, http.StatusOK, &comments)
	g.Expect(comments.Items).To(HaveLen(1))
	g.Expect(comments.Items[0].Text).To(ContainSubstring("We reset the password."))
	var item struct{ ID, Kind, Title, Container, URL string }
	s.call(t, http.MethodGet, base+account, nil, http.StatusOK, &item)
	g.Expect(item.ID).To(Equal(account))
	g.Expect(item.Kind).To(Equal("record"))
	g.Expect(item.Title).To(Equal("Acme Corporation"))
	g.Expect(item.Container).To(Equal("Account"))
}

// 2. OAuth web server flow: authorize (302 to the org with PKCE S256) → the org's
// consent (302 to the callback with a code) → callback stores the tokens and
// instance_url → Ready as the consenting user.
func TestOAuthAuthorizeCallback(t *testing.T) {
	t.Parallel()
	s, g := testEnv(t), NewWithT(t)
	o := newOrg(t)
	s.connector(t, "sf-oauth", o, v1alpha1.AuthMethodOAuth2)
	s.connection(t, "oauth", "sf-oauth", v1alpha1.AuthMethodOAuth2, "oauth-tokens", nil)
	// The Connector must be Ready before the API starts an authorization.
	g.Eventually(func(g Gomega) {
		var cnr v1alpha1.Connector
		g.Expect(s.k8s.Get(context.Background(), client.ObjectKey{Name: "sf-oauth"}, &cnr)).To(Succeed())
		r := condition(v1alpha1.Connection{Status: v1alpha1.ConnectionStatus{Conditions: cnr.Status.Conditions}}, v1alpha1.ReadyCondition)
		g.Expect(r.Status).To(Equal(metav1.ConditionTrue), "%s: %s", r.Reason, r.Message)
	}, timeout, poll).Should(Succeed())

	var started struct {
		AuthorizeURL string `json:"authorizeURL"`
	}
	// The API admits from the manager's cache, which sees the Connector's verdict a
	// moment after the API server does (409 CONFLICT ConnectorNotReady meanwhile).
	authorize := "/oauth/v1/namespaces/" + tenant + "/connections/oauth/authorize"
	g.Eventually(func() int { return s.status(t, http.MethodGet, authorize) }, timeout, poll).Should(Equal(http.StatusFound))
	s.call(t, http.MethodGet, authorize, nil, http.StatusFound, &started)
	u, err := url.Parse(started.AuthorizeURL)
	must(t, err)
	g.Expect(u.Scheme + "://" + u.Host + u.Path).To(Equal(o.URL() + "/services/oauth2/authorize"))
	q := u.Query()
	g.Expect(q.Get("client_id")).To(Equal(o.clientID))
	g.Expect(q.Get("response_type")).To(Equal("code"))
	g.Expect(q.Get("code_challenge_method")).To(Equal("S256"))
	g.Expect(q.Get("code_challenge")).To(HaveLen(43))
	g.Expect(q.Get("redirect_uri")).To(Equal(s.apiURL + "/oauth/v1/callback"))

	// The browser follows to the org, which consents at once and sends it back.
	resp, err := noRedirects.Get(started.AuthorizeURL)
	must(t, err)
	_ = resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusFound))
	back, err := url.Parse(resp.Header.Get("Location"))
	must(t, err)
	g.Expect(back.Query().Get("error")).To(BeEmpty())
	secrets.Remember(back.Query().Get("code"))
	g.Expect(back.Scheme + "://" + back.Host + back.Path).To(Equal(s.apiURL + "/oauth/v1/callback"))
	var stored struct{ Namespace, Name, Secret string }
	s.call(t, http.MethodGet, strings.TrimPrefix(back.String(), s.apiURL), nil, http.StatusOK, &stored)
	g.Expect(stored.Secret).To(Equal("oauth-tokens"))

	var sec corev1.Secret
	must(t, s.k8s.Get(context.Background(), client.ObjectKey{Namespace: tenant, Name: "oauth-tokens"}, &sec))
	remember(string(sec.Data["accessToken"]), string(sec.Data["refreshToken"]))
	g.Expect(sec.Data["accessToken"]).NotTo(BeEmpty())
	g.Expect(sec.Data["refreshToken"]).NotTo(BeEmpty())
	g.Expect(string(sec.Data["instance_url"])).To(Equal(o.URL()))
	g.Expect(o.SessionLive(string(sec.Data["accessToken"]))).To(BeTrue())

	got := s.ready(t, "oauth")
	g.Expect(got.Status.Identity).NotTo(BeNil())
	g.Expect(got.Status.Identity.AccountID).To(Equal(salesforcetest.DefaultUser().ID))
	g.Expect(got.Status.Identity.DisplayName).To(Equal(salesforcetest.DefaultUser().Name))
}

// tokenSecret seeds an oauth2 Connection's Secret as a finished authorization would.
func (s *suite) tokenSecret(t *testing.T, name string, o *org) (access, refresh string) {
	t.Helper()
	access, refresh = o.IssueTokens(o.clientID, salesforcetest.DefaultUser().ID)
	remember(access, refresh)
	must(t, s.k8s.Create(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: name},
		StringData: map[string]string{"accessToken": access, "refreshToken": refresh, "instance_url": o.URL()}}))
	return access, refresh
}

// stamped gives records SystemModstamps at from + i/perSecond seconds, so that groups
// of perSecond records tie as Salesforce's second-resolution stamps do.
func stamped(from time.Time, perSecond int, more func(i int, f salesforcetest.Fields)) func(int) salesforcetest.Fields {
	return func(i int) salesforcetest.Fields {
		at := from.Add(time.Duration(i/perSecond) * time.Second)
		f := salesforcetest.Fields{"CreatedDate": at, "LastModifiedDate": at, "SystemModstamp": at}
		if more != nil {
			more(i, f)
		}
		return f
	}
}

// 3. An expired session is refreshed once and the call retried: the Connection stays
// Ready and the sync goes on. A revoked refresh token then gives RefreshFailed, Stalled,
// and no token calls in a loop.
func TestSessionExpiryAndRevokedRefresh(t *testing.T) {
	t.Parallel()
	s, g := testEnv(t), NewWithT(t)
	o := newOrg(t)
	sink := sinktest.NewServer()
	t.Cleanup(sink.Close)
	o.AddRecords("Account", 20, stamped(o.Now().Add(-time.Hour), 1, nil))
	s.connector(t, "sf-session", o, v1alpha1.AuthMethodOAuth2)
	_, refresh := s.tokenSecret(t, "session-tokens", o)
	s.connection(t, "session", "sf-session", v1alpha1.AuthMethodOAuth2, "session-tokens", syncTo(sink.URL(), 50, "Account"))
	s.ready(t, "session")
	g.Eventually(func() int { return sink.Check().Distinct }, timeout, poll).Should(Equal(20))
	g.Expect(o.Refreshes()).To(Equal(0), "a live session is not refreshed")

	o.ExpireSessions()
	o.AddRecords("Account", 5, stamped(o.Now().Add(-5*time.Second), 5, nil))
	s.requestNow(t, "session")
	g.Eventually(func() int { return sink.Check().Distinct }, timeout, poll).Should(Equal(25), "the sync goes on after the refresh")
	g.Expect(o.Refreshes()).To(Equal(1), "one refresh for the probe and the sync together")
	c := s.ready(t, "session")
	g.Expect(condition(c, v1alpha1.StalledCondition).Status).NotTo(Equal(metav1.ConditionTrue))
	var sec corev1.Secret
	must(t, s.k8s.Get(context.Background(), client.ObjectKey{Namespace: tenant, Name: "session-tokens"}, &sec))
	remember(string(sec.Data["accessToken"]), string(sec.Data["refreshToken"]))
	g.Expect(o.SessionLive(string(sec.Data["accessToken"]))).To(BeTrue(), "the new session is in the Secret")

	// Revoked (as an admin revoking the app's access): every session of the grant dies
	// and the refresh answers invalid_grant.
	o.RevokeRefreshToken(refresh)
	o.RevokeRefreshToken(string(sec.Data["refreshToken"]))
	s.requestNow(t, "session")
	g.Eventually(func(g Gomega) {
		c := s.get(g, "session")
		r := condition(c, v1alpha1.ReadyCondition)
		g.Expect(r.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(r.Reason).To(Equal(v1alpha1.RefreshFailedReason), r.Message)
		g.Expect(condition(c, v1alpha1.StalledCondition).Status).To(Equal(metav1.ConditionTrue))
	}, timeout, poll).Should(Succeed())
	calls := len(o.TokenGrants())
	g.Consistently(func() int { return len(o.TokenGrants()) }, 5*time.Second, 250*time.Millisecond).
		Should(BeNumerically("<=", calls+1), "no refresh loop once stalled")
	t.Logf("token calls: %d in all, %d in the 5 s after RefreshFailed", len(o.TokenGrants()), len(o.TokenGrants())-calls)
}

// 4. Backfill of 3 types × 5,000 records: complete, each record's newest version,
// ordered per container, no duplicates; records touched during the backfill are
// delivered again, newer, by the next run.
func TestBackfill(t *testing.T) {
	t.Parallel()
	s, g := testEnv(t), NewWithT(t)
	o := newOrg(t)
	sink := sinktest.NewServer()
	t.Cleanup(sink.Close)
	const perType = 5000
	from := o.Now().Add(-3 * time.Hour)
	types := []string{"Account", "Contact", "Case"}
	var all []string
	for _, typ := range types {
		all = append(all, o.AddRecords(typ, perType, stamped(from, 3, nil))...)
	}
	// Between two batches of the first walk, 50 Accounts change.
	touched := all[:50]
	o.AfterRequest(dataPath+"/queryAll/", 1, func() { o.Touch(o.Now().Add(-time.Second), touched...) })

	s.connector(t, "sf-bulk", o, v1alpha1.AuthMethodClientCredentials)
	s.clientCredentialsSecret(t, "bulk-app", o)
	start := time.Now()
	s.connection(t, "bulk", "sf-bulk", v1alpha1.AuthMethodClientCredentials, "bulk-app", syncTo(sink.URL(), 500, types...))
	g.Eventually(func() int { return sink.Check().Distinct }, timeout, poll).Should(Equal(3 * perType))
	took := time.Since(start)
	s.synced(t, "bulk", start)
	queries := o.CountRequests(dataPath + "/queryAll")
	t.Logf("backfill: %d records in %s (from Connection creation, probe included); %d queryAll requests, %d API requests, %d sink batches",
		3*perType, took.Round(10*time.Millisecond), queries, o.CountRequests(dataPath), sink.Batches())

	asked := time.Now()
	s.requestNow(t, "bulk")
	s.synced(t, "bulk", asked)
	g.Eventually(func(g Gomega) {
		newest := map[string]time.Time{}
		for _, it := range sink.Items() {
			if it.UpdatedAt.After(newest[it.ID]) {
				newest[it.ID] = it.UpdatedAt
			}
		}
		g.Expect(newest).To(HaveLen(3 * perType))
		stale := 0
		for _, id := range all {
			f, ok := o.Record(id)
			g.Expect(ok).To(BeTrue())
			if at, _ := f["SystemModstamp"].(time.Time); !newest[id].Equal(at) {
				stale++
			}
		}
		g.Expect(stale).To(Equal(0), "every record's newest version delivered")
	}, timeout, poll).Should(Succeed())
	r := sink.Check()
	t.Logf("after the second run: %+v", r)
	g.Expect(r.Distinct).To(Equal(3 * perType))
	g.Expect(r.OutOfOrder).To(Equal(0), "update order per container")
	g.Expect(r.Duplicates).To(Equal(0))
	g.Expect(r.Deliveries).To(Equal(3*perType+len(touched)), "the touched records once more, nothing else")
}

// 5 and 6. 100 records touched in the same second (Salesforce stores seconds), spread
// over several batches whose locators expire mid-walk, are delivered exactly once, in
// that run and the next; deleted records reach the sink as item.deleted events.
func TestSameSecondAndDeletions(t *testing.T) {
	t.Parallel()
	s, g := testEnv(t), NewWithT(t)
	o := newOrg(t)
	o.SetBatchSize(40)
	sink := sinktest.NewServer()
	t.Cleanup(sink.Close)
	ids := o.AddRecords("Case", 300, stamped(o.Now().Add(-2*time.Hour), 1, func(i int, f salesforcetest.Fields) {
		f["Subject"] = fmt.Sprintf("Case %d", i)
	}))
	s.connector(t, "sf-tie", o, v1alpha1.AuthMethodClientCredentials)
	s.clientCredentialsSecret(t, "tie-app", o)
	start := time.Now()
	s.connection(t, "tie", "sf-tie", v1alpha1.AuthMethodClientCredentials, "tie-app", syncTo(sink.URL(), 30, "Case"))
	g.Eventually(func() int { return sink.Check().Distinct }, timeout, poll).Should(Equal(300))
	s.synced(t, "tie", start)

	at := o.Now().Add(-2 * time.Second).Truncate(time.Second)
	group := ids[100:200]
	o.Touch(at, group...)
	o.AfterRequest(dataPath+"/queryAll/", 1, o.ExpireQueryLocators)
	deliveries := func() map[string]int {
		n := map[string]int{}
		for _, it := range sink.Items() {
			if it.UpdatedAt.Equal(at) {
				n[it.ID]++
			}
		}
		return n
	}
	once := map[string]int{}
	for _, id := range group {
		once[id] = 1
	}
	asked := time.Now()
	s.requestNow(t, "tie")
	g.Eventually(deliveries, timeout, poll).Should(Equal(once))
	s.synced(t, "tie", asked)
	asked = time.Now()
	s.requestNow(t, "tie")
	s.synced(t, "tie", asked)
	g.Expect(deliveries()).To(Equal(once), "a later run (look-back included) sends none of them again")
	g.Expect(sink.Check().Deliveries).To(Equal(400))

	gone := ids[:5]
	for _, id := range gone {
		must(t, o.Delete(id))
	}
	// A walk leaves the current second to the next one (stamps are seconds): ask for
	// the run once the org's clock has left the second of the deletions.
	deletedAt := o.Now().Truncate(time.Second)
	g.Eventually(func() time.Time { return o.Now().Truncate(time.Second) }, timeout, 50*time.Millisecond).Should(BeTemporally(">", deletedAt))
	s.requestNow(t, "tie")
	g.Eventually(func(g Gomega) {
		got := map[string]string{}
		for _, d := range sink.Deletions() {
			got[d.ID] = d.Container
		}
		for _, id := range gone {
			g.Expect(got).To(HaveKeyWithValue(id, "Case"))
		}
		g.Expect(got).To(HaveLen(len(gone)))
	}, timeout, poll).Should(Succeed())
}

// 7. A tenant's filter and an API search string full of SOQL/SOSL metacharacters
// cannot change the query: the filter is parenthesized (an OR inside it does not escape
// the SystemModstamp window), a filter that tries to close the parenthesis is refused
// before any query, and the search text is escaped inside FIND {…}.
func TestFilterAndSearchInjection(t *testing.T) {
	t.Parallel()
	s, g := testEnv(t), NewWithT(t)
	o := newOrg(t)
	sink := sinktest.NewServer()
	t.Cleanup(sink.Close)
	now := o.Now()
	industries := []string{"Energy", "Retail", "Technology"}
	o.AddRecords("Account", 15, stamped(now.Add(-3*time.Hour), 1, func(i int, f salesforcetest.Fields) {
		f["Industry"], f["Name"] = industries[i%3], fmt.Sprintf("Old %d", i)
	}))
	recent := o.AddRecords("Account", 15, stamped(now.Add(-30*time.Minute), 1, func(i int, f salesforcetest.Fields) {
		f["Industry"], f["Name"] = industries[i%3], fmt.Sprintf("Recent %d", i)
	}))
	var want []string
	for i, id := range recent {
		if industries[i%3] != "Technology" {
			want = append(want, id)
		}
	}
	s.connector(t, "sf-filter", o, v1alpha1.AuthMethodClientCredentials)
	s.clientCredentialsSecret(t, "filter-app", o)
	const filter = "Industry = 'Energy' OR Industry = 'Retail'"
	since := metav1.NewTime(now.Add(-time.Hour))
	start := time.Now()
	s.connection(t, "filter", "sf-filter", v1alpha1.AuthMethodClientCredentials, "filter-app", func(spec *v1alpha1.ConnectionSpec) {
		syncTo(sink.URL(), 50, "Account")(spec)
		spec.Scope.Filter = filter
		spec.Sync.Since = &since
	})
	s.synced(t, "filter", start)
	var got []string
	for _, it := range sink.Items() {
		got = append(got, it.ID)
	}
	g.Expect(got).To(ConsistOf(want), "only recent Energy and Retail Accounts: the OR stays inside its parentheses")
	var walks int
	for _, r := range o.Requests() {
		if strings.HasPrefix(r.Path, dataPath+"/queryAll") && r.Query != "" {
			walks++
			g.Expect(r.Query).To(ContainSubstring("AND (" + filter + ")"))
		}
	}
	g.Expect(walks).To(BeNumerically(">", 0))

	const evil = "Name = 'x') OR (Name != 'x'"
	s.connection(t, "filter-evil", "sf-filter", v1alpha1.AuthMethodClientCredentials, "filter-app", func(spec *v1alpha1.ConnectionSpec) {
		syncTo(sink.URL(), 50, "Account")(spec)
		spec.Scope.Filter = evil
	})
	g.Eventually(func(g Gomega) {
		sc := condition(s.get(g, "filter-evil"), v1alpha1.SyncedCondition)
		g.Expect(sc.Status).To(Equal(metav1.ConditionFalse), "%s: %s", sc.Reason, sc.Message)
	}, timeout, poll).Should(Succeed())
	for _, r := range o.Requests() {
		g.Expect(r.Query).NotTo(ContainSubstring("Name != 'x'"), "the unbalanced filter never reaches the org")
	}
	g.Expect(len(sink.Items())).To(Equal(len(want)))

	// Search: every SOSL reserved character in the text is escaped inside FIND {…}, so
	// the text cannot end the search term, add a RETURNING clause or widen the match.
	const text = `Recent} RETURNING User(Id), Account(Name) WHERE (Industry:"x" OR * & ~ ^ [a] ! + - ? \`
	o.ResetRequests()
	var found struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
		Sources []struct {
			Name, Status string
		} `json:"sources"`
	}
	s.call(t, http.MethodGet, "/api/v1/search?connections="+tenant+"/filter&q="+url.QueryEscape(text), nil, http.StatusOK, &found)
	g.Expect(found.Sources).To(HaveLen(1))
	g.Expect(found.Sources[0].Status).To(Equal("ok"))
	g.Expect(found.Items).To(BeEmpty(), "nothing matches the text literally")
	var sosl []string
	for _, r := range o.Requests() {
		if r.Path == dataPath+"/search" {
			sosl = append(sosl, r.Query)
		}
	}
	g.Expect(sosl).To(HaveLen(1))
	g.Expect(sosl[0]).To(HavePrefix("FIND {" + escapeSOSL(text) + "}"))
	rest := strings.TrimPrefix(sosl[0], "FIND {"+escapeSOSL(text)+"}")
	g.Expect(rest).To(HavePrefix(" IN ALL FIELDS RETURNING Account("), "the Connection's filter and types only")
	g.Expect(rest).NotTo(ContainSubstring("User"))
}

// escapeSOSL is the SOSL reference's rule: a backslash before each reserved character
// ? & | ! { } [ ] ( ) ^ ~ * : \ " ' + -.
func escapeSOSL(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`?&|!{}[]()^~*:\"'+-`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// 8. REQUEST_LIMIT_EXCEEDED: the Connection reads RateLimited (not Stalled, not
// CredentialsRejected), and nothing calls the org inside the hold.
func TestRequestLimitExceeded(t *testing.T) {
	t.Parallel()
	s, g := testEnv(t), NewWithT(t)
	o := newOrg(t)
	sink := sinktest.NewServer()
	t.Cleanup(sink.Close)
	o.AddRecords("Account", 30, stamped(o.Now().Add(-time.Hour), 1, nil))
	s.connector(t, "sf-limit", o, v1alpha1.AuthMethodClientCredentials)
	s.clientCredentialsSecret(t, "limit-app", o)
	start := time.Now()
	s.connection(t, "limit", "sf-limit", v1alpha1.AuthMethodClientCredentials, "limit-app", syncTo(sink.URL(), 50, "Account"))
	s.synced(t, "limit", start)

	_, limit := o.APIUsage()
	o.SetAPIUsage(limit)
	s.requestNow(t, "limit")
	g.Eventually(func(g Gomega) {
		sc := condition(s.get(g, "limit"), v1alpha1.SyncedCondition)
		g.Expect(sc.Reason).To(Equal(v1alpha1.RateLimitedReason), sc.Message)
	}, timeout, poll).Should(Succeed())
	// The next probe is held too: Ready reads RateLimited.
	s.requestNow(t, "limit")
	g.Eventually(func(g Gomega) {
		c := s.get(g, "limit")
		r := condition(c, v1alpha1.ReadyCondition)
		g.Expect(r.Status).To(Equal(metav1.ConditionFalse), "%s: %s", r.Reason, r.Message)
		g.Expect(r.Reason).To(Equal(v1alpha1.RateLimitedReason), r.Message)
		g.Expect(condition(c, v1alpha1.StalledCondition).Status).NotTo(Equal(metav1.ConditionTrue))
	}, timeout, poll).Should(Succeed())

	o.ResetRequests()
	s.requestNow(t, "limit")
	g.Consistently(func() []salesforcetest.Request { return o.Requests() }, 5*time.Second, 250*time.Millisecond).
		Should(BeEmpty(), "no call to the org inside the hold, requested-at included")
	c := s.get(g, "limit")
	r := condition(c, v1alpha1.ReadyCondition)
	g.Expect(r.Reason).To(Equal(v1alpha1.RateLimitedReason))
	g.Expect(r.Reason).NotTo(Equal(v1alpha1.CredentialsRejectedReason))
	g.Expect(condition(c, v1alpha1.StalledCondition).Status).NotTo(Equal(metav1.ConditionTrue))
}

// Prune through the delete log: a minute after the backfill the prune of a Salesforce
// container reads getDeleted since the last prune and sends its deletions as
// item.deleted events, walking no ids (lastPruneMode deletionLog); where the log no longer
// reaches back to the last prune (purged), it walks every live id instead and says so
// (lastPruneMode snapshot). Both orgs run side by side: the prune interval's minimum is a
// minute.
func TestPruneByDeletionLogElseSnapshot(t *testing.T) {
	t.Parallel()
	for _, purged := range []bool{false, true} {
		t.Run(fmt.Sprintf("purged=%v", purged), func(t *testing.T) {
			t.Parallel()
			s, g := testEnv(t), NewWithT(t)
			o := newOrg(t)
			sink := sinktest.NewServer()
			t.Cleanup(sink.Close)
			ids := o.AddRecords("Account", 20, stamped(o.Now().Add(-2*time.Hour), 1, nil))
			name := "prune-" + strconv.FormatBool(purged)
			s.connector(t, "sf-"+name, o, v1alpha1.AuthMethodClientCredentials)
			s.clientCredentialsSecret(t, name+"-app", o)
			start := time.Now()
			s.connection(t, name, "sf-"+name, v1alpha1.AuthMethodClientCredentials, name+"-app", func(spec *v1alpha1.ConnectionSpec) {
				syncTo(sink.URL(), 50, "Account")(spec)
				spec.Sync.PruneInterval = &metav1.Duration{Duration: time.Minute}
			})
			g.Eventually(func() int { return sink.Check().Distinct }, timeout, poll).Should(Equal(20))
			s.synced(t, name, start)
			container := func() v1alpha1.ContainerSyncStatus {
				c := &v1alpha1.Connection{}
				must(t, s.k8s.Get(context.Background(), client.ObjectKey{Namespace: tenant, Name: name}, c))
				if c.Status.Sync == nil || len(c.Status.Sync.Containers) != 1 {
					return v1alpha1.ContainerSyncStatus{}
				}
				return c.Status.Sync.Containers[0]
			}
			g.Eventually(func() *metav1.Time { return container().LastPruneTime }, timeout, poll).ShouldNot(BeNil())

			gone := ids[:3]
			for _, id := range gone {
				must(t, o.Delete(id))
			}
			// The incremental run sends them first, from queryAll's IsDeleted rows (once
			// the org's clock has left the deletions' second: a walk leaves it to the next).
			deletedAt := o.Now().Truncate(time.Second)
			g.Eventually(func() time.Time { return o.Now().Truncate(time.Second) }, timeout, 50*time.Millisecond).Should(BeTemporally(">", deletedAt))
			s.requestNow(t, name)
			g.Eventually(func() int { return len(sink.Deletions()) }, timeout, poll).Should(Equal(len(gone)))
			if purged {
				// The recycle bin was emptied after the last prune: the log starts later.
				o.SetEarliestDeletedDate(o.Now().Add(time.Minute))
			}
			// The prune falls due a minute after the backfill; the engine runs then.
			g.Eventually(func() string { return container().LastPruneMode }, 2*time.Minute+timeout, poll).ShouldNot(BeEmpty())
			snapshots := 0
			for _, e := range sink.Events() {
				if e.Type == "dev.unified.connectors.container.snapshot" {
					snapshots++
				}
			}
			if purged {
				g.Expect(container().LastPruneMode).To(Equal(v1alpha1.PruneModeSnapshot))
				g.Expect(snapshots).To(BeNumerically(">", 0), "a purged log falls back to a full id walk")
				return
			}
			g.Expect(container().LastPruneMode).To(Equal(v1alpha1.PruneModeDeletionLog))
			g.Expect(snapshots).To(BeZero(), "the log served the prune: no id walk")
			g.Eventually(func(g Gomega) {
				n := map[string]int{}
				for _, d := range sink.Deletions() {
					n[d.ID]++
				}
				for _, id := range gone {
					// Once from queryAll's IsDeleted rows, once from the delete log.
					g.Expect(n[id]).To(BeNumerically(">=", 2), "deletions of %s", id)
				}
			}, timeout, poll).Should(Succeed())
		})
	}
}

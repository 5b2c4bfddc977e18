package vendorhttp_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/connectors/atlassian"
	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
	"github.com/unified-connectors/connector-operator/connectors/jira"
	"github.com/unified-connectors/connector-operator/internal/egress"
	"github.com/unified-connectors/connector-operator/internal/vendorhttp"
)

const searchPath = "/rest/api/3/search/jql"

func jiraClient(t *testing.T, fake *atlassiantest.Server, acct atlassiantest.Account, http connectors.Doer) connectors.Client {
	t.Helper()
	c, err := jira.Provider{}.NewClient(connectors.Config{
		BaseURL: fake.URL(), HTTP: http,
		Credentials: atlassian.APITokenCredentials(acct.Email, acct.APIToken),
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestListingAgainstARateLimitedVendor lists 2,000 issues from a vendor that allows 5
// requests a second while the Connection is configured for 10 (burst 20): the client
// adapts to the vendor's near-limit warnings, so fewer than 1% of its calls get a 429.
func TestListingAgainstARateLimitedVendor(t *testing.T) {
	fake := atlassiantest.NewServer()
	defer fake.Close()
	acct := atlassiantest.Account{ID: "a1", DisplayName: "A", Email: "a@example.com", APIToken: "rl-token"}
	fake.AddAccount(acct)
	fake.SeedJira(atlassiantest.JiraSeed{Projects: 1, IssuesPerProject: 2000, Seed: 9, Start: time.Now().Add(-24 * time.Hour)})
	fake.SetRateLimit(5)

	vc := vendorhttp.New(vendorhttp.Options{ConnectorType: "jira", RequestsPerSecond: 10, Burst: 20,
		Egress: egress.Vendor.WithAllowInsecure(true)})
	client := jiraClient(t, fake, acct, vc)

	seen := map[string]bool{}
	cursor := ""
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		page, err := client.Items(ctx, connectors.ItemQuery{Container: "PRJA", Cursor: cursor, Limit: 20})
		cancel()
		if err != nil {
			t.Fatalf("listing: %v", err)
		}
		for _, it := range page.Items {
			seen[it.ID] = true
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if len(seen) != 2000 {
		t.Fatalf("listed %d distinct issues, want 2000", len(seen))
	}
	var calls, limited int
	for _, r := range fake.Requests() {
		if r.Path == searchPath {
			calls++
			if r.Status == http.StatusTooManyRequests {
				limited++
			}
		}
	}
	t.Logf("%d calls, %d answered 429", calls, limited)

	if limited*100 >= calls {
		t.Fatalf("%d of %d calls (≥ 1%%) were answered 429", limited, calls)
	}
}

// TestNoRequestInsideRetryAfter drains the vendor's budget behind the client's back, so
// the client's next call gets a 429 with Retry-After; its retry must wait the full window.
func TestNoRequestInsideRetryAfter(t *testing.T) {
	fake := atlassiantest.NewServer()
	defer fake.Close()
	acct := atlassiantest.Account{ID: "a1", DisplayName: "A", Email: "a@example.com", APIToken: "rl-token"}
	fake.AddAccount(acct)
	fake.SeedJira(atlassiantest.JiraSeed{Projects: 1, IssuesPerProject: 50, Seed: 9, Start: time.Now().Add(-time.Hour)})
	vc := vendorhttp.New(vendorhttp.Options{ConnectorType: "jira", RequestsPerSecond: 50, Burst: 50,
		Egress: egress.Vendor.WithAllowInsecure(true)})
	client := jiraClient(t, fake, acct, vc)

	for round := range 3 {
		fake.SetRateLimit(2)
		// Another tenant of the same site spends the budget.
		for range 2 {
			req, _ := http.NewRequest(http.MethodGet, fake.URL()+"/rest/api/3/myself", nil)
			req.SetBasicAuth(acct.Email, acct.APIToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if _, err := client.Items(ctx, connectors.ItemQuery{Container: "PRJA", Limit: 10}); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		cancel()
	}
	var last time.Time
	var after429 bool
	retries := 0
	for _, r := range fake.Requests() {
		if r.Path != searchPath {
			continue
		}
		if after429 {
			retries++
			if gap := r.Time.Sub(last); gap < time.Second {
				t.Fatalf("a request came %s after a 429 asking for at least 1s", gap)
			}
		}
		last, after429 = r.Time, r.Status == http.StatusTooManyRequests
	}
	if retries == 0 {
		t.Fatal("the test provoked no 429: it proves nothing")
	}
}

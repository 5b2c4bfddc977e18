package salesforce_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/connectors/salesforce"
	"github.com/unified-connectors/connector-operator/connectors/salesforce/salesforcetest"
	"github.com/unified-connectors/connector-operator/internal/egress"
	"github.com/unified-connectors/connector-operator/internal/vendorhttp"
)

// TestIdentity is the probe: user Id, name and zone from UserInfo, the org Id kept.
func TestIdentity(t *testing.T) {
	o := newOrg(t)
	id, err := o.client.Identity(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	u := salesforcetest.DefaultUser()
	if id.AccountID != u.ID || id.DisplayName != u.Name || id.TimeZone == "" {
		t.Errorf("identity %+v, want %+v", id, u)
	}
	if o.client.OrganizationID() != o.fake.OrgID() || id.Organization != o.fake.OrgID() {
		t.Errorf("organization %q (identity %q), want %q", o.client.OrganizationID(), id.Organization, o.fake.OrgID())
	}
}

// TestSessionExpired: a dead session is KindSessionExpired on UserInfo (403
// Bad_OAuth_Token) and on the REST API (401 INVALID_SESSION_ID), never KindAuth.
func TestSessionExpired(t *testing.T) {
	o := newOrg(t)
	o.fake.ExpireSessions()
	_, err := o.client.Identity(t.Context())
	wantKind(t, err, connectors.KindSessionExpired)
	o.checkSafe(err)
	_, err = o.client.Containers(t.Context(), "", 10)
	wantKind(t, err, connectors.KindSessionExpired)
	if salesforce.ErrorCode(err) != "INVALID_SESSION_ID" || !strings.Contains(err.Error(), "INVALID_SESSION_ID") {
		t.Errorf("error %q does not name INVALID_SESSION_ID", err)
	}
	o.checkSafe(err)
}

// TestRequestLimitHolds: REQUEST_LIMIT_EXCEEDED is KindRateLimited with a hold of at
// least LimitHold, during which no further call reaches Salesforce.
func TestRequestLimitHolds(t *testing.T) {
	o := newOrg(t)
	o.fake.SetAPILimit(1000)
	o.fake.SetAPIUsage(1000)
	_, err := o.client.Containers(t.Context(), "", 10)
	wantKind(t, err, connectors.KindRateLimited)
	if ra := connectors.RetryAfterOf(err); ra < salesforce.LimitHold {
		t.Errorf("retry after %s, want at least %s", ra, salesforce.LimitHold)
	}
	o.checkSafe(err)
	sent := len(o.fake.Requests())
	for range 3 {
		_, err = o.client.Item(t.Context(), "001000000000001AAA")
		wantKind(t, err, connectors.KindRateLimited)
	}
	if n := len(o.fake.Requests()); n != sent {
		t.Errorf("%d calls reached the org inside the hold", n-sent)
	}
	if _, held := o.client.Throttle(); held <= 0 {
		t.Error("Throttle reports no hold")
	}
}

// TestRequestLimitHoldsEveryClientOfTheOrg: the operator builds a new Client for each
// probe, sync run and API call; a hold seen by one keeps the next from calling the org.
func TestRequestLimitHoldsEveryClientOfTheOrg(t *testing.T) {
	o := newOrg(t)
	o.fake.SetAPILimit(1000)
	o.fake.SetAPIUsage(1000)
	_, err := o.client.Containers(t.Context(), "", 10)
	wantKind(t, err, connectors.KindRateLimited)
	sent := len(o.fake.Requests())
	next := o.newClient(nil)
	_, err = next.Identity(t.Context())
	wantKind(t, err, connectors.KindRateLimited)
	if n := len(o.fake.Requests()); n != sent {
		t.Errorf("a new Client made %d calls to the org inside the hold", n-sent)
	}
	if _, held := next.Throttle(); held <= 0 {
		t.Error("the new Client's Throttle reports no hold")
	}
}

// TestTransientErrors: 503 SERVER_UNAVAILABLE and UNABLE_TO_LOCK_ROW are KindUnavailable.
func TestTransientErrors(t *testing.T) {
	o := newOrg(t)
	o.fake.FailNext(1, salesforcetest.Fault{Status: http.StatusServiceUnavailable})
	_, err := o.client.Containers(t.Context(), "", 10)
	wantKind(t, err, connectors.KindUnavailable)
	if salesforce.ErrorCode(err) != "SERVER_UNAVAILABLE" {
		t.Errorf("code %q", salesforce.ErrorCode(err))
	}
	o.fake.LockRowsNext(1)
	_, err = o.client.Create(t.Context(), connectors.NewItem{Container: "Account", Title: "Acme"})
	wantKind(t, err, connectors.KindUnavailable)
	if salesforce.ErrorCode(err) != "UNABLE_TO_LOCK_ROW" {
		t.Errorf("code %q", salesforce.ErrorCode(err))
	}
	o.checkSafe(err, "Acme")
}

// TestRefusedQueriesDoNotLeak: the fake's MALFORMED_QUERY and INVALID_FIELD messages
// quote the query; the connector's errors hold neither the query nor the filter.
func TestRefusedQueriesDoNotLeak(t *testing.T) {
	o := newOrg(t)
	seed(o, "Account", 3, nil)
	for _, filter := range []string{
		"Secret_Field__c = 'hush-hush'", // INVALID_FIELD: no such column
		"Name = 42",                     // INVALID_FIELD: type mismatch
		"Description = 'x'",             // textarea: cannot be filtered
	} {
		_, err := o.client.Changes(t.Context(), connectors.ChangeQuery{Container: connectors.Container{Key: "Account"}, Filter: filter})
		wantKind(t, err, connectors.KindInvalid)
		if salesforce.ErrorCode(err) == "" {
			t.Errorf("filter %q: the fake did not refuse it (%v); the test proves nothing", filter, err)
		}
		o.checkSafe(err, filter, "hush-hush", "SELECT", "SystemModstamp >=")
	}
	_, err := o.client.Items(t.Context(), connectors.ItemQuery{Container: "NoSuchType__c"})
	wantKind(t, err, connectors.KindNotFound)
	o.checkSafe(err)
}

// TestLimitInfo: every answer's Sforce-Limit-Info is read; from 90% the client spaces
// its calls out.
func TestLimitInfo(t *testing.T) {
	o := newOrg(t)
	if used, limit, at := o.client.APIUsage(); used != 0 || limit != 0 || !at.IsZero() {
		t.Fatalf("usage before any call: %d/%d at %s", used, limit, at)
	}
	o.fake.SetAPILimit(15000)
	o.fake.SetAPIUsage(100)
	if _, err := o.client.Containers(t.Context(), "", 10); err != nil {
		t.Fatal(err)
	}
	used, limit, at := o.client.APIUsage()
	if used != 101 || limit != 15000 || at.IsZero() {
		t.Errorf("usage %d/%d at %s, want 101/15000", used, limit, at)
	}
	if pause, _ := o.client.Throttle(); pause != 0 {
		t.Errorf("pause %s at 0.7%%", pause)
	}
	o.fake.SetAPIUsage(14300)
	if _, err := o.client.Item(t.Context(), o.fake.AddRecords("Account", 1, nil)[0]); err != nil {
		t.Fatal(err)
	}
	if pause, _ := o.client.Throttle(); pause != salesforce.ThrottleAt95 {
		t.Errorf("pause %s at 95%%, want %s", pause, salesforce.ThrottleAt95)
	}
}

// TestInstanceURLCheck: data calls go to instance_url only if it is the baseURL's host
// or a Salesforce domain; the refusal names the host, never the token.
func TestInstanceURLCheck(t *testing.T) {
	o := newOrg(t)
	for raw, ok := range map[string]bool{
		o.fake.URL():                                  true,
		"https://acme.my.salesforce.com":              true,
		"https://acme--dev.sandbox.my.salesforce.com": true,
		"https://na139.salesforce.com":                false, // not a My Domain host
		"https://acme.lightning.force.com":            false, // Sites can live under force.com
		"https://evil.example.com":                    false,
		"https://salesforce.com.evil.example":         false,
		"https://salesforce.com":                      false,
		"https://evil.example.com/.salesforce.com":    false,
		"http://acme.my.salesforce.com":               false,
		"https://acme.my.salesforce.com:8443":         false,
		"https://user:pw@acme.my.salesforce.com":      false,
		"https://acme.my.salesforce.com?x=1":          false,
		"not a url":                                   false,
	} {
		cfg := o.config(nil)
		cfg.Credentials.Values = map[string]string{salesforce.TokenFieldInstanceURL: raw}
		_, err := salesforce.New(cfg)
		if ok != (err == nil) {
			t.Errorf("instance_url %q: err %v, want ok=%v", raw, err, ok)
		}
		if err != nil {
			wantKind(t, err, connectors.KindEgressDenied)
			o.checkSafe(err, "pw")
		}
	}
	// The fake answers a foreign instance_url in its token answer; a client built on it
	// is refused before any call.
	cfg := o.config(nil)
	cfg.Credentials.Values[salesforce.TokenFieldInstanceURL] = "https://attacker.example.net"
	_, err := salesforce.New(cfg)
	if err == nil || !strings.Contains(err.Error(), "attacker.example.net") {
		t.Fatalf("err %v does not name the host", err)
	}
}

// TestCreateIsNeverRetried: behind the operator's retrying vendor client, a GET that
// meets a 503 is retried, and a create that meets one is not.
func TestCreateIsNeverRetried(t *testing.T) {
	o := newOrg(t)
	doer := vendorhttp.New(vendorhttp.Options{ConnectorType: "salesforce", RequestsPerSecond: 100, Burst: 100,
		Egress: egress.Vendor.WithAllowInsecure(true), BaseBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	c := o.newClient(doer)
	if _, err := c.Containers(t.Context(), "", 10); err != nil { // warms describeGlobal
		t.Fatal(err)
	}
	o.fake.FailNext(1, salesforcetest.Fault{Status: http.StatusServiceUnavailable})
	if _, err := c.Containers(t.Context(), "", 10); err != nil {
		t.Fatalf("a GET after one 503 was not retried: %v", err)
	}
	if _, err := c.Create(t.Context(), connectors.NewItem{Container: "Case", Title: "warm-up"}); err != nil {
		t.Fatal(err)
	}
	o.fake.ResetRequests()
	o.fake.FailNext(1, salesforcetest.Fault{Status: http.StatusServiceUnavailable})
	_, err := c.Create(t.Context(), connectors.NewItem{Container: "Case", Title: "Printer on fire", Text: "smoke"})
	wantKind(t, err, connectors.KindUnavailable)
	posts := 0
	for _, r := range o.fake.Requests() {
		if r.Method == http.MethodPost {
			posts++
		}
	}
	if posts != 1 {
		t.Fatalf("%d POSTs after a 503, want exactly 1", posts)
	}
}

// TestUsageOutlivesItsClient: the usage one Client read is what the next Client of the
// org reports and paces by (the operator builds one per probe, run and API call); before,
// every new Client reported nothing and started at full speed.
func TestUsageOutlivesItsClient(t *testing.T) {
	o := newOrg(t)
	o.fake.SetAPILimit(1000)
	o.fake.SetAPIUsage(950)
	if _, err := o.client.Containers(t.Context(), "", 10); err != nil {
		t.Fatal(err)
	}
	next := o.newClient(nil)
	u, ok := next.Usage()
	if !ok || u.Limit != 1000 || u.Used < 950 || !u.Slowed {
		t.Fatalf("a new Client of the org reports %+v (ok %v), want the usage read before and slowed", u, ok)
	}
	if pause, _ := next.Throttle(); pause <= 0 {
		t.Error("the new Client does not pace its calls")
	}
}

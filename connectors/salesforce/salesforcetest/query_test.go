package salesforcetest_test

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unified-connectors/connector-operator/connectors/salesforce/salesforcetest"
)

func TestQueryErrorsOverHTTP(t *testing.T) {
	o := newOrg(t)
	for q, code := range map[string]string{
		"SELECT Id FROM Account WHERE":               "MALFORMED_QUERY",
		"SELECT Nope FROM Account":                   "INVALID_FIELD",
		"SELECT Id FROM Nope__c":                     "INVALID_TYPE",
		"SELECT Id FROM Account WHERE Name = 'a\\x'": "MALFORMED_QUERY",
	} {
		o.soql("query", q).wantError(t, http.StatusBadRequest, code)
	}
	o.get(data("/query")).wantError(t, http.StatusBadRequest, "MALFORMED_QUERY")
}

var locatorURL = regexp.MustCompile(`^` + regexp.QuoteMeta(salesforcetest.APIPath(v)) + `/(query|queryAll)/01g[0-9A-Za-z]{15}-(\d+)$`)

func TestQueryPagingAndLocators(t *testing.T) {
	o := newOrg(t)
	o.AddRecords("Account", 4500, nil)
	first := o.mustQuery("query", "SELECT Id, Name FROM Account ORDER BY Id")
	if first.TotalSize != 4500 || first.Done || len(first.Records) != 2000 {
		t.Fatalf("first batch: total %d done %v records %d", first.TotalSize, first.Done, len(first.Records))
	}
	m := locatorURL.FindStringSubmatch(first.NextRecordsURL)
	if m == nil || m[2] != "2000" {
		t.Fatalf("nextRecordsUrl %q", first.NextRecordsURL)
	}
	all := o.queryAllPages("query", "SELECT Id, Name FROM Account ORDER BY Id")
	got := ids(all)
	if len(got) != 4500 || !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != 4500 {
		t.Fatalf("walk: %d records, sorted %v", len(got), slices.IsSorted(got))
	}
	// Sforce-Query-Options asks for smaller batches.
	req := mustReq(t, o.URL()+data("/query?q=SELECT+Id+FROM+Account"))
	req.Header.Set("Authorization", "Bearer "+o.access)
	req.Header.Set("Sforce-Query-Options", "batchSize=500")
	var small queryResult
	do(t, req).json(t, &small)
	if len(small.Records) != 500 {
		t.Errorf("batchSize=500 gave %d", len(small.Records))
	}
	// Locators expire: every nextRecordsUrl answered so far dies.
	o.ExpireQueryLocators()
	msg := o.get(first.NextRecordsURL).wantError(t, http.StatusBadRequest, "INVALID_QUERY_LOCATOR")
	if msg != "invalid query locator" {
		t.Errorf("message %q", msg)
	}
	o.get(data("/query/01gHs0000000000001AAA-2000")).wantError(t, http.StatusBadRequest, "INVALID_QUERY_LOCATOR")
}

func TestLocatorIdleExpiryAndSnapshot(t *testing.T) {
	o := newOrg(t)
	clock := salesforcetest.NewManualClock(t0)
	o.SetClock(clock.Now)
	accts := o.AddRecords("Account", 2500, nil)
	first := o.mustQuery("query", "SELECT Id, Name FROM Account ORDER BY Id")
	// The cursor is a snapshot: a change after the query does not show in later pages.
	if err := o.Update(accts[2400], salesforcetest.Fields{"Name": "changed"}); err != nil {
		t.Fatal(err)
	}
	var second queryResult
	o.get(first.NextRecordsURL).json(t, &second)
	for _, r := range second.Records {
		if r["Name"] == "changed" {
			t.Errorf("a later page shows a change made after the query")
		}
	}
	again := o.mustQuery("query", "SELECT Id, Name FROM Account ORDER BY Id")
	clock.Advance(16 * time.Minute)
	o.get(again.NextRecordsURL).wantError(t, http.StatusBadRequest, "INVALID_QUERY_LOCATOR")
}

func TestQueryLocatorPerUserLimit(t *testing.T) {
	o := newOrg(t)
	o.AddRecords("Account", 2001, nil)
	var urls []string
	for range 11 {
		urls = append(urls, o.mustQuery("query", "SELECT Id FROM Account").NextRecordsURL)
	}
	// The eleventh open cursor releases the oldest.
	o.get(urls[0]).wantError(t, http.StatusBadRequest, "INVALID_QUERY_LOCATOR")
	if a := o.get(urls[10]); a.status != http.StatusOK {
		t.Errorf("newest cursor: %d %s", a.status, a.body)
	}
}

func TestQueryAllAndTies(t *testing.T) {
	o := newOrg(t)
	clock := salesforcetest.NewManualClock(t0)
	o.SetClock(clock.Now)
	cases := o.AddRecords("Case", 100, nil)
	o.Touch(t0.Add(time.Minute+300*time.Millisecond), cases...)
	clock.Advance(2 * time.Minute)
	if err := o.Delete(cases[7]); err != nil {
		t.Fatal(err)
	}
	window := "SystemModstamp >= 2026-03-04T05:07:07Z AND SystemModstamp < 2026-03-04T05:07:08Z"
	live := o.queryAllPages("query", "SELECT Id FROM Case WHERE "+window)
	if len(live) != 99 {
		t.Errorf("query of the tied second: %d, want 99", len(live))
	}
	withDeleted := o.queryAllPages("queryAll", "SELECT Id, IsDeleted, SystemModstamp FROM Case WHERE SystemModstamp >= 2026-03-04T05:07:07Z ORDER BY SystemModstamp, Id")
	if len(withDeleted) != 100 {
		t.Fatalf("queryAll: %d, want 100", len(withDeleted))
	}
	if !slices.IsSorted(ids(withDeleted)[:99]) {
		t.Errorf("ORDER BY SystemModstamp, Id is not Id order within the tie")
	}
	if last := withDeleted[99]; last["Id"] != cases[7] || last["IsDeleted"] != true {
		t.Errorf("deleted row (stamped later) should come last: %v", last)
	}
	// Without Id in ORDER BY, the tie comes in no useful order.
	loose := ids(o.queryAllPages("query", "SELECT Id FROM Case WHERE "+window+" ORDER BY SystemModstamp"))
	if slices.IsSorted(loose) {
		t.Errorf("a tie without an Id key came in Id order; the fake should not promise that")
	}
}

// TestCommitDelay shows why a connector re-reads a window behind its cursor: a record
// stamped before others becomes visible after them.
func TestCommitDelay(t *testing.T) {
	o := newOrg(t)
	clock := salesforcetest.NewManualClock(t0)
	o.SetClock(clock.Now)
	early := o.AddRecords("Account", 1, nil)[0]
	o.SetCommitDelay(30 * time.Second)
	slow := early
	o.Touch(t0.Add(10*time.Second), slow) // stamped at +10 s, visible from +40 s
	o.SetCommitDelay(0)
	clock.Advance(20 * time.Second)
	fast := o.AddRecords("Account", 1, nil)[0] // stamped at +20 s, visible at once
	q := "SELECT Id, SystemModstamp FROM Account WHERE SystemModstamp > 2026-03-04T05:06:07Z ORDER BY SystemModstamp, Id"
	first := ids(o.mustQuery("query", q).Records)
	if !slices.Equal(first, []string{fast}) {
		t.Fatalf("before the slow commit: %v, want only %s", first, fast)
	}
	// Reads by Id see the old version too.
	rec := o.get(data("/sobjects/Account/" + slow))
	if strings.Contains(string(rec.body), "05:06:17") {
		t.Errorf("the uncommitted stamp is visible by Id: %s", rec.body)
	}
	clock.Advance(21 * time.Second)
	second := o.mustQuery("query", q).Records
	if len(second) != 2 || second[0]["Id"] != slow || second[0]["SystemModstamp"] != "2026-03-04T05:06:17.000+0000" {
		t.Fatalf("after the commit: %v", second)
	}
}

func TestGetDeletedAndUpdated(t *testing.T) {
	o := newOrg(t)
	clock := salesforcetest.NewManualClock(t0)
	o.SetClock(clock.Now)
	contacts := o.AddRecords("Contact", 3, nil)
	clock.Advance(time.Hour)
	if err := o.Delete(contacts[0]); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour)
	window := func(start, end time.Time) string {
		return "?start=" + start.Format(time.RFC3339) + "&end=" + end.Format(time.RFC3339)
	}
	a := o.get(data("/sobjects/Contact/deleted/" + window(t0, clock.Now())))
	var got struct {
		DeletedRecords []struct{ ID, DeletedDate string } `json:"deletedRecords"`
		Earliest       string                             `json:"earliestDateAvailable"`
		Latest         string                             `json:"latestDateCovered"`
	}
	a.json(t, &got)
	if a.status != http.StatusOK || len(got.DeletedRecords) != 1 || got.DeletedRecords[0].ID != contacts[0] || got.DeletedRecords[0].DeletedDate != "2026-03-04T06:06:07.000+0000" {
		t.Fatalf("getDeleted: %d %s", a.status, a.body)
	}
	if got.Latest != "2026-03-04T07:06:00.000+0000" || got.Earliest == "" {
		t.Errorf("latestDateCovered %q (seconds are dropped), earliest %q", got.Latest, got.Earliest)
	}
	// Windows over 30 days, backwards, or before earliestDateAvailable are refused.
	o.get(data("/sobjects/Contact/deleted/"+window(clock.Now().Add(-31*24*time.Hour), clock.Now()))).wantError(t, 400, "INVALID_REPLICATION_DATE")
	o.get(data("/sobjects/Contact/deleted/"+window(clock.Now(), t0))).wantError(t, 400, "INVALID_REPLICATION_DATE")
	o.get(data("/sobjects/Contact/deleted/"+window(clock.Now().Add(-16*24*time.Hour), clock.Now()))).wantError(t, 400, "INVALID_REPLICATION_DATE")
	o.SetEarliestDeletedDate(t0.Add(90 * time.Minute))
	o.get(data("/sobjects/Contact/deleted/"+window(t0, clock.Now()))).wantError(t, 400, "INVALID_REPLICATION_DATE")
	b := o.get(data("/sobjects/Contact/deleted/" + window(t0.Add(90*time.Minute), clock.Now())))
	var purged struct {
		DeletedRecords []any  `json:"deletedRecords"`
		Earliest       string `json:"earliestDateAvailable"`
	}
	b.json(t, &purged)
	if b.status != http.StatusOK || len(purged.DeletedRecords) != 0 || purged.Earliest != "2026-03-04T06:36:00.000+0000" {
		t.Errorf("after the purge: %d %s", b.status, b.body)
	}
	u := o.get(data("/sobjects/Contact/updated/" + window(t0, clock.Now())))
	var upd struct{ IDs []string }
	u.json(t, &upd)
	if len(upd.IDs) != 2 || slices.Contains(upd.IDs, contacts[0]) {
		t.Errorf("getUpdated %s", u.body)
	}
}

func TestAPIUsageLimit(t *testing.T) {
	o := newOrg(t)
	o.SetAPILimit(5)
	o.SetAPIUsage(3)
	a := o.get(data("/sobjects"))
	if a.header.Get("Sforce-Limit-Info") != "api-usage=4/5" {
		t.Errorf("Sforce-Limit-Info %q", a.header.Get("Sforce-Limit-Info"))
	}
	var lim map[string]map[string]int
	o.get(data("/limits")).json(t, &lim)
	if lim["DailyApiRequests"]["Max"] != 5 || lim["DailyApiRequests"]["Remaining"] != 0 {
		t.Errorf("limits %v", lim["DailyApiRequests"])
	}
	over := o.soql("query", "SELECT Id FROM Account")
	if msg := over.wantError(t, http.StatusForbidden, "REQUEST_LIMIT_EXCEEDED"); msg != "TotalRequests Limit exceeded." {
		t.Errorf("message %q", msg)
	}
	if over.header.Get("Sforce-Limit-Info") != "api-usage=6/5" {
		t.Errorf("over the limit: Sforce-Limit-Info %q", over.header.Get("Sforce-Limit-Info"))
	}
	// The versions list needs no session and counts nothing.
	vs := o.callAs("", http.MethodGet, "/services/data/", "")
	var versions []map[string]string
	vs.json(t, &versions)
	if vs.status != 200 || vs.header.Get("Sforce-Limit-Info") != "" || versions[len(versions)-1]["version"] != salesforcetest.LatestAPIVersion {
		t.Errorf("versions: %d %q %s", vs.status, vs.header.Get("Sforce-Limit-Info"), vs.body)
	}
	if used, _ := o.APIUsage(); used != 6 {
		t.Errorf("usage %d, want 6", used)
	}
	o.get("/services/data/v20.0/sobjects").wantError(t, 404, "NOT_FOUND")
}

func TestFaults(t *testing.T) {
	o := newOrg(t)
	o.FailNext(1, salesforcetest.Fault{Status: 503, RetryAfter: 1500 * time.Millisecond})
	a := o.get(data("/sobjects"))
	a.wantError(t, 503, "SERVER_UNAVAILABLE")
	if a.header.Get("Retry-After") != "2" {
		t.Errorf("Retry-After %q", a.header.Get("Retry-After"))
	}
	if o.get(data("/sobjects")).status != 200 {
		t.Errorf("FailNext(1) lasted")
	}
	// Faults at the OAuth endpoints leave the API alone, and the reverse.
	o.SetFault(salesforcetest.Fault{Status: 503, OAuth: true})
	if o.get(data("/sobjects")).status != 200 {
		t.Errorf("an OAuth fault broke the API")
	}
	if o.form("/services/oauth2/token", refreshForm(o.refresh)).status != 503 {
		t.Errorf("OAuth fault not applied")
	}
	o.ClearFault()
	o.LockRowsNext(1)
	o.call(http.MethodPost, data("/sobjects/Account"), `{"Name":"x"}`).wantError(t, 400, "UNABLE_TO_LOCK_ROW")
	if n := o.mustQuery("query", "SELECT Id FROM Account").TotalSize; n != 0 {
		t.Errorf("a locked write wrote %d records", n)
	}
	if o.call(http.MethodPost, data("/sobjects/Account"), `{"Name":"x"}`).status != http.StatusCreated {
		t.Errorf("LockRowsNext(1) lasted")
	}
	o.SetFault(salesforcetest.Fault{Latency: time.Hour})
	client := &http.Client{Timeout: 100 * time.Millisecond}
	req := mustReq(t, o.URL()+data("/sobjects"))
	if _, err := client.Do(req); err == nil {
		t.Errorf("latency fault answered within the client's deadline")
	}
	o.ClearFault()
}

func TestAfterRequestHook(t *testing.T) {
	o := newOrg(t)
	accts := o.AddRecords("Account", 2500, nil)
	first := o.mustQuery("query", "SELECT Id FROM Account ORDER BY Id")
	deleted := false
	o.AfterRequest(data("/query/"), 1, func() { deleted = o.Delete(accts[0]) == nil })
	o.get(first.NextRecordsURL)
	if !deleted {
		t.Fatal("hook did not run after the second page")
	}
	if n := o.mustQuery("query", "SELECT Id FROM Account").TotalSize; n != 2499 {
		t.Errorf("after the hook: %d", n)
	}
}

func TestCustomTypeQuery(t *testing.T) {
	o := newOrg(t)
	o.AddCustomType("Invoice__c", "Invoice", salesforcetest.Field{Name: "Amount__c", Type: salesforcetest.TypeCurrency})
	o.AddRecords("Invoice__c", 3, func(i int) salesforcetest.Fields {
		return salesforcetest.Fields{"Name": fmt.Sprintf("INV-%d", i), "Amount__c": float64(i * 10)}
	})
	r := o.mustQuery("query", "SELECT Name, Amount__c FROM Invoice__c WHERE Amount__c >= 10 ORDER BY Amount__c DESC")
	if r.TotalSize != 2 || r.Records[0]["Name"] != "INV-2" || r.Records[0]["Amount__c"] != float64(20) {
		t.Errorf("custom query %+v", r)
	}
	// Fields come in SELECT order.
	a := o.soql("query", "SELECT Amount__c, Name FROM Invoice__c LIMIT 1")
	if !regexp.MustCompile(`"attributes":\{[^}]*\},"Amount__c":[^,]+,"Name"`).Match(a.body) {
		t.Errorf("field order: %s", a.body)
	}
}

// TestConcurrentUse queries, pages and writes from many goroutines (run with -race).
func TestConcurrentUse(t *testing.T) {
	o := newOrg(t)
	accts := o.AddRecords("Account", 2100, nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			o.Touch(t0.Add(time.Duration(i)*time.Second), accts[i%len(accts)])
		}
	}()
	errs := make(chan string, 8)
	for range 4 {
		go func() {
			for range 3 {
				req := mustReq(t, o.URL()+data("/query?q=SELECT+Id+FROM+Account+ORDER+BY+Id"))
				req.Header.Set("Authorization", "Bearer "+o.access)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					errs <- err.Error()
					return
				}
				var r queryResult
				if err := decodeJSON(resp, &r); err != nil || r.TotalSize != 2100 {
					errs <- fmt.Sprintf("total %d err %v", r.TotalSize, err)
					return
				}
			}
			errs <- ""
		}()
	}
	for range 4 {
		if e := <-errs; e != "" {
			t.Error(e)
		}
	}
	<-done
}

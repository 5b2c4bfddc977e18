package salesforce_test

import (
	"strings"
	"testing"
	"time"

	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/connectors/salesforce"
	"github.com/unified-connectors/connector-operator/connectors/salesforce/salesforcetest"
)

// seed adds n records of typ stamped from past on, three to a second (so stamps tie),
// and returns their Ids.
func seed(o *org, typ string, n int, fill func(i int) salesforcetest.Fields) []string {
	return o.fake.AddRecords(typ, n, func(i int) salesforcetest.Fields {
		f := salesforcetest.Fields{}
		if fill != nil {
			f = fill(i)
		}
		at := past.Add(time.Duration(i/3) * time.Second)
		f["CreatedDate"], f["SystemModstamp"], f["LastModifiedDate"] = at, at, at
		return f
	})
}

// TestBackfillThreeTypes walks 3 types × 5,000 records through Changes in pages of 100,
// as the sync engine does: every record once, in (SystemModstamp, Id) order, at one API
// call per 2,000-record batch (one queryAll and two locators a type).
func TestBackfillThreeTypes(t *testing.T) {
	o := newOrg(t)
	o.fake.AddCustomType("Invoice__c", "Invoice", salesforcetest.Field{Name: "Amount__c", Type: salesforcetest.TypeCurrency})
	want := map[string][]string{
		"Account":    seed(o, "Account", 5000, nil),
		"Case":       seed(o, "Case", 5000, func(i int) salesforcetest.Fields { return salesforcetest.Fields{"Subject": "Printer on fire"} }),
		"Invoice__c": seed(o, "Invoice__c", 5000, func(i int) salesforcetest.Fields { return salesforcetest.Fields{"Amount__c": float64(i)} }),
	}
	for typ, ids := range want {
		o.fake.ResetRequests()
		items := walkAll(t, func(int) *salesforce.Client { return o.client }, typ, time.Time{}, "", 100)
		checkOrderedOnce(t, items, ids)
		api := o.fake.CountRequests("/services/data/v66.0/queryAll")
		if api != 3 {
			t.Errorf("%s: %d queryAll calls for 5,000 records, want 3 (one query, two locators)", typ, api)
		}
		if it := items[0]; it.Container != typ || it.Kind != connectors.KindRecord || it.Type != "salesforce" {
			t.Errorf("%s: first item %+v", typ, it)
		}
	}
	if n := o.client.Buffered(); n != 0 {
		t.Errorf("%d read-ahead buffers left after complete walks", n)
	}
}

// TestSameSecondGroup touches 100 records in one second and walks them with batches of
// 30 and pages of 40, alternating between two clients (so half the calls find no
// read-ahead and continue by key set): each is delivered exactly once.
func TestSameSecondGroup(t *testing.T) {
	o := newOrg(t)
	ids := seed(o, "Account", 150, nil)
	at := past.Add(time.Hour)
	group := ids[20:120]
	o.fake.Touch(at, group...)
	o.fake.SetBatchSize(30)
	other := o.newClient(nil)
	clients := []*salesforce.Client{o.client, other}
	o.fake.ResetRequests()
	items := walkAll(t, func(i int) *salesforce.Client { return clients[i%2] }, "Account", at, "", 40)
	checkOrderedOnce(t, items, group)
	keyset := 0
	for _, q := range o.queries() {
		if strings.Contains(q, "SystemModstamp > "+at.Format("2006-01-02T15:04:05Z")+" OR Id > '") {
			keyset++
		}
	}
	if keyset == 0 {
		t.Errorf("no call continued inside the second by key set; queries: %q", o.queries())
	}
	// The same walk on one client: no keyset queries, locators only.
	o.fake.ResetRequests()
	items = walkAll(t, func(int) *salesforce.Client { return o.client }, "Account", at, "", 40)
	checkOrderedOnce(t, items, group)
	if n := len(o.queries()); n != 1 {
		t.Errorf("one client sent %d queries, want 1 (then locators)", n)
	}
}

// TestLocatorExpiresMidWalk expires every query locator after the first batch: the walk
// starts over from the last record delivered, losing and repeating nothing.
func TestLocatorExpiresMidWalk(t *testing.T) {
	o := newOrg(t)
	ids := seed(o, "Case", 5000, nil)
	o.fake.AfterRequest("/services/data/v66.0/queryAll", 1, o.fake.ExpireQueryLocators)
	o.fake.AfterRequest("/services/data/v66.0/queryAll", 3, o.fake.ExpireQueryLocators)
	o.fake.ResetRequests()
	items := walkAll(t, func(int) *salesforce.Client { return o.client }, "Case", time.Time{}, "", 100)
	checkOrderedOnce(t, items, ids)
	expired := 0
	for _, r := range o.fake.Requests() {
		if r.Status == 400 {
			expired++
		}
	}
	if expired != 2 || len(o.queries()) != 3 {
		t.Errorf("%d refused locators and %d queries, want 2 and 3", expired, len(o.queries()))
	}
}

// TestDeletedRowsBecomeDeletedItems: queryAll shows recycle-bin rows, which come as
// Item{Deleted: true} at their deletion stamp.
func TestDeletedRowsBecomeDeletedItems(t *testing.T) {
	o := newOrg(t)
	clock := salesforcetest.NewManualClock(past.Add(2 * time.Hour))
	o.fake.SetClock(clock.Now)
	ids := seed(o, "Account", 10, nil)
	for _, id := range ids[:3] {
		if err := o.fake.Delete(id); err != nil {
			t.Fatal(err)
		}
	}
	items := walkAll(t, func(int) *salesforce.Client { return o.client }, "Account", time.Time{}, "", 100)
	deleted := map[string]bool{}
	for _, it := range items {
		if it.Deleted {
			deleted[it.ID] = true
			if !it.UpdatedAt.Equal(clock.Now().Truncate(time.Second)) || it.Container != "Account" {
				t.Errorf("deleted item %+v", it)
			}
		}
	}
	if len(items) != 10 || len(deleted) != 3 || !deleted[ids[0]] || !deleted[ids[2]] {
		t.Fatalf("%d items, deleted %v; want 10 with %v deleted", len(items), deleted, ids[:3])
	}
	live, err := o.client.LiveIDs(t.Context(), connectors.Container{Key: "Account"}, "")
	if err != nil || len(live.Items) != 7 {
		t.Fatalf("LiveIDs = %v, %v; want the 7 live ones", live.Items, err)
	}
}

// TestDeletedLogAndFallback reads getDeleted windows; once the log is purged past the
// window's start it says a snapshot is needed instead of failing.
func TestDeletedLogAndFallback(t *testing.T) {
	o := newOrg(t)
	now := time.Now().UTC()
	ids := o.fake.AddRecords("Account", 5, nil)
	for _, id := range ids[:2] {
		if err := o.fake.Delete(id); err != nil {
			t.Fatal(err)
		}
	}
	acct := connectors.Container{Key: "Account"}
	d, err := o.client.Deleted(t.Context(), acct, now.Add(-time.Hour), now.Add(2*time.Minute))
	if err != nil || d.NeedsSnapshot || len(d.Records) != 2 {
		t.Fatalf("Deleted = %+v, %v; want the 2 deletions", d, err)
	}
	if d.Covered.IsZero() || d.Covered.After(now.Add(2*time.Minute)) {
		t.Errorf("covered %s", d.Covered)
	}
	o.fake.SetEarliestDeletedDate(now.Add(-10 * time.Minute))
	d, err = o.client.Deleted(t.Context(), acct, now.Add(-time.Hour), now.Add(2*time.Minute))
	if err != nil || !d.NeedsSnapshot {
		t.Fatalf("Deleted after a purge = %+v, %v; want NeedsSnapshot", d, err)
	}
	// Older than 15 days: also a snapshot, never an error.
	d, err = o.client.Deleted(t.Context(), acct, now.Add(-20*24*time.Hour), now)
	if err != nil || !d.NeedsSnapshot {
		t.Fatalf("Deleted 20 days back = %+v, %v; want NeedsSnapshot", d, err)
	}
	// The fallback: the id walk lists the live ones.
	live, err := o.client.LiveIDs(t.Context(), acct, "")
	if err != nil || len(live.Items) != 3 {
		t.Fatalf("LiveIDs = %v, %v", live.Items, err)
	}
}

// TestLiveIDsPagesAndSurvivesExpiry walks 4,500 ids in batches, expiring locators once.
func TestLiveIDsPagesAndSurvivesExpiry(t *testing.T) {
	o := newOrg(t)
	ids := seed(o, "Contact", 4500, func(i int) salesforcetest.Fields { return salesforcetest.Fields{"LastName": "Doe"} })
	o.fake.AfterRequest("/services/data/v66.0/query", 1, o.fake.ExpireQueryLocators)
	seen := map[string]bool{}
	cur, pages := "", 0
	for {
		page, err := o.client.LiveIDs(t.Context(), connectors.Container{Key: "Contact"}, cur)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, id := range page.Items {
			if seen[id] {
				t.Fatalf("%s listed twice", id)
			}
			seen[id] = true
		}
		if cur = page.NextCursor; cur == "" {
			break
		}
	}
	if len(seen) != len(ids) || pages != 3 {
		t.Fatalf("%d ids in %d pages, want %d in 3", len(seen), pages, len(ids))
	}
}

// TestLookbackFindsLateCommits: a record stamped before the walk's position but
// committed after it is missed by a walk from the position and found by one from the
// position less DefaultLookback.
func TestLookbackFindsLateCommits(t *testing.T) {
	o := newOrg(t)
	clock := salesforcetest.NewManualClock(past)
	o.fake.SetClock(clock.Now)
	o.fake.SetCommitDelay(2 * time.Minute)
	late, err := o.fake.Insert("Account", salesforcetest.Fields{"Name": "slow transaction"})
	if err != nil {
		t.Fatal(err)
	}
	o.fake.SetCommitDelay(0)
	clock.Advance(time.Minute)
	early, _ := o.fake.Insert("Account", salesforcetest.Fields{"Name": "quick one"})
	items := walkAll(t, func(int) *salesforce.Client { return o.client }, "Account", past, "", 100)
	if len(items) != 1 || items[0].ID != early {
		t.Fatalf("first walk: %v, want only the committed one", items)
	}
	pos := items[0].UpdatedAt
	clock.Advance(2 * time.Minute) // the slow transaction commits
	if again := walkAll(t, func(int) *salesforce.Client { return o.client }, "Account", pos.Add(time.Second), "", 100); len(again) != 0 {
		t.Fatalf("a walk from after the position found %v: the test cannot tell", again)
	}
	lb := salesforce.Provider{}.DefaultLookback()
	again := walkAll(t, func(int) *salesforce.Client { return o.client }, "Account", pos.Add(-lb), "", 100)
	found := false
	for _, it := range again {
		found = found || it.ID == late
	}
	if !found {
		t.Fatalf("the look-back walk missed the late commit: %v", again)
	}
}

// TestChangesFilterAndWindow: the filter narrows the walk; Since bounds it below.
func TestChangesFilterAndWindow(t *testing.T) {
	o := newOrg(t)
	ids := seed(o, "Account", 30, func(i int) salesforcetest.Fields {
		ind := "Energy"
		if i%2 == 0 {
			ind = "Banking"
		}
		return salesforcetest.Fields{"Industry": ind}
	})
	since := past.Add(5 * time.Second) // records 15 and later
	items := walkAll(t, func(int) *salesforce.Client { return o.client }, "Account", since, "Industry = 'Banking'", 4)
	var want []string
	for i, id := range ids {
		if i >= 15 && i%2 == 0 {
			want = append(want, id)
		}
	}
	checkOrderedOnce(t, items, want)
	q := o.queries()[0]
	if !strings.Contains(q, "SystemModstamp >= 2026-03-01T09:00:05Z AND SystemModstamp < ") || !strings.Contains(q, " AND (Industry = 'Banking') ORDER BY SystemModstamp, Id") {
		t.Errorf("query %q", q)
	}
}

// TestSessionExpiresMidWalk: the session dies between two pages (as when a rotating
// refresh ends it); the operator refreshes and builds a new client, which continues
// from the cursor by key set: nothing lost or repeated, and the error holds no token.
func TestSessionExpiresMidWalk(t *testing.T) {
	o := newOrg(t)
	ids := seed(o, "Account", 450, nil)
	o.fake.SetBatchSize(200)
	first, err := o.client.Changes(t.Context(), connectors.ChangeQuery{Container: connectors.Container{Key: "Account"}, Limit: 150})
	if err != nil {
		t.Fatal(err)
	}
	o.fake.ExpireSessions()
	_, err = o.client.Changes(t.Context(), connectors.ChangeQuery{Container: connectors.Container{Key: "Account"}, Cursor: first.NextCursor, Limit: 150})
	wantKind(t, err, connectors.KindSessionExpired)
	o.checkSafe(err)
	o.access = o.fake.NewSession(salesforcetest.DefaultUser().ID)
	fresh := o.newClient(nil)
	items := first.Items
	cur := first.NextCursor
	for cur != "" {
		page, err := fresh.Changes(t.Context(), connectors.ChangeQuery{Container: connectors.Container{Key: "Account"}, Cursor: cur, Limit: 150})
		if err != nil {
			t.Fatal(err)
		}
		items, cur = append(items, page.Items...), page.NextCursor
	}
	checkOrderedOnce(t, items, ids)
}

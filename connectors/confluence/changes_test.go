package confluence_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/connectors/atlassian"
	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
	"github.com/unified-connectors/connector-operator/connectors/confluence"
	"github.com/unified-connectors/connector-operator/internal/vendorspec"
)

// pageTimes reads, straight from the fake's v2 API, when each page of a space was last
// modified: the truth the feed is checked against.
func pageTimes(t *testing.T, fake *atlassiantest.Server, spaceKey string) map[string]time.Time {
	t.Helper()
	out := map[string]time.Time{}
	checker := checkedHTTP(t)
	next := "/wiki/api/v2/spaces/" + fake.ConfluenceSpaceID(spaceKey) + "/pages?limit=250"
	for next != "" {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, fake.URL()+next, nil)
		req.SetBasicAuth(email, apiToken)
		resp, err := checker.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var list struct {
			Results []struct {
				ID      string `json:"id"`
				Version struct {
					CreatedAt string `json:"createdAt"`
				} `json:"version"`
			} `json:"results"`
			Links struct {
				Next string `json:"next"`
			} `json:"_links"`
		}
		err = json.NewDecoder(resp.Body).Decode(&list)
		_ = resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("list pages: %d %v", resp.StatusCode, err)
		}
		for _, p := range list.Results {
			at, err := atlassian.ParseTime(p.Version.CreatedAt)
			if err != nil {
				t.Fatal(err)
			}
			out[p.ID] = at
		}
		next = list.Links.Next
	}
	return out
}

// checkedHTTP sends the test's own requests to the fake through the contract checker.
func checkedHTTP(t *testing.T) connectors.Doer {
	t.Helper()
	checker, err := vendorspec.NewConfluenceDoer(http.DefaultClient)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, err := range checker.Errors() {
			t.Errorf("contract violation: %v", err)
		}
	})
	return checker
}

// pagesSince are the ids of the pages of a space modified at or after since.
func pagesSince(t *testing.T, fake *atlassiantest.Server, spaceKey string, since time.Time) map[string]time.Time {
	t.Helper()
	out := map[string]time.Time{}
	for id, at := range pageTimes(t, fake, spaceKey) {
		if !at.Before(since) {
			out[id] = at
		}
	}
	return out
}

// syncLoop plays the sync engine: rounds of Changes from a Since that moves to the last
// UpdatedAt delivered, dropping the ids already delivered at that instant (Since is
// inclusive), and records every delivery.
type syncLoop struct {
	t     *testing.T
	c     connectors.Client
	space connectors.Container
	limit int

	since     time.Time
	atSince   map[string]bool        // ids delivered at exactly since
	delivered map[string][]time.Time // id → the UpdatedAt of each delivery
	calls     int
}

func newSyncLoop(t *testing.T, c connectors.Client, space string, since time.Time, limit int) *syncLoop {
	return &syncLoop{t: t, c: c, space: connectors.Container{Key: space}, limit: limit, since: since,
		atSince: map[string]bool{}, delivered: map[string][]time.Time{}}
}

// round runs one sync round; between calls of the round's chain it runs meanwhile(i)
// with the call's number, to change the content under the walk. It returns what the
// round delivered.
func (s *syncLoop) round(meanwhile func(call int)) map[string]time.Time {
	s.t.Helper()
	got := map[string]time.Time{}
	var last connectors.Item
	cursor := ""
	for call := 0; ; call++ {
		if call > 0 && meanwhile != nil {
			meanwhile(call)
		}
		page, err := s.c.Changes(s.t.Context(), connectors.ChangeQuery{Container: s.space, Since: s.since, Cursor: cursor, Limit: s.limit})
		s.calls++
		if err != nil {
			s.t.Fatalf("Changes (call %d of the round): %v", call, err)
		}
		if len(page.Items) > s.limit {
			s.t.Fatalf("page of %d items, limit %d", len(page.Items), s.limit)
		}
		for _, it := range page.Items {
			if it.UpdatedAt.Before(s.since) {
				s.t.Errorf("page %s updated %v, before Since %v", it.ID, it.UpdatedAt, s.since)
			}
			inOrder := last.UpdatedAt.Before(it.UpdatedAt) || last.UpdatedAt.Equal(it.UpdatedAt) && compareIDs(last.ID, it.ID) < 0
			if last.ID != "" && !inOrder {
				s.t.Errorf("out of order: %s@%v after %s@%v", it.ID, it.UpdatedAt, last.ID, last.UpdatedAt)
			}
			last = it
			if it.UpdatedAt.Equal(s.since) && s.atSince[it.ID] {
				continue // delivered in the last round, at the boundary instant
			}
			if slices.ContainsFunc(s.delivered[it.ID], it.UpdatedAt.Equal) {
				s.t.Errorf("page %s version of %v delivered twice", it.ID, it.UpdatedAt)
			}
			s.delivered[it.ID] = append(s.delivered[it.ID], it.UpdatedAt)
			got[it.ID] = it.UpdatedAt
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	for id, at := range got {
		switch {
		case at.After(s.since):
			s.since, s.atSince = at, map[string]bool{id: true}
		case at.Equal(s.since):
			s.atSince[id] = true
		}
	}
	// Ids at the new boundary that came in this round are all in got; earlier ones too.
	for id, at := range got {
		if at.Equal(s.since) {
			s.atSince[id] = true
		}
	}
	return got
}

// expectExactly fails unless got holds exactly the pages of want at their times.
func expectExactly(t *testing.T, what string, got, want map[string]time.Time) {
	t.Helper()
	for id, at := range want {
		if g, ok := got[id]; !ok || !g.Equal(at) {
			t.Errorf("%s: page %s modified %v not delivered (got %v)", what, id, at, g)
		}
	}
	for id, at := range got {
		if _, ok := want[id]; !ok {
			t.Errorf("%s: page %s (%v) delivered but not changed", what, id, at)
		}
	}
}

// TestChangesExactlyOnce plays a sync engine over several rounds, for accounts in
// Sydney (UTC+11 in January) and Los Angeles (UTC−8), with pages changed between rounds
// and while a round is being read, several in the same minute and some at the same
// instant. Every change after the starting point must come exactly once.
func TestChangesExactlyOnce(t *testing.T) {
	for _, zone := range []string{"Australia/Sydney", "America/Los_Angeles"} {
		for _, deployment := range []string{atlassian.DeploymentCloud, atlassian.DeploymentDataCenter} {
			t.Run(zone+"/"+deployment, func(t *testing.T) {
				testChangesExactlyOnce(t, zone, deployment)
			})
		}
	}
}

func testChangesExactlyOnce(t *testing.T, zone, deployment string) {
	fake := atlassiantest.NewServer()
	t.Cleanup(fake.Close)
	account := alice
	account.TimeZone = zone
	fake.AddAccount(account)
	fake.SeedConfluence(atlassiantest.ConfluenceSeed{Spaces: 2, PagesPerSpace: 60, Seed: 7, Start: seedStart})
	cfg := cloudConfig(fake)
	if deployment == atlassian.DeploymentDataCenter {
		cfg = dcConfig(fake)
	}
	c := newClient(t, cfg)
	confluence.SetWalkPage(c, 7) // several pages of hits per call, and calls that run out of them

	// Start in the middle of the seeded changes, mid-minute.
	since := seedStart.Add(4*time.Minute + 17*time.Second + 250*time.Millisecond)
	loop := newSyncLoop(t, c, "SPA", since, 5)

	want := pagesSince(t, fake, "SPA", since)
	if len(want) < 20 || len(want) == 60 {
		t.Fatalf("the seed puts %d of 60 pages after the start; the test wants a mix", len(want))
	}
	expectExactly(t, "round 1", loop.round(nil), want)

	// Between rounds: updates in one minute, two at the same instant, one of them on the
	// boundary page, a page created, one deleted, and an old page touched.
	ids := fake.ConfluencePageIDs("SPA")
	now := loop.since.Add(90 * time.Second).Truncate(time.Minute) // the next minute on
	boundary := ""
	for id := range loop.atSince {
		boundary = id
	}
	changed := map[string]time.Time{}
	update := func(id string, at time.Time) { fake.UpdatePage(id, at); changed[id] = at.Truncate(time.Millisecond) }
	update(ids[3], now.Add(5*time.Second))
	update(ids[17], now.Add(20*time.Second))
	update(boundary, now.Add(20*time.Second))
	update(ids[40], now.Add(59*time.Second))
	created := fake.CreatePage("SPA", "Brand new", "fresh text", now.Add(30*time.Second))
	changed[created] = now.Add(30 * time.Second)
	fake.DeletePage(ids[50])
	delete(changed, ids[50])
	fake.CreatePage("SPB", "Elsewhere", "other space", now.Add(31*time.Second)) // not in SPA
	expectExactly(t, "round 2", loop.round(nil), changed)

	// During a round: after each call, change a page — one already delivered in this
	// round, one not yet — and delete one, which shifts the results under the walk.
	now = loop.since.Add(2 * time.Minute)
	var early []string
	for _, id := range ids[:30] {
		if id != ids[3] && id != ids[17] && id != boundary {
			early = append(early, id)
		}
	}
	early = early[:24]
	for i, id := range early {
		fake.UpdatePage(id, now.Add(time.Duration(i/3)*time.Second)) // three at each instant
	}
	mid := map[string]time.Time{}
	round3 := loop.round(func(call int) {
		if call > 4 {
			return
		}
		at := now.Add(time.Minute + time.Duration(call)*time.Second)
		fake.UpdatePage(early[call-1], at) // delivered earlier in this round: comes again, newer
		mid[early[call-1]] = at
		fake.UpdatePage(early[23-call], at) // not delivered yet: moves to the end
		mid[early[23-call]] = at
		if call == 2 {
			fake.DeletePage(early[12]) // not delivered yet: gone
		}
	})
	// Everything delivered now is as the fake has it, and nothing still live and changed
	// since the start is missing.
	final := pageTimes(t, fake, "SPA")
	for id, at := range round3 {
		if _, live := final[id]; !live && id != early[12] {
			t.Errorf("round 3 delivered page %s (%v) that is not live", id, at)
		}
	}
	round4 := loop.round(nil)
	for id, at := range final {
		if at.Before(since) {
			continue
		}
		if !slices.ContainsFunc(loop.delivered[id], at.Equal) {
			t.Errorf("page %s: its version of %v was never delivered (got %v)", id, at, loop.delivered[id])
		}
	}
	for id := range round4 {
		if _, ok := mid[id]; !ok {
			t.Errorf("round 4 delivered page %s, which did not change after round 3 began", id)
		}
	}
	if deleted := loop.delivered[ids[50]]; len(deleted) > 1 {
		t.Errorf("deleted page delivered %d times", len(deleted))
	}
	t.Logf("%d calls over 4 rounds", loop.calls)
}

// TestChangesNaiveUTCDateIsWrong shows the trap the fake sets, and that Changes avoids
// it: a CQL date written in UTC is read in the account's zone, so a search from Sydney
// repeats changes from before the cursor and one from Los Angeles skips changes after it.
func TestChangesNaiveUTCDateIsWrong(t *testing.T) {
	since := time.Date(2024, 1, 31, 10, 0, 30, 0, time.UTC)
	for _, tc := range []struct {
		zone         string
		wantRepeated bool // the naive query returns pages older than since
		wantSkipped  bool // the naive query misses pages at or after since
	}{
		{"Australia/Sydney", true, false},
		{"America/Los_Angeles", false, true},
	} {
		t.Run(tc.zone, func(t *testing.T) {
			fake := atlassiantest.NewServer()
			t.Cleanup(fake.Close)
			account := alice
			account.TimeZone = tc.zone
			fake.AddAccount(account)
			fake.SeedConfluence(atlassiantest.ConfluenceSeed{Spaces: 1, Seed: 3})
			at := map[string]time.Time{}
			for i, d := range []time.Duration{-3 * time.Hour, -time.Minute, 10 * time.Second, 29 * time.Second, time.Hour, 3 * time.Hour} {
				id := fake.CreatePage("SPA", fmt.Sprintf("Page %d", i), "text", since.Add(d))
				at[id] = since.Add(d)
			}
			want := pagesSince(t, fake, "SPA", since)

			// The naive query, in the test: Since formatted in UTC.
			naive := fmt.Sprintf(`space = "SPA" AND type = page AND lastmodified >= %q ORDER BY lastmodified ASC`, since.UTC().Format("2006-01-02 15:04"))
			got := searchIDs(t, fake, naive)
			repeated, skipped := false, false
			for _, id := range got {
				repeated = repeated || at[id].Before(since)
			}
			for id := range want {
				skipped = skipped || !slices.Contains(got, id)
			}
			if repeated != tc.wantRepeated || skipped != tc.wantSkipped {
				t.Errorf("naive UTC query from %s: repeated %v skipped %v, want %v %v (got %v, want %v)",
					tc.zone, repeated, skipped, tc.wantRepeated, tc.wantSkipped, got, want)
			}

			// Changes gets it right.
			c := newClient(t, cloudConfig(fake))
			items := all(t, func(cur string) (connectors.Page[connectors.Item], error) {
				return c.Changes(t.Context(), connectors.ChangeQuery{Container: connectors.Container{Key: "SPA"}, Since: since, Cursor: cur, Limit: 2})
			})
			gotItems := map[string]time.Time{}
			for _, it := range items {
				gotItems[it.ID] = it.UpdatedAt
			}
			expectExactly(t, "Changes", gotItems, want)
		})
	}
}

// searchIDs runs cql on the fake's Cloud search as alice and returns the page ids.
func searchIDs(t *testing.T, fake *atlassiantest.Server, cql string) []string {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, fake.URL()+"/wiki/rest/api/search?limit=250&cql="+url.QueryEscape(cql), nil)
	req.SetBasicAuth(email, apiToken)
	resp, err := checkedHTTP(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var body struct {
		Results []struct {
			Content struct {
				ID string `json:"id"`
			} `json:"content"`
		} `json:"results"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != 200 {
		t.Fatalf("search: %d %v", resp.StatusCode, err)
	}
	var ids []string
	for _, r := range body.Results {
		ids = append(ids, r.Content.ID)
	}
	return ids
}

func TestChangesFilterAndCursorBinding(t *testing.T) {
	fake := seededFake(t)
	c := newClient(t, cloudConfig(fake))
	space := connectors.Container{Key: "SPA"}
	id := fake.CreatePage("SPA", "Quarterly zebra report", "zebra", seedStart.Add(time.Hour))
	page, err := c.Changes(t.Context(), connectors.ChangeQuery{Container: space, Since: seedStart, Filter: `title ~ "zebra" OR text ~ "zebra"`, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 || page.Items[0].ID != id || page.NextCursor != "" {
		t.Errorf("filtered changes = %+v, want only page %s", page, id)
	}

	first, err := c.Changes(t.Context(), connectors.ChangeQuery{Container: space, Since: seedStart, Limit: 3})
	if err != nil || first.NextCursor == "" {
		t.Fatalf("Changes: %+v %v", first, err)
	}
	for name, q := range map[string]connectors.ChangeQuery{
		"another Since":  {Container: space, Since: seedStart.Add(time.Second), Cursor: first.NextCursor, Limit: 3},
		"another space":  {Container: connectors.Container{Key: "SPB"}, Since: seedStart, Cursor: first.NextCursor, Limit: 3},
		"another filter": {Container: space, Since: seedStart, Filter: "type = page", Cursor: first.NextCursor, Limit: 3},
	} {
		if _, err := c.Changes(t.Context(), q); connectors.KindOf(err) != connectors.KindInvalid {
			t.Errorf("cursor reused with %s: %v, want KindInvalid", name, err)
		}
	}
	if _, err := c.Changes(t.Context(), connectors.ChangeQuery{Since: seedStart}); connectors.KindOf(err) != connectors.KindInvalid {
		t.Errorf("no container: %v, want KindInvalid", err)
	}
}

// TestChangesLongWalkResumes: when the hits before Since are more than a call reads, the
// call returns no items but a cursor that goes on from where it stopped, not from the
// start, so a long walk costs linear, not quadratic, requests.
func TestChangesLongWalkResumes(t *testing.T) {
	fake := newFake(t)
	fake.SeedConfluence(atlassiantest.ConfluenceSeed{Spaces: 1, PagesPerSpace: 150, Seed: 11, Start: seedStart})
	since := seedStart.Add(2 * time.Hour) // after every seeded page, within 26 hours
	want := map[string]time.Time{}
	for i := range 3 {
		at := since.Add(time.Duration(i) * time.Second)
		want[fake.CreatePage("SPA", fmt.Sprintf("Late %d", i), "late", at)] = at
	}
	c := newClient(t, cloudConfig(fake))
	confluence.SetWalkPage(c, 5) // 20 requests of 5 hits a call: 100 of the 153 hits
	fake.ResetRequests()

	first, err := c.Changes(t.Context(), connectors.ChangeQuery{Container: connectors.Container{Key: "SPA"}, Since: since, Limit: 10})
	if err != nil || len(first.Items) != 0 || first.NextCursor == "" {
		t.Fatalf("first call: %d items, cursor %q, %v; want none and a cursor", len(first.Items), first.NextCursor, err)
	}
	got := map[string]time.Time{}
	for _, it := range all(t, func(cur string) (connectors.Page[connectors.Item], error) {
		if cur == "" {
			cur = first.NextCursor
		}
		return c.Changes(t.Context(), connectors.ChangeQuery{Container: connectors.Container{Key: "SPA"}, Since: since, Cursor: cur, Limit: 10})
	}) {
		if _, dup := got[it.ID]; dup {
			t.Errorf("page %s twice", it.ID)
		}
		got[it.ID] = it.UpdatedAt
	}
	expectExactly(t, "long walk", got, want)
	if n := fake.CountRequests("/wiki/rest/api/search"); n > 40 {
		t.Errorf("%d search requests for 153 hits in pages of 5: the walk started over", n)
	}
}

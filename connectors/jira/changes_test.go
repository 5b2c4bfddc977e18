package jira_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/connectors/atlassian"
	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
)

// projectIssues describes every live issue of a project of the fake.
func projectIssues(fake *atlassiantest.Server, project string) []atlassiantest.JiraIssueInfo {
	var out []atlassiantest.JiraIssueInfo
	for _, k := range fake.JiraIssueKeys(project) {
		info, _ := fake.JiraIssue(k)
		out = append(out, info)
	}
	return out
}

// version is one state of an issue: its id and update time.
type version struct {
	id     string
	millis int64
}

// syncLoop plays the sync engine against Changes. It keeps what the engine persists —
// the update time of the last item delivered and the ids delivered at exactly that
// time — follows NextCursor through a pass, and starts the next pass from that
// position without a cursor, skipping the ids it delivered at the boundary.
type syncLoop struct {
	t         *testing.T
	since     time.Time
	boundary  map[string]bool
	delivered map[version]int
	// pass holds what Changes returned since the pass began: following NextCursor, it
	// must never return the same state of an issue twice, before any de-duplication.
	pass map[version]bool
}

func (s *syncLoop) deliver(items []connectors.Item) {
	s.t.Helper()
	for i, it := range items {
		if v := (version{it.ID, it.UpdatedAt.UnixMilli()}); s.pass[v] {
			s.t.Errorf("Changes returned %s at %v twice in one pass", it.Key, it.UpdatedAt)
		} else {
			s.pass[v] = true
		}
		if i > 0 {
			prev := items[i-1]
			if it.UpdatedAt.Before(prev.UpdatedAt) || (it.UpdatedAt.Equal(prev.UpdatedAt) && len(it.ID) == len(prev.ID) && it.ID < prev.ID) {
				s.t.Errorf("%s comes after %s: not in (updated, id) order", it.Key, prev.Key)
			}
		}
		if it.Container != "PRJA" {
			s.t.Errorf("%s of %s delivered for PRJA", it.Key, it.Container)
		}
		ms, since := it.UpdatedAt.UnixMilli(), s.since.UnixMilli()
		switch {
		case ms < since:
			s.t.Errorf("%s updated %v, before the position %v", it.Key, it.UpdatedAt, s.since)
			continue
		case ms == since && s.boundary[it.ID]:
			continue // delivered at this very millisecond already
		case ms > since:
			s.since, s.boundary = it.UpdatedAt, map[string]bool{}
		}
		s.boundary[it.ID] = true
		s.delivered[version{it.ID, ms}]++
	}
}

// TestChangesExactlyOnce syncs a project for an account in Sydney and one in Los
// Angeles, starting inside a group of issues updated in the same millisecond, with
// pages of 2 and issues changing between pages: re-updated after delivery, updated to
// the very millisecond of the sync position, moved ahead, created, deleted, and changed
// in another project. Every issue updated at or after the start must be delivered in
// its final state exactly once, and no state twice.
func TestChangesExactlyOnce(t *testing.T) {
	for _, who := range []atlassiantest.Account{alice, larry} {
		t.Run(who.TimeZone, func(t *testing.T) {
			fake := newSeededFake(t, 2, 80, 0)
			c := newClient(t, cloudConfig(fake, who))
			start := sharedMillisecond(t, projectIssues(fake, "PRJA"))
			loop := &syncLoop{t: t, since: start, boundary: map[string]bool{}, delivered: map[version]int{}, pass: map[version]bool{}}
			deleted := map[string]bool{}
			updates := interleavedUpdates(fake, loop, deleted)

			cursor, dirty := "", false
			for page := 0; ; page++ {
				if page > 300 {
					t.Fatal("the sync did not settle")
				}
				p, err := c.Changes(t.Context(), connectors.ChangeQuery{
					Container: connectors.Container{Key: "PRJA"}, Since: loop.since, Cursor: cursor, Limit: 2})
				if err != nil {
					t.Fatalf("Changes: %v", err)
				}
				loop.deliver(p.Items)
				if page%2 == 1 && len(updates) > 0 {
					updates[0]()
					updates, dirty = updates[1:], true
				}
				if cursor = p.NextCursor; cursor == "" {
					if !dirty && len(updates) == 0 {
						break
					}
					// The next sync run: from the position, without a cursor.
					dirty, loop.pass = false, map[version]bool{}
				}
			}

			for v, n := range loop.delivered {
				if n != 1 {
					t.Errorf("issue %s at %d delivered %d times", v.id, v.millis, n)
				}
				if deleted[v.id] {
					t.Errorf("issue %s was deleted before the sync reached it, yet delivered", v.id)
				}
			}
			missing := 0
			for _, info := range projectIssues(fake, "PRJA") {
				final := version{info.ID, info.Updated.UnixMilli()}
				switch {
				case !info.Updated.Before(start) && loop.delivered[final] != 1:
					t.Errorf("%s (updated %v) not delivered in its final state", info.Key, info.Updated)
					missing++
				case info.Updated.Before(start):
					for v := range loop.delivered {
						if v.id == info.ID {
							t.Errorf("%s, last updated before the start, was delivered", info.Key)
						}
					}
				}
			}
			if len(loop.delivered) < 30 {
				t.Errorf("only %d deliveries: the scenario is too small to mean much", len(loop.delivered))
			}
		})
	}
}

// sharedMillisecond is the update time of a group of issues updated in one
// millisecond, the one nearest the middle of the project's history.
func sharedMillisecond(t *testing.T, infos []atlassiantest.JiraIssueInfo) time.Time {
	count := map[int64]int{}
	var all []int64
	for _, info := range infos {
		count[info.Updated.UnixMilli()]++
		all = append(all, info.Updated.UnixMilli())
	}
	slices.Sort(all)
	median := all[len(all)/2]
	best := int64(-1)
	for ms, n := range count {
		if n >= 2 && (best < 0 || abs(ms-median) < abs(best-median)) {
			best = ms
		}
	}
	if best < 0 {
		t.Fatal("the seed put no two issues in one millisecond")
	}
	return time.UnixMilli(best)
}

func abs(x int64) int64 { return max(x, -x) }

// interleavedUpdates are the changes made between pages of the sync, each choosing
// its issue from the state at the time it runs.
func interleavedUpdates(fake *atlassiantest.Server, loop *syncLoop, deleted map[string]bool) []func() {
	latest := func() time.Time {
		var t time.Time
		for _, info := range projectIssues(fake, "PRJA") {
			if info.Updated.After(t) {
				t = info.Updated
			}
		}
		return t
	}
	delivered := func(id string) bool {
		for v := range loop.delivered {
			if v.id == id {
				return true
			}
		}
		return false
	}
	// pick returns the first issue (by key order) that ok accepts.
	pick := func(ok func(atlassiantest.JiraIssueInfo) bool) (atlassiantest.JiraIssueInfo, bool) {
		for _, info := range projectIssues(fake, "PRJA") {
			if !deleted[info.ID] && ok(info) {
				return info, true
			}
		}
		return atlassiantest.JiraIssueInfo{}, false
	}
	ahead := func(info atlassiantest.JiraIssueInfo) bool {
		return info.Updated.After(loop.since) && !delivered(info.ID)
	}
	return []func(){
		func() { // re-update a delivered issue to the newest issue's millisecond
			if info, ok := pick(func(i atlassiantest.JiraIssueInfo) bool { return delivered(i.ID) }); ok {
				fake.UpdateIssue(info.Key, latest())
			}
		},
		func() { // an old issue lands in the very millisecond of the sync position
			if info, ok := pick(func(i atlassiantest.JiraIssueInfo) bool { return i.Updated.Before(loop.since) && !delivered(i.ID) }); ok {
				fake.UpdateIssue(info.Key, loop.since)
			}
		},
		func() { // an issue ahead moves to the end
			if info, ok := pick(ahead); ok {
				fake.UpdateIssue(info.Key, latest().Add(2*time.Minute))
			}
		},
		func() { // another old issue lands in the same minute, a moment after the position
			if info, ok := pick(func(i atlassiantest.JiraIssueInfo) bool { return i.Updated.Before(loop.since) && !delivered(i.ID) }); ok {
				fake.UpdateIssue(info.Key, loop.since.Add(1500*time.Millisecond))
			}
		},
		func() { fake.CreateIssue("PRJA", "Created during the sync", "new", latest().Add(time.Millisecond)) },
		func() { // an issue ahead is deleted before the sync reaches it
			if info, ok := pick(ahead); ok {
				fake.DeleteIssue(info.Key)
				deleted[info.ID] = true
			}
		},
		func() { // another project changes: nothing for PRJA
			fake.UpdateIssue(fake.JiraIssueKeys("PRJB")[0], latest().Add(time.Hour))
		},
		func() { // a second delivered issue joins the newest millisecond
			if info, ok := pick(func(i atlassiantest.JiraIssueInfo) bool { return delivered(i.ID) && i.Updated.Before(loop.since) }); ok {
				fake.UpdateIssue(info.Key, latest())
			}
		},
	}
}

// rawSearch sends jql to the fake's Jira Cloud search as a, the way a naive connector
// would, and returns the ids of one page and the next page's token.
func rawSearch(t *testing.T, fake *atlassiantest.Server, a atlassiantest.Account, jql string, max int, token string) (ids []string, next string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"jql": jql, "fields": []string{"updated"}, "maxResults": max, "nextPageToken": token})
	if token == "" {
		body, _ = json.Marshal(map[string]any{"jql": jql, "fields": []string{"updated"}, "maxResults": max})
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, fake.URL()+"/rest/api/3/search/jql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(a.Email, a.APIToken)
	resp, err := newContractChecker(t, false, http.DefaultClient).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var out struct {
		Issues []struct {
			ID string `json:"id"`
		} `json:"issues"`
		NextPageToken string `json:"nextPageToken"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&out) != nil {
		t.Fatalf("search %q: status %d", jql, resp.StatusCode)
	}
	for _, is := range out.Issues {
		ids = append(ids, is.ID)
	}
	return ids, out.NextPageToken
}

// TestNaiveDateJQLSkipsOrRepeats shows that the fake models the trap Changes avoids:
// Jira reads a date string in the searching account's zone, with minute precision.
func TestNaiveDateJQLSkipsOrRepeats(t *testing.T) {
	fake := newSeededFake(t, 1, 120, 0)
	infos := projectIssues(fake, "PRJA")
	// The sync position: an issue updated later in the same minute as another.
	byTime := slices.Clone(infos)
	sort.Slice(byTime, func(i, j int) bool { return byTime[i].Updated.Before(byTime[j].Updated) })
	var cursor time.Time
	for i := 1; i < len(byTime) && cursor.IsZero(); i++ {
		a, b := byTime[i-1].Updated, byTime[i].Updated
		if a.Truncate(time.Minute).Equal(b.Truncate(time.Minute)) && b.After(a) && i > len(byTime)/4 {
			cursor = b
		}
	}
	if cursor.IsZero() {
		t.Fatal("the seed put no two updates in one minute")
	}
	truth := map[string]bool{}
	for _, info := range infos {
		if !info.Updated.Before(cursor) {
			truth[info.ID] = true
		}
	}
	// compare counts what a query returned beyond the truth (repeats) and what it
	// missed (skips).
	compare := func(ids []string) (repeats, skips int) {
		got := map[string]bool{}
		for _, id := range ids {
			got[id] = true
			if !truth[id] {
				repeats++
			}
		}
		for id := range truth {
			if !got[id] {
				skips++
			}
		}
		return repeats, skips
	}
	naive := func(at time.Time, loc *time.Location) string {
		return fmt.Sprintf(`project = PRJA AND updated >= "%s" ORDER BY updated ASC`, at.In(loc).Format("2006/01/02 15:04"))
	}
	sydney, _ := time.LoadLocation(alice.TimeZone)

	if r, _ := compare(must(rawSearch(t, fake, alice, naive(cursor, time.UTC), 1000, ""))); r == 0 {
		t.Error("a UTC date string repeated nothing for an account in Sydney")
	} else {
		t.Logf("Sydney, UTC date string: %d issues repeated", r)
	}
	if _, s := compare(must(rawSearch(t, fake, larry, naive(cursor, time.UTC), 1000, ""))); s == 0 {
		t.Error("a UTC date string skipped nothing for an account in Los Angeles")
	} else {
		t.Logf("Los Angeles, UTC date string: %d issues skipped", s)
	}
	// Even in the account's own zone, a minute cannot say where in the minute the sync is.
	if r, s := compare(must(rawSearch(t, fake, alice, naive(cursor, sydney), 1000, ""))); r == 0 || s != 0 {
		t.Errorf("a Sydney date string for Sydney: %d repeats, %d skips; want repeats from the same minute", r, s)
	}

	// Changes, with epoch milliseconds, is exact for both.
	for _, who := range []atlassiantest.Account{alice, larry} {
		c := newClient(t, cloudConfig(fake, who))
		items := collect(t, 20, func(cur string) (connectors.Page[connectors.Item], error) {
			return c.Changes(t.Context(), connectors.ChangeQuery{Container: connectors.Container{Key: "PRJA"}, Since: cursor, Cursor: cur, Limit: 100})
		})
		var ids []string
		for _, it := range items {
			ids = append(ids, it.ID)
		}
		if r, s := compare(ids); r != 0 || s != 0 || len(ids) != len(truth) {
			t.Errorf("Changes for %s: %d repeats, %d skips", who.TimeZone, r, s)
		}
	}
}

func must(ids []string, _ string) []string { return ids }

// TestLiveIDs lists a project's ids while issues are deleted and created between
// pages, on Cloud and on Data Center: every issue live throughout is listed exactly once.
func TestLiveIDs(t *testing.T) {
	for _, deployment := range []string{atlassian.DeploymentCloud, atlassian.DeploymentDataCenter} {
		t.Run(deployment, func(t *testing.T) { testLiveIDs(t, deployment) })
	}
}

func testLiveIDs(t *testing.T, deployment string) {
	fake := newSeededFake(t, 2, 250, 0)
	cfg := cloudConfig(fake, alice)
	if deployment == atlassian.DeploymentDataCenter {
		cfg = dcConfig(fake)
	}
	c := newClient(t, cfg)
	before := projectIssues(fake, "PRJA")

	first, err := c.LiveIDs(t.Context(), connectors.Container{Key: "PRJA"}, "")
	if err != nil || first.NextCursor == "" || len(first.Items) == 0 {
		t.Fatalf("LiveIDs: %v, %d ids, cursor %q", err, len(first.Items), first.NextCursor)
	}
	listed := map[string]int{}
	for _, id := range first.Items {
		listed[id]++
	}
	// Between pages: delete two listed issues and one not yet listed, and create one.
	var gone []string
	for _, info := range before[:2] {
		fake.DeleteIssue(info.Key)
	}
	unlisted := before[len(before)-1]
	fake.DeleteIssue(unlisted.Key)
	gone = append(gone, unlisted.ID)
	fresh := fake.CreateIssue("PRJA", "Born during the listing", "", time.Now())

	rest := collect(t, 20, func(cur string) (connectors.Page[string], error) {
		if cur == "" {
			cur = first.NextCursor
		}
		return c.LiveIDs(t.Context(), connectors.Container{Key: "PRJA"}, cur)
	})
	for _, id := range rest {
		listed[id]++
	}
	for _, info := range before[2 : len(before)-1] {
		if listed[info.ID] != 1 {
			t.Errorf("live issue %s listed %d times", info.Key, listed[info.ID])
		}
	}
	for _, id := range gone {
		if listed[id] != 0 {
			t.Errorf("issue %s deleted before it was reached was listed", id)
		}
	}
	if info, _ := fake.JiraIssue(fresh); listed[info.ID] != 1 {
		t.Errorf("issue %s created during the listing was listed %d times", fresh, listed[info.ID])
	}
	for id := range listed {
		if info, ok := fake.JiraIssue(id); ok && info.Project != "PRJA" {
			t.Errorf("issue %s of %s listed for PRJA", info.Key, info.Project)
		}
	}
}

// TestTokenPagingSkipsWhenIssuesVanish shows why LiveIDs and Changes page by key set:
// the fake, like any vendor whose tokens are offsets, skips a live issue when one on an
// earlier page is deleted between two requests.
func TestTokenPagingSkipsWhenIssuesVanish(t *testing.T) {
	fake := newSeededFake(t, 1, 30, 0)
	jql := "project = PRJA ORDER BY created ASC, id ASC"
	page1, token := rawSearch(t, fake, alice, jql, 10, "")
	first, _ := fake.JiraIssue(page1[0])
	fake.DeleteIssue(first.Key)
	var rest []string
	for token != "" {
		var ids []string
		ids, token = rawSearch(t, fake, alice, jql, 10, token)
		rest = append(rest, ids...)
	}
	live := len(page1) - 1 + len(rest) // page1 holds the deleted issue
	if want := len(fake.JiraIssueKeys("PRJA")); live >= want {
		t.Fatalf("token paging listed %d of %d live issues: the fake no longer models shifting offsets", live, want)
	}
}

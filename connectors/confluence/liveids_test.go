package confluence_test

import (
	"net/http"
	"sync"
	"testing"

	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/connectors/atlassian"
	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
)

// TestLiveIDsSnapshotWithDeletion walks a space's live ids (a prune snapshot) while a
// page listed on the first page of the walk is deleted right after that page is served.
// Every page live at the end must be listed exactly once; the deleted page may have been
// listed (it was live then), nothing else may. Offset paging (Data Center's start=)
// fails this: the deletion shifts every later page one place forward and the walk
// leaves a live page out, which a consumer would then drop.
func TestLiveIDsSnapshotWithDeletion(t *testing.T) {
	for _, tc := range []struct {
		deployment string
		pages      int // more than one vendor page: 200 a page on Data Center, 250 on Cloud
	}{
		{atlassian.DeploymentDataCenter, 250},
		{atlassian.DeploymentCloud, 600},
	} {
		t.Run(tc.deployment, func(t *testing.T) {
			fake := newFake(t)
			fake.SeedConfluence(atlassiantest.ConfluenceSeed{Spaces: 2, PagesPerSpace: tc.pages, Seed: 3, Start: seedStart})
			cfg := cloudConfig(fake)
			if tc.deployment == atlassian.DeploymentDataCenter {
				cfg = dcConfig(fake)
			}
			c := newClient(t, cfg)
			before := fake.ConfluencePageIDs("SPA")
			victim := before[0] // on the first page of any walk by id, or by offset in id order
			var once sync.Once
			deleteVictim := func() { once.Do(func() { fake.DeletePage(victim) }) }
			// Whichever listing the client walks, the deletion follows its first answer.
			for _, path := range []string{"/rest/api/content/scan", "/rest/api/content", "/wiki/api/v2/spaces/" + fake.ConfluenceSpaceID("SPA") + "/pages"} {
				fake.AfterRequest(path, 1, deleteVictim)
			}

			var pages int
			listed := map[string]int{}
			for _, id := range all(t, func(cur string) (connectors.Page[string], error) {
				pages++
				return c.LiveIDs(t.Context(), connectors.Container{Key: "SPA"}, cur)
			}) {
				listed[id]++
			}
			if pages < 2 {
				t.Fatalf("the walk took %d page(s); the test needs the deletion between two", pages)
			}
			live := fake.ConfluencePageIDs("SPA")
			if len(live) != len(before)-1 {
				t.Fatalf("%d live pages after the walk, want %d: the deletion did not happen", len(live), len(before)-1)
			}
			for _, id := range live {
				if listed[id] != 1 {
					t.Errorf("live page %s listed %d times, want once", id, listed[id])
				}
			}
			for id, n := range listed {
				if id != victim && !contains(live, id) {
					t.Errorf("page %s listed %d times but is not a live page of SPA", id, n)
				}
			}
			if listed[victim] > 1 {
				t.Errorf("deleted page %s listed %d times", victim, listed[victim])
			}
		})
	}
}

func contains(ids []string, id string) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// rewinding is a Doer that drops the cursor of every request that has one, so that the
// vendor answers a listing's first page again.
type rewinding struct{}

func (rewinding) Do(req *http.Request) (*http.Response, error) {
	q := req.URL.Query()
	if q.Has("cursor") {
		q.Del("cursor")
		req.URL.RawQuery = q.Encode()
	}
	return http.DefaultClient.Do(req)
}

// TestLiveIDsRefusesAnAnswerOutOfOrder: a listing by id whose next answer goes back (ids
// not after the last one listed) cannot vouch for the snapshot, so LiveIDs fails instead
// of returning a page that might leave a live page out.
func TestLiveIDsRefusesAnAnswerOutOfOrder(t *testing.T) {
	for _, deployment := range []string{atlassian.DeploymentDataCenter, atlassian.DeploymentCloud} {
		t.Run(deployment, func(t *testing.T) {
			fake := newFake(t)
			fake.SeedConfluence(atlassiantest.ConfluenceSeed{Spaces: 1, PagesPerSpace: 300, Seed: 3, Start: seedStart})
			cfg := cloudConfig(fake)
			if deployment == atlassian.DeploymentDataCenter {
				cfg = dcConfig(fake)
			}
			cfg.HTTP = rewinding{}
			c := newClient(t, cfg)
			first, err := c.LiveIDs(t.Context(), connectors.Container{Key: "SPA"}, "")
			if err != nil || first.NextCursor == "" {
				t.Fatalf("first page: %v, cursor %q", err, first.NextCursor)
			}
			page, err := c.LiveIDs(t.Context(), connectors.Container{Key: "SPA"}, first.NextCursor)
			if connectors.KindOf(err) != connectors.KindUnavailable {
				t.Fatalf("a second page that goes back: %d ids, %v; want a KindUnavailable error", len(page.Items), err)
			}
			assertNoSecrets(t, err)
		})
	}
}

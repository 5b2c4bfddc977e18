package confluence_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/connectors/atlassian"
	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
	"github.com/unified-connectors/connector-operator/connectors/confluence"
)

// TestBulkEditInOneMillisecond: a bulk change gives 2,500 pages one modification time,
// to the millisecond Confluence keeps. Changes from before it delivers the page before,
// all of the bulk in id order and the page after, each exactly once and without an
// error, on Cloud and Data Center, both when a call reads the whole group within its
// request bound and when the group is larger than that (reading 50 hits at a time).
func TestBulkEditInOneMillisecond(t *testing.T) {
	const bulk = 2500
	fake := newFake(t)
	fake.SeedConfluence(atlassiantest.ConfluenceSeed{Spaces: 2, Seed: 1})
	at := seedStart.Add(time.Hour)
	before := fake.CreatePage("SPA", "Before the bulk", "x", at.Add(-time.Millisecond))
	for i := range bulk {
		fake.CreatePage("SPA", fmt.Sprintf("Bulk %d", i), "x", at)
	}
	after := fake.CreatePage("SPA", "After the bulk", "x", at.Add(time.Millisecond))
	fake.CreatePage("SPB", "Elsewhere", "x", at)
	want := len(fake.ConfluencePageIDs("SPA"))

	for _, tc := range []struct {
		deployment string
		walkPage   int
	}{
		{atlassian.DeploymentCloud, 250},
		{atlassian.DeploymentCloud, 50},
		{atlassian.DeploymentDataCenter, 50},
	} {
		t.Run(fmt.Sprintf("%s/%d", tc.deployment, tc.walkPage), func(t *testing.T) {
			cfg := cloudConfig(fake)
			if tc.deployment == atlassian.DeploymentDataCenter {
				cfg = dcConfig(fake)
			}
			c := newClient(t, cfg)
			confluence.SetWalkPage(c, tc.walkPage)
			var items []connectors.Item
			cursor := ""
			for call := 0; ; call++ {
				if call > 30 {
					t.Fatalf("no end after %d calls (%d items)", call, len(items))
				}
				page, err := c.Changes(t.Context(), connectors.ChangeQuery{Container: connectors.Container{Key: "SPA"},
					Since: at.Add(-time.Second), Cursor: cursor, Limit: 250})
				if err != nil {
					t.Fatalf("call %d: %v", call, err)
				}
				items = append(items, page.Items...)
				if page.NextCursor == "" {
					break
				}
				if page.NextCursor == cursor {
					t.Fatalf("call %d: the cursor did not move (%d items so far)", call, len(items))
				}
				cursor = page.NextCursor
			}
			seen := map[string]bool{}
			for i, it := range items {
				if seen[it.ID] {
					t.Fatalf("page %s delivered twice", it.ID)
				}
				seen[it.ID] = true
				if i > 0 {
					prev := items[i-1]
					if it.UpdatedAt.Before(prev.UpdatedAt) || it.UpdatedAt.Equal(prev.UpdatedAt) && compareIDs(prev.ID, it.ID) >= 0 {
						t.Fatalf("%s@%v after %s@%v: not in (time, id) order", it.ID, it.UpdatedAt, prev.ID, prev.UpdatedAt)
					}
				}
			}
			if len(items) != want || items[0].ID != before || items[len(items)-1].ID != after {
				t.Errorf("%d pages delivered (first %s, last %s), want %d from %s to %s", len(items), items[0].ID, items[len(items)-1].ID, want, before, after)
			}
		})
	}
}

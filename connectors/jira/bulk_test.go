package jira_test

import (
	"testing"
	"time"

	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/connectors/atlassian"
)

// TestBulkEditInOneMillisecond: a bulk change stamps 2,500 issues with one update
// millisecond (and, created together, one creation millisecond). Changes from that
// instant and LiveIDs page through all of them, in id order, each exactly once, with
// no error and a cursor that stays small, on Cloud and on Data Center. A page of
// unrelated issues after the bulk follows it.
func TestBulkEditInOneMillisecond(t *testing.T) {
	const bulk = 2500
	fake := newFake(t)
	at := seedStart.Add(time.Hour)
	for i := range bulk {
		fake.CreateIssue("PRJA", "Bulk", "", at)
		if i == bulk/2 {
			fake.CreateIssue("PRJB", "Elsewhere", "", at) // another project, same instant
		}
	}
	later := fake.CreateIssue("PRJA", "After the bulk", "", at.Add(time.Millisecond))
	before := fake.CreateIssue("PRJA", "Before the bulk", "", at.Add(-time.Millisecond))
	want := map[string]bool{}
	for _, info := range projectIssues(fake, "PRJA") {
		want[info.ID] = true
	}
	infoBefore, _ := fake.JiraIssue(before)
	infoLater, _ := fake.JiraIssue(later)

	for _, deployment := range []string{atlassian.DeploymentCloud, atlassian.DeploymentDataCenter} {
		t.Run(deployment, func(t *testing.T) {
			cfg := cloudConfig(fake, alice)
			if deployment == atlassian.DeploymentDataCenter {
				cfg = dcConfig(fake)
			}
			c := newClient(t, cfg)
			maxCursor := 0
			items := collect(t, 40, func(cur string) (connectors.Page[connectors.Item], error) {
				p, err := c.Changes(t.Context(), connectors.ChangeQuery{Container: connectors.Container{Key: "PRJA"}, Since: at, Cursor: cur, Limit: 100})
				maxCursor = max(maxCursor, len(p.NextCursor))
				return p, err
			})
			seen := map[string]bool{}
			for i, it := range items {
				if seen[it.ID] {
					t.Fatalf("issue %s delivered twice", it.Key)
				}
				seen[it.ID] = true
				if i > 0 && it.UpdatedAt.Equal(items[i-1].UpdatedAt) && !idLess(items[i-1].ID, it.ID) {
					t.Fatalf("%s after %s in the same millisecond: not in id order", it.ID, items[i-1].ID)
				}
			}
			if len(seen) != bulk+1 || seen[infoBefore.ID] || !seen[infoLater.ID] || items[len(items)-1].ID != infoLater.ID {
				t.Errorf("Changes delivered %d issues (before the bulk %v, after it %v), want the %d of the bulk then the one after",
					len(seen), seen[infoBefore.ID], seen[infoLater.ID], bulk)
			}
			if maxCursor > 200 {
				t.Errorf("a cursor of %d bytes: positions must not grow with the bulk", maxCursor)
			}

			ids := collect(t, 40, func(cur string) (connectors.Page[string], error) {
				return c.LiveIDs(t.Context(), connectors.Container{Key: "PRJA"}, cur)
			})
			listed := map[string]bool{}
			for _, id := range ids {
				if listed[id] || !want[id] {
					t.Fatalf("LiveIDs listed %s twice or from elsewhere", id)
				}
				listed[id] = true
			}
			if len(listed) != len(want) {
				t.Errorf("LiveIDs listed %d of %d issues", len(listed), len(want))
			}
		})
	}
}

// idLess orders numeric ids.
func idLess(a, b string) bool { return len(a) < len(b) || len(a) == len(b) && a < b }

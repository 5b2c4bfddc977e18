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

// changesFrom drains Changes of SPA from since, failing on an error, and returns what it
// delivered by id. Each item must come once and in (time, id) order.
func changesFrom(t *testing.T, c connectors.Client, since time.Time, limit int) map[string]time.Time {
	t.Helper()
	got := map[string]time.Time{}
	var last connectors.Item
	for _, it := range all(t, func(cur string) (connectors.Page[connectors.Item], error) {
		return c.Changes(t.Context(), connectors.ChangeQuery{Container: connectors.Container{Key: "SPA"}, Since: since, Cursor: cur, Limit: limit})
	}) {
		if _, dup := got[it.ID]; dup {
			t.Errorf("page %s delivered twice in one walk", it.ID)
		}
		if last.ID != "" && (it.UpdatedAt.Before(last.UpdatedAt) || it.UpdatedAt.Equal(last.UpdatedAt) && compareIDs(it.ID, last.ID) < 0) {
			t.Errorf("%s@%v after %s@%v: not in (time, id) order", it.ID, it.UpdatedAt, last.ID, last.UpdatedAt)
		}
		last = it
		got[it.ID] = it.UpdatedAt
	}
	return got
}

// TestChangesVersionIndexedLate: a page's new version that the search index has not
// caught up with. The walk's search still shows the old version; Changes never delivers
// that old version once a newer one exists. When the new version sorts no later than the
// last hit of its page it is delivered in its place at once (Cloud, where the fill reads
// pages live); otherwise it is left out, and a later Changes from a Since before the new
// version (the sync engine's look-back) delivers it once the index has it.
func TestChangesVersionIndexedLate(t *testing.T) {
	for _, deployment := range []string{atlassian.DeploymentCloud, atlassian.DeploymentDataCenter} {
		t.Run(deployment, func(t *testing.T) {
			fake := newFake(t)
			fake.SeedConfluence(atlassiantest.ConfluenceSeed{Spaces: 1, Seed: 5})
			cfg := cloudConfig(fake)
			if deployment == atlassian.DeploymentDataCenter {
				cfg = dcConfig(fake)
			}
			c := newClient(t, cfg)
			t0 := seedStart
			early := fake.CreatePage("SPA", "Early", "one", t0)                // its new version sorts before late's
			tail := fake.CreatePage("SPA", "Tail", "two", t0.Add(time.Second)) // its new version sorts after everything
			late := fake.CreatePage("SPA", "Late", "three", t0.Add(2*time.Second))

			fake.HoldPageIndex(early, tail)
			fake.UpdatePage(early, t0.Add(time.Minute))
			fake.UpdatePage(late, t0.Add(2*time.Minute))
			fake.UpdatePage(tail, t0.Add(3*time.Minute))
			newEarly, newLate, newTail := t0.Add(time.Minute), t0.Add(2*time.Minute), t0.Add(3*time.Minute)

			run1 := changesFrom(t, c, t0, 10)
			if at, ok := run1[late]; !ok || !at.Equal(newLate) {
				t.Errorf("run 1: page %s at %v, want its indexed new version %v", late, at, newLate)
			}
			if deployment == atlassian.DeploymentCloud {
				if at := run1[early]; !at.Equal(newEarly) {
					t.Errorf("run 1: page %s at %v, want its live version %v, which sorts before the last hit", early, at, newEarly)
				}
				if at, ok := run1[tail]; ok {
					t.Errorf("run 1: page %s delivered at %v although its new version sorts after the last hit", tail, at)
				}
			} else {
				// Data Center fills from the index too (CQL id in (…)): both held pages
				// come as the search shows them, old and new alike consistent.
				if at := run1[early]; !at.Equal(t0) {
					t.Errorf("run 1: page %s at %v, want its indexed version %v", early, at, t0)
				}
				if at := run1[tail]; !at.Equal(t0.Add(time.Second)) {
					t.Errorf("run 1: page %s at %v, want its indexed version %v", tail, at, t0.Add(time.Second))
				}
			}

			// The index catches up; the next run re-reads from a Since before the new
			// versions, as the engine does with its look-back window.
			fake.FlushIndex()
			run2 := changesFrom(t, c, t0.Add(30*time.Second), 10)
			for id, want := range map[string]time.Time{early: newEarly, late: newLate, tail: newTail} {
				if at, ok := run2[id]; !ok || !at.Equal(want) {
					t.Errorf("run 2: page %s at %v (delivered %v), want %v", id, at, ok, want)
				}
			}
		})
	}
}

// TestChangesIndexCatchesUpMidCall: between two requests of one Changes call the index
// catches up with a held page (its old version leaves the results before the walk's
// position, its new one joins at the end), which shifts every later hit one place
// forward. The walk notices (the hit before its position changed), starts over and still
// delivers every page once: none is skipped, the moved page comes at its new version.
func TestChangesIndexCatchesUpMidCall(t *testing.T) {
	fake := newFake(t)
	fake.SeedConfluence(atlassiantest.ConfluenceSeed{Spaces: 1, Seed: 6})
	c := newClient(t, cloudConfig(fake))
	confluence.SetWalkPage(c, 5)
	t0 := seedStart
	want := map[string]time.Time{}
	var ids []string
	for i := range 20 {
		at := t0.Add(time.Duration(i) * time.Second)
		id := fake.CreatePage("SPA", fmt.Sprintf("Page %d", i), "x", at)
		ids = append(ids, id)
		want[id] = at
	}
	moved := ids[2]
	fake.HoldPageIndex(moved)
	fake.UpdatePage(moved, t0.Add(time.Minute))
	want[moved] = t0.Add(time.Minute)
	fake.AfterRequest("/wiki/rest/api/search", 1, fake.FlushIndex)

	fake.ResetRequests()
	got := changesFrom(t, c, t0, 100)
	expectExactly(t, "one call across the catch-up", got, want)
	if n := fake.CountRequests("/wiki/rest/api/search"); n < 6 {
		t.Errorf("%d search requests: the walk did not start over after the shift", n)
	}
}

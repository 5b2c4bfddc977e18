package jira_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unified-connectors/connector-operator/connectors"
)

// TestDataCenter runs every method against the fake's Jira Data Center API
// (/rest/api/2, a personal access token as Bearer), through the Data Center contract
// checker, and compares with what Cloud answers for the same site.
func TestDataCenter(t *testing.T) {
	fake := newSeededFake(t, 3, 25, 2)
	kumquat := fake.CreateIssue("PRJB", "Kumquat inventory", "Count the kumquats.\n\nTwice.", seedStart.Add(48*time.Hour))
	dc := newClient(t, dcConfig(fake))
	cloud := newClient(t, cloudConfig(fake, alice))
	ctx := t.Context()
	fake.ResetRequests()

	id, err := dc.Identity(ctx)
	if err != nil || id.AccountID != alice.ID || id.TimeZone != alice.TimeZone {
		t.Errorf("Identity = %+v, %v", id, err)
	}

	t.Run("containers", func(t *testing.T) {
		got := collect(t, 10, func(cur string) (connectors.Page[connectors.Container], error) { return dc.Containers(ctx, cur, 2) })
		want := collect(t, 10, func(cur string) (connectors.Page[connectors.Container], error) { return cloud.Containers(ctx, cur, 2) })
		if len(got) != 3 || !slices.Equal(got, want) {
			t.Errorf("Data Center containers %+v, Cloud %+v", got, want)
		}
	})

	t.Run("items", func(t *testing.T) {
		got := collect(t, 20, func(cur string) (connectors.Page[connectors.Item], error) {
			return dc.Items(ctx, connectors.ItemQuery{Container: "PRJA", Cursor: cur, Limit: 7})
		})
		want := collect(t, 20, func(cur string) (connectors.Page[connectors.Item], error) {
			return cloud.Items(ctx, connectors.ItemQuery{Container: "PRJA", Cursor: cur, Limit: 7})
		})
		if len(got) != 25 || len(got) != len(want) {
			t.Fatalf("Data Center listed %d issues, Cloud %d", len(got), len(want))
		}
		for i := range got {
			g, w := got[i], want[i]
			if g.ID != w.ID || g.Key != w.Key || g.Title != w.Title || !g.UpdatedAt.Equal(w.UpdatedAt) ||
				!g.CreatedAt.Equal(w.CreatedAt) || g.Author != w.Author || g.URL != w.URL || g.Container != w.Container {
				t.Errorf("Data Center %+v\nCloud       %+v", g, w)
			}
			if (g.Text == "") != (w.Text == "") || strings.Contains(g.Text, `"type"`) {
				t.Errorf("%s: Data Center text %q, Cloud text %q", g.Key, g.Text, w.Text)
			}
		}
	})

	t.Run("item and comments", func(t *testing.T) {
		it, err := dc.Item(ctx, kumquat)
		if err != nil || it.Text != "Count the kumquats.\n\nTwice." || it.Title != "Kumquat inventory" {
			t.Errorf("Item = %+v, %v", it, err)
		}
		comments := collect(t, 10, func(cur string) (connectors.Page[connectors.Comment], error) {
			return dc.Comments(ctx, "PRJA-3", cur, 1)
		})
		if len(comments) != 2 || comments[0].Text == "" || strings.Contains(comments[0].Text, `"type"`) {
			t.Errorf("Comments = %+v", comments)
		}
	})

	t.Run("search", func(t *testing.T) {
		page, err := dc.Search(ctx, connectors.SearchQuery{Text: "kumquat", Containers: []string{"PRJB", "PRJC"}})
		if err != nil || len(page.Items) != 1 || page.Items[0].Key != kumquat {
			t.Errorf("Search = %+v, %v", page, err)
		}
		page, err = dc.Search(ctx, connectors.SearchQuery{Text: `kumquat" OR project = PRJB OR text ~ "`, Containers: []string{"PRJA"}})
		if err != nil || len(page.Items) != 0 {
			t.Errorf("injected search = %+v, %v", page, err)
		}
	})

	t.Run("create", func(t *testing.T) {
		it, err := dc.Create(ctx, connectors.NewItem{Container: "PRJC", Title: "From Data Center", Text: "Plain *wiki* text"})
		if err != nil || it.Text != "Plain *wiki* text" || it.Author.ID != alice.ID || !strings.HasPrefix(it.Key, "PRJC-") {
			t.Errorf("Create = %+v, %v", it, err)
		}
	})

	t.Run("changes and live ids", func(t *testing.T) {
		since := seedStart.Add(20 * time.Minute)
		got := collect(t, 50, func(cur string) (connectors.Page[connectors.Item], error) {
			return dc.Changes(ctx, connectors.ChangeQuery{Container: connectors.Container{Key: "PRJA"}, Since: since, Cursor: cur, Limit: 3})
		})
		want := 0
		for _, info := range projectIssues(fake, "PRJA") {
			if !info.Updated.Before(since) {
				want++
			}
		}
		ids := map[string]bool{}
		for _, it := range got {
			ids[it.ID] = true
		}
		if len(got) != want || len(ids) != want {
			t.Errorf("Changes gave %d items (%d distinct), want %d", len(got), len(ids), want)
		}
		live := collect(t, 10, func(cur string) (connectors.Page[string], error) {
			return dc.LiveIDs(ctx, connectors.Container{Key: "PRJA"}, cur)
		})
		if len(live) != len(fake.JiraIssueKeys("PRJA")) {
			t.Errorf("LiveIDs gave %d ids, PRJA has %d", len(live), len(fake.JiraIssueKeys("PRJA")))
		}
	})

}

// TestDataCenterUsesOnlyVersion2 keeps the Data Center client off Cloud's API.
func TestDataCenterUsesOnlyVersion2(t *testing.T) {
	fake := newSeededFake(t, 1, 5, 1)
	c := newClient(t, dcConfig(fake))
	ctx := t.Context()
	_, _ = c.Identity(ctx)
	_, _ = c.Containers(ctx, "", 10)
	_, _ = c.Items(ctx, connectors.ItemQuery{Container: "PRJA"})
	_, _ = c.Item(ctx, "PRJA-1")
	_, _ = c.Comments(ctx, "PRJA-1", "", 10)
	_, _ = c.Search(ctx, connectors.SearchQuery{Text: "the"})
	_, _ = c.Create(ctx, connectors.NewItem{Container: "PRJA", Title: "x"})
	_, _ = c.Changes(ctx, connectors.ChangeQuery{Container: connectors.Container{Key: "PRJA"}})
	_, _ = c.LiveIDs(ctx, connectors.Container{Key: "PRJA"}, "")
	reqs := fake.Requests()
	if len(reqs) < 10 {
		t.Fatalf("only %d requests", len(reqs))
	}
	for _, r := range reqs {
		if !strings.HasPrefix(r.Path, "/rest/api/2/") || r.Status >= 300 {
			t.Errorf("Data Center call %s %s answered %d", r.Method, r.Path, r.Status)
		}
	}
}

package confluence_test

import (
	"slices"
	"testing"
	"time"

	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/connectors/atlassian"
	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
)

// TestScopeFilter: with the Connection's CQL filter, Items is a CQL search within it
// (newest first, exact Since whatever the account's zone), ItemMatching reads a page only
// when the filter admits it and answers one it leaves out as KindNotFound, like a missing
// one; an unbalanced filter is refused by every call before Confluence is asked. Cloud
// and Data Center, every request through the contract checker.
func TestScopeFilter(t *testing.T) {
	fake := newFake(t)
	fake.SeedConfluence(atlassiantest.ConfluenceSeed{Spaces: 2, PagesPerSpace: 5, Seed: 8, Start: seedStart})
	at := seedStart.Add(3 * time.Hour)
	needles := []string{
		fake.CreatePage("SPA", "Needle one", "sharp", at),
		fake.CreatePage("SPA", "Needle two", "sharp", at.Add(time.Minute)),
		fake.CreatePage("SPA", "Needle three", "sharp", at.Add(2*time.Minute)),
	}
	hay := fake.CreatePage("SPA", "Hay", "soft", at.Add(3*time.Minute))
	fake.CreatePage("SPB", "Needle elsewhere", "sharp", at)
	const filter = `title ~ "needle"`

	for _, deployment := range []string{atlassian.DeploymentCloud, atlassian.DeploymentDataCenter} {
		t.Run(deployment, func(t *testing.T) {
			cfg := cloudConfig(fake)
			if deployment == atlassian.DeploymentDataCenter {
				cfg = dcConfig(fake)
			}
			c := newClient(t, cfg)
			ctx := t.Context()
			fr, ok := c.(connectors.FilterReader)
			if !ok {
				t.Fatal("the Confluence client is no FilterReader")
			}

			var ids []string
			for _, it := range all(t, func(cur string) (connectors.Page[connectors.Item], error) {
				return c.Items(ctx, connectors.ItemQuery{Container: "SPA", Filter: filter, Cursor: cur, Limit: 2})
			}) {
				ids = append(ids, it.ID)
				if it.Container != "SPA" || it.Text != "sharp" {
					t.Errorf("item %s: container %q, text %q; want SPA and the whole body", it.ID, it.Container, it.Text)
				}
			}
			if want := []string{needles[2], needles[1], needles[0]}; !slices.Equal(ids, want) {
				t.Errorf("Items within the filter = %v, want %v (newest first)", ids, want)
			}
			// Since is exact (alice is in New York; CQL reads dates there).
			page, err := c.Items(ctx, connectors.ItemQuery{Container: "SPA", Filter: filter, UpdatedSince: at.Add(30 * time.Second)})
			if err != nil || len(page.Items) != 2 || page.NextCursor != "" {
				t.Errorf("Items within the filter since %v = %d items, cursor %q, %v; want the 2 newer", at.Add(30*time.Second), len(page.Items), page.NextCursor, err)
			}

			if it, err := fr.ItemMatching(ctx, needles[0], filter); err != nil || it.ID != needles[0] || it.Title != "Needle one" {
				t.Errorf("ItemMatching(%s) = %+v, %v", needles[0], it, err)
			}
			_, err = fr.ItemMatching(ctx, hay, filter)
			wantNotFound(t, err)
			_, err = fr.ItemMatching(ctx, "99999999", filter)
			wantNotFound(t, err)
			if it, err := connectors.ItemInFilter(ctx, c, hay, ""); err != nil || it.ID != hay {
				t.Errorf("ItemInFilter without a filter = %+v, %v", it, err)
			}

			fake.ResetRequests()
			space := connectors.Container{Key: "SPA"}
			for _, bad := range []string{`title ~ "x") OR (space = SPB`, `(title ~ "x"`, `title ~ "x" order by title`} {
				for name, call := range map[string]func() error{
					"ItemMatching": func() error { _, err := fr.ItemMatching(ctx, needles[0], bad); return err },
					"Items":        func() error { _, err := c.Items(ctx, connectors.ItemQuery{Container: "SPA", Filter: bad}); return err },
					"Search": func() error {
						_, err := c.Search(ctx, connectors.SearchQuery{Text: "needle", Filter: bad})
						return err
					},
					"Changes": func() error {
						_, err := c.Changes(ctx, connectors.ChangeQuery{Container: space, Since: seedStart, Filter: bad})
						return err
					},
				} {
					if err := call(); connectors.KindOf(err) != connectors.KindInvalid {
						t.Errorf("%s with filter %q: %v, want KindInvalid", name, bad, err)
					}
				}
			}
			if n := len(fake.Requests()); n != 0 {
				t.Errorf("%d requests sent for unbalanced filters, want none", n)
			}
		})
	}
}

func wantNotFound(t *testing.T, err error) {
	t.Helper()
	if connectors.KindOf(err) != connectors.KindNotFound {
		t.Errorf("%v, want KindNotFound", err)
		return
	}
	assertNoSecrets(t, err)
}

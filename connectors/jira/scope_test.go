package jira_test

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/connectors/atlassian"
)

// TestScopeFilter: Items applies the Connection's filter (ANDed on, as search and sync
// do), ItemMatching reads an issue only when the filter admits it and answers one it
// leaves out as KindNotFound, like a missing one; an unbalanced filter is refused
// before Jira is asked. Cloud and Data Center, every request through the contract
// checker.
func TestScopeFilter(t *testing.T) {
	fake := newFake(t)
	at := seedStart.Add(time.Hour)
	needles := []string{
		fake.CreateIssue("PRJA", "Needle one", "", at),
		fake.CreateIssue("PRJA", "Needle two", "", at.Add(time.Minute)),
	}
	hay := fake.CreateIssue("PRJA", "Hay", "", at.Add(2*time.Minute))
	fake.CreateIssue("PRJB", "Needle elsewhere", "", at)
	const filter = `summary ~ "needle"`

	for _, deployment := range []string{atlassian.DeploymentCloud, atlassian.DeploymentDataCenter} {
		t.Run(deployment, func(t *testing.T) {
			cfg := cloudConfig(fake, alice)
			if deployment == atlassian.DeploymentDataCenter {
				cfg = dcConfig(fake)
			}
			c := newClient(t, cfg)
			ctx := t.Context()
			fr, ok := c.(connectors.FilterReader)
			if !ok {
				t.Fatal("the Jira client is no FilterReader")
			}

			var keys []string
			for _, it := range collect(t, 10, func(cur string) (connectors.Page[connectors.Item], error) {
				return c.Items(ctx, connectors.ItemQuery{Container: "PRJA", Filter: filter, Cursor: cur, Limit: 1})
			}) {
				keys = append(keys, it.Key)
			}
			if want := []string{needles[1], needles[0]}; !slices.Equal(keys, want) {
				t.Errorf("Items within the filter = %v, want %v (newest first)", keys, want)
			}
			page, err := c.Items(ctx, connectors.ItemQuery{Container: "PRJA", Filter: filter, UpdatedSince: at.Add(30 * time.Second)})
			if err != nil || len(page.Items) != 1 || page.Items[0].Key != needles[1] {
				t.Errorf("Items within the filter since %v = %+v, %v; want only %s", at.Add(30*time.Second), page.Items, err, needles[1])
			}

			if it, err := fr.ItemMatching(ctx, needles[0], filter); err != nil || it.Key != needles[0] {
				t.Errorf("ItemMatching(%s) = %+v, %v", needles[0], it, err)
			}
			info, _ := fake.JiraIssue(needles[1])
			if it, err := fr.ItemMatching(ctx, info.ID, filter); err != nil || it.Key != needles[1] {
				t.Errorf("ItemMatching by id %s = %+v, %v", info.ID, it, err)
			}
			_, err = fr.ItemMatching(ctx, hay, filter)
			wantKind(t, err, connectors.KindNotFound)
			_, err = fr.ItemMatching(ctx, "PRJA-999", filter)
			wantKind(t, err, connectors.KindNotFound)
			if it, err := fr.ItemMatching(ctx, hay, " "); err != nil || it.Key != hay {
				t.Errorf("ItemMatching without a filter = %+v, %v; want the issue", it, err)
			}
			if it, err := connectors.ItemInFilter(ctx, c, hay, ""); err != nil || it.Key != hay {
				t.Errorf("ItemInFilter without a filter = %+v, %v", it, err)
			}
			_, err = connectors.ItemInFilter(ctx, c, hay, filter)
			wantKind(t, err, connectors.KindNotFound)

			fake.ResetRequests()
			for _, bad := range []string{`summary ~ "x") OR (project = PRJB`, `summary ~ "x" ORDER BY key`} {
				_, err = fr.ItemMatching(ctx, needles[0], bad)
				wantKind(t, err, connectors.KindInvalid)
				_, err = c.Items(ctx, connectors.ItemQuery{Container: "PRJA", Filter: bad})
				wantKind(t, err, connectors.KindInvalid)
			}
			if n := len(fake.Requests()); n != 0 {
				t.Errorf("%d requests sent for unbalanced filters, want none", n)
			}
		})
	}
}

// TestItemMatchingFollowsTheIndex: whether the filter admits an issue is the search's
// answer, so an issue updated into the filter counts once the index has the update.
func TestItemMatchingFollowsTheIndex(t *testing.T) {
	fake := newFake(t)
	key := fake.CreateIssue("PRJA", "Plain", "", seedStart)
	c := newClient(t, cloudConfig(fake, alice)).(connectors.FilterReader)
	filter := "updated >= " + millisOf(seedStart.Add(time.Hour))
	fake.HoldIssueIndex(key)
	fake.UpdateIssue(key, seedStart.Add(2*time.Hour))
	_, err := c.ItemMatching(t.Context(), key, filter)
	wantKind(t, err, connectors.KindNotFound)
	fake.FlushIndex()
	if it, err := c.ItemMatching(t.Context(), key, filter); err != nil || !it.UpdatedAt.Equal(seedStart.Add(2*time.Hour)) {
		t.Errorf("after the index caught up: %+v, %v", it, err)
	}
}

func millisOf(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

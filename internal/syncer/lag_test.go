package syncer_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
	"github.com/unified-connectors/connector-operator/internal/syncer/sinktest"
)

// runOnce asks for a sync and waits until it has finished (status.sync.lastSyncTime moved).
func runOnce(t testing.TB, g Gomega, key client.ObjectKey) {
	t.Helper()
	before := get(t, key).Status.Sync.LastSyncTime
	time.Sleep(1100 * time.Millisecond) // lastSyncTime has one-second precision
	requestSync(t, key)
	g.Eventually(func() bool {
		st := get(t, key).Status.Sync
		return st != nil && st.LastSyncTime != nil && (before == nil || st.LastSyncTime.After(before.Time))
	}, 30*time.Second, 100*time.Millisecond).Should(BeTrue(), "the run finished")
}

// deliveriesOf counts the sink's deliveries of id.
func deliveriesOf(sink *sinktest.Sink, id string) int {
	n := 0
	for _, it := range sink.Items() {
		if it.ID == id {
			n++
		}
	}
	return n
}

// TestJiraIndexLagNeverLosesAnItem: X is updated, then Y a second later; the search index
// shows Y first. The run that delivers Y moves the cursor past X's update time; once X
// becomes searchable the next run delivers it (the look-back window), and Y is not sent
// again (the cursor remembers what it delivered inside the window).
func TestJiraIndexLagNeverLosesAnItem(t *testing.T) {
	g := NewWithT(t)
	s := newSite(t, "UTC")
	s.fake.SeedJira(atlassiantest.JiraSeed{Projects: 1, IssuesPerProject: 50, Seed: 31, Start: time.Now().Add(-72 * time.Hour)})
	startManager(t)
	key := s.connection(s.jira, nil) // the connector's default look-back (5m)
	g.Eventually(synced(t, key), time.Minute).Should(Equal("True/Succeeded"))
	g.Expect(s.sink.Check().Distinct).To(Equal(50))

	keys := s.fake.JiraIssueKeys("PRJA")
	x, y := keys[3], keys[17]
	xInfo, _ := s.fake.JiraIssue(x)
	yInfo, _ := s.fake.JiraIssue(y)
	s.fake.HoldIssueIndex(x)
	now := time.Now()
	s.fake.UpdateIssue(x, now)
	s.fake.UpdateIssue(y, now.Add(time.Second))
	s.sink.Reset()

	runOnce(t, g, key) // X is still invisible to search
	g.Expect(itemIDs(s.sink.Items())).To(Equal([]string{yInfo.ID}), "only Y is searchable yet")

	s.fake.ReleaseIssueIndex(x)
	runOnce(t, g, key)
	g.Expect(deliveriesOf(s.sink, xInfo.ID)).To(Equal(1), "X delivered once it became searchable")
	g.Expect(deliveriesOf(s.sink, yInfo.ID)).To(Equal(1), "Y not sent again")

	runOnce(t, g, key)
	g.Expect(s.sink.Check().Deliveries).To(Equal(2), "a run with nothing new re-sends nothing from the window")
}

// TestJiraUnderContinuousLag: every write is searchable only 2 s after it is made, while
// issues keep changing between runs; every version reaches the sink and the duplicates
// per run are counted.
func TestJiraUnderContinuousLag(t *testing.T) {
	g := NewWithT(t)
	s := newSite(t, "UTC")
	s.fake.SeedJira(atlassiantest.JiraSeed{Projects: 1, IssuesPerProject: 100, Seed: 32, Start: time.Now().Add(-72 * time.Hour)})
	startManager(t)
	key := s.connection(s.jira, nil)
	g.Eventually(synced(t, key), time.Minute).Should(Equal("True/Succeeded"))
	s.fake.SetIndexLag(2 * time.Second)
	keys := s.fake.JiraIssueKeys("PRJA")
	updated := map[string]bool{}
	delivered := map[string]bool{} // id@updatedAt
	collect := func() {
		for _, it := range s.sink.Items() {
			delivered[it.ID+"@"+it.UpdatedAt.UTC().Format(time.RFC3339Nano)] = true
		}
	}
	for run := range 5 {
		s.sink.Reset()
		for i := range 10 {
			k := keys[(run*10+i)*7%len(keys)]
			s.fake.UpdateIssue(k, time.Now())
			updated[k] = true
		}
		runOnce(t, g, key)
		rep := s.sink.Check()
		t.Logf("run %d under a 2 s index lag: %d delivered, %d duplicates", run, rep.Deliveries, rep.Duplicates)
		g.Expect(rep.Duplicates).To(BeZero())
		collect()
	}
	// The last writes become searchable; one more run delivers whatever was still hidden.
	s.sink.Reset()
	s.fake.FlushIndex()
	runOnce(t, g, key)
	t.Logf("after the index caught up: %d delivered, %d duplicates", s.sink.Check().Deliveries, s.sink.Check().Duplicates)
	collect()
	for k := range updated {
		info, _ := s.fake.JiraIssue(k)
		g.Expect(delivered).To(HaveKey(info.ID+"@"+info.Updated.UTC().Format(time.RFC3339Nano)), "the newest version of %s reached the sink", k)
	}
}

// TestConfluenceIndexLagNeverLosesAPage: the same for a Confluence page whose new version
// is indexed after a later page's.
func TestConfluenceIndexLagNeverLosesAPage(t *testing.T) {
	g := NewWithT(t)
	s := newSite(t, "UTC")
	s.fake.SeedConfluence(atlassiantest.ConfluenceSeed{Spaces: 1, PagesPerSpace: 40, Seed: 33, Start: time.Now().Add(-72 * time.Hour)})
	startManager(t)
	key := s.connection(s.wiki, nil)
	g.Eventually(synced(t, key), time.Minute).Should(Equal("True/Succeeded"))
	g.Expect(s.sink.Check().Distinct).To(Equal(40))

	ids := s.fake.ConfluencePageIDs("SPA")
	p, q := ids[5], ids[20]
	s.fake.HoldPageIndex(p)
	now := time.Now()
	s.fake.UpdatePage(p, now)
	s.fake.UpdatePage(q, now.Add(time.Second))
	s.sink.Reset()

	runOnce(t, g, key)
	g.Expect(itemIDs(s.sink.Items())).To(Equal([]string{q}), "only Q's new version is searchable yet")

	s.fake.ReleasePageIndex(p)
	runOnce(t, g, key)
	g.Expect(deliveriesOf(s.sink, p)).To(Equal(1), "P's new version delivered once indexed")
	g.Expect(deliveriesOf(s.sink, q)).To(Equal(1), "Q not sent again")
}

// TestBulkEditInOneMillisecond: a bulk change touches 2,500 issues in one millisecond.
// The container neither fails nor resends them on later runs.
func TestBulkEditInOneMillisecond(t *testing.T) {
	g := NewWithT(t)
	s := newSite(t, "UTC")
	s.fake.SeedJira(atlassiantest.JiraSeed{Projects: 1, IssuesPerProject: 2500, Seed: 34, Start: time.Now().Add(-72 * time.Hour)})
	startManager(t)
	key := s.connection(s.jira, nil)
	g.Eventually(synced(t, key), 2*time.Minute).Should(Equal("True/Succeeded"))

	at := time.Now().Truncate(time.Millisecond)
	for _, k := range s.fake.JiraIssueKeys("PRJA") {
		s.fake.UpdateIssue(k, at)
	}
	s.sink.Reset()
	runOnce(t, g, key)
	g.Expect(synced(t, key)()).To(Equal("True/Succeeded"))
	rep := s.sink.Check()
	g.Expect(rep.Distinct).To(Equal(2500), "every issue of the bulk edit delivered")
	g.Expect(rep.Duplicates).To(BeZero())
	for run := range 2 {
		s.sink.Reset()
		runOnce(t, g, key)
		g.Expect(s.sink.Check().Deliveries).To(BeZero(), "run %d after the bulk edit resends nothing", run)
	}
}

package atlassiantest

import (
	"slices"
	"strconv"
	"strings"
	"time"
)

// The search index. Jira's issue search (/rest/api/3/search/jql, Data Center's
// /rest/api/2/search, approximate-count) and Confluence's CQL search (Cloud's
// /wiki/rest/api/search, Data Center's /rest/api/content/search) are eventually
// consistent on the real sites: a write reaches the search index some time after it is
// committed, usually within seconds, and not in commit order, so an update made at t1
// can become searchable after a later one made at t2 > t1. Reads by id (an issue by key,
// a page by id, v2 page lists, Data Center's content listing and scan) answer from the
// database and see every write at once.
//
// The fake keeps the same split. Every write to an issue or a page is queued for the
// index; search answers from what has been indexed: an issue updated but not yet
// indexed is found with its previously indexed version (its old `updated`, so it does not
// match a bound past that), a new one not at all, a deleted one still. By default a write
// is indexed at once, so tests that do not care see no lag. SetIndexLag delays every
// later write by a fixed time; HoldIssueIndex and HoldPageIndex keep chosen items at the
// version the index has until FlushIndex (or ReleaseIssueIndex / ReleasePageIndex), which
// is how a test makes an early update searchable after a later one.

// searchIndex is what search sees of one product's items (K their id, V the item), and
// the writes it has not seen yet. It is guarded by its product's lock.
type searchIndex[K comparable, V any] struct {
	lag     time.Duration
	held    map[K]bool
	docs    map[K]*V                // the indexed version of each item
	pending map[K][]pendingWrite[V] // writes not indexed yet, oldest first
}

// pendingWrite is one write waiting for the index: the item as written (nil for a
// delete), and when it becomes searchable.
type pendingWrite[V any] struct {
	doc *V
	due time.Time
}

func newSearchIndex[K comparable, V any]() *searchIndex[K, V] {
	return &searchIndex[K, V]{held: map[K]bool{}, docs: map[K]*V{}, pending: map[K][]pendingWrite[V]{}}
}

// write queues doc (a copy of the item as it is now; nil when it was deleted) for the
// index. Without a lag or a hold it is indexed at once.
func (x *searchIndex[K, V]) write(k K, doc *V, now time.Time) {
	if x.lag <= 0 && !x.held[k] && len(x.pending[k]) == 0 {
		x.apply(k, doc)
		return
	}
	x.pending[k] = append(x.pending[k], pendingWrite[V]{doc: doc, due: now.Add(x.lag)})
}

func (x *searchIndex[K, V]) apply(k K, doc *V) {
	if doc == nil {
		delete(x.docs, k)
		return
	}
	x.docs[k] = doc
}

// catchUp indexes the writes due by now, except those of held items. Of an item's due
// writes only the last counts: it replaces every earlier one, even one whose own due time
// is later (the lag was shortened meanwhile), so the index never goes back in time.
func (x *searchIndex[K, V]) catchUp(now time.Time) {
	for k, writes := range x.pending {
		if x.held[k] {
			continue
		}
		last := -1
		for i, w := range writes {
			if !w.due.After(now) {
				last = i
			}
		}
		if last < 0 {
			continue
		}
		x.apply(k, writes[last].doc)
		if rest := writes[last+1:]; len(rest) > 0 {
			x.pending[k] = slices.Clone(rest)
		} else {
			delete(x.pending, k)
		}
	}
}

// release indexes every pending write of k now and stops holding it.
func (x *searchIndex[K, V]) release(k K) {
	delete(x.held, k)
	if writes := x.pending[k]; len(writes) > 0 {
		x.apply(k, writes[len(writes)-1].doc)
		delete(x.pending, k)
	}
}

// flush indexes everything pending and releases every hold.
func (x *searchIndex[K, V]) flush() {
	for k := range x.held {
		x.release(k)
	}
	for k := range x.pending {
		x.release(k)
	}
}

// SetIndexLag makes every later write (to issues and pages, through the API or the
// helpers) searchable only d after it is made; reads by id see it at once. 0, the
// default, indexes writes at once. Writes already waiting keep their due time.
func (s *Server) SetIndexLag(d time.Duration) {
	j, c := s.jira(), s.confluence()
	j.mu.Lock()
	j.index.lag = d
	j.mu.Unlock()
	c.mu.Lock()
	c.index.lag = d
	c.mu.Unlock()
}

// FlushIndex makes every write searchable now and releases every hold. The lag set by
// SetIndexLag still applies to later writes.
func (s *Server) FlushIndex() {
	j, c := s.jira(), s.confluence()
	j.mu.Lock()
	j.index.flush()
	j.mu.Unlock()
	c.mu.Lock()
	c.index.flush()
	c.mu.Unlock()
}

// HoldIssueIndex keeps the search index at its current version of the issues with keys
// (or ids): until ReleaseIssueIndex or FlushIndex, their later writes (updates, comments,
// deletion) are invisible to search. (To keep a new issue out of search, create it under
// SetIndexLag.) It panics for an issue that does not exist, a mistake in the test.
func (s *Server) HoldIssueIndex(keys ...string) {
	j := s.jira()
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, k := range keys {
		is := j.findIssue(k)
		if is == nil {
			panic("atlassiantest: HoldIssueIndex: no issue " + k)
		}
		j.index.held[is.id] = true
	}
}

// ReleaseIssueIndex indexes the pending writes of the issues with keys (or ids) now and
// stops holding them. An issue deleted meanwhile is named by its id.
func (s *Server) ReleaseIssueIndex(keys ...string) {
	j := s.jira()
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, k := range keys {
		if is := j.findIssue(k); is != nil {
			j.index.release(is.id)
		} else if id, err := strconv.ParseInt(k, 10, 64); err == nil {
			j.index.release(id)
		}
	}
}

// HoldPageIndex keeps the search index at its current version of the pages with ids:
// until ReleasePageIndex or FlushIndex their later writes (new versions, deletion) are
// invisible to CQL search. Holding an id no page has yet holds the page created with it.
func (s *Server) HoldPageIndex(ids ...string) {
	c := s.confluence()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		c.index.held[id] = true
	}
}

// ReleasePageIndex indexes the pending writes of the pages with ids now and stops
// holding them.
func (s *Server) ReleasePageIndex(ids ...string) {
	c := s.confluence()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		c.index.release(id)
	}
}

// indexIssueLocked queues is (nil: the issue with id was deleted) for the search index.
// Call with j.mu held, after every write.
func (j *jiraSite) indexIssueLocked(id int64, is *jiraIssue) {
	var doc *jiraIssue
	if is != nil {
		snap := *is
		snap.comments = slices.Clone(is.comments)
		doc = &snap
	}
	j.index.write(id, doc, time.Now())
}

// indexPageLocked queues p (nil: the page with id was deleted) for the search index.
// Call with c.mu held, after every write.
func (c *confluenceSite) indexPageLocked(id string, p *cfPage) {
	var doc *cfPage
	if p != nil {
		snap := *p
		snap.searchText = strings.ToLower(p.title + "\n" + plainText(p.body))
		doc = &snap
	}
	c.index.write(id, doc, time.Now())
}

package atlassiantest

import (
	"fmt"
	"html"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// confluence returns s's Confluence content (spaces, pages, footer comments), created
// empty on first use.
func (s *Server) confluence() *confluenceSite {
	s.confluenceOnce.Do(func() { s.confluenceState = newConfluenceSite() })
	return s.confluenceState
}

// confluenceSite is one fake site's Confluence content. Times are kept in UTC with the
// millisecond precision Confluence answers with.
type confluenceSite struct {
	mu        sync.Mutex
	nextSpace int // the next space id
	nextID    int // the next content id (pages and comments share Confluence's id space)
	spaces    []*cfSpace
	pages     map[string]*cfPage
	comments  map[string][]*cfComment // by page id, oldest first
	// index is what CQL search sees (index.go): writes reach it after a lag.
	index *searchIndex[string, cfPage]
}

type cfSpace struct {
	id, key, name string
	authorID      string
	createdAt     time.Time
}

type cfPage struct {
	id, spaceID, title string
	authorID           string // who created it
	createdAt          time.Time
	version            int
	modifiedAt         time.Time // when the current version was made
	modifiedBy         string    // who made it
	body               string    // storage format
	// searchText is the lower-cased title and body text CQL's text ~ matches, set on the
	// search index's copies (index.go) when they are indexed.
	searchText string
}

type cfComment struct {
	id, pageID string
	authorID   string
	createdAt  time.Time
	version    int
	modifiedAt time.Time
	body       string
}

func newConfluenceSite() *confluenceSite {
	return &confluenceSite{
		nextSpace: 32769,
		nextID:    65537,
		pages:     map[string]*cfPage{},
		comments:  map[string][]*cfComment{},
		index:     newSearchIndex[string, cfPage](),
	}
}

// newIDLocked hands out the next content id.
func (c *confluenceSite) newIDLocked() string {
	id := strconv.Itoa(c.nextID)
	c.nextID++
	return id
}

func (c *confluenceSite) spaceByKeyLocked(key string) *cfSpace {
	for _, sp := range c.spaces {
		if sp.key == key {
			return sp
		}
	}
	return nil
}

func (c *confluenceSite) spaceByIDLocked(id string) *cfSpace {
	for _, sp := range c.spaces {
		if sp.id == id {
			return sp
		}
	}
	return nil
}

// pagesLocked returns the pages, of one space when spaceID is not empty, in id order.
func (c *confluenceSite) pagesLocked(spaceID string) []*cfPage {
	out := make([]*cfPage, 0, len(c.pages))
	for _, p := range c.pages {
		if spaceID == "" || p.spaceID == spaceID {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b *cfPage) int { return compareIDs(a.id, b.id) })
	return out
}

// addPageLocked creates a page; it fails on a title already used in the space, as
// Confluence does.
func (c *confluenceSite) addPageLocked(sp *cfSpace, title, body, authorID string, at time.Time) (*cfPage, error) {
	for _, p := range c.pages {
		if p.spaceID == sp.id && strings.EqualFold(p.title, title) {
			return nil, fmt.Errorf("a page with this title already exists: a page already exists with the same TITLE in this space")
		}
	}
	at = vendorTime(at)
	p := &cfPage{
		id: c.newIDLocked(), spaceID: sp.id, title: title, authorID: authorID,
		createdAt: at, version: 1, modifiedAt: at, modifiedBy: authorID, body: body,
	}
	c.pages[p.id] = p
	c.indexPageLocked(p.id, p)
	return p, nil
}

// vendorTime is t as Confluence keeps it: UTC, milliseconds.
func vendorTime(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

// compareIDs orders numeric ids by value.
func compareIDs(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}

// ConfluenceSeed says what SeedConfluence creates.
type ConfluenceSeed struct {
	// Spaces is how many spaces to add; their keys are SPA, SPB, … SPZ, SPAA, ….
	Spaces int
	// PagesPerSpace is how many pages each new space gets.
	PagesPerSpace int
	// CommentsPerPage is how many footer comments each new page gets.
	CommentsPerPage int
	// Seed makes the content reproducible: the same seed gives the same titles, bodies,
	// authors and times.
	Seed int64
	// Start is the earliest modification time (zero means 2024-01-31 10:00 UTC). Each
	// space's pages were last modified after it, a few seconds apart, so that several
	// share a minute and some share an instant; time order is not id order.
	Start time.Time
}

// seedAuthors are the account ids seeded content is written by: the demo accounts (so
// that their names show) and one account the site does not otherwise know.
var seedAuthors = []string{"5b10a2844c20165700ede21a", "5b10a2844c20165700ede21b", "557058:7f3c4e2a-0d4b-4c1e-9f8a-2b6d1e0c9a11"}

var seedWords = strings.Fields(`alpha bravo charlie delta echo foxtrot golf hotel india juliet
	kilo lima metric nebula orbit pixel quartz runbook sprint tundra umbra vector wharf
	yonder zephyr release incident onboarding roadmap budget design review backlog`)

// SeedConfluence adds o.Spaces spaces after any that exist, each with o.PagesPerSpace
// pages (storage-format bodies with headings, lists, tables, code and panel macros and
// entities) and o.CommentsPerPage footer comments per page, all deterministic in o.Seed.
func (s *Server) SeedConfluence(o ConfluenceSeed) {
	c := s.confluence()
	c.mu.Lock()
	defer c.mu.Unlock()
	r := rand.New(rand.NewPCG(uint64(o.Seed), 0x636f6e666c75656e))
	start := o.Start
	if start.IsZero() {
		start = time.Date(2024, 1, 31, 10, 0, 0, 0, time.UTC)
	}
	for range o.Spaces {
		n := len(c.spaces)
		sp := &cfSpace{
			id:        strconv.Itoa(c.nextSpace),
			key:       "SP" + spaceSuffix(n),
			name:      "Space " + spaceSuffix(n),
			authorID:  seedAuthors[0],
			createdAt: vendorTime(start.Add(-24 * time.Hour)),
		}
		c.nextSpace++
		c.spaces = append(c.spaces, sp)

		// Modification times rise a few seconds apart (0–29 s, and now and then not at
		// all, so that some pages share an instant), dealt to the pages in random order
		// so that time order is not id order.
		times := make([]time.Time, o.PagesPerSpace)
		at := start
		for i := range times {
			if r.IntN(6) != 0 {
				at = at.Add(time.Duration(r.IntN(30_000)) * time.Millisecond)
			}
			times[i] = vendorTime(at)
		}
		r.Shuffle(len(times), func(i, j int) { times[i], times[j] = times[j], times[i] })
		for i, modified := range times {
			title := fmt.Sprintf("%s %s %d", capitalize(pick(r)), pick(r), i+1)
			created := modified.Add(-time.Duration(r.IntN(72)) * time.Hour)
			author := seedAuthors[r.IntN(len(seedAuthors))]
			p, err := c.addPageLocked(sp, title, seedBody(r, i), author, created)
			if err != nil {
				panic("atlassiantest: " + err.Error()) // titles carry their index
			}
			p.version = 1 + r.IntN(3)
			p.modifiedAt = modified
			if p.version > 1 {
				p.modifiedBy = seedAuthors[r.IntN(len(seedAuthors))]
			}
			c.indexPageLocked(p.id, p)
			for j := range o.CommentsPerPage {
				cat := vendorTime(created.Add(time.Duration(j+1) * time.Minute))
				c.comments[p.id] = append(c.comments[p.id], &cfComment{
					id: c.newIDLocked(), pageID: p.id, authorID: seedAuthors[r.IntN(len(seedAuthors))],
					createdAt: cat, version: 1, modifiedAt: cat,
					body: "<p>" + capitalize(pick(r)) + " " + pick(r) + " &amp; " + pick(r) + ".</p>",
				})
			}
		}
	}
}

// spaceSuffix is A…Z, AA…ZZ, AAA…: the letters of seeded space number n.
func spaceSuffix(n int) string {
	s := ""
	for n++; n > 0; n = (n - 1) / 26 {
		s = string(rune('A'+(n-1)%26)) + s
	}
	return s
}

func pick(r *rand.Rand) string { return seedWords[r.IntN(len(seedWords))] }

func capitalize(w string) string { return strings.ToUpper(w[:1]) + w[1:] }

// seedBody is a storage-format body using the constructs connectors must read.
func seedBody(r *rand.Rand, i int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<h2>%s</h2><p>%s %s &amp; %s&nbsp;%s.</p>", capitalize(pick(r)), capitalize(pick(r)), pick(r), pick(r), pick(r))
	fmt.Fprintf(&b, "<ul><li>%s</li><li><strong>%s</strong> %s</li></ul>", pick(r), pick(r), pick(r))
	switch i % 3 {
	case 0:
		fmt.Fprintf(&b, `<table><tbody><tr><th><p>Key</p></th><th><p>Value</p></th></tr><tr><td><p>%s</p></td><td><p>%d</p></td></tr></tbody></table>`, pick(r), r.IntN(100))
	case 1:
		fmt.Fprintf(&b, `<ac:structured-macro ac:name="code" ac:schema-version="1"><ac:parameter ac:name="language">go</ac:parameter><ac:plain-text-body><![CDATA[if %s < %s && ok {}]]></ac:plain-text-body></ac:structured-macro>`, pick(r), pick(r))
	case 2:
		fmt.Fprintf(&b, `<ac:structured-macro ac:name="info" ac:schema-version="1"><ac:parameter ac:name="title">Note</ac:parameter><ac:rich-text-body><p>%s %s</p></ac:rich-text-body></ac:structured-macro>`, capitalize(pick(r)), pick(r))
	}
	return b.String()
}

// textToStorageBody is the storage format of plain text: one escaped paragraph a line.
// The fake has its own (rather than the connectors') so that it checks them instead of
// agreeing with them.
func textToStorageBody(text string) string {
	var b strings.Builder
	for _, line := range strings.Split(text, "\n") {
		b.WriteString("<p>" + html.EscapeString(line) + "</p>")
	}
	return b.String()
}

// CreatePage adds a page titled title to the space with key spaceKey, with text as its
// body (one paragraph a line), created and last modified at at by the first seeded
// author, and returns its id. It panics if there is no such space or the title is taken,
// which is a mistake in the test.
func (s *Server) CreatePage(spaceKey, title, text string, at time.Time) (id string) {
	c := s.confluence()
	c.mu.Lock()
	defer c.mu.Unlock()
	sp := c.spaceByKeyLocked(spaceKey)
	if sp == nil {
		panic("atlassiantest: CreatePage: no space " + spaceKey)
	}
	p, err := c.addPageLocked(sp, title, textToStorageBody(text), seedAuthors[0], at)
	if err != nil {
		panic("atlassiantest: CreatePage: " + err.Error())
	}
	return p.id
}

// UpdatePage publishes a new version of page id at at, adding a paragraph to its body.
// It panics if there is no such page.
func (s *Server) UpdatePage(id string, at time.Time) {
	c := s.confluence()
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.pages[id]
	if !ok {
		panic("atlassiantest: UpdatePage: no page " + id)
	}
	p.version++
	p.modifiedAt = vendorTime(at)
	p.modifiedBy = seedAuthors[1]
	p.body += fmt.Sprintf("<p>Revision %d.</p>", p.version)
	c.indexPageLocked(p.id, p)
}

// DeletePage removes page id and its comments (purged, not trashed). Deleting a page
// that does not exist does nothing.
func (s *Server) DeletePage(id string) {
	c := s.confluence()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.pages[id]; ok {
		c.indexPageLocked(id, nil)
	}
	delete(c.pages, id)
	delete(c.comments, id)
}

// ConfluencePageIDs returns the ids of the pages in the space with key spaceKey, in id
// order; none when there is no such space.
func (s *Server) ConfluencePageIDs(spaceKey string) []string {
	c := s.confluence()
	c.mu.Lock()
	defer c.mu.Unlock()
	sp := c.spaceByKeyLocked(spaceKey)
	if sp == nil {
		return nil
	}
	var ids []string
	for _, p := range c.pagesLocked(sp.id) {
		ids = append(ids, p.id)
	}
	return ids
}

// ConfluenceSpaceID returns the id of the space with key spaceKey, or "" if there is none.
func (s *Server) ConfluenceSpaceID(spaceKey string) string {
	c := s.confluence()
	c.mu.Lock()
	defer c.mu.Unlock()
	if sp := c.spaceByKeyLocked(spaceKey); sp != nil {
		return sp.id
	}
	return ""
}

// AddFooterComment adds a footer comment with text (one paragraph a line) to page
// pageID, written by authorID at at, and returns its id. It panics if there is no such
// page.
func (s *Server) AddFooterComment(pageID, authorID, text string, at time.Time) (id string) {
	c := s.confluence()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.pages[pageID]; !ok {
		panic("atlassiantest: AddFooterComment: no page " + pageID)
	}
	at = vendorTime(at)
	cm := &cfComment{id: c.newIDLocked(), pageID: pageID, authorID: authorID, createdAt: at,
		version: 1, modifiedAt: at, body: textToStorageBody(text)}
	c.comments[pageID] = append(c.comments[pageID], cm)
	return cm.id
}

// displayNames maps the site's account ids to their display names, for v1 answers,
// which name users.
func (s *Server) displayNames() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make(map[string]string, len(s.accounts))
	for _, a := range s.accounts {
		names[a.ID] = a.DisplayName
	}
	return names
}

package salesforcetest

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Query results come in batches (2,000 records by default; the Sforce-Query-Options
// header's batchSize asks for 200 to 2,000). A result with more has done=false and a
// nextRecordsUrl /services/data/vNN.N/query/{locator}-{offset}. The locator is a cursor
// over the rows as they were when the query ran; it expires after 15 minutes without use
// (SetLocatorTTL, ExpireQueryLocators), and each user keeps at most 10 open (the oldest is
// released), as Salesforce's server-side cursors do. A dead or unknown locator answers
// 400 INVALID_QUERY_LOCATOR.

const (
	defaultBatchSize  = 2000
	minBatchSize      = 200
	defaultLocatorTTL = 15 * time.Minute
	maxCursorsPerUser = 10
)

type queryState struct {
	batch    int
	ttl      time.Duration
	locators map[string]*locator
	next     uint64
}

func newQueryState() queryState {
	return queryState{batch: defaultBatchSize, ttl: defaultLocatorTTL, locators: map[string]*locator{}}
}

type locator struct {
	id       string
	user     string
	page     page
	total    int
	lastUsed time.Time
	created  uint64 // for releasing a user's oldest
}

// SetBatchSize sets the default batch size of query results (2,000 when n <= 0); the
// Sforce-Query-Options header still asks for less.
func (s *Server) SetBatchSize(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= 0 {
		n = defaultBatchSize
	}
	s.query.batch = n
}

// SetLocatorTTL sets how long an unused query locator lives (15 minutes when d <= 0).
func (s *Server) SetLocatorTTL(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d <= 0 {
		d = defaultLocatorTTL
	}
	s.query.ttl = d
}

// ExpireQueryLocators ends every open query locator now: following any nextRecordsUrl
// answered so far gives INVALID_QUERY_LOCATOR.
func (s *Server) ExpireQueryLocators() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.query.locators = map[string]*locator{}
}

// OpenQueryLocators counts the locators still open.
func (s *Server) OpenQueryLocators() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.query.locators)
}

// visibleRowsLocked is every visible row of o; all includes deleted ones (queryAll).
func (s *Server) visibleRowsLocked(o *sobject, all bool) []Fields {
	now := s.clock()
	rows := make([]Fields, 0, len(o.ids))
	for _, id := range o.ids {
		v := o.records[id].visible(now)
		if v == nil || (!all && v["IsDeleted"] == true) {
			continue
		}
		rows = append(rows, v)
	}
	return rows
}

// runQuery answers GET /query?q= and /queryAll?q=.
func (s *Server) runQuery(w http.ResponseWriter, r *http.Request, v string, all bool) {
	src := r.URL.Query().Get("q")
	if strings.TrimSpace(src) == "" {
		writeErrors(w, http.StatusBadRequest, codeMalformedQuery, "A query string has to be specified")
		return
	}
	s.mu.Lock()
	q, qerr := parseSOQL(src, s.typeLocked)
	if qerr != nil {
		s.mu.Unlock()
		writeErrors(w, http.StatusBadRequest, qerr.code, qerr.msg)
		return
	}
	// Versions are never changed once written, so the rows are a snapshot as they are.
	pg := page{v: v, typ: q.typ, fields: q.fields, rows: q.run(s.visibleRowsLocked(q.typ, all))}
	batch := batchSize(r, s.query.batch)
	var loc *locator
	if len(pg.rows) > batch {
		loc = s.openLocatorLocked(userOf(r).ID, pg)
	}
	s.mu.Unlock()
	writeBatch(w, r.URL.Path, loc, pg, 0, batch)
}

// batchSize reads Sforce-Query-Options: batchSize=n (200 to 2,000), else def.
func batchSize(r *http.Request, def int) int {
	for _, opt := range strings.Split(r.Header.Get("Sforce-Query-Options"), ",") {
		k, val, _ := strings.Cut(strings.TrimSpace(opt), "=")
		if strings.EqualFold(k, "batchSize") {
			if n, err := strconv.Atoi(val); err == nil {
				return min(max(n, minBatchSize), defaultBatchSize)
			}
		}
	}
	return def
}

func (s *Server) openLocatorLocked(user string, pg page) *locator {
	s.query.next++
	loc := &locator{id: makeID(PrefixQueryLocator, s.query.next), user: user, page: pg, total: len(pg.rows), lastUsed: s.clock(), created: s.query.next}
	s.query.locators[loc.id] = loc
	// Release the user's oldest cursors beyond the limit.
	for {
		var oldest *locator
		n := 0
		for _, l := range s.query.locators {
			if l.user == user {
				n++
				if oldest == nil || l.created < oldest.created {
					oldest = l
				}
			}
		}
		if n <= maxCursorsPerUser {
			break
		}
		delete(s.query.locators, oldest.id)
	}
	return loc
}

// page is a query's result: its rows and how to render them.
type page struct {
	v      string
	typ    *sobject
	fields []string
	rows   []Fields
}

// writeBatch answers rows[from:from+batch] with totalSize, done and nextRecordsUrl,
// writing the JSON itself: a batch is 2,000 records and encoding/json would check and
// compact each one again.
func writeBatch(w http.ResponseWriter, path string, loc *locator, pg page, from, batch int) {
	end := min(from+batch, len(pg.rows))
	b := make([]byte, 0, 256*(end-from+1))
	b = append(b, `{"totalSize":`...)
	b = strconv.AppendInt(b, int64(len(pg.rows)), 10)
	b = append(b, `,"done":`...)
	b = strconv.AppendBool(b, end >= len(pg.rows))
	if end < len(pg.rows) {
		resource := "query"
		if strings.Contains(path, "/queryAll") {
			resource = "queryAll"
		}
		b = append(b, `,"nextRecordsUrl":`...)
		b = appendJSONString(b, APIPath(pg.v)+"/"+resource+"/"+loc.id+"-"+strconv.Itoa(end))
	}
	b = append(b, `,"records":[`...)
	for i, row := range pg.rows[from:end] {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendRecord(b, pg.v, pg.typ, row, pg.fields)
	}
	b = append(b, "]}\n"...)
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// moreResults answers GET /query/{locator}-{offset}.
func (s *Server) moreResults(w http.ResponseWriter, r *http.Request, resource, ref string) {
	id, offText, _ := strings.Cut(ref, "-")
	off, err := strconv.Atoi(offText)
	s.mu.Lock()
	now := s.clock()
	loc, ok := s.query.locators[id]
	if ok && now.Sub(loc.lastUsed) > s.query.ttl {
		delete(s.query.locators, id)
		ok = false
	}
	if ok && (loc.user != userOf(r).ID || err != nil || off < 0 || off >= loc.total) {
		ok = false
	}
	if !ok {
		s.mu.Unlock()
		writeErrors(w, http.StatusBadRequest, codeInvalidLocator, msgInvalidLocator)
		return
	}
	loc.lastUsed = now
	batch := batchSize(r, s.query.batch)
	if off+batch >= loc.total {
		delete(s.query.locators, id) // the cursor closes with its last batch
	}
	s.mu.Unlock()
	writeBatch(w, "/"+resource, loc, loc.page, off, batch)
}

package salesforce

import (
	"cmp"
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/unified-connectors/connector-operator/connectors"
)

// Changes reads a container (an sObject type) in a half-open window of SystemModstamp,
// oldest first, through queryAll (so that deleted records come too):
//
//	SELECT <fields> FROM <type>
//	WHERE SystemModstamp >= <from> AND SystemModstamp < <to>
//	  [AND (SystemModstamp > <T> OR Id > '<A>')] [AND (<filter>)]
//	ORDER BY SystemModstamp, Id
//
// <from> is ChangeQuery.Since (to the second: SOQL datetimes are UTC seconds, as are the
// stamps) and <to> the client's clock, to the second, when the walk began: the current
// second is left to the next walk, and records changed during the walk (which then carry
// a later stamp) do not make it endless. Salesforce stores stamps to the second, so many
// records tie: the order is completed by Id, and a position (T, A), the last record
// delivered, continues with the rest of T's group (SystemModstamp = T AND Id > A, which
// the OR above says within SystemModstamp >= T) and then everything later. However many
// records share a second, each is delivered once, and a cursor stays a few dozen bytes.
//
// Salesforce answers a query 2,000 records a batch, with a nextRecordsUrl (a server-side
// query locator) for the next batch. The client hands its caller at most Limit records a
// call and keeps the rest of the batch in memory under the returned cursor (bufferCache),
// so a backfill costs one API call per 2,000 records whatever the page size; a cursor that
// ends a batch carries the locator itself. A cursor the memory no longer holds (another
// replica, a restart) and a locator that expired (INVALID_QUERY_LOCATOR: 15 minutes
// unused, or the user's eleventh open one) continue with a fresh query from the cursor's
// position: no record is lost or repeated.
//
// A record that is in the recycle bin comes as Item{Deleted: true} at its SystemModstamp
// (the deletion time). Records purged from the recycle bin leave no row: Deleted (the
// delete log) or a snapshot (LiveIDs) finds those.
//
// SystemModstamp is set before commit, so a long transaction can commit a record whose
// stamp is behind rows already read; callers re-read a window behind their position
// (Provider.DefaultLookback) and skip what they delivered.
func (c *Client) Changes(ctx context.Context, q connectors.ChangeQuery) (connectors.Page[connectors.Item], error) {
	op := "GET " + c.dataPath("/queryAll")
	typ := containerName(q.Container)
	if !validIdent(typ) {
		return connectors.Page[connectors.Item]{}, invalid(op, "container must be an sObject API name")
	}
	filter := strings.TrimSpace(q.Filter)
	if filter != "" {
		if err := checkFilter(filter); err != nil {
			return connectors.Page[connectors.Item]{}, invalid(op, err.Error())
		}
	}
	limit := changesLimit(q.Limit)
	w := walk{typ: typ, filter: filter, fp: fingerprint(filter), from: q.Since.UTC().Truncate(time.Second)}
	var buf *buffer
	if q.Cursor != "" {
		cur, err := decodeCursor(q.Cursor, op, kindChanges, typ)
		if err != nil {
			return connectors.Page[connectors.Item]{}, err
		}
		if cur.A == "" || cur.W == 0 {
			return connectors.Page[connectors.Item]{}, invalid(op, "invalid cursor")
		}
		w.to = time.Unix(cur.W, 0).UTC()
		w.at = &position{t: time.Unix(cur.T, 0).UTC(), id: cur.A}
		if cur.Q == w.fp {
			w.next = cur.L
		}
		buf = c.buffers.take(q.Cursor)
	} else {
		w.to = c.now().UTC().Truncate(time.Second)
	}
	t, err := c.describe(ctx, op, typ)
	if err != nil {
		return connectors.Page[connectors.Item]{}, err
	}
	if buf != nil && buf.fp == w.fp {
		w.pending, w.next = buf.items, buf.next
	}
	items, err := c.walkChanges(ctx, op, t, &w, limit)
	if err != nil {
		return connectors.Page[connectors.Item]{}, err
	}
	page := connectors.Page[connectors.Item]{Items: items}
	if len(w.pending) == 0 && w.next == "" && w.done {
		return page, nil
	}
	last := w.at
	cur := cursor{Kind: kindChanges, Scope: typ, T: last.t.Unix(), A: last.id, W: w.to.Unix(), Q: w.fp}
	if len(w.pending) == 0 {
		cur.L = w.next // the position ends a batch: the locator continues it
	}
	page.NextCursor = cur.encode()
	if len(w.pending) > 0 {
		c.buffers.put(page.NextCursor, &buffer{items: w.pending, next: w.next, fp: w.fp, at: c.now()})
	}
	return page, nil
}

// changesLimit is the page size of Changes: 100 unless asked, at most one batch.
func changesLimit(n int) int {
	switch {
	case n <= 0:
		return 100
	case n > 2000:
		return 2000
	}
	return n
}

// containerName is the sObject a container names.
func containerName(c connectors.Container) string {
	return cmp.Or(strings.TrimSpace(c.Key), strings.TrimSpace(c.ID))
}

// walk is the state of one Changes call.
type walk struct {
	typ, filter, fp string
	from, to        time.Time
	at              *position // the last record delivered; nil before the first
	pending         []pendingRecord
	next            string // the nextRecordsUrl after pending
	done            bool   // the query's last batch has been read
}

// pendingRecord is a record read but not yet delivered, with its position.
type pendingRecord struct {
	pos position
	rec record
}

// soql is the query of the window from w's position.
func (w *walk) soql(t *typeSchema) string {
	var b strings.Builder
	b.WriteString("SELECT ")
	b.WriteString(selectList(t))
	b.WriteString(" FROM ")
	b.WriteString(t.name)
	var where []string
	switch {
	case w.at != nil:
		where = append(where, "SystemModstamp >= "+soqlTime(w.at.t),
			"(SystemModstamp > "+soqlTime(w.at.t)+" OR Id > "+quoteSOQL(w.at.id)+")")
	case !w.from.IsZero() && w.from.Unix() > 0:
		where = append(where, "SystemModstamp >= "+soqlTime(w.from))
	}
	where = append(where, "SystemModstamp < "+soqlTime(w.to))
	if w.filter != "" {
		where = append(where, "("+w.filter+")")
	}
	b.WriteString(" WHERE ")
	b.WriteString(strings.Join(where, " AND "))
	b.WriteString(" ORDER BY SystemModstamp, Id")
	return b.String()
}

// maxLocatorRestarts bounds how often one call starts over after expired locators.
const maxLocatorRestarts = 3

// walkChanges delivers up to limit records from w, reading batches as needed.
func (c *Client) walkChanges(ctx context.Context, op string, t *typeSchema, w *walk, limit int) ([]connectors.Item, error) {
	out := make([]connectors.Item, 0, min(limit, 256))
	restarts := 0
	fresh := w.at == nil || (len(w.pending) == 0 && w.next == "")
	for len(out) < limit {
		if len(w.pending) == 0 {
			var res queryResult
			var err error
			switch {
			case fresh:
				fresh = false
				res, err = c.query(ctx, w.soql(t), true)
			case w.next != "":
				res, err = c.more(ctx, w.next)
				if ErrorCode(err) == codeInvalidLocator && restarts < maxLocatorRestarts {
					// The locator expired: start over from the last record delivered.
					restarts++
					w.next, fresh = "", true
					continue
				}
			default:
				w.done = true
				return out, nil
			}
			if err != nil {
				return nil, err
			}
			w.next = res.NextRecordsURL
			if res.Done {
				w.next = ""
			}
			for _, r := range res.Records {
				pos, ok := positionOf(r)
				if !ok {
					return nil, c.badAnswer(op, "a record without a valid Id or SystemModstamp")
				}
				w.pending = append(w.pending, pendingRecord{pos: pos, rec: r})
			}
			if len(res.Records) == 0 && w.next == "" {
				w.done = true
				return out, nil
			}
			continue
		}
		p := w.pending[0]
		w.pending = w.pending[1:]
		it, err := c.item(op, t, p.rec)
		if err != nil {
			return nil, err
		}
		out = append(out, it)
		at := p.pos
		w.at = &at
	}
	if len(w.pending) == 0 && w.next == "" {
		// The batch ended exactly at the limit: no more unless a locator says so.
		w.done = true
	}
	return out, nil
}

// Buffers of records read but not yet delivered, by the cursor that continues them. A
// walk takes its buffer back on the next call; buffers of walks that stopped are dropped
// after bufferTTL (a locator lives 15 minutes unused) or when more than maxBuffers are
// kept (a batch is at most 2,000 records).
const (
	maxBuffers = 16
	bufferTTL  = 10 * time.Minute
)

type bufferCache struct {
	mu sync.Mutex
	m  map[string]*buffer
}

type buffer struct {
	items []pendingRecord
	next  string
	fp    string
	at    time.Time
}

func (b *bufferCache) take(key string) *buffer {
	b.mu.Lock()
	defer b.mu.Unlock()
	buf := b.m[key]
	delete(b.m, key)
	if buf != nil && time.Since(buf.at) > bufferTTL {
		return nil
	}
	return buf
}

func (b *bufferCache) put(key string, buf *buffer) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = map[string]*buffer{}
	}
	for k, v := range b.m {
		if time.Since(v.at) > bufferTTL {
			delete(b.m, k)
		}
	}
	for len(b.m) >= maxBuffers {
		var oldest string
		for k, v := range b.m {
			if oldest == "" || v.at.Before(b.m[oldest].at) {
				oldest = k
			}
		}
		delete(b.m, oldest)
	}
	b.m[key] = buf
}

// Buffered is how many walks' read-ahead records the client holds in memory.
func (c *Client) Buffered() int {
	c.buffers.mu.Lock()
	defer c.buffers.mu.Unlock()
	return len(c.buffers.m)
}

// LiveIDs lists the Ids of every live record of container for a snapshot, one batch
// (up to 2,000) a call:
//
//	SELECT Id FROM <type> [WHERE Id > '<last>'] ORDER BY Id
//
// through /query (deleted records are not live). It pages by nextRecordsUrl and, when a
// locator expired or the cursor has none, by key set on Id, which never changes: a
// record deleted or changed during the walk cannot make a live one vanish from it.
func (c *Client) LiveIDs(ctx context.Context, container connectors.Container, cur string) (connectors.Page[string], error) {
	op := "GET " + c.dataPath("/query")
	typ := containerName(container)
	if !validIdent(typ) {
		return connectors.Page[string]{}, invalid(op, "container must be an sObject API name")
	}
	var after, next string
	if cur != "" {
		p, err := decodeCursor(cur, op, kindLiveIDs, typ)
		if err != nil {
			return connectors.Page[string]{}, err
		}
		if p.A == "" {
			return connectors.Page[string]{}, invalid(op, "invalid cursor")
		}
		after, next = p.A, p.L
	}
	var res queryResult
	var err error
	if next != "" {
		res, err = c.more(ctx, next)
	}
	if next == "" || ErrorCode(err) == codeInvalidLocator {
		soql := "SELECT Id FROM " + typ
		if after != "" {
			soql += " WHERE Id > " + quoteSOQL(after)
		}
		res, err = c.query(ctx, soql+" ORDER BY Id", false)
	}
	if err != nil {
		return connectors.Page[string]{}, err
	}
	ids := make([]string, 0, len(res.Records))
	for _, r := range res.Records {
		id := r.str("Id")
		if !validID(id) {
			return connectors.Page[string]{}, c.badAnswer(op, "a record without a valid Id")
		}
		ids = append(ids, id)
	}
	page := connectors.Page[string]{Items: ids}
	if !res.Done && res.NextRecordsURL != "" && len(ids) > 0 {
		page.NextCursor = cursor{Kind: kindLiveIDs, Scope: typ, A: ids[len(ids)-1], L: res.NextRecordsURL}.encode()
	}
	return page, nil
}

// DeletedRecord is one entry of a type's delete log.
type DeletedRecord struct {
	ID          string
	DeletedDate time.Time
}

// Deletions is the answer of Deleted.
type Deletions struct {
	// Records were deleted in the window, per the delete log.
	Records []DeletedRecord
	// Covered is where the next window should start: the log is complete before it
	// (Salesforce's latestDateCovered, earlier than the window's end while a transaction
	// in the window has not committed).
	Covered time.Time
	// EarliestAvailable is the oldest instant the log still covers.
	EarliestAvailable time.Time
	// NeedsSnapshot is true when the log no longer reaches back to the window's start
	// (purged, or more than 15 days old): deletions since then can only be found by
	// walking LiveIDs and comparing. The operator should say so in status.
	NeedsSnapshot bool
}

// maxDeletedWindow is the longest window getDeleted answers.
const maxDeletedWindow = 30 * 24 * time.Hour

// Deleted reads the delete log of container between start and end (getDeleted: GET
// /sobjects/{type}/deleted/?start=&end=). Salesforce ignores the seconds of both bounds,
// answers at most 30 days (end is pulled in) and only back to earliestDateAvailable: a
// start before it (INVALID_REPLICATION_DATE, or an answer whose earliest is after start)
// is reported as NeedsSnapshot, not as an error, so the caller falls back to a full id
// walk (LiveIDs). A window shorter than a minute reads nothing and covers start.
func (c *Client) Deleted(ctx context.Context, container connectors.Container, start, end time.Time) (Deletions, error) {
	typ := containerName(container)
	if !validIdent(typ) {
		return Deletions{}, invalid("GET "+c.dataPath("/sobjects/{type}/deleted/"), "container must be an sObject API name")
	}
	path := c.dataPath("/sobjects/" + typ + "/deleted/")
	op := "GET " + path
	start, end = start.UTC().Truncate(time.Minute), end.UTC().Truncate(time.Minute)
	if end.Sub(start) > maxDeletedWindow {
		end = start.Add(maxDeletedWindow)
	}
	if !end.After(start) {
		return Deletions{Covered: start}, nil
	}
	var out struct {
		DeletedRecords []struct {
			ID          string `json:"id"`
			DeletedDate string `json:"deletedDate"`
		} `json:"deletedRecords"`
		EarliestDateAvailable string `json:"earliestDateAvailable"`
		LatestDateCovered     string `json:"latestDateCovered"`
	}
	q := url.Values{"start": {start.Format("2006-01-02T15:04:05Z")}, "end": {end.Format("2006-01-02T15:04:05Z")}}
	err := c.do(ctx, call{method: http.MethodGet, path: path, query: q}, &out)
	if ErrorCode(err) == codeReplDate {
		// The only refusal left once the window is checked above: start is before the log.
		return Deletions{Covered: start, NeedsSnapshot: true}, nil
	}
	if err != nil {
		return Deletions{}, err
	}
	d := Deletions{Covered: end}
	if t, ok := parseTime(out.LatestDateCovered); ok {
		d.Covered = t
	}
	if t, ok := parseTime(out.EarliestDateAvailable); ok {
		d.EarliestAvailable = t
		if t.After(start) {
			d.NeedsSnapshot = true
		}
	}
	for _, r := range out.DeletedRecords {
		t, ok := parseTime(r.DeletedDate)
		if !validID(r.ID) || !ok {
			return Deletions{}, c.badAnswer(op, "a deleted record without a valid id or date")
		}
		d.Records = append(d.Records, DeletedRecord{ID: r.ID, DeletedDate: t})
	}
	return d, nil
}

var _ connectors.DeletionLog = (*Client)(nil)

// DeletedBetween is Deleted for the sync engine's prune (connectors.DeletionLog): the
// records of container deleted in [start, end) as deletions, how far the log covers, and
// complete false when the log no longer reaches back to start.
func (c *Client) DeletedBetween(ctx context.Context, container connectors.Container, start, end time.Time) ([]connectors.Item, time.Time, bool, error) {
	d, err := c.Deleted(ctx, container, start, end)
	if err != nil || d.NeedsSnapshot {
		return nil, time.Time{}, false, err
	}
	items := make([]connectors.Item, 0, len(d.Records))
	for _, r := range d.Records {
		items = append(items, connectors.Item{ID: r.ID, Key: r.ID, Kind: connectors.KindRecord, Container: containerName(container),
			UpdatedAt: r.DeletedDate, Type: Type, Deleted: true})
	}
	return items, d.Covered, true, nil
}

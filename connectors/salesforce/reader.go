package salesforce

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/unified-connectors/connector-operator/connectors"
)

// Page sizes of the browsing calls.
const (
	defaultLimit = 50
	maxLimit     = 200
	// maxContainersPage bounds a page of Containers.
	maxContainersPage = 1000
	// maxSearchTypes bounds the types one search returns from when the Connection's
	// scope names none: SOSL texts and describes grow with every type.
	maxSearchTypes = 25
	// maxSearchResults is SOSL's own bound on one answer.
	maxSearchResults = 2000
)

func limitOf(n, def, most int) int {
	switch {
	case n <= 0:
		return def
	case n > most:
		return most
	}
	return n
}

// syncable reports whether a describeGlobal entry is a container: queryable, not
// deprecated, replicateable where describe says, and not an associated entity (the
// History, Share, Feed and ChangeEvent companions of every type).
func syncable(o sobjectJSON) bool {
	return o.Queryable && !o.DeprecatedAndHidden && o.AssociateEntityType == nil &&
		(o.Replicateable == nil || *o.Replicateable)
}

// Containers lists the sObject types a sync may read (see syncable), in describeGlobal
// order, by API name (Key and ID) with their label (Name). An empty spec.scope.containers
// means all of them; an org has hundreds, so list the types to sync instead.
func (c *Client) Containers(ctx context.Context, cur string, limit int) (connectors.Page[connectors.Container], error) {
	op := "GET " + c.dataPath("/sobjects")
	limit = limitOf(limit, 100, maxContainersPage)
	start := 0
	if cur != "" {
		p, err := decodeCursor(cur, op, kindContainers, "")
		if err != nil {
			return connectors.Page[connectors.Container]{}, err
		}
		start = p.S
	}
	g, err := c.globalSchema(ctx)
	if err != nil {
		return connectors.Page[connectors.Container]{}, err
	}
	var all []connectors.Container
	for _, o := range g.types {
		if syncable(o) {
			all = append(all, connectors.Container{ID: o.Name, Key: o.Name, Name: o.Label})
		}
	}
	lo := min(start, len(all))
	hi := min(lo+limit, len(all))
	page := connectors.Page[connectors.Container]{Items: all[lo:hi]}
	if hi < len(all) {
		page.NextCursor = cursor{Kind: kindContainers, S: hi}.encode()
	}
	return page, nil
}

// Items lists the live records of q.Container (an sObject API name) modified at or
// after q.UpdatedSince and within q.Filter, newest first (SystemModstamp, then Id,
// descending), paged by key set: SELECT … ORDER BY SystemModstamp DESC, Id DESC LIMIT n.
func (c *Client) Items(ctx context.Context, q connectors.ItemQuery) (connectors.Page[connectors.Item], error) {
	op := "GET " + c.dataPath("/query")
	typ := strings.TrimSpace(q.Container)
	if !validIdent(typ) {
		return connectors.Page[connectors.Item]{}, invalid(op, "container must be an sObject API name")
	}
	filter := strings.TrimSpace(q.Filter)
	if filter != "" {
		if err := checkFilter(filter); err != nil {
			return connectors.Page[connectors.Item]{}, invalid(op, err.Error())
		}
	}
	limit := limitOf(q.Limit, defaultLimit, maxLimit)
	var where []string
	if !q.UpdatedSince.IsZero() && q.UpdatedSince.Unix() > 0 {
		where = append(where, "SystemModstamp >= "+soqlTime(q.UpdatedSince.Truncate(time.Second)))
	}
	if q.Cursor != "" {
		p, err := decodeCursor(q.Cursor, op, kindItems, typ)
		if err != nil {
			return connectors.Page[connectors.Item]{}, err
		}
		if p.A == "" {
			return connectors.Page[connectors.Item]{}, invalid(op, "invalid cursor")
		}
		t := soqlTime(time.Unix(p.T, 0))
		where = append(where, "SystemModstamp <= "+t, "(SystemModstamp < "+t+" OR Id < "+quoteSOQL(p.A)+")")
	}
	if filter != "" {
		where = append(where, "("+filter+")")
	}
	t, err := c.describe(ctx, op, typ)
	if err != nil {
		return connectors.Page[connectors.Item]{}, err
	}
	soql := "SELECT " + selectList(t) + " FROM " + t.name
	if len(where) > 0 {
		soql += " WHERE " + strings.Join(where, " AND ")
	}
	soql += " ORDER BY SystemModstamp DESC, Id DESC LIMIT " + strconv.Itoa(limit+1)
	res, err := c.query(ctx, soql, false)
	if err != nil {
		return connectors.Page[connectors.Item]{}, err
	}
	more := len(res.Records) > limit
	if more {
		res.Records = res.Records[:limit]
	}
	items, err := c.items(op, t, res.Records)
	if err != nil {
		return connectors.Page[connectors.Item]{}, err
	}
	page := connectors.Page[connectors.Item]{Items: items}
	if more && len(items) > 0 {
		last := items[len(items)-1]
		page.NextCursor = cursor{Kind: kindItems, Scope: typ, T: last.UpdatedAt.Unix(), A: last.ID}.encode()
	}
	return page, nil
}

// Item reads one record by Id: its type from the Id's key prefix (describeGlobal), then
// GET /sobjects/{type}/{id}?fields=… . A record in the recycle bin is KindNotFound.
func (c *Client) Item(ctx context.Context, id string) (connectors.Item, error) {
	op := "GET " + c.dataPath("/sobjects/{type}/{id}")
	typ, err := c.typeOfID(ctx, op, id)
	if err != nil {
		return connectors.Item{}, err
	}
	t, err := c.describe(ctx, op, typ)
	if err != nil {
		return connectors.Item{}, err
	}
	path := c.dataPath("/sobjects/" + t.name + "/" + id)
	var r record
	if err := c.do(ctx, call{method: http.MethodGet, path: path, query: url.Values{"fields": {strings.Join(t.selected, ",")}}}, &r); err != nil {
		return connectors.Item{}, err
	}
	it, err := c.item("GET "+path, t, r)
	if err == nil && it.Deleted {
		return connectors.Item{}, notFound("GET "+path, "the record is deleted")
	}
	return it, err
}

// ItemMatching reads record id if it matches filter (spec.scope.filter), in one query:
// SELECT … FROM <type> WHERE Id = '<id>' AND (<filter>). A record outside the filter is
// KindNotFound, as a missing one is.
func (c *Client) ItemMatching(ctx context.Context, id, filter string) (connectors.Item, error) {
	filter = strings.TrimSpace(filter)
	if filter == "" {
		return c.Item(ctx, id)
	}
	op := "GET " + c.dataPath("/query")
	if err := checkFilter(filter); err != nil {
		return connectors.Item{}, invalid(op, err.Error())
	}
	typ, err := c.typeOfID(ctx, op, id)
	if err != nil {
		return connectors.Item{}, err
	}
	t, err := c.describe(ctx, op, typ)
	if err != nil {
		return connectors.Item{}, err
	}
	res, err := c.query(ctx, "SELECT "+selectList(t)+" FROM "+t.name+" WHERE Id = "+quoteSOQL(id)+" AND ("+filter+")", false)
	if err != nil {
		return connectors.Item{}, err
	}
	if len(res.Records) == 0 {
		return connectors.Item{}, notFound(op, "no such record within the connection's filter")
	}
	return c.item(op, t, res.Records[0])
}

// Comments lists a Case's CaseComments, oldest first (CreatedDate, then Id), paged by
// key set. Other types have no comments: KindUnsupported (501 NOT_SUPPORTED).
func (c *Client) Comments(ctx context.Context, itemID, cur string, limit int) (connectors.Page[connectors.Comment], error) {
	op := "GET " + c.dataPath("/query")
	typ, err := c.typeOfID(ctx, op, itemID)
	if err != nil {
		return connectors.Page[connectors.Comment]{}, err
	}
	if !strings.EqualFold(typ, "Case") {
		return connectors.Page[connectors.Comment]{}, unsupported(op, "only Cases have comments in Salesforce")
	}
	limit = limitOf(limit, defaultLimit, maxLimit)
	t, err := c.describe(ctx, op, "CaseComment")
	if err != nil {
		return connectors.Page[connectors.Comment]{}, err
	}
	fields := []string{"Id", "ParentId", "CommentBody", "CreatedDate", "SystemModstamp"}
	for _, f := range []string{"LastModifiedDate", "CreatedById"} {
		if t.has(f) {
			fields = append(fields, f)
		}
	}
	where := []string{"ParentId = " + quoteSOQL(itemID)}
	if cur != "" {
		p, err := decodeCursor(cur, op, kindComments, itemID)
		if err != nil {
			return connectors.Page[connectors.Comment]{}, err
		}
		if p.A == "" {
			return connectors.Page[connectors.Comment]{}, invalid(op, "invalid cursor")
		}
		at := soqlTime(time.Unix(p.T, 0))
		where = append(where, "CreatedDate >= "+at, "(CreatedDate > "+at+" OR Id > "+quoteSOQL(p.A)+")")
	}
	soql := "SELECT " + strings.Join(fields, ", ") + " FROM CaseComment WHERE " + strings.Join(where, " AND ") +
		" ORDER BY CreatedDate, Id LIMIT " + strconv.Itoa(limit+1)
	res, err := c.query(ctx, soql, false)
	if err != nil {
		return connectors.Page[connectors.Comment]{}, err
	}
	if cur == "" && len(res.Records) == 0 {
		// No comments, or no such Case: tell them apart.
		if err := c.do(ctx, call{method: http.MethodGet, path: c.dataPath("/sobjects/Case/" + itemID), query: url.Values{"fields": {"Id"}}}, nil); err != nil {
			return connectors.Page[connectors.Comment]{}, err
		}
	}
	more := len(res.Records) > limit
	if more {
		res.Records = res.Records[:limit]
	}
	page := connectors.Page[connectors.Comment]{Items: make([]connectors.Comment, 0, len(res.Records))}
	for _, r := range res.Records {
		id, parent := r.str("Id"), r.str("ParentId")
		created, ok1 := parseTime(r.str("CreatedDate"))
		updated, ok2 := parseTime(r.str("SystemModstamp"))
		if !validID(id) || !validID(parent) || !ok1 || !ok2 {
			return connectors.Page[connectors.Comment]{}, c.badAnswer(op, "a case comment without Id, ParentId or dates")
		}
		if t, ok := parseTime(r.str("LastModifiedDate")); ok {
			updated = t
		}
		cm := connectors.Comment{ID: id, ItemID: parent, Text: truncate(r.str("CommentBody"), maxTextBytes),
			CreatedAt: created, UpdatedAt: updated, URL: c.recordURL("Case", parent)}
		if a := r.str("CreatedById"); validID(a) {
			cm.Author = connectors.Person{ID: a}
		}
		page.Items = append(page.Items, cm)
	}
	if more && len(page.Items) > 0 {
		last := page.Items[len(page.Items)-1]
		page.NextCursor = cursor{Kind: kindComments, Scope: itemID, T: last.CreatedAt.Unix(), A: last.ID}.encode()
	}
	return page, nil
}

// Create adds a record of type item.Container: item.Title goes to its Name (or Subject,
// LastName, Title: the first createable of these) and item.Text to Description (or
// CommentBody, Body), then the record is read back. POST /sobjects/{type}/ is never
// retried (a repeat would create a second record); when the read-back fails the record
// exists all the same, and Create returns what it knows without an error.
func (c *Client) Create(ctx context.Context, item connectors.NewItem) (connectors.Item, error) {
	typ := strings.TrimSpace(item.Container)
	op := "POST " + c.dataPath("/sobjects/{type}/")
	switch {
	case !validIdent(typ):
		return connectors.Item{}, invalid(op, "container must be an sObject API name")
	case strings.TrimSpace(item.Title) == "":
		return connectors.Item{}, invalid(op, "title is required")
	}
	t, err := c.describe(ctx, op, typ)
	if err != nil {
		return connectors.Item{}, err
	}
	if t.createTitle == "" {
		return connectors.Item{}, invalid(op, "this sObject type has no createable field for a title")
	}
	body := map[string]any{t.createTitle: item.Title}
	if strings.TrimSpace(item.Text) != "" && t.createText != "" {
		body[t.createText] = item.Text
	}
	path := c.dataPath("/sobjects/" + t.name + "/")
	var created struct {
		ID      string `json:"id"`
		Success bool   `json:"success"`
	}
	if err := c.do(ctx, call{method: http.MethodPost, path: path, body: body}, &created); err != nil {
		return connectors.Item{}, err
	}
	if !validID(created.ID) {
		return connectors.Item{}, c.badAnswer("POST "+path, "the created record has no Id")
	}
	if it, err := c.Item(ctx, created.ID); err == nil {
		return it, nil
	}
	text := ""
	if t.createText != "" {
		text = item.Text
	}
	return connectors.Item{ID: created.ID, Key: created.ID, Kind: connectors.KindRecord, Title: item.Title, Text: text,
		URL: c.recordURL(t.name, created.ID), Container: t.name, Type: Type}, nil
}

// Search finds records whose text fields match q.Text through SOSL:
//
//	FIND {<escaped text>} IN ALL FIELDS RETURNING T1(<fields> [WHERE (<filter>)]), … LIMIT n
//
// over q.Containers (the Connection's scope; when empty, the first 25 searchable types
// describeGlobal lists), skipping types SOSL cannot search. Every reserved character of
// the text is escaped (escapeSOSL). Pages are offsets into SOSL's answer, which holds at
// most 2,000 records; kinds other than record find nothing.
func (c *Client) Search(ctx context.Context, q connectors.SearchQuery) (connectors.Page[connectors.Item], error) {
	op := "GET " + c.dataPath("/search")
	switch q.Kind {
	case "", connectors.KindRecord:
	case connectors.KindIssue, connectors.KindPage, connectors.KindRow:
		return connectors.Page[connectors.Item]{Items: []connectors.Item{}}, nil
	default:
		return connectors.Page[connectors.Item]{}, invalid(op, "kind must be record")
	}
	text := strings.TrimSpace(q.Text)
	switch {
	case text == "":
		return connectors.Page[connectors.Item]{}, invalid(op, "search text is required")
	case utf8.RuneCountInString(text) > maxSearchText:
		return connectors.Page[connectors.Item]{}, invalid(op, "search text is too long")
	}
	filter := strings.TrimSpace(q.Filter)
	if filter != "" {
		if err := checkFilter(filter); err != nil {
			return connectors.Page[connectors.Item]{}, invalid(op, err.Error())
		}
	}
	limit := limitOf(q.Limit, defaultLimit, maxLimit)
	offset := 0
	if q.Cursor != "" {
		p, err := decodeCursor(q.Cursor, op, kindSearch, "")
		if err != nil {
			return connectors.Page[connectors.Item]{}, err
		}
		offset = p.S
	}
	if offset >= maxSearchResults {
		return connectors.Page[connectors.Item]{Items: []connectors.Item{}}, nil
	}
	g, err := c.globalSchema(ctx)
	if err != nil {
		return connectors.Page[connectors.Item]{}, err
	}
	var names []string
	for _, k := range q.Containers {
		k = strings.TrimSpace(k)
		if k == "" {
			continue
		}
		if !validIdent(k) {
			return connectors.Page[connectors.Item]{}, invalid(op, "containers must be sObject API names")
		}
		names = append(names, k)
	}
	if len(names) == 0 {
		for _, o := range g.types {
			if o.Searchable && syncable(o) && len(names) < maxSearchTypes {
				names = append(names, o.Name)
			}
		}
	}
	schemas := map[string]*typeSchema{}
	var returning []string
	for _, n := range names {
		o, ok := g.byName[strings.ToLower(n)]
		if !ok || !o.Searchable {
			continue
		}
		t, err := c.describe(ctx, op, o.Name)
		if err != nil {
			return connectors.Page[connectors.Item]{}, err
		}
		schemas[strings.ToLower(t.name)] = t
		ret := t.name + "(" + strings.Join(t.searchFields, ", ")
		if filter != "" {
			ret += " WHERE (" + filter + ")"
		}
		returning = append(returning, ret+")")
	}
	if len(returning) == 0 {
		return connectors.Page[connectors.Item]{Items: []connectors.Item{}}, nil
	}
	want := min(offset+limit+1, maxSearchResults)
	sosl := "FIND {" + escapeSOSL(text) + "} IN ALL FIELDS RETURNING " + strings.Join(returning, ", ") + " LIMIT " + strconv.Itoa(want)
	var out struct {
		SearchRecords []record `json:"searchRecords"`
	}
	if err := c.do(ctx, call{method: http.MethodGet, path: c.dataPath("/search"), query: url.Values{"q": {sosl}}}, &out); err != nil {
		return connectors.Page[connectors.Item]{}, err
	}
	recs := out.SearchRecords
	lo := min(offset, len(recs))
	hi := min(lo+limit, len(recs))
	page := connectors.Page[connectors.Item]{Items: make([]connectors.Item, 0, hi-lo)}
	for _, r := range recs[lo:hi] {
		attrs, _ := r["attributes"].(map[string]any)
		typ, _ := attrs["type"].(string)
		t, ok := schemas[strings.ToLower(typ)]
		if !ok {
			return connectors.Page[connectors.Item]{}, c.badAnswer(op, "a search record of a type not asked for")
		}
		it, err := c.item(op, t, r)
		if err != nil {
			return connectors.Page[connectors.Item]{}, err
		}
		page.Items = append(page.Items, it)
	}
	if len(recs) > hi && hi < maxSearchResults {
		page.NextCursor = cursor{Kind: kindSearch, S: hi}.encode()
	}
	return page, nil
}

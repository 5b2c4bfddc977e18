package salesforce

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/unified-connectors/connector-operator/connectors"
)

// maxTextBytes bounds Item.Text (a long text area holds up to 131,072 characters).
const maxTextBytes = 64 << 10

// record is one record of a query, search or read answer: field values by API name,
// and "attributes".
type record map[string]any

func (r record) str(field string) string {
	if field == "" {
		return ""
	}
	s, _ := r[field].(string)
	return s
}

// parseTime reads a datetime as the REST API writes it (2026-01-02T03:04:05.000+0000).
func parseTime(s string) (time.Time, bool) {
	for _, layout := range []string{"2006-01-02T15:04:05.000-0700", "2006-01-02T15:04:05.000Z0700", time.RFC3339Nano} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// queryResult is the answer of /query, /queryAll and a nextRecordsUrl.
type queryResult struct {
	TotalSize      int      `json:"totalSize"`
	Done           bool     `json:"done"`
	NextRecordsURL string   `json:"nextRecordsUrl"`
	Records        []record `json:"records"`
}

// position is a record's place in SystemModstamp, Id order.
type position struct {
	t  time.Time
	id string
}

// positionOf reads a record's SystemModstamp and Id.
func positionOf(r record) (position, bool) {
	id := r.str("Id")
	t, ok := parseTime(r.str("SystemModstamp"))
	if !ok || !validID(id) {
		return position{}, false
	}
	return position{t: t, id: id}, true
}

// item normalizes a record of type t.
func (c *Client) item(op string, t *typeSchema, r record) (connectors.Item, error) {
	pos, ok := positionOf(r)
	if !ok {
		return connectors.Item{}, c.badAnswer(op, "a record without a valid Id or SystemModstamp")
	}
	it := connectors.Item{
		ID: pos.id, Key: pos.id, Kind: connectors.KindRecord, Container: t.name,
		UpdatedAt: pos.t, Type: Type, URL: c.recordURL(t.name, pos.id),
	}
	if k := r.str(t.keyField); k != "" {
		it.Key = k
	}
	if deleted, _ := r["IsDeleted"].(bool); deleted {
		it.Deleted = true
		return it, nil
	}
	if created, ok := parseTime(r.str("CreatedDate")); ok {
		it.CreatedAt = created
	}
	it.Title = r.str(t.titleField)
	if it.Title == "" {
		it.Title = r.str(t.fallbackTitle)
	}
	if it.Title == "" {
		it.Title = it.Key
	}
	var text []string
	for _, f := range t.textFields {
		if s := strings.TrimSpace(r.str(f)); s != "" {
			text = append(text, s)
		}
	}
	it.Text = truncate(strings.Join(text, "\n\n"), maxTextBytes)
	if id := r.str("CreatedById"); validID(id) {
		it.Author = connectors.Person{ID: id}
	} else if id := r.str("LastModifiedById"); validID(id) {
		it.Author = connectors.Person{ID: id}
	}
	it.Fields = boundedFields(r)
	return it, nil
}

// boundedFields are a record's scalar fields, at most connectors.MaxFieldsBytes as JSON:
// the largest values go first.
func boundedFields(r record) map[string]any {
	type sized struct {
		name string
		size int
	}
	var list []sized
	total := 2
	out := map[string]any{}
	for k, v := range r {
		if k == "attributes" || v == nil {
			continue
		}
		switch v.(type) {
		case string, bool, float64, json.Number:
		default:
			continue // relationship objects and compound fields
		}
		b, err := json.Marshal(v)
		if err != nil {
			continue
		}
		kb, _ := json.Marshal(k)
		n := len(kb) + 1 + len(b) + 1
		out[k] = v
		list = append(list, sized{k, n})
		total += n
	}
	if total <= connectors.MaxFieldsBytes {
		return out
	}
	slices.SortFunc(list, func(a, b sized) int {
		if a.size != b.size {
			return b.size - a.size
		}
		return strings.Compare(a.name, b.name)
	})
	for _, f := range list {
		if total <= connectors.MaxFieldsBytes {
			break
		}
		delete(out, f.name)
		total -= f.size
	}
	return out
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// items normalizes records of t.
func (c *Client) items(op string, t *typeSchema, recs []record) ([]connectors.Item, error) {
	out := make([]connectors.Item, 0, len(recs))
	for _, r := range recs {
		it, err := c.item(op, t, r)
		if err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	return out, nil
}

// selectList is the SELECT list of t's items.
func selectList(t *typeSchema) string { return strings.Join(t.selected, ", ") }

// query runs one SOQL text through /query (or /queryAll with all).
func (c *Client) query(ctx context.Context, soql string, all bool) (queryResult, error) {
	path := c.dataPath("/query")
	if all {
		path = c.dataPath("/queryAll")
	}
	var out queryResult
	err := c.do(ctx, call{method: http.MethodGet, path: path, query: map[string][]string{"q": {soql}}}, &out)
	return out, err
}

// more follows a nextRecordsUrl (checked against locatorPattern).
func (c *Client) more(ctx context.Context, next string) (queryResult, error) {
	var out queryResult
	if !locatorPattern.MatchString(next) {
		return out, c.badAnswer("GET "+c.dataPath("/query/{locator}"), "a nextRecordsUrl that is not this org's query resource")
	}
	resource := "/query/{locator}"
	if strings.Contains(next, "/queryAll/") {
		resource = "/queryAll/{locator}"
	}
	err := c.do(ctx, call{method: http.MethodGet, path: next, opPath: c.dataPath(resource)}, &out)
	return out, err
}

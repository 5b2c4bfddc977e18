package salesforce

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// The client learns the org's schema from describeGlobal (GET /sobjects: every type's
// name, label, key prefix and flags) and describe (GET /sobjects/{type}/describe: its
// fields), and keeps both for schemaTTL: types and fields change rarely, and an item's
// type is found from its Id's key prefix on every Item call.
const (
	schemaTTL = 10 * time.Minute
	// maxDescribes bounds the per-type describes kept (a Connection syncs up to 1,000).
	maxDescribes = 1024
	// maxSelectFields bounds the fields a query selects per type (orgs have types with
	// hundreds of fields; SOQL texts are limited to 100,000 characters).
	maxSelectFields = 150
)

type schemaCache struct {
	mu        sync.Mutex
	global    *globalSchema
	describes map[string]*typeSchema // by lower-case name
}

// sobjectJSON is one type of describeGlobal.
type sobjectJSON struct {
	Name                string  `json:"name"`
	Label               string  `json:"label"`
	KeyPrefix           *string `json:"keyPrefix"`
	Queryable           bool    `json:"queryable"`
	Searchable          bool    `json:"searchable"`
	Createable          bool    `json:"createable"`
	Replicateable       *bool   `json:"replicateable"`
	DeprecatedAndHidden bool    `json:"deprecatedAndHidden"`
	AssociateEntityType *string `json:"associateEntityType"`
}

type globalSchema struct {
	at       time.Time
	types    []sobjectJSON // as answered
	byPrefix map[string]string
	byName   map[string]sobjectJSON // lower-case name
}

// fieldJSON is one field of describe.
type fieldJSON struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	NameField  bool   `json:"nameField"`
	Createable bool   `json:"createable"`
	Length     int    `json:"length"`
}

// typeSchema is what the connector needs of one type.
type typeSchema struct {
	at   time.Time
	name string // canonical API name
	// fields by lower-case name, canonical names as values.
	fields map[string]fieldJSON
	// selected are the fields queries select, Id first.
	selected []string
	// titleField gives Item.Title; keyField Item.Key ("" means the Id).
	titleField, fallbackTitle, keyField string
	// textFields give Item.Text, in describe order.
	textFields []string
	// createTitle and createText receive NewItem.Title and Text.
	createTitle, createText string
	// searchFields are returned by SOSL.
	searchFields []string
}

func (t *typeSchema) has(name string) bool { _, ok := t.fields[strings.ToLower(name)]; return ok }

// globalSchema returns describeGlobal, cached.
func (c *Client) globalSchema(ctx context.Context) (*globalSchema, error) {
	c.schema.mu.Lock()
	g := c.schema.global
	c.schema.mu.Unlock()
	if g != nil && c.now().Sub(g.at) < schemaTTL {
		return g, nil
	}
	var out struct {
		SObjects []sobjectJSON `json:"sobjects"`
	}
	if err := c.do(ctx, call{method: http.MethodGet, path: c.dataPath("/sobjects")}, &out); err != nil {
		return nil, err
	}
	g = &globalSchema{at: c.now(), byPrefix: map[string]string{}, byName: map[string]sobjectJSON{}}
	for _, o := range out.SObjects {
		if !validIdent(o.Name) {
			continue
		}
		g.types = append(g.types, o)
		g.byName[strings.ToLower(o.Name)] = o
		if o.KeyPrefix != nil && len(*o.KeyPrefix) == 3 {
			g.byPrefix[*o.KeyPrefix] = o.Name
		}
	}
	c.schema.mu.Lock()
	c.schema.global = g
	c.schema.mu.Unlock()
	return g, nil
}

// typeOfID is the type an Id's key prefix names.
func (c *Client) typeOfID(ctx context.Context, op, id string) (string, error) {
	if !validID(id) {
		return "", invalid(op, "invalid record Id")
	}
	g, err := c.globalSchema(ctx)
	if err != nil {
		return "", err
	}
	typ, ok := g.byPrefix[id[:3]]
	if !ok {
		return "", notFound(op, "no sObject type has the Id's key prefix")
	}
	return typ, nil
}

// scalarTypes are the describe types whose values are selected and kept in Item.Fields.
var scalarTypes = map[string]bool{
	"id": true, "string": true, "textarea": true, "picklist": true, "multipicklist": true,
	"combobox": true, "email": true, "url": true, "phone": true, "boolean": true,
	"datetime": true, "date": true, "time": true, "double": true, "currency": true,
	"int": true, "long": true, "percent": true, "reference": true,
}

// describe returns typ's schema, cached. typ must pass validIdent.
func (c *Client) describe(ctx context.Context, op, typ string) (*typeSchema, error) {
	if !validIdent(typ) {
		return nil, invalid(op, "invalid sObject name")
	}
	key := strings.ToLower(typ)
	c.schema.mu.Lock()
	t := c.schema.describes[key]
	c.schema.mu.Unlock()
	if t != nil && c.now().Sub(t.at) < schemaTTL {
		return t, nil
	}
	var out struct {
		Name   string      `json:"name"`
		Fields []fieldJSON `json:"fields"`
	}
	path := c.dataPath("/sobjects/" + url.PathEscape(typ) + "/describe")
	if err := c.do(ctx, call{method: http.MethodGet, path: path}, &out); err != nil {
		return nil, err
	}
	if !validIdent(out.Name) {
		return nil, c.badAnswer("GET "+path, "describe names no type")
	}
	t = buildSchema(out.Name, out.Fields)
	t.at = c.now()
	c.schema.mu.Lock()
	if c.schema.describes == nil || len(c.schema.describes) >= maxDescribes {
		c.schema.describes = map[string]*typeSchema{}
	}
	c.schema.describes[key] = t
	c.schema.mu.Unlock()
	return t, nil
}

func buildSchema(name string, fields []fieldJSON) *typeSchema {
	t := &typeSchema{name: name, fields: map[string]fieldJSON{}}
	var nameField string
	for _, f := range fields {
		if !validIdent(f.Name) {
			continue
		}
		t.fields[strings.ToLower(f.Name)] = f
		if f.NameField && nameField == "" {
			nameField = f.Name
		}
	}
	pick := func(names ...string) string {
		for _, n := range names {
			if f, ok := t.fields[strings.ToLower(n)]; ok && n != "" {
				return f.Name
			}
		}
		return ""
	}
	// Title: Name, else Subject (Case, Task), else the describe name field (CaseNumber).
	t.titleField = pick("Name", "Subject", nameField)
	t.fallbackTitle = pick(nameField)
	if strings.EqualFold(name, "Case") {
		t.keyField = pick("CaseNumber")
	}
	createable := func(names ...string) string {
		for _, n := range names {
			if f, ok := t.fields[strings.ToLower(n)]; ok && f.Createable {
				return f.Name
			}
		}
		return ""
	}
	t.createTitle = createable("Name", "Subject", "LastName", "Title")
	t.createText = createable("Description", "CommentBody", "Body")

	seen := map[string]bool{}
	add := func(n string) {
		if n == "" || seen[strings.ToLower(n)] || len(t.selected) >= maxSelectFields {
			return
		}
		if f, ok := t.fields[strings.ToLower(n)]; ok && scalarTypes[f.Type] {
			seen[strings.ToLower(n)] = true
			t.selected = append(t.selected, f.Name)
		}
	}
	for _, n := range []string{"Id", "SystemModstamp", "CreatedDate", "LastModifiedDate", "IsDeleted",
		"CreatedById", "LastModifiedById", t.titleField, t.fallbackTitle, t.keyField} {
		add(n)
	}
	for _, f := range fields {
		if f.Type == "textarea" && validIdent(f.Name) {
			add(f.Name)
			if seen[strings.ToLower(f.Name)] {
				t.textFields = append(t.textFields, f.Name)
			}
		}
	}
	for _, f := range fields {
		if validIdent(f.Name) {
			add(f.Name)
		}
	}
	for _, n := range []string{"Id", t.titleField, t.fallbackTitle, t.keyField, "SystemModstamp", "CreatedDate", "CreatedById"} {
		if n != "" && t.has(n) && !containsFold(t.searchFields, n) {
			t.searchFields = append(t.searchFields, t.fields[strings.ToLower(n)].Name)
		}
	}
	t.searchFields = append(t.searchFields, t.textFields...)
	return t
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

package salesforcetest

import (
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"
)

// Fields are a record's field values by API name: string (text, Ids, references), bool,
// float64 (double, currency), int (int), time.Time (datetime), or nil.
type Fields map[string]any

// record is one record: its versions, the newest last. A version is visible once the
// fake's clock reaches its visibleAt (at once unless SetCommitDelay is set): Salesforce
// stamps SystemModstamp when a transaction starts writing and a reader sees the row only
// after the commit, so a row can appear with a stamp older than rows already read.
type record struct {
	id       string
	typ      *sobject
	versions []version
}

type version struct {
	values    Fields // canonical field names; datetimes truncated to the second
	visibleAt time.Time
}

// visible is the newest version visible at now, nil when none is yet.
func (r *record) visible(now time.Time) Fields {
	for i := len(r.versions) - 1; i >= 0; i-- {
		if !r.versions[i].visibleAt.After(now) {
			if i > 0 {
				r.versions = r.versions[i:] // older versions can never be seen again
			}
			return r.versions[0].values
		}
	}
	return nil
}

// latest is the newest version, visible or not.
func (r *record) latest() Fields { return r.versions[len(r.versions)-1].values }

// stamp is t as Salesforce stores datetimes: UTC, to the second.
func stamp(t time.Time) time.Time { return t.UTC().Truncate(time.Second) }

// SetClock makes the fake read the time from now (a test's controlled clock); nil
// restores time.Now. Every stamp is truncated to the second whatever the clock says.
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now == nil {
		now = time.Now
	}
	s.clock = now
}

// Now is the fake's clock.
func (s *Server) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clock()
}

// SetCommitDelay makes every later write (create, update, Touch, delete, through the API
// or the helpers) invisible to reads, queries, searches and getDeleted until d after its
// SystemModstamp by the fake's clock: the "eventual" mode in which a record updated at t1
// is first seen after records stamped later were read. 0 makes writes visible at once.
func (s *Server) SetCommitDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commitDelay = max(d, 0)
}

// Insert creates a record of typ with f and returns its Id. CreatedDate, LastModifiedDate
// and SystemModstamp are the fake's clock unless f sets them (as time.Time); read-only
// fields may be set here, unlike through the API. Unknown fields or types are an error.
func (s *Server) Insert(typ string, f Fields) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.typeLocked(typ)
	if !ok {
		return "", fmt.Errorf("salesforcetest: no type %q", typ)
	}
	return s.insertLocked(o, f, s.clock())
}

// AddRecords creates n records of typ, fill (nil for defaults) giving the i-th its fields,
// and returns their Ids in creation order. A type with a required Name gets "typ i" when
// fill sets none. It panics on an error: it is a test setup helper.
func (s *Server) AddRecords(typ string, n int, fill func(i int) Fields) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.typeLocked(typ)
	if !ok {
		panic(fmt.Sprintf("salesforcetest: no type %q", typ))
	}
	now := s.clock()
	ids := make([]string, 0, n)
	for i := range n {
		f := Fields{}
		if fill != nil {
			f = fill(i)
		}
		for _, fld := range o.fields {
			if fld.Required && f[fld.Name] == nil {
				f[fld.Name] = defaultValue(o, fld, i)
			}
		}
		id, err := s.insertLocked(o, f, now)
		if err != nil {
			panic(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// defaultValue fills a required field AddRecords was not given.
func defaultValue(o *sobject, f Field, i int) any {
	if f.Type == TypeReference {
		return nil // the caller must give parents; insertLocked reports it
	}
	return fmt.Sprintf("%s %d", o.name, i)
}

// Update sets f on the record id, stamping LastModifiedDate and SystemModstamp with the
// fake's clock (unless f sets them).
func (s *Server) Update(id string, f Fields) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.recordLocked(id)
	if !ok {
		return fmt.Errorf("salesforcetest: no record %q", id)
	}
	return s.updateLocked(r, f, s.clock())
}

// Touch sets LastModifiedDate and SystemModstamp of every id to at (to the second),
// changing nothing else, so that many records tie on one stamp. It panics on an unknown
// id.
func (s *Server) Touch(at time.Time, ids ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		r, ok := s.recordLocked(id)
		if !ok {
			panic(fmt.Sprintf("salesforcetest: no record %q", id))
		}
		if err := s.updateLocked(r, Fields{"LastModifiedDate": at, "SystemModstamp": at}, at); err != nil {
			panic(err)
		}
	}
}

// Delete moves the record to the recycle bin at the fake's clock: IsDeleted becomes true,
// SystemModstamp moves, query and reads stop seeing it, queryAll still does, and the type's
// delete log (getDeleted) records it.
func (s *Server) Delete(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.recordLocked(id)
	if !ok || r.latest()["IsDeleted"] == true {
		return fmt.Errorf("salesforcetest: no live record %q", id)
	}
	s.deleteLocked(r, s.clock())
	return nil
}

// Record returns a copy of the newest version of a record (visible or not, deleted or
// not), for assertions.
func (s *Server) Record(id string) (Fields, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.recordLocked(id)
	if !ok {
		return nil, false
	}
	return maps.Clone(r.latest()), true
}

// AddComment adds a CaseComment with body to the Case caseID and returns its Id.
func (s *Server) AddComment(caseID, body string) (string, error) {
	return s.Insert("CaseComment", Fields{"ParentId": caseID, "CommentBody": body, "IsPublished": true})
}

// IDs returns the Ids of every record of typ, deleted ones included, in creation order.
func (s *Server) IDs(typ string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.typeLocked(typ)
	if !ok {
		return nil
	}
	return append([]string(nil), o.ids...)
}

func (s *Server) recordLocked(id string) (*record, bool) {
	id, ok := canonicalID(id)
	if !ok {
		return nil, false
	}
	o, ok := s.typeOfIDLocked(id)
	if !ok {
		return nil, false
	}
	r, ok := o.records[id]
	return r, ok
}

// fieldError is a refusal of a record write, answered 400 with its code and fields.
type fieldError struct {
	code, msg string
	fields    []string
}

func (e *fieldError) Error() string { return e.code + ": " + e.msg }

// checkWriteLocked normalises f against o: canonical names, value types, references that
// exist. api is true for writes through the REST API, which may not set read-only fields.
func (s *Server) checkWriteLocked(o *sobject, f Fields, api bool, now time.Time) (Fields, error) {
	out := Fields{}
	for name, v := range f {
		fld, ok := o.field(name)
		if !ok {
			return nil, &fieldError{codeInvalidField, fmt.Sprintf("No such column '%s' on sobject of type %s", name, o.name), nil}
		}
		if api && fld.Name == "Id" {
			return nil, &fieldError{codeInvalidField, "The Id field should not be specified in the sobject data.", nil}
		}
		if api && fld.ReadOnly {
			return nil, &fieldError{codeInvalidInsert, fmt.Sprintf("Unable to create/update fields: %s. Please check the security settings of this field and verify that it is read/write for your profile or permission set.", fld.Name), []string{fld.Name}}
		}
		cv, err := coerce(fld, v)
		if err != nil {
			return nil, &fieldError{codeJSONParser, err.Error(), []string{fld.Name}}
		}
		if fld.Type == TypeReference && cv != nil {
			id, ok := canonicalID(cv.(string))
			if !ok {
				return nil, &fieldError{codeMalformedID, fmt.Sprintf("%s: id value of incorrect type: %v", fld.Label, cv), []string{fld.Name}}
			}
			target, found := s.recordLocked(id)
			if !found || !containsFold(fld.ReferenceTo, target.typ.name) || target.visible(now) == nil {
				return nil, &fieldError{codeFieldIntegrity, fmt.Sprintf("%s: id value of incorrect type: %s", fld.Label, id), []string{fld.Name}}
			}
			cv = id
		}
		out[fld.Name] = cv
	}
	return out, nil
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// coerce turns a value from JSON or a test into the field's Go type.
func coerce(f Field, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch f.Type {
	case TypeBoolean:
		if b, ok := v.(bool); ok {
			return b, nil
		}
	case TypeDateTime:
		switch t := v.(type) {
		case time.Time:
			return stamp(t), nil
		case string:
			if p, ok := parseAPIDateTime(t); ok {
				return p, nil
			}
		}
	case TypeDouble, TypeCurrency:
		switch n := v.(type) {
		case float64:
			return n, nil
		case int:
			return float64(n), nil
		}
	case TypeInt:
		switch n := v.(type) {
		case int:
			return n, nil
		case float64:
			if n == float64(int(n)) {
				return int(n), nil
			}
		}
	default:
		if str, ok := v.(string); ok {
			return str, nil
		}
	}
	return nil, fmt.Errorf("cannot deserialize instance of %s from %T value", f.Type, v)
}

// parseAPIDateTime reads a datetime as the REST API writes and accepts it.
func parseAPIDateTime(s string) (time.Time, bool) {
	for _, layout := range []string{dateTimeLayout, time.RFC3339Nano, "2006-01-02T15:04:05.000Z0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			return stamp(t), true
		}
	}
	return time.Time{}, false
}

// dateTimeLayout is how the REST API writes datetimes: 2026-01-02T03:04:05.000+0000.
const dateTimeLayout = "2006-01-02T15:04:05.000-0700"

func (s *Server) insertLocked(o *sobject, f Fields, now time.Time) (string, error) {
	vals, err := s.checkWriteLocked(o, f, false, now)
	if err != nil {
		return "", err
	}
	if missing := missingRequired(o, vals); len(missing) > 0 {
		return "", &fieldError{codeRequiredMissing, fmt.Sprintf("Required fields are missing: [%s]", strings.Join(missing, ", ")), missing}
	}
	return s.createLocked(o, vals, now), nil
}

func missingRequired(o *sobject, vals Fields) []string {
	var missing []string
	for _, fld := range o.fields {
		if fld.Required {
			if v, ok := vals[fld.Name]; !ok || v == nil || v == "" {
				missing = append(missing, fld.Name)
			}
		}
	}
	return missing
}

// createLocked stores a checked record with the platform's fields filled in.
func (s *Server) createLocked(o *sobject, vals Fields, now time.Time) string {
	s.nextID++
	id := makeID(o.prefix, s.nextID)
	at := stamp(now)
	full := Fields{}
	for _, fld := range o.fields {
		full[fld.Name] = nil
	}
	maps.Copy(full, vals)
	full["Id"] = id
	full["IsDeleted"] = false
	for _, k := range []string{"CreatedDate", "LastModifiedDate", "SystemModstamp"} {
		if full[k] == nil {
			full[k] = at
		}
	}
	s.defaultsLocked(o, full)
	derive(o, full)
	r := &record{id: id, typ: o, versions: []version{{values: full, visibleAt: s.visibleAtLocked(full["SystemModstamp"].(time.Time))}}}
	o.records[id] = r
	o.ids = append(o.ids, id)
	return id
}

// defaultsLocked fills what the platform sets on create.
func (s *Server) defaultsLocked(o *sobject, full Fields) {
	switch o.name {
	case "Case":
		if full["CaseNumber"] == nil {
			s.caseNumber++
			full["CaseNumber"] = fmt.Sprintf("%08d", 1000+s.caseNumber)
		}
		if full["Status"] == nil {
			full["Status"] = "New"
		}
		if full["Priority"] == nil {
			full["Priority"] = "Medium"
		}
	case "CaseComment":
		if full["IsPublished"] == nil {
			full["IsPublished"] = false
		}
	}
}

// derive computes formula-like fields from the others.
func derive(o *sobject, full Fields) {
	switch o.name {
	case "Contact":
		first, _ := full["FirstName"].(string)
		last, _ := full["LastName"].(string)
		full["Name"] = strings.TrimSpace(first + " " + last)
	case "Case":
		full["IsClosed"] = full["Status"] == "Closed"
	}
}

func (s *Server) visibleAtLocked(stamped time.Time) time.Time {
	if s.commitDelay == 0 {
		return time.Time{} // visible at once, whatever the clock says later
	}
	return stamped.Add(s.commitDelay)
}

// updateLocked writes a new version of r with f over its newest one.
func (s *Server) updateLocked(r *record, f Fields, now time.Time) error {
	vals, err := s.checkWriteLocked(r.typ, f, false, now)
	if err != nil {
		return err
	}
	return s.writeVersionLocked(r, vals, now)
}

func (s *Server) writeVersionLocked(r *record, vals Fields, now time.Time) error {
	next := maps.Clone(r.latest())
	maps.Copy(next, vals)
	at := stamp(now)
	if _, set := vals["SystemModstamp"]; !set {
		next["SystemModstamp"] = at
	}
	if _, set := vals["LastModifiedDate"]; !set {
		next["LastModifiedDate"] = next["SystemModstamp"]
	}
	derive(r.typ, next)
	r.versions = append(r.versions, version{values: next, visibleAt: s.visibleAtLocked(next["SystemModstamp"].(time.Time))})
	return nil
}

func (s *Server) deleteLocked(r *record, now time.Time) {
	at := stamp(now)
	_ = s.writeVersionLocked(r, Fields{"IsDeleted": true, "SystemModstamp": at}, now)
	r.typ.deleted = append(r.typ.deleted, deletedRecord{id: r.id, at: at, visibleAt: s.visibleAtLocked(at)})
	if r.typ.name == "Case" {
		// Deleting a Case deletes its comments, as the platform's cascade does.
		if cc, ok := s.typeLocked("CaseComment"); ok {
			for _, cid := range cc.ids {
				c := cc.records[cid]
				if c.latest()["ParentId"] == r.id && c.latest()["IsDeleted"] != true {
					s.deleteLocked(c, now)
				}
			}
		}
	}
}

// ManualClock is a clock a test moves by hand, for SetClock.
type ManualClock struct {
	mu  sync.Mutex
	now time.Time
}

// NewManualClock returns a clock standing at t.
func NewManualClock(t time.Time) *ManualClock { return &ManualClock{now: t} }

// Now is the clock's time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock on by d.
func (c *ManualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Set puts the clock at t.
func (c *ManualClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

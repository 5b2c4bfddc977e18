package salesforcetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ordered is a JSON object that keeps its keys in order, as Salesforce answers fields in
// the order of the SELECT list or of describe.
type ordered struct {
	keys []string
	vals []any
}

func (o *ordered) add(k string, v any) { o.keys, o.vals = append(o.keys, k), append(o.vals, v) }

// MarshalJSON writes the object with its keys in order.
func (o *ordered) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kj, _ := json.Marshal(k)
		b.Write(kj)
		b.WriteByte(':')
		vj, err := json.Marshal(o.vals[i])
		if err != nil {
			return nil, err
		}
		b.Write(vj)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// wireValue is a stored value as the REST API writes it.
func wireValue(v any) any {
	if t, ok := v.(time.Time); ok {
		return t.UTC().Format(dateTimeLayout)
	}
	return v
}

// appendRecord writes a record as render does, straight into JSON.
func appendRecord(b []byte, v string, o *sobject, vals Fields, fields []string) []byte {
	b = append(b, `{"attributes":{"type":`...)
	b = appendJSONString(b, o.name)
	b = append(b, `,"url":`...)
	b = appendJSONString(b, recordURL(v, o.name, vals["Id"].(string)))
	b = append(b, '}')
	for _, f := range fields {
		b = append(b, ',')
		b = appendJSONString(b, f)
		b = append(b, ':')
		switch x := vals[f].(type) {
		case nil:
			b = append(b, "null"...)
		case string:
			b = appendJSONString(b, x)
		case bool:
			b = strconv.AppendBool(b, x)
		case int:
			b = strconv.AppendInt(b, int64(x), 10)
		case float64:
			j, _ := json.Marshal(x)
			b = append(b, j...)
		case time.Time:
			b = appendJSONString(b, x.UTC().Format(dateTimeLayout))
		default:
			j, _ := json.Marshal(x)
			b = append(b, j...)
		}
	}
	return append(b, '}')
}

// appendJSONString writes s as a JSON string, escaping as encoding/json does.
func appendJSONString(b []byte, s string) []byte {
	plain := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' || c >= 0x80 {
			plain = false
			break
		}
	}
	if plain {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	j, _ := json.Marshal(s)
	return append(b, j...)
}

// recordURL is a record's attributes.url.
func recordURL(v, typ, id string) string { return APIPath(v) + "/sobjects/" + typ + "/" + id }

// render writes a record with attributes and the named fields (canonical names).
func render(v string, o *sobject, vals Fields, fields []string) *ordered {
	out := &ordered{}
	out.add("attributes", map[string]string{"type": o.name, "url": recordURL(v, o.name, vals["Id"].(string))})
	for _, f := range fields {
		out.add(f, wireValue(vals[f]))
	}
	return out
}

func allFieldNames(o *sobject) []string {
	names := make([]string, len(o.fields))
	for i, f := range o.fields {
		names[i] = f.Name
	}
	return names
}

// sobjects serves /sobjects and everything under it.
func (s *Server) sobjects(w http.ResponseWriter, r *http.Request, v string, seg []string) {
	if len(seg) == 0 {
		if allowMethods(w, r, http.MethodGet) {
			s.describeGlobal(w, v)
		}
		return
	}
	s.mu.Lock()
	o, ok := s.typeLocked(seg[0])
	s.mu.Unlock()
	if !ok {
		writeErrors(w, http.StatusNotFound, codeNotFound, msgNotFound)
		return
	}
	switch {
	case len(seg) == 1:
		if !allowMethods(w, r, http.MethodGet, http.MethodPost) {
			return
		}
		if r.Method == http.MethodPost {
			s.create(w, r, v, o)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"objectDescribe": s.typeSummary(v, o), "recentItems": []any{}})
	case len(seg) == 2 && seg[1] == "describe":
		if allowMethods(w, r, http.MethodGet) {
			s.describe(w, v, o)
		}
	case len(seg) == 2 && seg[1] == "deleted":
		if allowMethods(w, r, http.MethodGet) {
			s.getDeleted(w, r, o)
		}
	case len(seg) == 2 && seg[1] == "updated":
		if allowMethods(w, r, http.MethodGet) {
			s.getUpdated(w, r, o)
		}
	case len(seg) == 2:
		if !allowMethods(w, r, http.MethodGet, http.MethodPatch, http.MethodDelete) {
			return
		}
		s.recordByID(w, r, v, o, seg[1])
	default:
		writeErrors(w, http.StatusNotFound, codeNotFound, msgNotFound)
	}
}

func (s *Server) typeSummary(v string, o *sobject) map[string]any {
	root := APIPath(v) + "/sobjects/" + o.name
	return map[string]any{
		"name": o.name, "label": o.label, "labelPlural": o.label + "s", "keyPrefix": o.prefix,
		"custom": o.custom, "queryable": true, "searchable": o.name != "CaseComment",
		"createable": true, "updateable": true, "deletable": true, "replicateable": true,
		"urls": map[string]string{"sobject": root, "describe": root + "/describe", "rowTemplate": root + "/{ID}"},
	}
}

func (s *Server) describeGlobal(w http.ResponseWriter, v string) {
	s.mu.Lock()
	list := make([]map[string]any, 0, len(s.typeOrder))
	for _, name := range s.typeOrder {
		o, _ := s.typeLocked(name)
		list = append(list, s.typeSummary(v, o))
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": list})
}

func (s *Server) describe(w http.ResponseWriter, v string, o *sobject) {
	s.mu.Lock()
	fields := make([]map[string]any, 0, len(o.fields))
	for _, f := range o.fields {
		d := map[string]any{
			"name": f.Name, "label": f.Label, "type": string(f.Type),
			"nillable":   !f.Required && f.Type != TypeID && f.Type != TypeBoolean && !isSystemField(f.Name),
			"createable": !f.ReadOnly, "updateable": !f.ReadOnly,
			"nameField": f.NameField, "custom": strings.HasSuffix(f.Name, "__c"),
			"filterable": f.Type != TypeTextArea, "sortable": f.Type != TypeTextArea,
			"referenceTo": append([]string{}, f.ReferenceTo...),
			"length":      fieldLength(f),
		}
		fields = append(fields, d)
	}
	summary := s.typeSummary(v, o)
	s.mu.Unlock()
	summary["fields"] = fields
	writeJSON(w, http.StatusOK, summary)
}

func isSystemField(name string) bool {
	for _, f := range systemFields {
		if f.Name == name {
			return true
		}
	}
	return false
}

func fieldLength(f Field) int {
	switch f.Type {
	case TypeID, TypeReference:
		return 18
	case TypeTextArea:
		return 32000
	case TypeString, TypePicklist, TypeEmail, TypeURL:
		return 255
	}
	return 0
}

// decodeBody reads a JSON object body as Fields; numbers stay float64 (coerce turns them
// into ints where the field is an int).
func decodeBody(r *http.Request) (Fields, error) {
	var f Fields
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	if err := dec.Decode(&f); err != nil {
		return nil, err
	}
	if f == nil {
		return nil, errors.New("the body must be a JSON object")
	}
	return f, nil
}

// create answers POST /sobjects/{type}/: 201 {id, success, errors}.
func (s *Server) create(w http.ResponseWriter, r *http.Request, v string, o *sobject) {
	f, err := decodeBody(r)
	if err != nil {
		writeErrors(w, http.StatusBadRequest, codeJSONParser, "Unexpected character in the request body: "+errSummary(err))
		return
	}
	if s.takeLockFault() {
		writeErrors(w, http.StatusBadRequest, codeUnableToLockRow, "unable to obtain exclusive access to this record")
		return
	}
	s.mu.Lock()
	now := s.clock()
	vals, err := s.checkWriteLocked(o, f, true, now)
	var id string
	if err == nil {
		if missing := missingRequired(o, vals); len(missing) > 0 {
			err = &fieldError{codeRequiredMissing, "Required fields are missing: [" + strings.Join(missing, ", ") + "]", missing}
		} else {
			id = s.createLocked(o, vals, now)
		}
	}
	s.mu.Unlock()
	if writeFieldError(w, err) {
		return
	}
	w.Header().Set("Location", recordURL(v, o.name, id))
	writeJSON(w, http.StatusCreated, map[string]any{"id": id, "success": true, "errors": []any{}})
}

// errSummary is a JSON error's text without the body it quotes.
func errSummary(err error) string {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return syn.Error()
	}
	return "invalid JSON"
}

func writeFieldError(w http.ResponseWriter, err error) bool {
	if err == nil {
		return false
	}
	var fe *fieldError
	if errors.As(err, &fe) {
		writeErrors(w, http.StatusBadRequest, fe.code, fe.msg, fe.fields...)
		return true
	}
	writeErrors(w, http.StatusBadRequest, "UNKNOWN_EXCEPTION", err.Error())
	return true
}

// recordByID serves GET, PATCH and DELETE of /sobjects/{type}/{id}.
func (s *Server) recordByID(w http.ResponseWriter, r *http.Request, v string, o *sobject, rawID string) {
	id, ok := canonicalID(rawID)
	s.mu.Lock()
	var rec *record
	if ok && strings.HasPrefix(id, o.prefix) {
		rec = o.records[id]
	}
	now := s.clock()
	var vals Fields
	if rec != nil {
		vals = rec.visible(now)
	}
	s.mu.Unlock()
	switch {
	case vals == nil:
		writeErrors(w, http.StatusNotFound, codeNotFound, msgNotFound)
		return
	case vals["IsDeleted"] == true:
		writeErrors(w, http.StatusNotFound, codeEntityDeleted, msgEntityDeleted)
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		fields := allFieldNames(o)
		if list := r.URL.Query().Get("fields"); list != "" {
			fields = fields[:0:0]
			for _, name := range strings.Split(list, ",") {
				f, ok := o.field(strings.TrimSpace(name))
				if !ok {
					writeErrors(w, http.StatusBadRequest, codeInvalidField, "No such column '"+strings.TrimSpace(name)+"' on sobject of type "+o.name)
					return
				}
				fields = append(fields, f.Name)
			}
		}
		writeJSON(w, http.StatusOK, render(v, o, vals, fields))
	case http.MethodPatch:
		f, err := decodeBody(r)
		if err != nil {
			writeErrors(w, http.StatusBadRequest, codeJSONParser, "Unexpected character in the request body: "+errSummary(err))
			return
		}
		if s.takeLockFault() {
			writeErrors(w, http.StatusBadRequest, codeUnableToLockRow, "unable to obtain exclusive access to this record or 1 records: "+id)
			return
		}
		s.mu.Lock()
		checked, err := s.checkWriteLocked(o, f, true, now)
		if err == nil {
			err = s.writeVersionLocked(rec, checked, now)
		}
		s.mu.Unlock()
		if !writeFieldError(w, err) {
			w.WriteHeader(http.StatusNoContent)
		}
	case http.MethodDelete:
		if s.takeLockFault() {
			writeErrors(w, http.StatusBadRequest, codeUnableToLockRow, "unable to obtain exclusive access to this record or 1 records: "+id)
			return
		}
		s.mu.Lock()
		s.deleteLocked(rec, now)
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}
}

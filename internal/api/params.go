package api

import (
	"bytes"
	"compress/flate"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/unified-connectors/connector-operator/connectors"
)

// Request limits. Everything a caller sends is checked against these before it is used.
const (
	defaultLimit       = 25
	maxLimit           = 100
	defaultSearchLimit = 20
	maxSearchLimit     = 100
	maxKeyLen          = 255 // container keys, item ids
	maxTitleLen        = 255 // Jira's summary limit; Confluence allows the same
	maxTextLen         = 256 << 10
	maxQueryLen        = 1000 // search text (Jira refuses longer)
	maxCursorLen       = 64 << 10
	maxListEntries     = 100 // namespaces= and connections= entries
)

// checkNamespace refuses a namespace that cannot exist.
func checkNamespace(ns string) *apiError {
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return validationf("namespace %q is not a valid namespace name", clip(ns))
	}
	return nil
}

// checkName refuses an object name that cannot exist.
func checkName(kind, name string) *apiError {
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return validationf("%s name %q is not a valid name", kind, clip(name))
	}
	return nil
}

// checkKey refuses a container key or item id that is empty, too long or not printable.
func checkKey(field, v string) *apiError {
	switch {
	case v == "":
		return validationf("%s is required", field)
	case len(v) > maxKeyLen:
		return validationf("%s is longer than %d bytes", field, maxKeyLen)
	case !printable(v):
		return validationf("%s must be printable text", field)
	}
	return nil
}

// printable is valid UTF-8 without control characters.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// clip shortens user input quoted back in a message.
func clip(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}

// query reads a request's query parameters, refusing unknown and repeated ones: a typo
// (limt=5) is an error rather than silently ignored.
type query struct {
	v url.Values
}

func newQuery(raw string, allowed ...string) (query, *apiError) {
	v, err := url.ParseQuery(raw)
	if err != nil {
		return query{}, validationf("the query string is malformed")
	}
	for k, vals := range v {
		if !slices.Contains(allowed, k) {
			if len(allowed) == 0 {
				return query{}, validationf("unknown query parameter %q: this route takes none", clip(k))
			}
			return query{}, validationf("unknown query parameter %q (allowed: %s)", clip(k), strings.Join(allowed, ", "))
		}
		if len(vals) > 1 {
			return query{}, validationf("query parameter %q is given %d times", k, len(vals))
		}
	}
	return query{v: v}, nil
}

func (q query) get(k string) string { return q.v.Get(k) }

// limit parses limit= in [1, most], def when absent.
func (q query) limit(def, most int) (int, *apiError) {
	raw := q.v.Get("limit")
	if raw == "" {
		return def, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 || n > most {
		return 0, validationf("limit must be an integer from 1 to %d", most)
	}
	return n, nil
}

// time parses an RFC 3339 instant, zero when absent.
func (q query) time(k string) (time.Time, *apiError) {
	raw := q.v.Get(k)
	if raw == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, raw)
	if err != nil {
		return time.Time{}, validationf("%s must be an RFC 3339 time, e.g. 2025-01-31T12:00:00Z", k)
	}
	return t, nil
}

// list parses a comma-separated list, dropping empty entries.
func (q query) list(k string) ([]string, *apiError) {
	raw := q.v.Get(k)
	if raw == "" {
		return nil, nil
	}
	var out []string
	for _, e := range strings.Split(raw, ",") {
		if e = strings.TrimSpace(e); e != "" && !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	if len(out) > maxListEntries {
		return nil, validationf("%s has more than %d entries", k, maxListEntries)
	}
	return out, nil
}

// decodeJSON reads a JSON object body into v strictly: application/json, at most
// maxBodyBytes, no unknown fields, nothing after the object.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) *apiError {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return validationf("the body must be application/json")
	}
	body := http.MaxBytesReader(w, r.Body, maxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return bodyError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return bodyError(err)
		}
		return validationf("the body must hold one JSON object and nothing after it")
	}
	return nil
}

// bodyError explains a JSON decoding failure without quoting the body.
func bodyError(err error) *apiError {
	var (
		tooBig    *http.MaxBytesError
		syntax    *json.SyntaxError
		typeError *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &tooBig):
		return validationf("the body is larger than %d bytes", maxBodyBytes)
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		return validationf("the body is not valid JSON")
	case errors.Is(err, io.EOF):
		return validationf("the body is empty; a JSON object is required")
	case errors.As(err, &typeError):
		if typeError.Field != "" {
			return validationf("field %q has the wrong type", clip(typeError.Field))
		}
		return validationf("the body must be a JSON object")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return validationf("unknown field %s", clip(strings.TrimPrefix(err.Error(), "json: unknown field ")))
	default:
		return validationf("the body is not a valid JSON object")
	}
}

// newItemRequest is the body of POST …/items.
type newItemRequest struct {
	Container string `json:"container"`
	Title     string `json:"title"`
	Text      string `json:"text"`
}

func (b newItemRequest) check() *apiError {
	if err := checkKey("container", strings.TrimSpace(b.Container)); err != nil {
		return err
	}
	title := strings.TrimSpace(b.Title)
	switch {
	case title == "":
		return validationf("title is required")
	case utf8.RuneCountInString(title) > maxTitleLen:
		return validationf("title is longer than %d characters", maxTitleLen)
	case strings.ContainsAny(title, "\r\n") || !printable(title):
		return validationf("title must be one line of printable text")
	case len(b.Text) > maxTextLen:
		return validationf("text is longer than %d bytes", maxTextLen)
	case !utf8.ValidString(b.Text):
		return validationf("text must be valid UTF-8")
	}
	return nil
}

// Cursors. A list cursor wraps the vendor's cursor with the listing it belongs to, so
// that a cursor of one Connection, container or item cannot page another. A search
// cursor holds each pending source's vendor cursor and how many items of that page were
// already returned. Both are opaque to callers (base64url) and checked on the way in;
// the vendor cursor inside is checked again by its connector.

const (
	listCursorPrefix   = "c1."
	searchCursorPrefix = "s1."
)

type listCursor struct {
	Scope  string `json:"s"`
	Vendor string `json:"c"`
}

func encodeListCursor(scope, vendor string) string {
	if vendor == "" {
		return ""
	}
	b, _ := json.Marshal(listCursor{Scope: digest(scope)[:16], Vendor: vendor})
	return listCursorPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// decodeListCursor returns the vendor cursor in raw, which must belong to scope.
func decodeListCursor(raw, scope string) (string, *apiError) {
	if raw == "" {
		return "", nil
	}
	bad := validationf("cursor is not valid for this listing")
	if len(raw) > maxCursorLen {
		return "", bad
	}
	body, ok := strings.CutPrefix(raw, listCursorPrefix)
	if !ok {
		return "", bad
	}
	b, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return "", bad
	}
	var c listCursor
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if dec.Decode(&c) != nil || c.Scope != digest(scope)[:16] || c.Vendor == "" || !printable(c.Vendor) {
		return "", bad
	}
	return c.Vendor, nil
}

// searchCursor is the position of a search: the query it belongs to and, for every
// source that may have more, where to resume.
type searchCursor struct {
	Query   string         `json:"q"`
	Sources []sourceCursor `json:"s"`
}

type sourceCursor struct {
	// Source is "namespace/name".
	Source string `json:"n"`
	// Vendor is the vendor cursor of the page to read ("" for the first).
	Vendor string `json:"c,omitempty"`
	// Skip is how many items of that page were already returned.
	Skip int `json:"k,omitempty"`
	// Size is the page size the page was read with, so that it is read again the same.
	Size int `json:"z,omitempty"`
}

func encodeSearchCursor(c searchCursor) string {
	if len(c.Sources) == 0 {
		return ""
	}
	var buf bytes.Buffer
	zw, _ := flate.NewWriter(&buf, flate.BestSpeed)
	_ = json.NewEncoder(zw).Encode(c)
	_ = zw.Close()
	return searchCursorPrefix + base64.RawURLEncoding.EncodeToString(buf.Bytes())
}

// decodeSearchCursor reads a search cursor that must belong to the query fingerprint.
func decodeSearchCursor(raw, fingerprint string) (searchCursor, *apiError) {
	bad := validationf("cursor is not valid for this search")
	if len(raw) > maxCursorLen {
		return searchCursor{}, bad
	}
	body, ok := strings.CutPrefix(raw, searchCursorPrefix)
	if !ok {
		return searchCursor{}, bad
	}
	b, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return searchCursor{}, bad
	}
	// Bound the inflated size too: a small cursor must not expand into megabytes.
	plain, err := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(b)), 4*maxCursorLen+1))
	if err != nil || len(plain) > 4*maxCursorLen {
		return searchCursor{}, bad
	}
	var c searchCursor
	dec := json.NewDecoder(bytes.NewReader(plain))
	dec.DisallowUnknownFields()
	if dec.Decode(&c) != nil || c.Query != fingerprint || len(c.Sources) == 0 {
		return searchCursor{}, bad
	}
	seen := make(map[string]bool, len(c.Sources))
	for _, s := range c.Sources {
		ns, name, ok := strings.Cut(s.Source, "/")
		if !ok || checkNamespace(ns) != nil || checkName("connection", name) != nil || seen[s.Source] ||
			s.Skip < 0 || s.Skip > maxSearchLimit || s.Size < 0 || s.Size > maxSearchLimit || s.Skip > s.Size || !printable(s.Vendor) {
			return searchCursor{}, bad
		}
		seen[s.Source] = true
	}
	return c, nil
}

// searchRequest is a parsed GET /api/v1/search.
type searchRequest struct {
	text        string
	kind        string
	namespaces  []string
	connections []connectionFilter
	limit       int
	cursor      string
	// timeout is the caller's per-source deadline (timeout=), 0 for the server's.
	timeout time.Duration
}

// Bounds of a search's timeout=; the server's SearchSourceTimeout caps it too.
const (
	minSearchTimeout = 100 * time.Millisecond
	maxSearchTimeout = time.Minute
)

// connectionFilter is one connections= entry: "namespace/name" or a bare name, which
// matches in every namespace searched.
type connectionFilter struct {
	namespace, name string
}

func (f connectionFilter) matches(ns, name string) bool {
	return f.name == name && (f.namespace == "" || f.namespace == ns)
}

// parseSearch reads a search request. tenant is X-Tenant-Id: the namespace searched when
// namespaces= is absent.
func parseSearch(rawQuery, tenant string) (searchRequest, *apiError) {
	q, err := newQuery(rawQuery, "q", "namespaces", "connections", "kind", "limit", "cursor", "timeout")
	if err != nil {
		return searchRequest{}, err
	}
	sr := searchRequest{text: strings.TrimSpace(q.get("q")), kind: q.get("kind"), cursor: q.get("cursor")}
	switch {
	case sr.text == "":
		return searchRequest{}, validationf("q is required")
	case utf8.RuneCountInString(sr.text) > maxQueryLen:
		return searchRequest{}, validationf("q is longer than %d characters", maxQueryLen)
	case !printable(sr.text):
		return searchRequest{}, validationf("q must be printable text")
	}
	if kinds := itemKinds(); sr.kind != "" && !slices.Contains(kinds, sr.kind) {
		return searchRequest{}, validationf("kind must be one of %s", strings.Join(kinds, ", "))
	}
	if sr.limit, err = q.limit(defaultSearchLimit, maxSearchLimit); err != nil {
		return searchRequest{}, err
	}
	if sr.namespaces, err = q.list("namespaces"); err != nil {
		return searchRequest{}, err
	}
	if len(sr.namespaces) == 0 && tenant != "" {
		sr.namespaces = []string{tenant}
	}
	for _, ns := range sr.namespaces {
		if err := checkNamespace(ns); err != nil {
			return searchRequest{}, err
		}
	}
	conns, err := q.list("connections")
	if err != nil {
		return searchRequest{}, err
	}
	for _, c := range conns {
		f := connectionFilter{name: c}
		if ns, name, ok := strings.Cut(c, "/"); ok {
			if err := checkNamespace(ns); err != nil {
				return searchRequest{}, err
			}
			f = connectionFilter{namespace: ns, name: name}
		}
		if err := checkName("connection", f.name); err != nil {
			return searchRequest{}, err
		}
		sr.connections = append(sr.connections, f)
	}
	if len(sr.cursor) > maxCursorLen {
		return searchRequest{}, validationf("cursor is not valid for this search")
	}
	if raw := q.get("timeout"); raw != "" {
		d, perr := time.ParseDuration(raw)
		if perr != nil || d < minSearchTimeout || d > maxSearchTimeout {
			return searchRequest{}, validationf("timeout must be a duration from %s to %s, e.g. 2s", minSearchTimeout, maxSearchTimeout)
		}
		sr.timeout = d
	}
	return sr, nil
}

// fingerprint identifies what a search asks, so that its cursor cannot resume another.
func (sr searchRequest) fingerprint() string {
	conns := make([]string, len(sr.connections))
	for i, c := range sr.connections {
		conns[i] = c.namespace + "/" + c.name
	}
	ns := slices.Clone(sr.namespaces)
	slices.Sort(ns)
	slices.Sort(conns)
	return digest(sr.text, sr.kind, strings.Join(ns, ","), strings.Join(conns, ","))[:16]
}

// itemsRequest is a parsed GET …/items.
type itemsRequest struct {
	container    string
	updatedSince time.Time
	limit        int
	cursor       string
}

func parseItems(rawQuery string) (itemsRequest, *apiError) {
	q, err := newQuery(rawQuery, "container", "updatedSince", "cursor", "limit")
	if err != nil {
		return itemsRequest{}, err
	}
	ir := itemsRequest{container: strings.TrimSpace(q.get("container")), cursor: q.get("cursor")}
	if err := checkKey("container", ir.container); err != nil {
		return itemsRequest{}, err
	}
	if ir.updatedSince, err = q.time("updatedSince"); err != nil {
		return itemsRequest{}, err
	}
	if ir.limit, err = q.limit(defaultLimit, maxLimit); err != nil {
		return itemsRequest{}, err
	}
	return ir, nil
}

// pageRequest is a parsed cursor= and limit= of a listing.
type pageRequest struct {
	limit  int
	cursor string
}

func parsePage(rawQuery string) (pageRequest, *apiError) {
	q, err := newQuery(rawQuery, "cursor", "limit")
	if err != nil {
		return pageRequest{}, err
	}
	pr := pageRequest{cursor: q.get("cursor")}
	if pr.limit, err = q.limit(defaultLimit, maxLimit); err != nil {
		return pageRequest{}, err
	}
	return pr, nil
}

// itemKinds lists the item kinds of every registered connector type, sorted.
func itemKinds() []string {
	var kinds []string
	for _, t := range connectors.Types() {
		desc, _ := connectors.Describe(t)
		for _, k := range desc.ItemKinds {
			if !slices.Contains(kinds, k) {
				kinds = append(kinds, k)
			}
		}
	}
	slices.Sort(kinds)
	return kinds
}

package postgresql

import (
	"database/sql/driver"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/unified-connectors/connector-operator/connectors"
)

// Bounds of an item's text parts.
const (
	maxTextBytes  = 64 << 10
	maxTitleBytes = 1 << 10
	// maxIDBytes bounds what decodeItemID reads (a composite key of long text values).
	maxIDBytes = 16 << 10
)

// epoch is what a NULL cursorColumn reads as.
var epoch = time.Unix(0, 0).UTC()

// itemID is the id of the row of t whose primary key values are pkText (in key
// order): the unpadded base64url of the JSON array [table name, pk1, pk2, …]. It is
// URL-path safe, the same for the same row in every call and mode, and unique across
// the Connection's tables.
func (t *table) itemID(pkText []string) string {
	return encodeItemID(t.name, pkText)
}

func encodeItemID(table string, pkText []string) string {
	b, err := json.Marshal(append([]string{table}, pkText...))
	if err != nil {
		panic("postgresql: marshal item id: " + err.Error()) // strings only
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeItemID reads an id made by itemID. It reports false for anything else.
func decodeItemID(id string) (table string, pkText []string, ok bool) {
	if id == "" || len(id) > maxIDBytes {
		return "", nil, false
	}
	b, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil {
		return "", nil, false
	}
	var parts []string
	if err := json.Unmarshal(b, &parts); err != nil || len(parts) < 2 {
		return "", nil, false
	}
	return parts[0], parts[1:], true
}

// key is the row's display key: <table>:<pk1>,<pk2>.
func (t *table) key(pkText []string) string { return t.name + ":" + strings.Join(pkText, ",") }

// item maps one row of t: cols are its column names and vals their values as pgx
// decodes them (rows.Values(), or a pgoutput tuple decoded with a pgtype.Map on which
// registerTypes ran, so json arrives as text). The primary key's text form comes from
// the decoded values (pkText), so an id is the same whichever way the row was read.
func (t *table) item(cols []string, vals []any) (connectors.Item, error) {
	it, _, err := t.rowItem(cols, vals)
	return it, err
}

// rowPos is a row's place in the key-set orders listings walk: its cursorColumn value and its
// primary key, as text the server parses back.
type rowPos struct {
	cursor string
	pk     []string
}

// rowItem is item, and the row's position.
func (t *table) rowItem(cols []string, vals []any) (connectors.Item, rowPos, error) {
	if len(cols) != len(vals) {
		return connectors.Item{}, rowPos{}, fmt.Errorf("postgresql: %d column names for %d values", len(cols), len(vals))
	}
	byName := make(map[string]any, len(cols))
	for i, c := range cols {
		byName[c] = vals[i]
	}
	pk := make([]string, len(t.pk))
	for i, k := range t.pk {
		v, ok := byName[k]
		if !ok {
			return connectors.Item{}, rowPos{}, fmt.Errorf("postgresql: table %s: the row has no primary key column %q", t.name, k)
		}
		s, err := pkText(v)
		if err != nil {
			return connectors.Item{}, rowPos{}, invalid("SELECT "+t.name, fmt.Sprintf("primary key column %q: %v", k, err))
		}
		pk[i] = s
	}
	it := connectors.Item{
		ID: t.itemID(pk), Key: t.key(pk), Kind: connectors.KindRow, Container: t.name, Type: Type,
	}
	pos := rowPos{pk: pk}
	if t.cursor != "" {
		it.UpdatedAt = cursorTime(byName[t.cursor])
		pos.cursor = cursorText(byName[t.cursor])
	}
	it.Title = it.Key
	if t.title != "" {
		if s := textOf(byName[t.title]); s != "" {
			it.Title = truncateUTF8(s, maxTitleBytes)
		}
	}
	if len(t.text) > 0 {
		var parts []string
		size := 0
		for _, c := range t.text {
			s := textOf(byName[c])
			if s == "" {
				continue
			}
			parts = append(parts, s)
			if size += len(s) + 2; size > maxTextBytes {
				break
			}
		}
		it.Text = truncateUTF8(strings.Join(parts, "\n\n"), maxTextBytes)
	}
	it.Fields = boundFields(cols, vals)
	return it, pos, nil
}

// cursorTime reads a cursorColumn value as UTC; NULL (and ±infinity, which no instant
// orders) read as the Unix epoch.
func cursorTime(v any) time.Time {
	if t, ok := v.(time.Time); ok {
		return t.UTC()
	}
	return epoch
}

// cursorText is a cursorColumn value as the server reads it back in a parameter.
func cursorText(v any) string {
	switch x := v.(type) {
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case pgtype.InfinityModifier:
		return x.String()
	}
	return epoch.Format(time.RFC3339Nano)
}

// pkText is a primary key value's text form: what goes into ids and keys and what the
// server parses back, as a parameter of the column's type, in key-set comparisons and
// lookups. It must round-trip exactly through the type's input function.
func pkText(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", fmt.Errorf("NULL: primary key columns must not be NULL")
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case int8:
		return strconv.FormatInt(int64(x), 10), nil
	case int16:
		return strconv.FormatInt(int64(x), 10), nil
	case int32:
		return strconv.FormatInt(int64(x), 10), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case int:
		return strconv.Itoa(x), nil
	case uint8:
		return strconv.FormatUint(uint64(x), 10), nil
	case uint16:
		return strconv.FormatUint(uint64(x), 10), nil
	case uint32:
		return strconv.FormatUint(uint64(x), 10), nil
	case uint64:
		return strconv.FormatUint(x, 10), nil
	case float32:
		return formatFloat(float64(x), 32), nil
	case float64:
		return formatFloat(x, 64), nil
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano), nil
	case []byte:
		return `\x` + hex.EncodeToString(x), nil
	case [16]byte:
		return formatUUID(x), nil
	case pgtype.InfinityModifier:
		return x.String(), nil
	case netip.Prefix:
		return x.String(), nil
	case netip.Addr:
		return x.String(), nil
	case driver.Valuer:
		dv, err := x.Value()
		if err != nil {
			return "", err
		}
		if _, again := dv.(driver.Valuer); again {
			return "", fmt.Errorf("unsupported type %T", v)
		}
		return pkText(dv)
	case fmt.Stringer:
		return x.String(), nil
	}
	return "", fmt.Errorf("unsupported type %T", v)
}

func formatFloat(f float64, bits int) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return strconv.FormatFloat(f, 'g', -1, bits)
}

func formatUUID(u [16]byte) string {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}

// fieldValue is a column value as a JSON scalar (or an array of them): numbers, strings,
// booleans and null; timestamps RFC 3339 in UTC; bytea base64; json and jsonb their JSON
// text (a string); anything else its text form.
func fieldValue(v any) any { return fieldValueDepth(v, 0) }

func fieldValueDepth(v any, depth int) any {
	if depth > 8 {
		return fmt.Sprint(v)
	}
	switch x := v.(type) {
	case nil, bool, string, int8, int16, int32, int64, int, uint8, uint16, uint32, uint64:
		return x
	case float32:
		return floatField(float64(x), 32)
	case float64:
		return floatField(x, 64)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case []byte:
		return base64.StdEncoding.EncodeToString(x)
	case [16]byte:
		return formatUUID(x)
	case pgtype.Numeric:
		if !x.Valid {
			return nil
		}
		if x.NaN || x.InfinityModifier != pgtype.Finite {
			b, _ := x.MarshalJSON()
			s, _ := strconv.Unquote(string(b))
			return s
		}
		dv, err := x.Value()
		if s, ok := dv.(string); ok && err == nil {
			return json.Number(s)
		}
		return nil
	case pgtype.InfinityModifier:
		return x.String()
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = fieldValueDepth(e, depth+1)
		}
		return out
	case map[string]any:
		// json decoded by a map without registerTypes: its text again.
		b, err := json.Marshal(x)
		if err != nil {
			return fmt.Sprint(x)
		}
		return string(b)
	case driver.Valuer:
		dv, err := x.Value()
		if err != nil {
			return nil
		}
		if _, again := dv.(driver.Valuer); again {
			return fmt.Sprint(v)
		}
		return fieldValueDepth(dv, depth+1)
	case fmt.Stringer:
		return x.String()
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// floatField is a float as a JSON number, or its PostgreSQL spelling for what JSON
// cannot hold (NaN, ±Infinity).
func floatField(f float64, bits int) any {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return formatFloat(f, bits)
	}
	if bits == 32 {
		// The shortest decimal that reads back as the same float32, not float64 noise.
		return json.Number(strconv.FormatFloat(f, 'g', -1, 32))
	}
	return f
}

// textOf is a value as text (title, text columns): strings as they are, anything else
// its field form; NULL is "".
func textOf(v any) string {
	switch x := fieldValue(v).(type) {
	case nil:
		return ""
	case string:
		return x
	case json.Number:
		return x.String()
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return fmt.Sprint(x)
		}
		return string(b)
	}
}

// boundFields is the row as Item.Fields, at most connectors.MaxFieldsBytes as JSON:
// the largest values are dropped first (the item's text and title still carry theirs).
func boundFields(cols []string, vals []any) map[string]any {
	fields := make(map[string]any, len(cols))
	type sized struct {
		name string
		size int
	}
	sizes := make([]sized, 0, len(cols))
	total := 2 // {}
	for i, c := range cols {
		v := fieldValue(vals[i])
		fields[c] = v
		kb, _ := json.Marshal(c)
		vb, err := json.Marshal(v)
		if err != nil {
			// Not representable after all: its text form.
			v = fmt.Sprint(v)
			fields[c] = v
			vb, _ = json.Marshal(v)
		}
		n := len(kb) + 1 + len(vb) + 1 // "k":v,
		sizes = append(sizes, sized{c, n})
		total += n
	}
	if total <= connectors.MaxFieldsBytes {
		return fields
	}
	slices.SortStableFunc(sizes, func(a, b sized) int { return b.size - a.size })
	for _, s := range sizes {
		if total <= connectors.MaxFieldsBytes {
			break
		}
		delete(fields, s.name)
		total -= s.size
	}
	return fields
}

// truncateUTF8 cuts s to at most n bytes at a character boundary.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	// At most the 3 bytes of a character cut in its middle.
	for i := 0; i < utf8.UTFMax-1 && len(s) > 0; i++ {
		if r, size := utf8.DecodeLastRuneInString(s); r != utf8.RuneError || size != 1 {
			break
		}
		s = s[:len(s)-1]
	}
	return s
}

package confluence

import (
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/unified-connectors/connector-operator/connectors"
)

func TestDecodeCursor(t *testing.T) {
	valid := cursor{Op: opSearch, Q: "abc", Token: "tok-1", Start: 50}.encode()
	if c, err := decodeCursor(valid, opSearch, "abc"); err != nil || c.Token != "tok-1" || c.Start != 50 {
		t.Errorf("decode(valid) = %+v, %v", c, err)
	}
	if c, err := decodeCursor("", opSearch, "abc"); err != nil || c != (cursor{}) {
		t.Errorf("the empty cursor: %+v, %v", c, err)
	}
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for name, s := range map[string]string{
		"other call":       valid,
		"not base64":       "%%%",
		"padded base64":    valid + "=",
		"not JSON":         b64("nope"),
		"two values":       b64(`{"v":1,"op":"search","q":"abc"}{}`),
		"unknown field":    b64(`{"v":1,"op":"search","q":"abc","url":"https://evil.example"}`),
		"no version":       b64(`{"op":"search","q":"abc"}`),
		"version 2":        b64(`{"v":2,"op":"search","q":"abc"}`),
		"negative start":   b64(`{"v":1,"op":"search","q":"abc","s":-1}`),
		"huge start":       b64(`{"v":1,"op":"search","q":"abc","s":99999999999}`),
		"token with space": b64(`{"v":1,"op":"search","q":"abc","c":"a b"}`),
		"token with CRLF":  b64(`{"v":1,"op":"search","q":"abc","c":"a\r\nHost: evil"}`),
		"wrong types":      b64(`{"v":"1","op":"search","q":"abc"}`),
		"too long":         strings.Repeat("A", maxCursorLen+1),
	} {
		op := opSearch
		if name == "other call" {
			op = opItems
		}
		if _, err := decodeCursor(s, op, "abc"); err != errInvalidCursor {
			t.Errorf("%s: %v, want errInvalidCursor", name, err)
		}
	}
	if _, err := decodeCursor(valid, opSearch, "another query"); err != errInvalidCursor {
		t.Errorf("another query: %v", err)
	}
	for name, s := range map[string]string{
		"start without anchor": b64(`{"v":1,"op":"changes","q":"abc","s":5}`),
		"anchor without start": b64(`{"v":1,"op":"changes","q":"abc","aid":"12","at":5}`),
		"id not a number":      b64(`{"v":1,"op":"changes","q":"abc","id":"../x","t":5}`),
	} {
		if _, err := decodeCursor(s, opChanges, "abc"); err != errInvalidCursor {
			t.Errorf("%s: %v, want errInvalidCursor", name, err)
		}
	}
}

func TestNextFromLink(t *testing.T) {
	for _, tc := range []struct {
		link      string
		token     string
		start     int
		more, err bool
	}{
		{"", "", 0, false, false},
		{"/wiki/api/v2/spaces?cursor=eyJpZCI6MX0&limit=25", "eyJpZCI6MX0", 0, true, false},
		{"/rest/api/search?cql=type%3Dpage&limit=25&start=25&cursor=abc", "abc", 25, true, false},
		{"/rest/api/space?limit=25&start=50", "", 50, true, false},
		{"https://evil.example/steal?cursor=abc", "abc", 0, true, false}, // only the token is kept
		{"/rest/api/space?limit=25", "", 0, false, true},
		{"/rest/api/space?start=-1", "", 0, false, true},
		{"/x?cursor=a%20b", "", 0, false, true},
		{"%zz", "", 0, false, true},
	} {
		token, start, more, err := nextFromLink(tc.link)
		if token != tc.token || start != tc.start || more != tc.more || (err != nil) != tc.err {
			t.Errorf("nextFromLink(%q) = %q %d %v %v", tc.link, token, start, more, err)
		}
	}
}

func TestCQLString(t *testing.T) {
	for in, want := range map[string]string{
		`plain`:                `"plain"`,
		`say "hi"`:             `"say \"hi\""`,
		`back\slash`:           `"back\\slash"`,
		`end\`:                 `"end\\"`,
		"line\nbreak\ttab\x00": `"line break tab "`,
		`x" OR type = "page`:   `"x\" OR type = \"page"`,
		`日本語`:                  `"日本語"`,
	} {
		if got := cqlString(in); got != want {
			t.Errorf("cqlString(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestChangesCQL(t *testing.T) {
	since := time.Date(2024, 1, 31, 10, 0, 30, 0, time.FixedZone("x", 5*3600)) // 05:00:30 UTC
	got := changesCQL("SPA", since, `label = "x" OR label = "y"`)
	want := `space = "SPA" AND type = page AND lastmodified >= "2024-01-30 03:00" AND (label = "x" OR label = "y") ORDER BY lastmodified ASC`
	if got != want {
		t.Errorf("changesCQL = %s\nwant %s", got, want)
	}
	if got := changesCQL("SPA", time.Time{}, ""); got != `space = "SPA" AND type = page ORDER BY lastmodified ASC` {
		t.Errorf("without Since: %s", got)
	}
}

func TestSearchCQL(t *testing.T) {
	got := searchCQL(connectors.SearchQuery{Text: `a "b"`, Containers: []string{"SPA", `S"B`}, Filter: "creator = me"})
	want := `type = page AND text ~ "a \"b\"" AND space in ("SPA","S\"B") AND (creator = me)`
	if got != want {
		t.Errorf("searchCQL = %s\nwant %s", got, want)
	}
}

func FuzzCursor(f *testing.F) {
	f.Add("", "tok", 0, int64(0), uint64(0), true)
	f.Add(cursor{Op: opChanges, Q: "q", Start: 7, T: 1706695230000000000, ID: "65537", AT: 1706695229000000000, AID: "65540"}.encode(), "", 7, int64(1706695230000000000), uint64(65537), false)
	f.Add("eyJ2IjoxLCJvcCI6InNlYXJjaCJ9", "a-b_c~d", 25, int64(-5), uint64(1<<63), true)
	f.Add("e30", "", -1, int64(0), uint64(0), false)
	f.Fuzz(func(t *testing.T, raw, token string, start int, at int64, id uint64, search bool) {
		// Whatever comes in, parsing never panics, and what it accepts is well formed.
		for _, op := range []string{opSearch, opChanges, opItems} {
			if c, err := decodeCursor(raw, op, "q"); err == nil && c.check() != nil {
				t.Fatalf("decodeCursor(%q) accepted a malformed cursor %+v", raw, c)
			}
		}
		// A cursor the connector would write comes back unchanged.
		c := cursor{Op: opSearch, Q: "q", Token: token, Start: start}
		if !search {
			c = cursor{Op: opChanges, Q: "q", T: at, ID: formatID(id), Start: start}
			if start > 0 {
				c.AT, c.AID = at-1, formatID(id/2)
			}
		}
		if c.check() != nil || c.ID == "" && !search {
			return // not one the connector writes
		}
		back, err := decodeCursor(c.encode(), c.Op, "q")
		c.V = cursorVersion
		if err != nil || back != c {
			t.Fatalf("round trip of %+v: %+v, %v", c, back, err)
		}
	})
}

func formatID(id uint64) string { return strconv.FormatUint(id%(1<<62), 10) }

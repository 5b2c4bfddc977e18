package jira

import (
	"encoding/base64"
	"reflect"
	"strings"
	"testing"

	"github.com/unified-connectors/connector-operator/connectors"
)

var cursorKinds = []string{kindContainers, kindItems, kindSearch, kindComments, kindChanges, kindLiveIDs}

func TestCursorRoundTrip(t *testing.T) {
	for _, c := range []cursor{
		{Kind: kindContainers, Start: 100},
		{Kind: kindItems, Scope: "PRJA", Query: fingerprint("project = PRJA"), Token: "ChkjU3RyaW5nJlBSSkEmSW50JjEyMw=="},
		{Kind: kindSearch, Query: fingerprint("text ~ x"), Start: 50},
		{Kind: kindComments, Scope: "PRJA-1", Start: 3},
		{Kind: kindChanges, Scope: "PRJA", Millis: 1732877091000, After: "10002"},
		{Kind: kindLiveIDs, Scope: "10000", Millis: 1},
	} {
		s := c.encode()
		if !strings.HasPrefix(s, "v1.") || strings.ContainsAny(s, "/+=?&# ") {
			t.Errorf("cursor %q is not URL-safe", s)
		}
		got, err := decodeCursor(s, "op", c.Kind, c.Scope)
		if err != nil || !reflect.DeepEqual(got, c) {
			t.Errorf("decode(encode(%+v)) = %+v, %v", c, got, err)
		}
	}
}

func TestCursorRefusals(t *testing.T) {
	enc := func(json string) string { return "v1." + base64.RawURLEncoding.EncodeToString([]byte(json)) }
	for name, s := range map[string]string{
		"empty object is no kind":    enc(`{}`),
		"another kind":               enc(`{"k":"items","c":"PRJA"}`),
		"another scope":              enc(`{"k":"changes","c":"PRJB"}`),
		"unknown field":              enc(`{"k":"changes","c":"PRJA","url":"https://evil.example"}`),
		"negative offset":            enc(`{"k":"changes","c":"PRJA","s":-1}`),
		"huge offset":                enc(`{"k":"changes","c":"PRJA","s":1000000000}`),
		"negative millis":            enc(`{"k":"changes","c":"PRJA","u":-5}`),
		"after id that is no number": enc(`{"k":"changes","c":"PRJA","a":"1 OR 1=1"}`),
		"after id as a list":         enc(`{"k":"changes","c":"PRJA","a":["10001"]}`),
		"the old seen list":          enc(`{"k":"changes","c":"PRJA","x":["10001"]}`),
		"token with a space":         enc(`{"k":"changes","c":"PRJA","t":"a b"}`),
		"token with a newline":       enc(`{"k":"changes","c":"PRJA","t":"a\nb"}`),
		"trailing data":              enc(`{"k":"changes","c":"PRJA"} {}`),
		"not an object":              enc(`["changes"]`),
		"wrong type":                 enc(`{"k":"changes","c":"PRJA","u":"1"}`),
		"no prefix":                  base64.RawURLEncoding.EncodeToString([]byte(`{"k":"changes","c":"PRJA"}`)),
		"padded base64":              "v1." + base64.URLEncoding.EncodeToString([]byte(`{"k":"changes","c":"PRJA"}`)),
		"not base64":                 "v1.!!!",
		"a URL":                      "https://evil.example/rest/api/3/search",
		"too long":                   "v1." + strings.Repeat("A", maxCursorLen),
	} {
		_, err := decodeCursor(s, "POST /rest/api/3/search/jql", kindChanges, "PRJA")
		if err == nil || connectors.KindOf(err) != connectors.KindInvalid || !strings.Contains(err.Error(), "invalid cursor") {
			t.Errorf("%s: %v, want an invalid cursor error", name, err)
		} else if strings.Contains(err.Error(), s) {
			t.Errorf("%s: the error echoes the cursor", name)
		}
	}
}

func FuzzCursor(f *testing.F) {
	f.Add("", "", 0, int64(0), "10001")
	f.Add(cursor{Kind: kindChanges, Scope: "PRJA", Millis: 1732877091000, After: "10001"}.encode(), "tok", 5, int64(1732877091000), "10002")
	f.Add(cursor{Kind: kindItems, Scope: "PRJA", Query: "abc", Token: "CAEaAggD"}.encode(), "CAEaAggD", 0, int64(0), "")
	f.Add("v1.eyJrIjoiY2hhbmdlcyJ9", "a b", -1, int64(-1), "x")
	f.Add("v1."+strings.Repeat("eyJr", 100), "\x00", 1_000_000_000, int64(1<<62), ",,")
	f.Fuzz(func(t *testing.T, s, token string, start int, millis int64, after string) {
		// Parsing anything never panics, and what parses is valid and stable.
		for _, kind := range cursorKinds {
			c, err := decodeCursor(s, "op", kind, "PRJA")
			if err != nil {
				if connectors.KindOf(err) != connectors.KindInvalid {
					t.Fatalf("decodeCursor error %v is not KindInvalid", err)
				}
				continue
			}
			if !c.valid() || c.Kind != kind {
				t.Fatalf("decodeCursor accepted %+v", c)
			}
			again, err := decodeCursor(c.encode(), "op", kind, "PRJA")
			if err != nil || !reflect.DeepEqual(again, c) {
				t.Fatalf("re-encoding %+v gave %+v, %v", c, again, err)
			}
		}
		// Every valid cursor survives a round trip.
		c := cursor{Kind: kindChanges, Scope: "PRJA", Token: token, Start: start, Millis: millis, After: after}
		if !c.valid() {
			return
		}
		got, err := decodeCursor(c.encode(), "op", kindChanges, "prja")
		if err != nil || !reflect.DeepEqual(got, c) {
			t.Fatalf("round trip of %+v gave %+v, %v", c, got, err)
		}
	})
}

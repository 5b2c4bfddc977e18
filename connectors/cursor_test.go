package connectors

import "testing"

func TestCursorCodec(t *testing.T) {
	type pos struct {
		K string `json:"k"`
		N int    `json:"n,omitempty"`
	}
	s := EncodeCursor("x1.", pos{K: "items", N: 7})
	var got pos
	if !DecodeCursor(s, "x1.", 64, &got) || got != (pos{K: "items", N: 7}) {
		t.Fatalf("round trip of %q gave %+v", s, got)
	}
	for _, bad := range []string{"", "y1." + s[3:], s + "!", "x1.eyJ6IjoxfQ", "x1.e30e30", s + "AAAA"} {
		if DecodeCursor(bad, "x1.", 64, &pos{}) {
			t.Errorf("DecodeCursor(%q) accepted", bad)
		}
	}
	if DecodeCursor(s, "x1.", len(s)-1, &pos{}) {
		t.Error("a cursor longer than maxLen was accepted")
	}
}

package connectors

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
)

// Connectors hand out opaque cursors that callers of the HTTP API may give back as
// anything. They share one form: a prefix naming the connector's cursor version, then
// the unpadded base64url of a small JSON object of positions (never a URL or a host).

// EncodeCursor is the opaque form of v (a struct of strings and integers) after prefix.
func EncodeCursor(prefix string, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic("connectors: marshal cursor: " + err.Error()) // strings and integers only
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// DecodeCursor reads s, made by EncodeCursor with prefix, into v. It reports false for
// anything else: another prefix, more than maxLen bytes, not base64url, or not exactly
// one JSON object of v's fields. It never panics; the caller checks the fields.
func DecodeCursor(s, prefix string, maxLen int, v any) bool {
	raw, ok := strings.CutPrefix(s, prefix)
	if !ok || len(s) > maxLen {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v) == nil && !dec.More()
}

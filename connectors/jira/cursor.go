package jira

import (
	"crypto/sha256"
	"encoding/base64"
	"strings"

	"github.com/unified-connectors/connector-operator/connectors"
)

// Cursors are opaque to callers, who get them back from the HTTP API and may hand back
// anything. A cursor is "v1." followed by the unpadded base64url of a small JSON object;
// it holds positions only (an offset, Jira's nextPageToken, or a key-set position),
// never a URL or a host, and every field is checked when it comes back.
const cursorPrefix = "v1."

// maxCursorLen bounds what decodeCursor reads; the longest cursors carry a Jira token.
const maxCursorLen = 8 << 10

// Cursor kinds: a cursor only continues the kind of listing that produced it.
const (
	kindContainers = "containers"
	kindItems      = "items"
	kindSearch     = "search"
	kindComments   = "comments"
	kindChanges    = "changes"
	kindLiveIDs    = "ids"
)

// cursor is the state of a listing between pages.
type cursor struct {
	// Kind is the listing, Scope what it lists (a project key, an issue).
	Kind  string `json:"k"`
	Scope string `json:"c,omitempty"`
	// Query fingerprints the JQL that Token belongs to: Jira's tokens are only valid
	// for the query that produced them.
	Query string `json:"q,omitempty"`
	// Token is Jira Cloud's nextPageToken; Start an offset (startAt).
	Token string `json:"t,omitempty"`
	Start int    `json:"s,omitempty"`
	// Millis and After are a key-set position: the listing continues at issues whose
	// time (updated or created) is after Millis, or is Millis and whose id is after
	// After (the last issue delivered).
	Millis int64  `json:"u,omitempty"`
	After  string `json:"a,omitempty"`
}

// encode returns the opaque form of c.
func (c cursor) encode() string { return connectors.EncodeCursor(cursorPrefix, c) }

// decodeCursor parses s as a cursor of kind for scope (compared case-insensitively).
// Any problem, including a cursor of another listing, is a KindInvalid error for op; it
// never panics, and never echoes the cursor.
func decodeCursor(s, op, kind, scope string) (cursor, error) {
	var c cursor
	if !connectors.DecodeCursor(s, cursorPrefix, maxCursorLen, &c) ||
		c.Kind != kind || !strings.EqualFold(c.Scope, scope) || !c.valid() {
		return cursor{}, &connectors.Error{Kind: connectors.KindInvalid, Vendor: Type, Op: op, Reason: "invalid cursor"}
	}
	return c, nil
}

// valid checks the fields that are sent back to Jira.
func (c cursor) valid() bool {
	if c.Start < 0 || c.Start > 1e8 || c.Millis < 0 || len(c.Token) > 4096 || (c.After != "" && !isIssueID(c.After)) {
		return false
	}
	// Jira's tokens are printable ASCII; nothing else goes back to it.
	for i := 0; i < len(c.Token); i++ {
		if c.Token[i] < 0x21 || c.Token[i] > 0x7e {
			return false
		}
	}
	return true
}

// fingerprint is a short digest of jql, to bind a vendor token to its query.
func fingerprint(jql string) string {
	sum := sha256.Sum256([]byte(jql))
	return base64.RawURLEncoding.EncodeToString(sum[:9])
}

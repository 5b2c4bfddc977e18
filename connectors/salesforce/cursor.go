package salesforce

import (
	"crypto/sha256"
	"encoding/base64"
	"regexp"
	"strings"

	"github.com/unified-connectors/connector-operator/connectors"
)

// Cursors are opaque to callers, who may hand back anything. A cursor is "s1." and the
// unpadded base64url of a small JSON object holding positions only: a key-set position
// (a SystemModstamp or CreatedDate in Unix seconds and an Id), an offset, the end of a
// change window, and at most one nextRecordsUrl path, which must match locatorPattern
// (a path of this org's query resource, never a host). Every field is checked when it
// comes back, and a cursor continues only the listing (kind and container) that made it.
const cursorPrefix = "s1."

// maxCursorLen bounds what decodeCursor reads.
const maxCursorLen = 1024

// Cursor kinds.
const (
	kindContainers = "containers"
	kindItems      = "items"
	kindSearch     = "search"
	kindComments   = "comments"
	kindChanges    = "changes"
	kindLiveIDs    = "ids"
)

// locatorPattern is a nextRecordsUrl: /services/data/vNN.N/query|queryAll/{locator}-{n}.
var locatorPattern = regexp.MustCompile(`^/services/data/v[0-9]{2,3}\.0/(query|queryAll)/[A-Za-z0-9]{15,18}-[0-9]{1,9}$`)

// cursor is a listing's state between pages.
type cursor struct {
	Kind  string `json:"k"`
	Scope string `json:"c,omitempty"`
	// T and A are a key-set position: the listing continues after the record whose time
	// is T (Unix seconds) and whose Id is A.
	T int64  `json:"t,omitempty"`
	A string `json:"a,omitempty"`
	// W is the end of a change window (Unix seconds, exclusive).
	W int64 `json:"w,omitempty"`
	// L is the nextRecordsUrl of the batch after the position, when the position ends a
	// batch; Q fingerprints the filter the locator's query used.
	L string `json:"l,omitempty"`
	Q string `json:"q,omitempty"`
	// S is an offset (containers, search).
	S int `json:"s,omitempty"`
}

func (c cursor) encode() string { return connectors.EncodeCursor(cursorPrefix, c) }

// maxOffset bounds offsets (SOSL answers at most 2,000 records; describeGlobal a few
// thousand types).
const maxOffset = 100000

// decodeCursor parses s as a cursor of kind for scope (compared without case). Any
// problem is a KindInvalid error for op that never echoes the cursor.
func decodeCursor(s, op, kind, scope string) (cursor, error) {
	var c cursor
	if !connectors.DecodeCursor(s, cursorPrefix, maxCursorLen, &c) ||
		c.Kind != kind || !strings.EqualFold(c.Scope, scope) || !c.valid() {
		return cursor{}, invalid(op, "invalid cursor")
	}
	return c, nil
}

// maxUnix is the year 9999: SOQL datetimes have four-digit years.
const maxUnix = 253402300799

func (c cursor) valid() bool {
	switch {
	case c.T < 0 || c.T > maxUnix || c.W < 0 || c.W > maxUnix:
		return false
	case c.S < 0 || c.S > maxOffset:
		return false
	case c.A != "" && !validID(c.A):
		return false
	case c.L != "" && !locatorPattern.MatchString(c.L):
		return false
	case c.Scope != "" && !validIdent(c.Scope) && !validID(c.Scope):
		return false
	case len(c.Q) > 16:
		return false
	}
	return true
}

// fingerprint is a short digest of a filter, binding a locator to the query it came from.
func fingerprint(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.RawURLEncoding.EncodeToString(sum[:9])
}

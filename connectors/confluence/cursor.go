package confluence

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/url"
	"strconv"

	"github.com/unified-connectors/connector-operator/connectors"
)

// Cursors are opaque to callers: base64url (unpadded) of a small JSON object with a
// version, the call it belongs to and a digest of the query it continues, so that a
// cursor cannot be replayed against another call or query. It holds what the vendor
// needs to continue (its own opaque cursor token, or an offset), never a URL: the client
// rebuilds every request from its own path and parameters, so no cursor, forged or not,
// can send it to another host or path.

// cursorVersion is the version of the cursor format; a cursor of another version is
// invalid rather than misread.
const cursorVersion = 1

// Limits on what a cursor may hold, so that decoding one is cheap and what it carries
// into a query string stays small.
const (
	maxCursorLen = 2048
	maxTokenLen  = 1024
	maxStart     = 10_000_000
)

// Calls a cursor may belong to.
const (
	opContainers = "containers"
	opItems      = "items"
	opComments   = "comments"
	opSearch     = "search"
	opChanges    = "changes"
	opLiveIDs    = "liveids"
)

// cursor is the decoded form.
type cursor struct {
	V  int    `json:"v"`
	Op string `json:"op"`
	// Q is the digest of the query the cursor continues (see queryDigest).
	Q string `json:"q,omitempty"`
	// Token is the vendor's own cursor (v2 lists, search); Start its offset (v1, Data
	// Center, and where Changes resumes its walk).
	Token string `json:"c,omitempty"`
	Start int    `json:"s,omitempty"`
	// Changes only. ID and T (Unix nanoseconds) are the last item returned: the next page
	// starts after (T, ID). AID and AT are the search hit just before Start, which must
	// still be there for Start to be trusted (see changes.go).
	T   int64  `json:"t,omitempty"`
	ID  string `json:"id,omitempty"`
	AT  int64  `json:"at,omitempty"`
	AID string `json:"aid,omitempty"`
}

// errInvalidCursor is what every malformed, forged or misapplied cursor comes down to.
var errInvalidCursor = errors.New("invalid cursor")

// encode renders c, which must be valid (see check).
func (c cursor) encode() string {
	c.V = cursorVersion
	return connectors.EncodeCursor("", c)
}

// decodeCursor parses s as a cursor of call op for the query with digest q. The empty
// string is the start of a listing: the zero cursor.
func decodeCursor(s, op, q string) (cursor, error) {
	if s == "" {
		return cursor{}, nil
	}
	var c cursor
	if !connectors.DecodeCursor(s, "", maxCursorLen, &c) ||
		c.V != cursorVersion || c.Op != op || c.Q != q || c.check() != nil {
		return cursor{}, errInvalidCursor
	}
	return c, nil
}

// check reports whether c is well formed.
func (c cursor) check() error {
	switch {
	case c.Start < 0 || c.Start > maxStart:
	case len(c.Token) > maxTokenLen || !printable(c.Token):
	case c.ID != "" && !numericID(c.ID), c.AID != "" && !numericID(c.AID):
	case (c.AID != "") != (c.Op == opChanges && c.Start > 0):
		// Changes resumes at Start only with the anchor that vouches for it.
	default:
		return nil
	}
	return errInvalidCursor
}

func printable(s string) bool {
	for _, r := range s {
		if r < 0x21 || r > 0x7e {
			return false
		}
	}
	return true
}

// numericID reports whether s is a Confluence content or space id: digits, int64-sized.
func numericID(s string) bool {
	if s == "" || len(s) > 19 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	_, err := strconv.ParseInt(s, 10, 64)
	return err == nil
}

// queryDigest binds a cursor to the query it continues.
func queryDigest(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(strconv.Itoa(len(p)) + ":" + p))
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// errBadNextLink is a next link that carries neither a cursor nor an offset, or bad ones.
var errBadNextLink = errors.New("unusable next link in the answer")

// nextFromLink reads the vendor's continuation from a next link (_links.next, relative):
// its cursor token and start offset. Only these two values are kept; the link itself is
// never followed. more is false when there is no link: the listing is over.
func nextFromLink(link string) (token string, start int, more bool, err error) {
	if link == "" {
		return "", 0, false, nil
	}
	u, err := url.Parse(link)
	if err != nil {
		return "", 0, false, errBadNextLink
	}
	q := u.Query()
	token = q.Get("cursor")
	if v := q.Get("start"); v != "" {
		if start, err = strconv.Atoi(v); err != nil || start < 0 || start > maxStart {
			return "", 0, false, errBadNextLink
		}
	}
	if len(token) > maxTokenLen || !printable(token) || (token == "" && start == 0) {
		return "", 0, false, errBadNextLink
	}
	return token, start, true, nil
}

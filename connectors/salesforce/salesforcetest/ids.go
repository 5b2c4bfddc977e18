package salesforcetest

import (
	"strings"
)

// Record Ids are 15 case-sensitive base-62 characters (a 3-character key prefix naming the
// sObject type, then the instance and a unique part) followed, in every API answer, by a
// 3-character case-safe suffix that makes the 18-character form unique even when compared
// without case. The fake numbers records from one counter per org, so that ordering by Id
// (byte order of the case-sensitive form) is creation order, as on a real pod.

// Key prefixes of the standard types the fake knows, and of the non-record objects it names.
const (
	PrefixAccount     = "001"
	PrefixContact     = "003"
	PrefixCase        = "500"
	PrefixCaseComment = "00a"
	PrefixUser        = "005"
	PrefixOrg         = "00D"
	// PrefixQueryLocator starts query locators (the part of nextRecordsUrl after /query/).
	PrefixQueryLocator = "01g"
)

const (
	base62       = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	suffixDigits = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
	// instance is the fake's pod part of every Id (characters 4 and 5) and the reserved
	// character after it.
	instance = "Hs0"
)

// makeID is the 18-character Id with prefix and unique number n.
func makeID(prefix string, n uint64) string {
	var b [9]byte
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = base62[n%62]
		n /= 62
	}
	return WithChecksum(prefix + instance + string(b[:]))
}

// WithChecksum returns the 18-character form of a 15-character Id: each 5-character chunk
// gives one suffix character, whose bit i is set when the chunk's i-th character is an
// upper-case letter. An 18-character Id is returned with its suffix recomputed; anything
// else is returned unchanged.
func WithChecksum(id string) string {
	if len(id) != 15 && len(id) != 18 {
		return id
	}
	id = id[:15]
	var sfx [3]byte
	for chunk := range 3 {
		v := 0
		for i := range 5 {
			if c := id[chunk*5+i]; c >= 'A' && c <= 'Z' {
				v |= 1 << i
			}
		}
		sfx[chunk] = suffixDigits[v]
	}
	return id + string(sfx[:])
}

// ValidID reports whether id is a well-formed 18-character Id: base-62 characters and the
// suffix WithChecksum gives (compared without case, as Salesforce does).
func ValidID(id string) bool {
	if len(id) != 18 {
		return false
	}
	for i := range 15 {
		if !strings.ContainsRune(base62, rune(id[i])) {
			return false
		}
	}
	return strings.EqualFold(WithChecksum(id[:15]), id)
}

// canonicalID turns a 15- or 18-character Id as a client wrote it into the stored
// 18-character form; ok is false when it is not an Id. A 15-character Id is case
// sensitive; an 18-character one is found whatever the case of its suffix.
func canonicalID(id string) (string, bool) {
	switch len(id) {
	case 15:
		full := WithChecksum(id)
		return full, ValidID(full)
	case 18:
		if !ValidID(id) {
			return "", false
		}
		return WithChecksum(id[:15]), true
	}
	return "", false
}

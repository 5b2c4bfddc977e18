package atlassian

import (
	"fmt"
	"time"
)

// timeLayouts are the timestamp spellings Atlassian APIs answer with: Jira's
// 2021-01-18T23:45:00.000+0000 (no colon in the offset), RFC 3339 with or without
// fractional seconds (Confluence v2, Jira webhooks), and Data Center's variants.
var timeLayouts = []string{
	"2006-01-02T15:04:05.000-0700",
	"2006-01-02T15:04:05-0700",
	time.RFC3339Nano,
	"2006-01-02T15:04:05.000Z07:00",
}

// ParseTime parses an Atlassian timestamp. The result keeps the instant exactly; the
// zone the vendor rendered it in (the account's) does not matter to callers.
func ParseTime(s string) (time.Time, error) {
	for _, layout := range timeLayouts {
		// An instant outside years 1-9999 in UTC ("0000-01-01T00:00:00+0100") cannot be
		// written back in the vendor's format: not a timestamp Atlassian sends.
		if t, err := time.Parse(layout, s); err == nil && t.UTC().Year() >= 1 && t.UTC().Year() <= 9999 {
			return t, nil
		}
	}
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return time.Time{}, fmt.Errorf("unrecognised Atlassian timestamp %q", s)
}

// FormatJiraTime renders t as Jira does, in loc: 2021-01-18T23:45:00.000+1100.
func FormatJiraTime(t time.Time, loc *time.Location) string {
	return t.In(loc).Format("2006-01-02T15:04:05.000-0700")
}

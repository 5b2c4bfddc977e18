package atlassian

import (
	"testing"
	"time"
	_ "time/tzdata" // zones do not depend on the machine
)

func TestParseTime(t *testing.T) {
	want := time.Date(2021, 1, 18, 23, 45, 0, 0, time.UTC)
	for _, s := range []string{
		"2021-01-18T23:45:00.000+0000",
		"2021-01-19T10:45:00.000+1100",
		"2021-01-18T15:45:00.000-0800",
		"2021-01-18T23:45:00+0000",
		"2021-01-18T23:45:00Z",
		"2021-01-18T23:45:00.000Z",
		"2021-01-19T10:45:00.000+11:00",
	} {
		got, err := ParseTime(s)
		if err != nil {
			t.Errorf("ParseTime(%q): %v", s, err)
			continue
		}
		if !got.Equal(want) {
			t.Errorf("ParseTime(%q) = %v, want %v", s, got, want)
		}
	}
	for _, s := range []string{"", "2021-01-18", "yesterday", "2021-13-18T23:45:00.000+0000"} {
		if _, err := ParseTime(s); err == nil {
			t.Errorf("ParseTime(%q) succeeded", s)
		}
	}
}

func TestFormatJiraTimeRoundTrips(t *testing.T) {
	syd, err := time.LoadLocation("Australia/Sydney")
	if err != nil {
		t.Fatal(err)
	}
	in := time.Date(2024, 10, 6, 15, 59, 59, 123e6, time.UTC) // the day Sydney's DST starts
	s := FormatJiraTime(in, syd)
	out, err := ParseTime(s)
	if err != nil || !out.Equal(in) {
		t.Fatalf("FormatJiraTime then ParseTime: %q → %v, %v; want %v", s, out, err, in)
	}
}

func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"2021-01-18T23:45:00.000+0000", "2021-01-18T23:45:00Z", "", "+0000", "2021-01-18T23:45:00.000+99",
		"0000-01-01T0:00:00+0100"} { // found by the fuzzer: year 0 east of UTC is year -1 in UTC
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseTime(s)
		if err != nil {
			return
		}
		// Whatever parses must survive a round trip through Jira's format.
		back, err := ParseTime(FormatJiraTime(got, time.UTC))
		if err != nil || !back.Truncate(time.Millisecond).Equal(got.Truncate(time.Millisecond)) {
			t.Fatalf("round trip of %q: %v → %v (%v)", s, got, back, err)
		}
	})
}

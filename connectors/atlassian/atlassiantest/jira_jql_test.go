package atlassiantest

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// jqlSite is a small site: PRJA-1..3 and PRJB-1, updated at known instants.
func jqlSite(t testing.TB) (*jiraSite, time.Time) {
	t.Helper()
	j := newJiraSite()
	base := time.Date(2024, 1, 31, 10, 0, 30, 0, time.UTC)
	a := j.addProject("PRJA", "Alpha")
	b := j.addProject("PRJB", "Beta")
	for i, at := range []time.Time{base, base.Add(time.Millisecond), base.Add(2 * time.Minute)} {
		is := j.addIssue(a, "Task", []string{"Kumquat report", "Fix login", `Say "hi"`}[i], jiraTextADF("body "+strings.Repeat("x", i)), jiraPeople[i], base.Add(-time.Hour))
		is.updated = at
		j.indexIssueLocked(is.id, is)
	}
	is := j.addIssue(b, "Bug", "Beta kumquat", nil, jiraPeople[3], base.Add(-time.Hour))
	is.updated = base
	j.indexIssueLocked(is.id, is)
	j.addComment(is, jiraPeople[0], jiraTextADF("a comment about turnips"), base)
	return j, base
}

func runJQL(t *testing.T, j *jiraSite, loc *time.Location, q string) ([]string, error) {
	t.Helper()
	issues, err := j.run(q, jiraView{loc: loc}, true)
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, is := range issues {
		keys = append(keys, is.key)
	}
	return keys, nil
}

func TestJQL(t *testing.T) {
	j, base := jqlSite(t)
	ms := func(d time.Duration) string { return strconv.FormatInt(base.Add(d).UnixMilli(), 10) }
	for _, tc := range []struct {
		q    string
		want []string
	}{
		{`project = PRJA`, []string{"PRJA-1", "PRJA-2", "PRJA-3"}},
		{`project = "prja" ORDER BY key DESC`, []string{"PRJA-3", "PRJA-2", "PRJA-1"}},
		{`project in (PRJB, "Alpha") ORDER BY id ASC`, []string{"PRJA-1", "PRJA-2", "PRJA-3", "PRJB-1"}},
		{`project not in (PRJA)`, []string{"PRJB-1"}},
		{`project = 10000 AND updated >= ` + ms(time.Millisecond), []string{"PRJA-2", "PRJA-3"}},
		{`project = PRJA AND updated > ` + ms(0), []string{"PRJA-2", "PRJA-3"}},
		{`project = PRJA AND updated <= ` + ms(time.Millisecond) + ` ORDER BY updated DESC, id DESC`, []string{"PRJA-2", "PRJA-1"}},
		{`project = PRJA AND updated < ` + ms(0), nil},
		{`updated = ` + ms(0) + ` ORDER BY key`, []string{"PRJA-1", "PRJB-1"}},
		{`text ~ "KUMQUAT"`, []string{"PRJA-1", "PRJB-1"}},
		{`text ~ "turnips"`, []string{"PRJB-1"}},
		{`comment ~ "turnips" OR summary ~ login`, []string{"PRJA-2", "PRJB-1"}},
		{`text ~ "say \"hi\""`, []string{"PRJA-3"}},
		{`text ~ 'say "hi"'`, []string{"PRJA-3"}},
		{`text ~ "say \u0022hi\u0022"`, []string{"PRJA-3"}},
		{`text ~ "kumquat" AND NOT project = PRJB`, []string{"PRJA-1"}},
		{`text !~ "kumquat" AND project = PRJA`, []string{"PRJA-2", "PRJA-3"}},
		{`(project = PRJB OR key = PRJA-2) AND issuetype in (Bug, task)`, []string{"PRJA-2", "PRJB-1"}},
		{`id >= 10001 AND id < 10003`, []string{"PRJA-2", "PRJA-3"}},
		{`key > PRJA-1`, []string{"PRJA-2", "PRJA-3"}},
		{`issuekey in (PRJA-3, 10000)`, []string{"PRJA-1", "PRJA-3"}},
		{`reporter = "` + jiraPeople[3].accountID + `"`, []string{"PRJB-1"}},
		{`project = PRJA ORDER BY summary`, []string{"PRJA-2", "PRJA-1", "PRJA-3"}},
		{`description ~ "body xx"`, []string{"PRJA-3"}},
	} {
		got, err := runJQL(t, j, time.UTC, tc.q)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s = %v, %v; want %v", tc.q, got, err, tc.want)
		}
	}
}

// TestJQLDateStrings: a date string is read in the caller's zone, to the minute.
func TestJQLDateStrings(t *testing.T) {
	j, base := jqlSite(t) // updates at 10:00:30.000, 10:00:30.001 and 10:02:30 UTC on 2024-01-31
	sydney, _ := time.LoadLocation("Australia/Sydney")
	la, _ := time.LoadLocation("America/Los_Angeles")
	q := `project = PRJA AND updated >= "2024/01/31 10:01"`
	for _, tc := range []struct {
		loc  *time.Location
		want []string
	}{
		{time.UTC, []string{"PRJA-3"}},
		{sydney, []string{"PRJA-1", "PRJA-2", "PRJA-3"}}, // 10:01 in Sydney is 23:01 UTC the day before
		{la, nil}, // 10:01 in Los Angeles is 18:01 UTC
	} {
		if got, err := runJQL(t, j, tc.loc, q); err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s in %s = %v, %v; want %v", q, tc.loc, got, err, tc.want)
		}
	}
	// Minute precision: the 10:00 minute holds both 10:00:30 issues, wherever the cursor was.
	local := base.In(sydney).Format("2006-01-02 15:04")
	if got, _ := runJQL(t, j, sydney, `project = PRJA AND updated > "`+local+`"`); len(got) != 3 {
		t.Errorf("updated > %q in Sydney = %v, want all three", local, got)
	}
	if got, _ := runJQL(t, j, time.UTC, `project = PRJA AND updated >= "2024-01-31" AND created < -1d`); len(got) != 3 {
		t.Errorf("day and relative dates: %v", got)
	}
}

func TestJQLErrors(t *testing.T) {
	j, _ := jqlSite(t)
	for q, want := range map[string]string{
		``:                               "Unbounded JQL",
		`ORDER BY updated DESC`:          "Unbounded JQL",
		`order by key`:                   "Unbounded JQL",
		`project = NOPE`:                 "The value 'NOPE' does not exist for the field 'project'.",
		`key = PRJA-99`:                  "An issue with key 'PRJA-99' does not exist",
		`colour = red`:                   "Field 'colour' does not exist",
		`project ~ PRJA`:                 "The operator '~' is not supported by the 'project' field.",
		`updated >= "yesterday"`:         "Date value 'yesterday' for field 'updated' is invalid.",
		`project = PRJA AND`:             "Expecting a field name but got the end of the query",
		`project = PRJA ORDER updated`:   "Expecting 'by'",
		`project = PRJA ORDER BY colour`: "Not able to sort using field 'colour'.",
		`project = PRJA project = PRJB`:  "Expecting either 'OR' or 'AND'",
		`text ~ "unterminated`:           "The quoted string has not been completed.",
		`text ~ "bad \q escape"`:         "Illegal escape sequence",
		`(project = PRJA`:                "Expecting ')'",
		`project in (PRJA, )`:            "Expecting either a value",
		`assignee = currentUser()`:       "Unable to find JQL function 'currentUser()'.",
		`project = PRJA AND ! x`:         "reserved JQL character",
		`text ~ ""`:                      "does not support searching for an empty string",
		strings.Repeat("(", 60) + "project = PRJA" + strings.Repeat(")", 60): "too complex",
	} {
		_, err := runJQL(t, j, time.UTC, q)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want one containing %q", q, err, want)
		}
	}
}

func FuzzJQL(f *testing.F) {
	for _, q := range []string{
		`project = PRJA AND updated >= 1706695230000 ORDER BY updated ASC, id ASC`,
		`text ~ "a \"b\" \u0041" OR (key in (PRJA-1, 10001) AND NOT issuetype = Bug)`,
		`updated >= "2024/01/31 10:00" AND created < -2w`,
		`((((`, `"`, `\`, `project in (`, `ORDER BY`, `a = b c`, "\xff",
	} {
		f.Add(q)
	}
	j, _ := jqlSite(f)
	f.Fuzz(func(t *testing.T, q string) {
		j.mu.Lock()
		defer j.mu.Unlock()
		issues, err := j.run(q, jiraView{loc: time.UTC}, false)
		if err != nil {
			if _, ok := err.(*jqlError); !ok {
				t.Fatalf("%q: error %T is not a JQL error", q, err)
			}
			return
		}
		if len(issues) > len(j.issues) {
			t.Fatalf("%q matched %d of %d issues", q, len(issues), len(j.issues))
		}
	})
}

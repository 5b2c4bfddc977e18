package salesforcetest

import (
	"strings"
	"testing"
	"time"
)

func testLookup() func(string) (*sobject, bool) {
	s := New()
	s.AddCustomType("Invoice__c", "Invoice", Field{Name: "Amount__c", Type: TypeCurrency}, Field{Name: "Paid__c", Type: TypeBoolean})
	return s.typeLocked
}

func TestParseSOQL(t *testing.T) {
	lookup := testLookup()
	ok := []string{
		"SELECT Id FROM Account",
		"select id, name from account where name = 'Acme'",
		"SELECT Id FROM Account WHERE Name = 'O\\'Brien' AND Industry != null",
		"SELECT Id FROM Account WHERE (Name = 'a' OR Name = 'b') AND NumberOfEmployees > 10",
		"SELECT Id FROM Account WHERE Name IN ('a', 'b\\\\c') ORDER BY Name DESC NULLS LAST, Id LIMIT 5 OFFSET 2",
		"SELECT Id FROM Account WHERE Name NOT IN ('a')",
		"SELECT Id FROM Account WHERE NOT Name = 'a'",
		"SELECT Id FROM Account WHERE Name LIKE 'Ter\\%%'",
		"SELECT Id FROM Account WHERE SystemModstamp >= 2026-01-02T03:04:05Z AND SystemModstamp < 2026-01-02T04:04:05.000+01:00 ORDER BY SystemModstamp, Id",
		"SELECT Id FROM Account WHERE SystemModstamp > 2026-01-02T03:04:05-0800",
		"SELECT Id FROM Account WHERE AnnualRevenue <= -1.5",
		"SELECT Id, Amount__c FROM Invoice__c WHERE Paid__c = false",
		"SELECT Id FROM Account WHERE Id = '001Hs000000000a' OR Id = '001Hs0000000001IAA'",
		"SELECT Id FROM Account WHERE Name = '\\n\\N\\r\\t\\b\\f\\\"\\u00e9'",
	}
	for _, q := range ok {
		if _, err := parseSOQL(q, lookup); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
	bad := []struct{ q, code, contains string }{
		{"", codeMalformedQuery, ""},
		{"SELECT FROM Account", codeMalformedQuery, "unexpected token: FROM"},
		{"SELECT Id FROM Account WHERE", codeMalformedQuery, "<EOF>"},
		{"SELECT Id FROM Account WHERE Name = 'a' AND Name = 'b' OR Name = 'c'", codeMalformedQuery, "unexpected token: OR"},
		{"SELECT Id FROM Account WHERE Name = 'unterminated", codeMalformedQuery, ""},
		{"SELECT Id FROM Account WHERE Name = \"double\"", codeMalformedQuery, ""},
		{"SELECT Id FROM Account WHERE Name = 'a\\qb'", codeMalformedQuery, "Illegal character sequence '\\q'"},
		{"SELECT Id FROM Account WHERE Name = 'a\\%'", codeMalformedQuery, "Illegal character sequence '\\%'"},
		{"SELECT Id FROM Account LIMIT -1", codeMalformedQuery, ""},
		{"SELECT Id, Id FROM Account", codeMalformedQuery, "duplicate field selected: Id"},
		{"SELECT Id FROM Account extra", codeMalformedQuery, "unexpected token: extra"},
		{"SELECT Nope FROM Account", codeInvalidField, "No such column 'Nope' on entity 'Account'"},
		{"SELECT Id FROM Account ORDER BY Nope", codeInvalidField, "No such column"},
		{"SELECT Id FROM Account WHERE Description = 'x'", codeInvalidField, "can not be filtered"},
		{"SELECT Id FROM Account ORDER BY Description", codeInvalidField, "can not be sorted"},
		{"SELECT Id FROM Account WHERE SystemModstamp > '2026-01-02T03:04:05Z'", codeInvalidField, "must be of type dateTime and should not be enclosed in quotes"},
		{"SELECT Id FROM Account WHERE SystemModstamp > 2026-01-02", codeInvalidField, "dateTime"},
		{"SELECT Id FROM Account WHERE Name = 5", codeInvalidField, "must be of type string and should be enclosed in quotes"},
		{"SELECT Id FROM Account WHERE IsDeleted = 'true'", codeInvalidField, "boolean"},
		{"SELECT Id FROM Account WHERE Id = 'not-an-id'", codeInvalidQueryFilter, "invalid ID field"},
		{"SELECT Id FROM Account WHERE NumberOfEmployees LIKE '1%'", codeInvalidQueryFilter, ""},
		{"SELECT Id FROM Nope", codeInvalidType, "sObject type 'Nope' is not supported"},
		{"SELECT Id FROM Invoice", codeInvalidType, "__c"},
	}
	for _, b := range bad {
		_, err := parseSOQL(b.q, lookup)
		if err == nil {
			t.Errorf("%q parsed", b.q)
			continue
		}
		if err.code != b.code || !strings.Contains(err.msg, b.contains) {
			t.Errorf("%q: %s %q, want %s containing %q", b.q, err.code, err.msg, b.code, b.contains)
		}
	}
}

func TestMalformedQueryLayout(t *testing.T) {
	_, err := parseSOQL("SELECT Id FROM Account WHERE", testLookup())
	want := "\nSELECT Id FROM Account WHERE\n                            ^\nERROR at Row:1:Column:29\nunexpected token: <EOF>"
	if err == nil || err.msg != want {
		t.Errorf("message %q, want %q", err.msg, want)
	}
}

func TestSOQLEvaluation(t *testing.T) {
	lookup := testLookup()
	acct, _ := lookup("Account")
	t1 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	rows := []Fields{
		{"Id": makeID("001", 1), "Name": "Ter%", "Industry": nil, "NumberOfEmployees": 5, "SystemModstamp": t1, "IsDeleted": false},
		{"Id": makeID("001", 2), "Name": "Terra", "Industry": "Energy", "NumberOfEmployees": 50, "SystemModstamp": t1.Add(time.Second), "IsDeleted": false},
		{"Id": makeID("001", 3), "Name": "o'brien_x", "Industry": "retail", "NumberOfEmployees": nil, "SystemModstamp": t1.Add(time.Hour), "IsDeleted": false},
	}
	cases := []struct {
		where string
		want  []int
	}{
		{"Name LIKE 'Ter%'", []int{1, 2}},
		{"Name LIKE 'ter\\%'", []int{1}},
		{"Name LIKE 'o\\'brien\\_%'", []int{3}},
		{"Name LIKE 'o_brien%'", []int{3}},
		{"Name = 'TERRA'", []int{2}},
		{"Industry = null", []int{1}},
		{"Industry != null", []int{2, 3}},
		{"Industry IN ('RETAIL', 'x')", []int{3}},
		{"Industry NOT IN ('Energy')", []int{1, 3}},
		{"NumberOfEmployees > 5", []int{2}},
		{"NumberOfEmployees >= 5 AND NumberOfEmployees < 50", []int{1}},
		{"SystemModstamp >= 2026-01-02T03:04:05Z AND SystemModstamp < 2026-01-02T03:04:06Z", []int{1}},
		{"SystemModstamp > 2026-01-02T04:04:05+01:00", []int{2, 3}},
		{"(Name = 'Terra' OR Name = 'Ter%') AND (NOT Industry = 'Energy')", []int{1}},
		{"Id = '" + makeID("001", 2)[:15] + "'", []int{2}},
	}
	for _, c := range cases {
		q, err := parseSOQL("SELECT Id FROM Account WHERE "+c.where+" ORDER BY Id", lookup)
		if err != nil {
			t.Errorf("%s: %v", c.where, err)
			continue
		}
		got := q.run(rows)
		var gotN []int
		for _, r := range got {
			for i, row := range rows {
				if row["Id"] == r["Id"] {
					gotN = append(gotN, i+1)
				}
			}
		}
		if len(gotN) != len(c.want) || (len(gotN) > 0 && !equalInts(gotN, c.want)) {
			t.Errorf("WHERE %s: rows %v, want %v", c.where, gotN, c.want)
		}
	}
	_ = acct
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// FuzzParseSOQL feeds arbitrary text to the parser and the evaluator: they may refuse it,
// never panic.
func FuzzParseSOQL(f *testing.F) {
	for _, seed := range []string{
		"SELECT Id FROM Account",
		"SELECT Id, Name FROM Account WHERE (Name LIKE 'a\\_%' OR Name IN ('x','y')) AND SystemModstamp >= 2026-01-02T03:04:05.123+05:30 ORDER BY SystemModstamp DESC NULLS FIRST, Id LIMIT 10 OFFSET 1",
		"SELECT Id FROM Account WHERE Name = '\\u00",
		"SELECT Id FROM Account WHERE Name = 'é\\'",
		"SELECT Id FROM Account WHERE NOT NOT NOT (Id = null)",
		"SELECT Id FROM Invoice__c WHERE Amount__c > -0.5",
		"SELECT Id FROM Account WHERE SystemModstamp > 9999-12-31T23:59:59-14:00",
	} {
		f.Add(seed)
	}
	lookup := testLookup()
	rows := []Fields{{"Id": makeID("001", 1), "Name": "x", "SystemModstamp": time.Unix(0, 0).UTC(), "IsDeleted": false}, {"Id": makeID("001", 2)}}
	f.Fuzz(func(t *testing.T, src string) {
		q, err := parseSOQL(src, lookup)
		if err != nil {
			if err.code == "" || err.msg == "" && src != "" {
				t.Fatalf("empty error for %q", src)
			}
			return
		}
		_ = q.run(rows)
	})
}

func TestNotOnlyFirstInGroup(t *testing.T) {
	lookup := testLookup()
	if _, err := parseSOQL("SELECT Id FROM Account WHERE Name != null AND NOT Name = 'a'", lookup); err == nil || !strings.Contains(err.msg, "unexpected token: NOT") {
		t.Errorf("AND NOT accepted: %v", err)
	}
	if _, err := parseSOQL("SELECT Id FROM Account WHERE Name != null AND (NOT Name = 'a')", lookup); err != nil {
		t.Errorf("AND (NOT …) refused: %v", err)
	}
}

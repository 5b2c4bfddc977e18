package salesforcetest_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/unified-connectors/connector-operator/connectors/salesforce/salesforcetest"
)

// escapeSOSL is what a client must do to a user's text before putting it between braces.
func escapeSOSL(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`?&|!{}[]()^~*:\"'+-`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// escapeSOQL is what a client must do to a user's text before putting it between quotes.
func escapeSOQL(s string) string {
	return strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`, "\r", `\r`, "\t", `\t`).Replace(s)
}

type searchResult struct {
	SearchRecords []map[string]any `json:"searchRecords"`
}

func (o *org) sosl(q string) answer {
	o.t.Helper()
	return o.get(data("/search?q=" + url.QueryEscape(q)))
}

func (o *org) mustSearch(q string) []map[string]any {
	o.t.Helper()
	a := o.sosl(q)
	if a.status != http.StatusOK {
		o.t.Fatalf("search %q: %d %s", q, a.status, a.body)
	}
	var r searchResult
	a.json(o.t, &r)
	if r.SearchRecords == nil {
		o.t.Fatalf("no searchRecords array: %s", a.body)
	}
	return r.SearchRecords
}

func seedSearch(o *org) (acme, globex, kase string) {
	var err error
	acme, err = o.Insert("Account", salesforcetest.Fields{"Name": "Acme (EU) Ltd", "Description": "Rockets & anvils: 50% off"})
	if err != nil {
		o.t.Fatal(err)
	}
	globex, _ = o.Insert("Account", salesforcetest.Fields{"Name": "Globex", "Description": "Acme's rival"})
	kase, _ = o.Insert("Case", salesforcetest.Fields{"Subject": "Acme login broken", "Description": "user c:\\temp says x} RETURNING User(Id)"})
	return acme, globex, kase
}

func TestSOSL(t *testing.T) {
	o := newOrg(t)
	acme, globex, kase := seedSearch(o)
	cases := []struct {
		q    string
		want []string
	}{
		{"FIND {acme} RETURNING Account(Id, Name)", []string{acme, globex}},
		{"FIND {acme} IN NAME FIELDS RETURNING Account(Id, Name)", []string{acme}},
		{"FIND {acme} IN NAME FIELDS RETURNING Account(Id), Case(Id, Subject)", []string{acme, kase}},
		{"FIND {acm*} RETURNING Account(Id WHERE Name = 'Globex')", []string{globex}},
		{"FIND {\"acme login\"} RETURNING Case", []string{kase}},
		{"FIND {acme AND NOT rival} RETURNING Account", []string{acme}},
		{"FIND {rockets OR rival} RETURNING Account(Id ORDER BY Name LIMIT 1)", []string{acme}},
		{"find {" + escapeSOSL("(EU)") + "} returning account", []string{acme}},
		{"FIND {" + escapeSOSL("c:\\temp") + "} RETURNING Case", []string{kase}},
		{"FIND {nothing} RETURNING Account", nil},
	}
	for _, c := range cases {
		got := ids(o.mustSearch(c.q))
		if strings.Join(sorted(got), ",") != strings.Join(sorted(c.want), ",") {
			t.Errorf("%s: %v, want %v", c.q, got, c.want)
		}
	}
	// Records carry attributes and the fields asked for.
	r := o.mustSearch("FIND {globex} RETURNING Account(Name)")
	if len(r) != 1 || r[0]["Name"] != "Globex" || r[0]["attributes"].(map[string]any)["type"] != "Account" {
		t.Errorf("search record %v", r)
	}
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestSOSLRefusals(t *testing.T) {
	o := newOrg(t)
	seedSearch(o)
	for _, reserved := range strings.Split(`& | ! { [ ] ^ ~ : ' + - \`, " ") {
		q := "FIND {ab" + reserved + "cd} RETURNING Account"
		if reserved == `\` {
			q = "FIND {abcd\\} RETURNING Account"
		}
		o.sosl(q).wantError(t, http.StatusBadRequest, "MALFORMED_SEARCH")
		// Escaped, the same character is searched as itself.
		if a := o.sosl("FIND {ab" + escapeSOSL(reserved) + "cd} RETURNING Account"); a.status != http.StatusOK {
			t.Errorf("escaped %q refused: %d %s", reserved, a.status, a.body)
		}
	}
	for q, code := range map[string]string{
		"FIND {a} RETURNING Account":                   "MALFORMED_SEARCH",
		"FIND acme RETURNING Account":                  "MALFORMED_SEARCH",
		"FIND {acme RETURNING Account":                 "MALFORMED_SEARCH",
		"FIND {acme} RETURNING Nope":                   "INVALID_TYPE",
		"FIND {acme} RETURNING CaseComment":            "INVALID_TYPE",
		"FIND {acme} RETURNING Account(Nope)":          "INVALID_FIELD",
		"FIND {acme} RETURNING Account(Id WHERE Name)": "MALFORMED_SEARCH",
		"FIND {acme} IN EVERY FIELDS":                  "MALFORMED_SEARCH",
	} {
		o.sosl(q).wantError(t, http.StatusBadRequest, code)
	}
}

// TestInjectionNeedsEscaping shows what a connector's escaping must prevent: unescaped,
// a tenant's text closes the term and rewrites the query; escaped, it is searched.
func TestInjectionNeedsEscaping(t *testing.T) {
	o := newOrg(t)
	_, _, kase := seedSearch(o)
	tenant := "x} RETURNING User(Id)"
	if a := o.sosl("FIND {" + tenant + "} RETURNING Case(Id)"); a.status == http.StatusOK {
		t.Errorf("unescaped text was run: %s", a.body)
	}
	got := ids(o.mustSearch("FIND {" + escapeSOSL(tenant) + "} RETURNING Case(Id)"))
	if len(got) != 1 || got[0] != kase {
		t.Errorf("escaped search: %v, want the case that holds the text", got)
	}
	// SOQL: a quote in a tenant's filter value must not end the literal.
	hostile := "Globex' OR Name != '"
	if n := o.mustQuery("query", "SELECT Id FROM Account WHERE Name = '"+escapeSOQL(hostile)+"'").TotalSize; n != 0 {
		t.Errorf("escaped value matched %d records", n)
	}
	if r := o.soql("query", "SELECT Id FROM Account WHERE Name = '"+hostile+"'"); r.status == http.StatusOK {
		var res queryResult
		r.json(t, &res)
		if res.TotalSize != 2 {
			t.Errorf("the unescaped value should have widened the query to every account: %d", res.TotalSize)
		}
	}
	if n := o.mustQuery("query", "SELECT Id FROM Account WHERE Name LIKE '"+escapeSOQL("Acme (EU)")+"%'").TotalSize; n != 1 {
		t.Errorf("LIKE with parentheses: %d", n)
	}
}

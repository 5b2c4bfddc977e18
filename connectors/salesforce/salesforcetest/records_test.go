package salesforcetest_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/unified-connectors/connector-operator/connectors/salesforce/salesforcetest"
)

func TestWithChecksum(t *testing.T) {
	// Published examples of the 15-to-18 conversion.
	for in, want := range map[string]string{
		"a01M00000062mPg": "a01M00000062mPgIAI",
		"001M000000qfPyS": "001M000000qfPySIAU",
		"a0FE000000D6r3F": "a0FE000000D6r3FMAR",
		"0F9E000000092w2": "0F9E000000092w2KAA",
		"aaaaaaaaaaaaaaa": "aaaaaaaaaaaaaaaAAA",
		"AbCdEfGhIjKlMnO": "AbCdEfGhIjKlMnOVKV",
		"aBcDEfgHIJKLMNO": "aBcDEfgHIJKLMNO025",
		"a0RE000000IJmcN": "a0RE000000IJmcNMAT",
	} {
		if got := salesforcetest.WithChecksum(in); got != want {
			t.Errorf("WithChecksum(%s) = %s, want %s", in, got, want)
		}
		if !salesforcetest.ValidID(want) || !salesforcetest.ValidID(strings.ToLower(want)) == (strings.ToLower(want[:15]) == want[:15]) {
			// Lower-casing the suffix keeps an Id valid (it is compared without case);
			// lower-casing the case-sensitive part breaks it unless it had no capital.
			t.Errorf("ValidID(%s) wrong", want)
		}
	}
	if salesforcetest.ValidID("001M000000qfPySIAX") {
		t.Errorf("a wrong suffix passed")
	}
}

func TestCreateAndRead(t *testing.T) {
	o := newOrg(t)
	clock := salesforcetest.NewManualClock(t0.Add(123 * time.Millisecond))
	o.SetClock(clock.Now)
	a := o.call(http.MethodPost, data("/sobjects/Account/"), `{"Name":"Acme","NumberOfEmployees":12,"AnnualRevenue":1.5}`)
	if a.status != http.StatusCreated {
		t.Fatalf("create: %d %s", a.status, a.body)
	}
	var created struct {
		ID      string `json:"id"`
		Success bool   `json:"success"`
		Errors  []any  `json:"errors"`
	}
	a.json(t, &created)
	if !created.Success || created.Errors == nil || len(created.Errors) != 0 || !strings.HasPrefix(created.ID, "001") || !salesforcetest.ValidID(created.ID) {
		t.Fatalf("create answer %s", a.body)
	}
	rec := o.get(data("/sobjects/Account/" + created.ID))
	var got map[string]any
	rec.json(t, &got)
	attrs, _ := got["attributes"].(map[string]any)
	if attrs["type"] != "Account" || attrs["url"] != data("/sobjects/Account/"+created.ID) {
		t.Errorf("attributes %v", attrs)
	}
	// Datetimes to the second, written as Salesforce writes them.
	for _, k := range []string{"CreatedDate", "LastModifiedDate", "SystemModstamp"} {
		if got[k] != "2026-03-04T05:06:07.000+0000" {
			t.Errorf("%s = %v", k, got[k])
		}
	}
	if got["IsDeleted"] != false || got["Name"] != "Acme" || got["NumberOfEmployees"] != float64(12) {
		t.Errorf("record %s", rec.body)
	}
	// The 15-character Id reads the same record; ?fields= narrows the answer.
	narrow := o.get(data("/sobjects/Account/" + created.ID[:15] + "?fields=Name"))
	var n map[string]any
	narrow.json(t, &n)
	if len(n) != 2 || n["Name"] != "Acme" {
		t.Errorf("narrow read %s", narrow.body)
	}
	// A Case comment hangs off its Case.
	cs := o.call(http.MethodPost, data("/sobjects/Case"), `{"Subject":"Help"}`)
	var c struct{ ID string }
	cs.json(t, &c)
	if !strings.HasPrefix(c.ID, "500") {
		t.Fatalf("case id %s", cs.body)
	}
	cc := o.call(http.MethodPost, data("/sobjects/CaseComment"), `{"ParentId":"`+c.ID+`","CommentBody":"first"}`)
	if cc.status != http.StatusCreated {
		t.Fatalf("comment: %d %s", cc.status, cc.body)
	}
	res := o.mustQuery("query", "SELECT Id, CommentBody FROM CaseComment WHERE ParentId = '"+c.ID+"'")
	if res.TotalSize != 1 || res.Records[0]["CommentBody"] != "first" {
		t.Errorf("comments of the case: %+v", res)
	}
	caseRec, _ := o.Record(c.ID)
	if caseRec["CaseNumber"] == nil || caseRec["Status"] != "New" || caseRec["IsClosed"] != false {
		t.Errorf("case defaults %v", caseRec)
	}
}

func TestCreateRefusals(t *testing.T) {
	o := newOrg(t)
	cases := []struct {
		name, path, body string
		status           int
		code             string
	}{
		{"required", "/sobjects/Account/", `{"Industry":"Retail"}`, 400, "REQUIRED_FIELD_MISSING"},
		{"unknown field", "/sobjects/Account/", `{"Name":"x","Nope__c":1}`, 400, "INVALID_FIELD"},
		{"read-only", "/sobjects/Account/", `{"Name":"x","SystemModstamp":"2026-01-01T00:00:00.000+0000"}`, 400, "INVALID_FIELD_FOR_INSERT_UPDATE"},
		{"id in body", "/sobjects/Account/", `{"Name":"x","Id":"001Hs0000000001IAA"}`, 400, "INVALID_FIELD"},
		{"bad json", "/sobjects/Account/", `{"Name":`, 400, "JSON_PARSER_ERROR"},
		{"bad parent", "/sobjects/CaseComment/", `{"ParentId":"001Hs0000000000001AAA","CommentBody":"x"}`, 400, "MALFORMED_ID"},
		{"unknown type", "/sobjects/Nope__c/", `{"Name":"x"}`, 404, "NOT_FOUND"},
	}
	for _, c := range cases {
		a := o.call(http.MethodPost, data(c.path), c.body)
		a.wantError(t, c.status, c.code)
	}
	if n := o.mustQuery("query", "SELECT Id FROM Account").TotalSize; n != 0 {
		t.Errorf("a refused create wrote %d records", n)
	}
}

func TestDescribe(t *testing.T) {
	o := newOrg(t)
	o.AddCustomType("Invoice__c", "Invoice", salesforcetest.Field{Name: "Amount__c", Type: salesforcetest.TypeCurrency})
	var global struct {
		Sobjects []struct {
			Name, KeyPrefix string
			Custom          bool
		}
	}
	o.get(data("/sobjects")).json(t, &global)
	prefixes := map[string]string{}
	for _, s := range global.Sobjects {
		prefixes[s.Name] = s.KeyPrefix
	}
	for name, p := range map[string]string{"Account": "001", "Contact": "003", "Case": "500", "CaseComment": "00a", "Invoice__c": "a00"} {
		if prefixes[name] != p {
			t.Errorf("describeGlobal %s prefix %q, want %s", name, prefixes[name], p)
		}
	}
	var d struct {
		Name   string
		Fields []struct {
			Name, Type string
			NameField  bool
		}
	}
	o.get(data("/sobjects/Case/describe")).json(t, &d)
	types := map[string]string{}
	for _, f := range d.Fields {
		types[f.Name] = f.Type
	}
	for f, ty := range map[string]string{"Id": "id", "Subject": "string", "Description": "textarea", "SystemModstamp": "datetime", "IsDeleted": "boolean", "AccountId": "reference"} {
		if types[f] != ty {
			t.Errorf("Case.%s type %q, want %s", f, types[f], ty)
		}
	}
	id := o.AddRecords("Invoice__c", 1, func(int) salesforcetest.Fields { return salesforcetest.Fields{"Amount__c": 9.5} })[0]
	if !strings.HasPrefix(id, "a00") {
		t.Errorf("custom Id %s", id)
	}
	o.get(data("/sobjects/Nope/describe")).wantError(t, 404, "NOT_FOUND")
}

func TestUpdateDeleteAndSecondStamps(t *testing.T) {
	o := newOrg(t)
	clock := salesforcetest.NewManualClock(t0)
	o.SetClock(clock.Now)
	ids := o.AddRecords("Account", 3, nil)
	clock.Advance(1500 * time.Millisecond)
	if a := o.call(http.MethodPatch, data("/sobjects/Account/"+ids[0]), `{"Industry":"Energy"}`); a.status != http.StatusNoContent {
		t.Fatalf("patch: %d %s", a.status, a.body)
	}
	rec, _ := o.Record(ids[0])
	if rec["SystemModstamp"] != t0.Add(time.Second) || rec["CreatedDate"] != t0 {
		t.Errorf("stamps after update %v / %v, want %v", rec["SystemModstamp"], rec["CreatedDate"], t0.Add(time.Second))
	}
	// Many records in one second tie.
	at := t0.Add(time.Hour + 999*time.Millisecond)
	o.Touch(at, ids...)
	res := o.mustQuery("query", "SELECT Id FROM Account WHERE SystemModstamp = 2026-03-04T06:06:07Z")
	if res.TotalSize != 3 {
		t.Errorf("records touched in one second: %d tie, want 3", res.TotalSize)
	}
	if a := o.call(http.MethodDelete, data("/sobjects/Account/"+ids[1]), ""); a.status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", a.status, a.body)
	}
	o.get(data("/sobjects/Account/"+ids[1])).wantError(t, 404, "ENTITY_IS_DELETED")
	if n := o.mustQuery("query", "SELECT Id FROM Account").TotalSize; n != 2 {
		t.Errorf("query sees %d, want 2 (deleted rows excluded)", n)
	}
	all := o.mustQuery("queryAll", "SELECT Id, IsDeleted FROM Account WHERE IsDeleted = true")
	if all.TotalSize != 1 || all.Records[0]["Id"] != ids[1] {
		t.Errorf("queryAll deleted rows: %+v", all)
	}
}

func TestDemo(t *testing.T) {
	s := salesforcetest.Demo()
	t.Cleanup(s.Close)
	access, _ := s.IssueTokens(salesforcetest.DemoClientID, salesforcetest.DefaultUser().ID)
	o := &org{Server: s, t: t, access: access}
	for typ, atLeast := range map[string]int{"Account": 5, "Contact": 5, "Case": 5, "CaseComment": 10} {
		if n := o.mustQuery("query", "SELECT Id FROM "+typ).TotalSize; n < atLeast {
			t.Errorf("demo %s: %d records", typ, n)
		}
	}
	orphans := 0
	for _, c := range o.mustQuery("query", "SELECT Id, ParentId FROM CaseComment").Records {
		if !strings.HasPrefix(c["ParentId"].(string), "500") {
			orphans++
		}
	}
	if orphans > 0 {
		t.Errorf("%d comments without a case", orphans)
	}
}

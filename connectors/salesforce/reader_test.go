package salesforce_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/connectors/salesforce"
	"github.com/unified-connectors/connector-operator/connectors/salesforce/salesforcetest"
)

func TestDescribeAndRegistration(t *testing.T) {
	d, ok := connectors.Describe("salesforce")
	if !ok {
		t.Fatal("salesforce is not registered")
	}
	oauth, ok := d.Method(connectors.AuthOAuth2)
	if !ok || oauth.Grant != connectors.GrantAuthorizationCode {
		t.Errorf("oauth2 %+v", oauth)
	}
	cc, ok := d.Method(connectors.AuthClientCredentials)
	if !ok || cc.Grant != connectors.GrantClientCredentials || strings.Join(cc.SecretKeys, ",") != "clientID,clientSecret" {
		t.Errorf("clientCredentials %+v", cc)
	}
	authz, token := d.OAuth.Endpoints(&v1alpha1.ConnectorSpec{BaseURL: "https://acme.my.salesforce.com/"})
	if authz != "https://acme.my.salesforce.com/services/oauth2/authorize" || token != "https://acme.my.salesforce.com/services/oauth2/token" {
		t.Errorf("endpoints %s %s", authz, token)
	}
	if !d.OAuth.PKCE(authz) || !d.OAuth.RotatesRefreshTokens || d.OAuth.AccessTokensExpire || strings.Join(d.OAuth.TokenFields, ",") != "instance_url" {
		t.Errorf("oauth rules %+v", d.OAuth)
	}
	c := d.Capabilities
	if !c.Create || !c.Comments || !c.ChangeFeed || !c.Search || !c.Snapshots || !c.Deletions || !d.HasKind("record") {
		t.Errorf("description %+v", d)
	}
}

func TestValidate(t *testing.T) {
	p := salesforce.Provider{}
	spec := func(v string) *v1alpha1.ConnectorSpec {
		return &v1alpha1.ConnectorSpec{Salesforce: &v1alpha1.SalesforceSpec{APIVersion: v}}
	}
	for _, tc := range []struct {
		name     string
		cfg      connectors.Config
		err      string
		warnings int
	}{
		{"my domain", connectors.Config{BaseURL: "https://acme.my.salesforce.com"}, "", 0},
		{"version", connectors.Config{BaseURL: "https://acme.my.salesforce.com", Connector: spec("v62.0")}, "", 0},
		{"old version", connectors.Config{BaseURL: "https://acme.my.salesforce.com", Connector: spec("v31.0")}, "", 1},
		{"bad version", connectors.Config{BaseURL: "https://acme.my.salesforce.com", Connector: spec("66")}, "apiVersion", 0},
		{"http elsewhere", connectors.Config{BaseURL: "http://127.0.0.1:8080"}, "", 2},
		{"no url", connectors.Config{}, "required", 0},
		{"ftp", connectors.Config{BaseURL: "ftp://acme.my.salesforce.com"}, "https", 0},
		{"userinfo", connectors.Config{BaseURL: "https://u:hunter2@acme.my.salesforce.com"}, "credentials", 0},
		{"query", connectors.Config{BaseURL: "https://acme.my.salesforce.com?x"}, "query", 0},
		{"pat", connectors.Config{BaseURL: "https://acme.my.salesforce.com", Credentials: connectors.Credentials{Method: connectors.AuthPAT}}, "not supported", 0},
	} {
		w, err := p.Validate(tc.cfg)
		if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.err)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: error echoes the password", tc.name)
		}
		if err == nil && len(w) != tc.warnings {
			t.Errorf("%s: warnings %q, want %d", tc.name, w, tc.warnings)
		}
	}
	if _, err := salesforce.New(connectors.Config{BaseURL: "https://acme.my.salesforce.com", Credentials: connectors.Credentials{Method: connectors.AuthOAuth2}}); err == nil {
		t.Error("New without a token succeeded")
	}
}

func TestContainers(t *testing.T) {
	o := newOrg(t)
	o.fake.AddCustomType("Invoice__c", "Invoice")
	var keys []string
	cur := ""
	for {
		page, err := o.client.Containers(t.Context(), cur, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range page.Items {
			keys = append(keys, c.Key)
		}
		if cur = page.NextCursor; cur == "" {
			break
		}
	}
	if got := strings.Join(keys, ","); got != "Account,Contact,Case,CaseComment,Invoice__c" {
		t.Errorf("containers %s", got)
	}
}

// TestItemMapping: a Case's title is its Subject, its key the CaseNumber, its text the
// Description, its URL the Lightning record page; Fields hold the scalar fields.
func TestItemMapping(t *testing.T) {
	o := newOrg(t)
	id, err := o.fake.Insert("Case", salesforcetest.Fields{"Subject": "Printer on fire", "Description": "Smoke from tray 2", "Status": "New"})
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := o.fake.Record(id)
	for _, ref := range []string{id, id[:15]} {
		it, err := o.client.Item(t.Context(), ref)
		if err != nil {
			t.Fatal(err)
		}
		if it.ID != id || it.Key != rec["CaseNumber"] || it.Title != "Printer on fire" || it.Text != "Smoke from tray 2" ||
			it.Container != "Case" || it.Kind != "record" || it.URL != o.fake.URL()+"/lightning/r/Case/"+id+"/view" ||
			it.UpdatedAt.IsZero() || it.CreatedAt.IsZero() || it.Fields["Status"] != "New" {
			t.Errorf("item %+v", it)
		}
	}
	acct, _ := o.fake.Insert("Account", salesforcetest.Fields{"Name": "Acme", "Description": strings.Repeat("x", 40000)})
	it, err := o.client.Item(t.Context(), acct)
	if err != nil || it.Title != "Acme" || it.Key != acct {
		t.Fatalf("account %+v, %v", it, err)
	}
	if _, big := it.Fields["Description"]; big || it.Fields["Name"] != "Acme" {
		t.Errorf("fields not bounded, or Name dropped: %v keys", len(it.Fields))
	}
	_, err = o.client.Item(t.Context(), "001000000000000AAA")
	wantKind(t, err, connectors.KindNotFound)
	_, err = o.client.Item(t.Context(), "../../limits")
	wantKind(t, err, connectors.KindInvalid)
}

func TestItemsNewestFirst(t *testing.T) {
	o := newOrg(t)
	ids := seed(o, "Account", 25, nil)
	var got []string
	cur := ""
	for {
		page, err := o.client.Items(t.Context(), connectors.ItemQuery{Container: "Account", Cursor: cur, Limit: 7})
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Items {
			got = append(got, it.ID)
		}
		if cur = page.NextCursor; cur == "" {
			break
		}
	}
	if len(got) != 25 {
		t.Fatalf("%d items, want 25", len(got))
	}
	seen := map[string]bool{}
	for _, id := range got {
		seen[id] = true
	}
	if len(seen) != 25 || got[0] != ids[24] && got[0] != ids[23] && got[0] != ids[22] {
		t.Errorf("not newest first or repeated: %v", got)
	}
}

func TestItemMatching(t *testing.T) {
	o := newOrg(t)
	banking, _ := o.fake.Insert("Account", salesforcetest.Fields{"Name": "Bank", "Industry": "Banking"})
	energy, _ := o.fake.Insert("Account", salesforcetest.Fields{"Name": "Power", "Industry": "Energy"})
	if it, err := connectors.ItemInFilter(t.Context(), o.client, banking, "Industry = 'Banking'"); err != nil || it.ID != banking {
		t.Fatalf("inside the filter: %+v, %v", it, err)
	}
	_, err := connectors.ItemInFilter(t.Context(), o.client, energy, "Industry = 'Banking'")
	wantKind(t, err, connectors.KindNotFound)
	_, err = connectors.ItemInFilter(t.Context(), o.client, energy, "Industry = 'Banking') OR (Id != null")
	wantKind(t, err, connectors.KindInvalid)
}

func TestComments(t *testing.T) {
	o := newOrg(t)
	caseID, _ := o.fake.Insert("Case", salesforcetest.Fields{"Subject": "Help"})
	var want []string
	for _, body := range []string{"first", "second", "third"} {
		id, err := o.fake.AddComment(caseID, body)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
	}
	var got []string
	var texts []string
	cur := ""
	for {
		page, err := o.client.Comments(t.Context(), caseID, cur, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range page.Items {
			got = append(got, c.ID)
			texts = append(texts, c.Text)
			if c.ItemID != caseID || c.CreatedAt.IsZero() || !strings.Contains(c.URL, caseID) {
				t.Errorf("comment %+v", c)
			}
		}
		if cur = page.NextCursor; cur == "" {
			break
		}
	}
	if strings.Join(texts, ",") != "first,second,third" || len(got) != 3 {
		t.Errorf("comments %v %v, want %v", got, texts, want)
	}
	acct, _ := o.fake.Insert("Account", salesforcetest.Fields{"Name": "Acme"})
	_, err := o.client.Comments(t.Context(), acct, "", 10)
	wantKind(t, err, connectors.KindUnsupported)
	_, err = o.client.Comments(t.Context(), "500000000000000AAA", "", 10)
	wantKind(t, err, connectors.KindNotFound)
}

func TestCreate(t *testing.T) {
	o := newOrg(t)
	it, err := o.client.Create(t.Context(), connectors.NewItem{Container: "Case", Title: "Printer on fire", Text: "Smoke"})
	if err != nil {
		t.Fatal(err)
	}
	rec, ok := o.fake.Record(it.ID)
	if !ok || rec["Subject"] != "Printer on fire" || rec["Description"] != "Smoke" || it.Title != "Printer on fire" || it.Key != rec["CaseNumber"] {
		t.Errorf("created %+v, stored %v", it, rec)
	}
	it, err = o.client.Create(t.Context(), connectors.NewItem{Container: "Contact", Title: "Doe"})
	if err != nil || it.Title != "Doe" {
		t.Fatalf("contact %+v, %v", it, err)
	}
	_, err = o.client.Create(t.Context(), connectors.NewItem{Container: "Case; DELETE", Title: "x"})
	wantKind(t, err, connectors.KindInvalid)
}

// TestFilterInjection: tenant filters that try to leave their parentheses are refused
// before any query is sent; a filter with escaped quotes is sent as written, inside
// parentheses, and the fake evaluates its literal as text.
func TestFilterInjection(t *testing.T) {
	o := newOrg(t)
	// Changes leaves the current second to the next walk: stamp the records in the past.
	o.fake.SetClock(salesforcetest.NewManualClock(past.Add(time.Minute)).Now)
	obrien, _ := o.fake.Insert("Account", salesforcetest.Fields{"Name": "O'Brien"})
	_, _ = o.fake.Insert("Account", salesforcetest.Fields{"Name": "Other"})
	o.fake.ResetRequests()
	for _, filter := range []string{
		`x' OR Name != '`,
		`Name = 'x' OR Name != '`,
		`) OR (Id != null`,
		`Name = 'a') OR (Name != 'a'`,
		`Name = 'x' LIMIT 1`,
		`Name = 'x' ORDER BY Name`,
		`Id IN (SELECT AccountId FROM Contact)`,
		`Name = 'x'; DELETE FROM Account`,
		`Name = "x"`,
		`Name = :secret`,
		`Name = 'x' AND Industry = 'y' OR Id != null`,
		`Name = 'a\'`,
		`Name = 'a\z'`,
		`(((((((((((((((((((((((((((((((((Name = 'x')))))))))))))))))))))))))))))))))`,
	} {
		for name, call := range map[string]func() error{
			"Changes": func() error {
				_, err := o.client.Changes(t.Context(), connectors.ChangeQuery{Container: connectors.Container{Key: "Account"}, Filter: filter})
				return err
			},
			"Items": func() error {
				_, err := o.client.Items(t.Context(), connectors.ItemQuery{Container: "Account", Filter: filter})
				return err
			},
			"Search": func() error {
				_, err := o.client.Search(t.Context(), connectors.SearchQuery{Text: "Brien", Filter: filter})
				return err
			},
		} {
			err := call()
			if connectors.KindOf(err) != connectors.KindInvalid {
				t.Errorf("%s with filter %q: %v, want KindInvalid", name, filter, err)
			}
			o.checkSafe(err, filter)
		}
	}
	if q := o.queries(); len(q) != 0 {
		t.Fatalf("refused filters reached the org: %q", q)
	}
	items := walkAll(t, func(int) *salesforce.Client { return o.client }, "Account", past, `Name = 'O\'Brien'`, 10)
	if len(items) != 1 || items[0].ID != obrien {
		t.Fatalf("escaped filter found %v, want only O'Brien", items)
	}
	if q := o.queries()[0]; !strings.HasSuffix(q, ` AND (Name = 'O\'Brien') ORDER BY SystemModstamp, Id`) {
		t.Errorf("query %q", q)
	}
}

// TestSearchEscaping: search text with SOSL's reserved characters is searched as text:
// it cannot close the braces, add a RETURNING clause or a wildcard.
func TestSearchEscaping(t *testing.T) {
	o := newOrg(t)
	acme, _ := o.fake.Insert("Account", salesforcetest.Fields{"Name": "Acme & Sons (EU)"})
	_, _ = o.fake.Insert("Account", salesforcetest.Fields{"Name": "Acmeister"})
	_, _ = o.fake.Insert("Case", salesforcetest.Fields{"Subject": "Acme printer"})
	page, err := o.client.Search(t.Context(), connectors.SearchQuery{Text: "Acme-Sons (EU)", Containers: []string{"Account", "Case"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 || page.Items[0].ID != acme {
		t.Errorf("search found %+v, want only %s", page.Items, acme)
	}
	if q := o.queries(); !strings.HasPrefix(q[len(q)-1], `FIND {Acme\-Sons \(EU\)} IN ALL FIELDS RETURNING Account(`) {
		t.Errorf("sosl %q", q[len(q)-1])
	}
	for _, text := range []string{
		`x} RETURNING User(Id)`,
		`acme*`,
		`"Acme" OR {`,
		`\} IN NAME FIELDS RETURNING Account(Id) LIMIT 1 //`,
		`'; DROP`,
	} {
		o.fake.ResetRequests()
		page, err := o.client.Search(t.Context(), connectors.SearchQuery{Text: text, Containers: []string{"Account"}})
		if err != nil {
			t.Errorf("search %q: %v", text, err)
			continue
		}
		q := o.queries()
		if len(q) != 1 || !strings.HasPrefix(q[0][termEnd(q[0]):], "} IN ALL FIELDS RETURNING Account(Id, ") {
			t.Errorf("search %q sent %q", text, q)
		}
		for _, it := range page.Items {
			if it.Container != "Account" || it.ID == acme && text == "acme*" {
				t.Errorf("search %q found %+v", text, it)
			}
		}
	}
	_, err = o.client.Search(t.Context(), connectors.SearchQuery{Text: "acme", Containers: []string{"Account) , User(Id"}})
	wantKind(t, err, connectors.KindInvalid)
	page, err = o.client.Search(t.Context(), connectors.SearchQuery{Text: "acme", Kind: "issue"})
	if err != nil || len(page.Items) != 0 {
		t.Errorf("kind issue: %v, %v", page.Items, err)
	}
	var ve *connectors.Error
	_, err = o.client.Search(t.Context(), connectors.SearchQuery{Text: "a"})
	if !errors.As(err, &ve) || ve.Kind != connectors.KindInvalid {
		t.Errorf("one-letter search: %v", err)
	}
}

// termEnd is where the search term of a SOSL text ends, read as SOSL does: at the first
// closing brace not preceded by a backslash.
func termEnd(sosl string) int {
	for i := strings.IndexByte(sosl, '{') + 1; i > 0 && i < len(sosl); i++ {
		switch sosl[i] {
		case '\\':
			i++
		case '}':
			return i
		}
	}
	return len(sosl)
}

package salesforce_test

import (
	"cmp"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/connectors/salesforce"
	"github.com/unified-connectors/connector-operator/connectors/salesforce/salesforcetest"
)

const (
	testClientID = "3MVG9test.connected.app"
	testSecret   = "s3cret-consumer-9f1c"
)

// org is a fake org with a session for the default user and a client over it.
type org struct {
	t       testing.TB
	fake    *salesforcetest.Server
	access  string
	refresh string
	client  *salesforce.Client
}

// secrets are the credentials of o; no error text may hold one.
func (o *org) secrets() []string { return []string{o.access, o.refresh, testSecret} }

func newOrg(t testing.TB) *org {
	t.Helper()
	fake := salesforcetest.NewServer()
	t.Cleanup(fake.Close)
	fake.AddClient(salesforcetest.Client{ID: testClientID, Secret: testSecret})
	fake.SetAPILimit(1 << 30)
	access, refresh := fake.IssueTokens(testClientID, salesforcetest.DefaultUser().ID)
	o := &org{t: t, fake: fake, access: access, refresh: refresh}
	o.client = o.newClient(nil)
	return o
}

// config is a Config for o's session sent through doer (nil: http.DefaultClient).
func (o *org) config(doer connectors.Doer) connectors.Config {
	return connectors.Config{
		BaseURL: o.fake.URL(),
		Credentials: connectors.Credentials{Method: connectors.AuthOAuth2, Token: o.access,
			Values: map[string]string{salesforce.TokenFieldInstanceURL: o.fake.URL()}},
		HTTP: cmp.Or[connectors.Doer](doer, http.DefaultClient),
	}
}

func (o *org) newClient(doer connectors.Doer) *salesforce.Client {
	o.t.Helper()
	c, err := salesforce.New(o.config(doer))
	if err != nil {
		o.t.Fatalf("New: %v", err)
	}
	return c
}

// queries are the SOQL/SOSL texts the fake received, in order.
func (o *org) queries() []string {
	var out []string
	for _, r := range o.fake.Requests() {
		if r.Query != "" {
			out = append(out, r.Query)
		}
	}
	return out
}

// checkSafe fails when err's text holds a credential or any of texts.
func (o *org) checkSafe(err error, texts ...string) {
	o.t.Helper()
	if err == nil {
		return
	}
	msg := err.Error()
	for _, s := range append(o.secrets(), texts...) {
		if s != "" && strings.Contains(msg, s) {
			o.t.Errorf("error %q holds %q", msg, s)
		}
	}
}

// wantKind fails unless err is a vendor error of kind.
func wantKind(t testing.TB, err error, kind connectors.ErrorKind) {
	t.Helper()
	if got := connectors.KindOf(err); got != kind {
		t.Fatalf("error %v has kind %q, want %q", err, got, kind)
	}
}

// past is a fixed instant well before any test's wall clock, where seeded stamps begin.
var past = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// walkAll reads every change of typ since since with page size limit, using next for
// each call (so a test can switch clients between calls).
func walkAll(t testing.TB, next func(i int) *salesforce.Client, typ string, since time.Time, filter string, limit int) []connectors.Item {
	t.Helper()
	var out []connectors.Item
	cur := ""
	for i := 0; ; i++ {
		if i > 10000 {
			t.Fatal("Changes never ends")
		}
		page, err := next(i).Changes(t.Context(), connectors.ChangeQuery{
			Container: connectors.Container{Key: typ}, Since: since, Filter: filter, Cursor: cur, Limit: limit})
		if err != nil {
			t.Fatalf("Changes page %d: %v", i, err)
		}
		if len(page.Items) > limit {
			t.Fatalf("page %d has %d items, limit %d", i, len(page.Items), limit)
		}
		out = append(out, page.Items...)
		if page.NextCursor == "" {
			return out
		}
		if len(page.Items) == 0 {
			t.Fatalf("page %d is empty but has a next cursor", i)
		}
		cur = page.NextCursor
	}
}

// checkOrderedOnce fails unless items are in (UpdatedAt, Id) order, each Id once, and
// exactly want.
func checkOrderedOnce(t testing.TB, items []connectors.Item, want []string) {
	t.Helper()
	seen := map[string]int{}
	for i, it := range items {
		seen[it.ID]++
		if i > 0 {
			p := items[i-1]
			if it.UpdatedAt.Before(p.UpdatedAt) || (it.UpdatedAt.Equal(p.UpdatedAt) && it.ID[:15] <= p.ID[:15]) {
				t.Fatalf("item %d (%s %s) is not after item %d (%s %s)", i, it.UpdatedAt, it.ID, i-1, p.UpdatedAt, p.ID)
			}
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}
	missing := 0
	for _, id := range want {
		if seen[id] == 0 {
			missing++
		}
	}
	if missing > 0 || len(seen) != len(want) {
		t.Fatalf("delivered %d distinct records, want %d (%d missing)", len(seen), len(want), missing)
	}
}

package salesforce

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/connectors/salesforce/salesforcetest"
)

func TestQuoteSOQL(t *testing.T) {
	for in, want := range map[string]string{
		"plain":         `'plain'`,
		"O'Brien":       `'O\'Brien'`,
		`back\slash`:    `'back\\slash'`,
		`"quoted"`:      `'\"quoted\"'`,
		"two\nlines\r":  `'two\nlines\r'`,
		"tab\tbell\a":   `'tab\tbell\u0007'`,
		"\b\f":          `'\b\f'`,
		"x' OR Id != '": `'x\' OR Id != \''`,
		"bad\xffutf8":   "'bad\uFFFDutf8'",
		"%_ stay":       `'%_ stay'`,
	} {
		if got := quoteSOQL(in); got != want {
			t.Errorf("quoteSOQL(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestCheckFilter(t *testing.T) {
	for _, ok := range []string{
		"Industry = 'Banking'",
		"Industry = 'Banking' AND NumberOfEmployees > 10",
		"(Industry = 'Banking' OR Industry = 'Energy') AND IsDeleted = false",
		"NOT Name LIKE 'Acme%'",
		"Status IN ('New', 'Working') AND Priority != null",
		"Type NOT IN ('x')",
		"CreatedDate > 2024-01-01T00:00:00Z AND CreatedDate < LAST_N_DAYS:30",
		"CloseDate = 2024-01-01 OR CloseDate = TODAY",
		"CALENDAR_YEAR(CreatedDate) = 2024",
		"Account.Name = 'Acme'",
		"Tags__c INCLUDES ('a;b', 'c')",
		`Name = 'O\'Brien \\ \u00e9'`,
		"Amount__c >= -1.5",
	} {
		if err := checkFilter(ok); err != nil {
			t.Errorf("checkFilter(%q) = %v, want ok", ok, err)
		}
	}
	for _, bad := range []string{
		"", "Name", "Name =", "= 'x'", "(Name = 'x'", "Name = 'x')", "Name = 'x",
		"Name = 'x' AND", "Name = 'x' OR Id = null AND Id != null", "Name = 'x' LIMIT 1",
		"Name = 'x' ORDER BY Name", "Id IN (SELECT Id FROM Account)", "Name = 'x'; DELETE",
		`Name = "x"`, "Name = :bind", "Name = x'", "Name = 'a\\q'", "Name = 'a\\u12'", "Name LIKE 5",
		"Name = 'x' WITH SECURITY_ENFORCED", "Name = 'x' FOR UPDATE", "Name = 'x' GROUP BY Name",
		"Name.Select = 'x'", "Name = 'x' /* c */", "Name = 'x' -- c", "Name = \x00",
		strings.Repeat("(", 40) + "Name = 'x'" + strings.Repeat(")", 40),
		strings.Repeat("NOT ", 40) + "Name = 'x'",
		strings.Repeat("a", 5000),
	} {
		err := checkFilter(bad)
		if err == nil {
			t.Errorf("checkFilter(%q) accepted it", bad)
			continue
		}
		if len(bad) > 6 && strings.Contains(err.Error(), bad) {
			t.Errorf("error %q echoes the filter", err)
		}
	}
}

func TestEscapeSOSL(t *testing.T) {
	if got, want := escapeSOSL(`a}b{c"d'e\f*g?h-i+j:k~l^m[n]o(p)q!r|s&t`), `a\}b\{c\"d\'e\\f\*g\?h\-i\+j\:k\~l\^m\[n\]o\(p\)q\!r\|s\&t`; got != want {
		t.Errorf("escapeSOSL = %s, want %s", got, want)
	}
	if got := escapeSOSL("a\nb\x00"); got != "a b " {
		t.Errorf("control characters: %q", got)
	}
}

func TestCursorRoundTripAndRefusals(t *testing.T) {
	for _, c := range []cursor{
		{Kind: kindChanges, Scope: "Account", T: 1700000000, A: "001Hs0000000001IAA", W: 1700000100, Q: fingerprint("")},
		{Kind: kindChanges, Scope: "Invoice__c", T: 1, A: "a00Hs0000000001IAA", W: 2, L: "/services/data/v66.0/queryAll/01gHs0000000001IAA-2000"},
		{Kind: kindLiveIDs, Scope: "Case", A: "500Hs0000000001IAA", L: "/services/data/v66.0/query/01gHs0000000001-4000"},
		{Kind: kindContainers, S: 100},
		{Kind: kindComments, Scope: "500Hs0000000001IAA", T: 5, A: "00aHs0000000001IAA"},
	} {
		s := c.encode()
		if !strings.HasPrefix(s, cursorPrefix) || strings.ContainsAny(s, "/+=?&# ") {
			t.Errorf("cursor %q is not URL-safe", s)
		}
		got, err := decodeCursor(s, "op", c.Kind, c.Scope)
		if err != nil || got != c {
			t.Errorf("decode(encode(%+v)) = %+v, %v", c, got, err)
		}
	}
	enc := func(j string) string { return cursorPrefix + base64.RawURLEncoding.EncodeToString([]byte(j)) }
	for name, s := range map[string]string{
		"another kind":           enc(`{"k":"ids","c":"Account","a":"001Hs0000000001IAA"}`),
		"another scope":          enc(`{"k":"changes","c":"Case","a":"001Hs0000000001IAA"}`),
		"unknown field":          enc(`{"k":"changes","c":"Account","url":"https://evil.example"}`),
		"locator on a host":      enc(`{"k":"changes","c":"Account","l":"https://evil.example/services/data/v66.0/query/01gHs0000000001IAA-2000"}`),
		"locator elsewhere":      enc(`{"k":"changes","c":"Account","l":"/services/data/v66.0/sobjects/User"}`),
		"locator with a query":   enc(`{"k":"changes","c":"Account","l":"/services/data/v66.0/query/01gHs0000000001IAA-2000?x=1"}`),
		"id injection":           enc(`{"k":"changes","c":"Account","a":"001' OR Name != '"}`),
		"negative time":          enc(`{"k":"changes","c":"Account","t":-1}`),
		"year 10000":             enc(`{"k":"changes","c":"Account","t":253402300800}`),
		"negative offset":        enc(`{"k":"changes","c":"Account","s":-1}`),
		"trailing data":          enc(`{"k":"changes","c":"Account"} {}`),
		"not base64":             cursorPrefix + "!!!",
		"no prefix":              "eyJrIjoiY2hhbmdlcyJ9",
		"too long":               enc(`{"k":"changes","c":"Account","q":"` + strings.Repeat("a", 2000) + `"}`),
		"scope with punctuation": enc(`{"k":"changes","c":"Account) OR (x"}`),
	} {
		if _, err := decodeCursor(s, "op", kindChanges, "Account"); err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), s) {
			t.Errorf("%s: error echoes the cursor", name)
		}
	}
}

// TestThrottleSpacing: from 95% of the allowance, calls start ThrottleAt95 apart.
func TestThrottleSpacing(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var slept []time.Duration
	c := &Client{
		now:   func() time.Time { return now },
		sleep: func(_ context.Context, d time.Duration) error { slept = append(slept, d); now = now.Add(d); return nil },
	}
	c.usage = usage{used: 50, max: 100}
	for range 3 {
		if err := c.admit(context.Background(), "op"); err != nil {
			t.Fatal(err)
		}
	}
	if len(slept) != 0 {
		t.Fatalf("slept %v at 50%%", slept)
	}
	c.usage = usage{used: 96, max: 100}
	for range 3 {
		if err := c.admit(context.Background(), "op"); err != nil {
			t.Fatal(err)
		}
	}
	if len(slept) != 2 || slept[0] != ThrottleAt95 || slept[1] != ThrottleAt95 {
		t.Fatalf("slept %v at 96%%, want two pauses of %s", slept, ThrottleAt95)
	}
	// A caller whose deadline comes before its turn is told when to come back.
	ctx, cancel := context.WithDeadline(context.Background(), now.Add(time.Second))
	defer cancel()
	err := c.admit(ctx, "op")
	var ve *connectors.Error
	if !errors.As(err, &ve) || ve.Kind != connectors.KindRateLimited || ve.RetryAfter < ThrottleAt95 || len(slept) != 2 {
		t.Fatalf("admit past the deadline: %v (slept %v)", err, slept)
	}
}

// fuzzOrg is one fake org shared by a fuzz target's iterations.
var fuzzOrg struct {
	once   sync.Once
	fake   *salesforcetest.Server
	access string
}

func fuzzFake(t *testing.T) (*salesforcetest.Server, string) {
	fuzzOrg.once.Do(func() {
		fuzzOrg.fake = salesforcetest.NewServer()
		fuzzOrg.fake.AddClient(salesforcetest.Client{ID: "fuzz", Secret: "fuzz-secret"})
		fuzzOrg.fake.SetAPILimit(1 << 30)
		fuzzOrg.access, _ = fuzzOrg.fake.IssueTokens("fuzz", salesforcetest.DefaultUser().ID)
	})
	return fuzzOrg.fake, fuzzOrg.access
}

// fakeGet sends one data API GET to the fake and returns status and body.
func fakeGet(t *testing.T, path string, q url.Values) (int, []byte) {
	fake, access := fuzzFake(t)
	req, _ := http.NewRequest(http.MethodGet, fake.URL()+"/services/data/v66.0"+path+"?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+access)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// FuzzQuoteSOQL round-trips strings through the fake org's SOQL parser: a record named
// s is found by Name = quoteSOQL(s) and not by Name != quoteSOQL(s), so the literal
// neither ends early nor changes its text.
func FuzzQuoteSOQL(f *testing.F) {
	for _, s := range []string{"plain", "O'Brien", `\`, `\'`, "'", "''", `x' OR Name != '`, "a\nb\r\t\b\f", "\x00\x1f\x7f", `\u0041`, "é🙂", "%_", "bad\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 200 {
			return
		}
		q := quoteSOQL(s)
		if !strings.HasPrefix(q, "'") || !strings.HasSuffix(q, "'") || !utf8.ValidString(q) {
			t.Fatalf("quoteSOQL(%q) = %s", s, q)
		}
		toks, err := lexFilter("Name = " + q)
		if err != nil || len(toks) != 4 || toks[2].kind != ftString {
			t.Fatalf("the literal of %q does not lex as one string: %v %v", s, toks, err)
		}
		if s == "" {
			return // an Account needs a Name: there is no record to find by the empty one
		}
		fake, _ := fuzzFake(t)
		name := strings.ToValidUTF8(s, "\uFFFD")
		id, err := fake.Insert("Account", salesforcetest.Fields{"Name": name})
		if err != nil {
			t.Fatalf("the fake org refused an Account named %q: %v", name, err)
		}
		for op, want := range map[string]int{"=": 1, "!=": 0} {
			status, body := fakeGet(t, "/query", url.Values{"q": {"SELECT Id FROM Account WHERE Id = '" + id + "' AND Name " + op + " " + q}})
			var res struct {
				TotalSize int `json:"totalSize"`
			}
			if status != http.StatusOK || json.Unmarshal(body, &res) != nil || res.TotalSize != want {
				t.Fatalf("Name %s %s: %d %s, want %d record(s)", op, q, status, body, want)
			}
		}
	})
}

// FuzzEscapeSOSL: escaped text stays inside FIND's braces, and the fake org never
// refuses it for a reserved character or reads anything after it as its own clause.
func FuzzEscapeSOSL(f *testing.F) {
	for _, s := range []string{"acme", `x} RETURNING User(Id)`, `\`, `\}`, `"phrase`, "a*b?c", "(a OR b)", "{}[]", "AND", "a - b", "é🙂"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 200 {
			return
		}
		e := escapeSOSL(s)
		for i := 0; i < len(e); i++ {
			if e[i] == '\\' {
				i++
				if i >= len(e) || !strings.ContainsRune(soslReserved, rune(e[i])) {
					t.Fatalf("escapeSOSL(%q) = %q: a backslash escapes nothing reserved", s, e)
				}
				continue
			}
			if strings.ContainsRune(soslReserved, rune(e[i])) {
				t.Fatalf("escapeSOSL(%q) = %q: reserved %q unescaped", s, e, e[i])
			}
		}
		sosl := "FIND {" + e + "} RETURNING Account(Id)"
		status, body := fakeGet(t, "/search", url.Values{"q": {sosl}})
		if status == http.StatusOK {
			return
		}
		msg := string(body)
		refusedForTerm := strings.Contains(msg, "longer than one character") || strings.Contains(msg, "operator")
		if !strings.Contains(msg, "MALFORMED_SEARCH") || !refusedForTerm {
			t.Fatalf("%s: %d %s", sosl, status, body)
		}
	})
}

// FuzzCursor: decodeCursor never panics, and what it accepts is valid and re-encodes
// to a cursor that decodes the same.
func FuzzCursor(f *testing.F) {
	f.Add(cursor{Kind: kindChanges, Scope: "Account", T: 1700000000, A: "001Hs0000000001IAA", W: 1700000100}.encode())
	f.Add(cursor{Kind: kindChanges, Scope: "Account", T: 1, A: "001Hs0000000001IAA", W: 2, L: "/services/data/v66.0/queryAll/01gHs0000000001IAA-2000", Q: fingerprint("x")}.encode())
	f.Add(cursor{Kind: kindChanges, Scope: "Account", S: 5}.encode())
	f.Add("s1.e30")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := decodeCursor(s, "op", kindChanges, "Account")
		if err != nil {
			if strings.Contains(err.Error(), s) && len(s) > 8 {
				t.Fatalf("error echoes the cursor: %v", err)
			}
			return
		}
		if !c.valid() || len(s) > maxCursorLen {
			t.Fatalf("accepted an invalid cursor %+v", c)
		}
		again, err := decodeCursor(c.encode(), "op", kindChanges, "Account")
		if err != nil || again != c {
			t.Fatalf("re-encoded %+v decodes to %+v, %v", c, again, err)
		}
	})
}

// FuzzCheckFilter: checkFilter never panics, and a filter it accepts has balanced
// parentheses outside its string literals, so "(" + filter + ")" cannot be left early.
func FuzzCheckFilter(f *testing.F) {
	for _, s := range []string{"Industry = 'Banking'", "(a = 1 OR b = 2) AND c = 'x'", `x' OR Name != '`, ") OR (Id != null", "NOT a IN ('x', 'y')", `Name = 'a\')'`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if checkFilter(s) != nil {
			return
		}
		toks, err := lexFilter(s)
		if err != nil {
			t.Fatalf("accepted %q, which does not lex: %v", s, err)
		}
		depth := 0
		for _, tk := range toks {
			if tk.kind == ftPunct && tk.text == "(" {
				depth++
			}
			if tk.kind == ftPunct && tk.text == ")" {
				if depth--; depth < 0 {
					t.Fatalf("accepted %q with an unbalanced )", s)
				}
			}
		}
		if depth != 0 {
			t.Fatalf("accepted %q with an unbalanced (", s)
		}
	})
}

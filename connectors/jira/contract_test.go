package jira_test

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/connectors/atlassian"
	"github.com/unified-connectors/connector-operator/internal/vendorspec"
)

// TestContractIdentity checks, against Atlassian's Jira Cloud OpenAPI document, every
// request the connector sends for Identity and every answer the fake gives it.
func TestContractIdentity(t *testing.T) {
	spec, err := vendorspec.Jira()
	if err != nil {
		t.Fatalf("load the Jira OpenAPI document: %v", err)
	}
	fake := newFake(t)
	checker := &vendorspec.Doer{Spec: spec, Next: http.DefaultClient}

	for _, cfg := range []connectors.Config{
		{BaseURL: fake.URL(), Credentials: apiTokenCreds(apiToken)},
		{BaseURL: fake.URL(), Credentials: atlassian.PATCredentials(pat)},
		gatewayConfig(fake),
		{BaseURL: fake.URL(), Credentials: apiTokenCreds("wrong")}, // the 401 answer too
	} {
		cfg.HTTP = checker
		_, _ = newClient(t, cfg).Identity(t.Context())
	}

	if n := checker.Checked(); n != 4 {
		t.Fatalf("checked %d exchanges, want 4", n)
	}
	for _, err := range checker.Errors() {
		t.Errorf("contract violation: %v", err)
	}
}

// TestContractDataCenterMyself checks that the fake's Data Center answer
// (GET /rest/api/2/myself, not in the Cloud document) fits Cloud's User schema, which
// documents key and name for this purpose.
func TestContractDataCenterMyself(t *testing.T) {
	spec, err := vendorspec.Jira()
	if err != nil {
		t.Fatalf("load the Jira OpenAPI document: %v", err)
	}
	fake := newFake(t)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, fake.URL()+"/rest/api/2/myself", nil)
	req.Header.Set("Authorization", "Bearer "+pat)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if err := spec.ValidateBody("getCurrentUser", http.StatusOK, body); err != nil {
		t.Errorf("fake's /rest/api/2/myself answer violates the User schema: %v", err)
	}
}

// TestContractCatchesViolations keeps the contract tests honest: the validator must
// refuse answers that break the User schema.
func TestContractCatchesViolations(t *testing.T) {
	spec, err := vendorspec.Jira()
	if err != nil {
		t.Fatalf("load the Jira OpenAPI document: %v", err)
	}
	for _, body := range []string{
		`{"accountId": 42}`,                          // wrong type
		`{"accountId": "x", "nickname": "al"}`,       // User allows no other property
		`{"accountId": "x", "active": "yes"}`,        // wrong type
		`{"accountId": "x", "accountType": "robot"}`, // outside the enum
	} {
		if err := spec.ValidateBody("getCurrentUser", http.StatusOK, []byte(body)); err == nil {
			t.Errorf("ValidateBody accepted %s", body)
		}
	}
}

// exercise calls every method of c, paging where it can, and a few that fail.
func exercise(t *testing.T, c connectors.Client) {
	t.Helper()
	ctx := t.Context()
	if _, err := c.Identity(ctx); err != nil {
		t.Errorf("Identity: %v", err)
	}
	collect(t, 10, func(cur string) (connectors.Page[connectors.Container], error) { return c.Containers(ctx, cur, 1) })
	collect(t, 10, func(cur string) (connectors.Page[connectors.Item], error) {
		return c.Items(ctx, connectors.ItemQuery{Container: "PRJA", UpdatedSince: seedStart, Cursor: cur, Limit: 4})
	})
	if _, err := c.Item(ctx, "PRJA-1"); err != nil {
		t.Errorf("Item: %v", err)
	}
	collect(t, 10, func(cur string) (connectors.Page[connectors.Item], error) {
		return c.Items(ctx, connectors.ItemQuery{Container: "PRJA", Filter: "issuetype != Bug", Cursor: cur, Limit: 4})
	})
	if _, err := c.(connectors.FilterReader).ItemMatching(ctx, "PRJA-1", "issuetype in (Bug, Task, Story)"); err != nil {
		t.Errorf("ItemMatching: %v", err)
	}
	collect(t, 10, func(cur string) (connectors.Page[connectors.Comment], error) {
		return c.Comments(ctx, "PRJA-1", cur, 1)
	})
	collect(t, 10, func(cur string) (connectors.Page[connectors.Item], error) {
		return c.Search(ctx, connectors.SearchQuery{Text: "the", Containers: []string{"PRJA", "PRJB"}, Filter: "issuetype != Bug OR issuetype = Task", Cursor: cur, Limit: 5})
	})
	if _, err := c.Create(ctx, connectors.NewItem{Container: "PRJB", Title: "Contract", Text: "Checked\n\nagainst the document."}); err != nil {
		t.Errorf("Create: %v", err)
	}
	collect(t, 30, func(cur string) (connectors.Page[connectors.Item], error) {
		return c.Changes(ctx, connectors.ChangeQuery{Container: connectors.Container{Key: "PRJA"}, Since: seedStart, Cursor: cur, Limit: 3})
	})
	collect(t, 10, func(cur string) (connectors.Page[string], error) {
		return c.LiveIDs(ctx, connectors.Container{Key: "PRJB"}, cur)
	})
	// Failures are exchanges too.
	_, _ = c.Item(ctx, "PRJA-999")
	_, _ = c.Create(ctx, connectors.NewItem{Container: "PRJA", Title: "two\nlines"})
	_, _ = c.Comments(ctx, "NOPE-1", "", 5)
}

// TestContractEveryOperation sends every call the connector makes on Cloud, with an
// API token and through the OAuth2 gateway, through the contract checker: each request
// and each answer of the fake must fit the operation in Atlassian's document.
func TestContractEveryOperation(t *testing.T) {
	fake := newSeededFake(t, 2, 12, 2)
	for name, cfg := range map[string]connectors.Config{
		"api token":      cloudConfig(fake, alice),
		"oauth2 gateway": gatewayConfig(fake),
	} {
		t.Run(name, func(t *testing.T) {
			chk := newContractChecker(t, false, http.DefaultClient)
			cfg.HTTP = chk
			fake.ResetRequests()
			exercise(t, newClient(t, cfg))
			ops := map[string]bool{}
			for _, r := range fake.Requests() {
				path := gatewayPrefix.ReplaceAllString(r.Path, "")
				path = regexp.MustCompile(`/issue/[^/]+`).ReplaceAllString(path, "/issue/{id}")
				ops[r.Method+" "+path] = true
			}
			for _, want := range []string{
				"GET /rest/api/3/myself", "GET /rest/api/3/project/search", "POST /rest/api/3/search/jql",
				"GET /rest/api/3/issue/{id}", "GET /rest/api/3/issue/{id}/comment", "POST /rest/api/3/issue",
			} {
				if !ops[want] {
					t.Errorf("no %s was checked (saw %v)", want, ops)
				}
			}
			if n := chk.Checked(); n < 20 {
				t.Errorf("only %d exchanges checked", n)
			}
			if n := fake.CountRequests("/rest/api/3/search"); n != 0 {
				t.Errorf("the removed /rest/api/3/search was called %d times", n)
			}
		})
	}
}

// TestContractDataCenter does the same for Data Center, checked by dcChecker.
func TestContractDataCenter(t *testing.T) {
	fake := newSeededFake(t, 2, 12, 2)
	cfg := dcConfig(fake)
	chk := newContractChecker(t, true, http.DefaultClient)
	cfg.HTTP = chk
	exercise(t, newClient(t, cfg))
	if n := chk.Checked(); n < 20 {
		t.Errorf("only %d exchanges checked", n)
	}
}

// TestContractCheckersCatchViolations keeps the checkers honest: an undeclared query
// parameter, the removed search, a Data Center call outside the known set, and a Cloud
// path from a Data Center client are all violations.
func TestContractCheckersCatchViolations(t *testing.T) {
	fake := newSeededFake(t, 1, 2, 0)
	send := func(c checker, method, path, body string) {
		req, _ := http.NewRequestWithContext(t.Context(), method, fake.URL()+path, strings.NewReader(body))
		req.SetBasicAuth(email, apiToken)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
	}
	for _, tc := range []struct {
		name       string
		dataCenter bool
		method     string
		path, body string
	}{
		{"undeclared query parameter", false, "GET", "/rest/api/3/issue/PRJA-1/comment?startAt=0&limit=5", ""},
		{"unknown path", false, "GET", "/rest/api/3/issues", ""},
		{"removed search", false, "POST", "/rest/api/3/search", `{"jql":"project = PRJA"}`},
		{"Cloud search body property it does not take", false, "POST", "/rest/api/3/search/jql", `{"jql":"project = PRJA","startAt":0}`},
		{"Data Center path outside the set", true, "GET", "/rest/api/2/serverInfo", ""},
		{"Cloud path from Data Center", true, "GET", "/rest/api/3/myself", ""},
		{"Data Center search with a token", true, "POST", "/rest/api/2/search", `{"jql":"project = PRJA","nextPageToken":"x"}`},
	} {
		c := contractChecker(t, tc.dataCenter, http.DefaultClient)
		send(c, tc.method, tc.path, tc.body)
		if len(c.Errors()) == 0 {
			t.Errorf("%s: no violation recorded", tc.name)
		}
	}
}

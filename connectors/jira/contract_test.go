package jira_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/unified-connectors/connector-operator/connectors"
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
		{BaseURL: fake.URL(), Credentials: connectors.Credentials{Method: connectors.AuthPAT, Token: pat}},
		{BaseURL: "https://acme.atlassian.net", CloudID: fake.CloudID(), APIBaseURL: fake.URL(), Credentials: connectors.Credentials{Method: connectors.AuthOAuth2, Token: pat}},
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
	defer resp.Body.Close()
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

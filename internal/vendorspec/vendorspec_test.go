package vendorspec_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/unified-connectors/connector-operator/internal/vendorspec"
)

func TestValidateRequestRoutes(t *testing.T) {
	spec, err := vendorspec.Jira()
	if err != nil {
		t.Fatalf("Jira: %v", err)
	}
	if again, _ := vendorspec.Jira(); again != spec {
		t.Error("the document was loaded twice")
	}
	for _, tc := range []struct {
		url, wantOp, wantErr string
	}{
		{url: "http://127.0.0.1:1/rest/api/3/myself", wantOp: "getCurrentUser"},
		{url: "http://127.0.0.1:1/ex/jira/abc-123/rest/api/3/myself?expand=groups", wantOp: "getCurrentUser"},
		{url: "http://127.0.0.1:1/rest/api/3/issue/ABC-1", wantOp: "getIssue"},
		{url: "http://127.0.0.1:1/rest/api/2/myself", wantErr: "no matching operation"},
		{url: "http://127.0.0.1:1/rest/api/3/search/jql?maxResults=lots", wantErr: "maxResults"},
	} {
		in, err := spec.ValidateRequest(t.Context(), httptest.NewRequest(http.MethodGet, tc.url, nil))
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: error %v, want one mentioning %q", tc.url, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		if in.Route.Operation.OperationID != tc.wantOp {
			t.Errorf("%s routed to %s, want %s", tc.url, in.Route.Operation.OperationID, tc.wantOp)
		}
	}
}

func TestConfluenceV2Loads(t *testing.T) {
	spec, err := vendorspec.ConfluenceV2()
	if err != nil {
		t.Fatalf("ConfluenceV2: %v", err)
	}
	in, err := spec.ValidateRequest(t.Context(), httptest.NewRequest(http.MethodGet, "http://127.0.0.1:1/wiki/api/v2/spaces?limit=25", nil))
	if err != nil {
		t.Fatalf("ValidateRequest: %v", err)
	}
	if in.Route.Operation.OperationID != "getSpaces" {
		t.Errorf("routed to %s, want getSpaces", in.Route.Operation.OperationID)
	}
}

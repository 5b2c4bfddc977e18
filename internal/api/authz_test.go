package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
)

// TestAuthorizationMatrix runs every route as users with no role, with get connections
// only, with get connections/data in one namespace, as a cluster-wide reader and as an
// editor of one namespace, and checks each answer exactly. A refusal must not depend on
// whether the object exists: the same request about a Connection that exists in a
// namespace the user may not read, one that does not, and one in a namespace that does
// not exist all answer FORBIDDEN.
func TestAuthorizationMatrix(t *testing.T) {
	s := testEnv(t)
	st := s.newSite(t, v1alpha1.ConnectorTypeJira)
	st.fake.AddJiraProject("PRJA", "Project A")
	base := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	issue := st.fake.CreateIssue("PRJA", "Matrix login timeout", "The matrix login times out behind the proxy.", base)
	st.fake.CreateIssue("PRJA", "Matrix billing export", "Export fails.", base.Add(time.Minute))

	nsA, nsB := s.newNamespace(t, "tenant-a"), s.newNamespace(t, "tenant-b")
	ghost := "ghost-" + strings.ToLower(nsA[len(nsA)-6:])
	s.waitReady(t, s.newConnection(t, nsA, "jira", st), s.newConnection(t, nsB, "jira", st))

	none := s.newUser(t, "none")
	getOnly := s.newUser(t, "get-only")
	s.grant(t, getOnly, nsA, rule("connections", "get"))
	dataA := s.newUser(t, "data-a")
	s.grant(t, dataA, nsA, rule("connections", "get", "list"), rule("connections/data", "get"))
	reader := s.newUser(t, "reader")
	s.grantCluster(t, reader, rule("connectors", "list"), rule("connections", "get", "list"), rule("connections/data", "get"))
	editorA := s.newUser(t, "editor-a")
	s.grant(t, editorA, nsA, rule("connections/data", "get", "create"), rule("connections/credentials", "update"))

	create := []byte(`{"container":"PRJA","title":"Created through the API","text":"Hello"}`)
	type row struct {
		name string
		r    req
		// want is the status per user: none, getOnly, dataA, reader, editorA.
		want [5]int
	}
	const (
		ok, created, forbidden, notFound, conflict = http.StatusOK, http.StatusCreated, http.StatusForbidden, http.StatusNotFound, http.StatusConflict
	)
	rows := []row{
		{"list connectors", req{path: "/api/v1/connectors"}, [5]int{forbidden, forbidden, forbidden, ok, forbidden}},
		{"list connections A", req{path: "/api/v1/namespaces/" + nsA + "/connections"}, [5]int{forbidden, forbidden, ok, ok, forbidden}},
		{"list connections B", req{path: "/api/v1/namespaces/" + nsB + "/connections"}, [5]int{forbidden, forbidden, forbidden, ok, forbidden}},
		{"list connections ghost", req{path: "/api/v1/namespaces/" + ghost + "/connections"}, [5]int{forbidden, forbidden, forbidden, ok, forbidden}},
		{"get connection A", req{path: connPath(nsA, "jira")}, [5]int{forbidden, ok, ok, ok, forbidden}},
		{"get missing connection A", req{path: connPath(nsA, "nope")}, [5]int{forbidden, notFound, notFound, notFound, forbidden}},
		{"get connection B", req{path: connPath(nsB, "jira")}, [5]int{forbidden, forbidden, forbidden, ok, forbidden}},
		{"get missing connection B", req{path: connPath(nsB, "nope")}, [5]int{forbidden, forbidden, forbidden, notFound, forbidden}},
		{"get connection in ghost namespace", req{path: connPath(ghost, "jira")}, [5]int{forbidden, forbidden, forbidden, notFound, forbidden}},
		{"containers A", req{path: connPath(nsA, "jira", "containers")}, [5]int{forbidden, forbidden, ok, ok, ok}},
		{"containers B", req{path: connPath(nsB, "jira", "containers")}, [5]int{forbidden, forbidden, forbidden, ok, forbidden}},
		{"containers of missing A", req{path: connPath(nsA, "nope", "containers")}, [5]int{forbidden, forbidden, notFound, notFound, notFound}},
		{"items A", req{path: connPath(nsA, "jira", "items") + "?container=PRJA"}, [5]int{forbidden, forbidden, ok, ok, ok}},
		{"items B", req{path: connPath(nsB, "jira", "items") + "?container=PRJA"}, [5]int{forbidden, forbidden, forbidden, ok, forbidden}},
		{"items ghost", req{path: connPath(ghost, "jira", "items") + "?container=PRJA"}, [5]int{forbidden, forbidden, forbidden, notFound, forbidden}},
		{"item A", req{path: connPath(nsA, "jira", "items", issue)}, [5]int{forbidden, forbidden, ok, ok, ok}},
		{"item B", req{path: connPath(nsB, "jira", "items", issue)}, [5]int{forbidden, forbidden, forbidden, ok, forbidden}},
		{"missing item A", req{path: connPath(nsA, "jira", "items", "PRJA-999")}, [5]int{forbidden, forbidden, notFound, notFound, notFound}},
		{"comments A", req{path: connPath(nsA, "jira", "items", issue, "comments")}, [5]int{forbidden, forbidden, ok, ok, ok}},
		{"comments B", req{path: connPath(nsB, "jira", "items", issue, "comments")}, [5]int{forbidden, forbidden, forbidden, ok, forbidden}},
		{"create A", req{method: http.MethodPost, path: connPath(nsA, "jira", "items"), body: create}, [5]int{forbidden, forbidden, forbidden, forbidden, created}},
		{"create B", req{method: http.MethodPost, path: connPath(nsB, "jira", "items"), body: create}, [5]int{forbidden, forbidden, forbidden, forbidden, forbidden}},
		{"search", req{path: "/api/v1/search?q=matrix&namespaces=" + nsA + "," + nsB}, [5]int{ok, ok, ok, ok, ok}},
		{"authorize A (apiToken connection)", req{path: "/oauth/v1/namespaces/" + nsA + "/connections/jira/authorize"}, [5]int{forbidden, forbidden, forbidden, forbidden, conflict}},
		{"authorize B", req{path: "/oauth/v1/namespaces/" + nsB + "/connections/jira/authorize"}, [5]int{forbidden, forbidden, forbidden, forbidden, forbidden}},
		{"authorize ghost", req{path: "/oauth/v1/namespaces/" + ghost + "/connections/jira/authorize"}, [5]int{forbidden, forbidden, forbidden, forbidden, forbidden}},
	}
	users := []user{none, getOnly, dataA, reader, editorA}
	wantCode := map[int]string{forbidden: "FORBIDDEN", notFound: "NOT_FOUND", conflict: "CONFLICT"}
	for _, rw := range rows {
		for i, u := range users {
			r := rw.r
			r.token = u.token
			a := s.do(t, r)
			if a.status != rw.want[i] {
				t.Errorf("%s as %s: %d %s, want %d", rw.name, u.name, a.status, a.body, rw.want[i])
				continue
			}
			if c, isErr := wantCode[a.status]; isErr && a.code() != c {
				t.Errorf("%s as %s: code %q, want %q", rw.name, u.name, a.code(), c)
			}
			if a.status == forbidden && (strings.Contains(string(a.body), "not found") || strings.Contains(string(a.body), "exist")) {
				t.Errorf("%s as %s: a refusal talks about existence: %s", rw.name, u.name, a.body)
			}
		}
	}

	// Refusals about an existing and a missing Connection read the same but for the name.
	for _, u := range []user{none, getOnly, dataA} {
		exists := s.do(t, req{path: connPath(nsB, "jira", "items") + "?container=PRJA", token: u.token})
		missing := s.do(t, req{path: connPath(ghost, "jira", "items") + "?container=PRJA", token: u.token})
		if strings.ReplaceAll(exists.env["message"].(string), nsB, "NS") != strings.ReplaceAll(missing.env["message"].(string), ghost, "NS") {
			t.Errorf("as %s: refusals differ: %q vs %q", u.name, exists.env["message"], missing.env["message"])
		}
	}

	// Search as a user of one namespace never returns or mentions another's items or
	// Connections, even when asked for that namespace by name.
	for _, q := range []string{"q=matrix", "q=matrix&namespaces=" + nsB, "q=matrix&connections=" + nsB + "/jira", "q=matrix&namespaces=" + nsA + "," + nsB} {
		a := s.do(t, req{path: "/api/v1/search?" + q, token: dataA.token})
		if a.status != ok {
			t.Fatalf("search %s as data-a: %d %s", q, a.status, a.body)
		}
		if strings.Contains(string(a.body), nsB) {
			t.Errorf("search %s as data-a mentions %s: %s", q, nsB, a.body)
		}
		for _, src := range a.data()["sources"].([]any) {
			if ns := src.(map[string]any)["namespace"]; ns != nsA {
				t.Errorf("search %s as data-a reports source in %v", q, ns)
			}
		}
	}
	a := s.do(t, req{path: "/api/v1/search?q=matrix", token: dataA.token})
	if n := len(a.items()); n != 2 {
		t.Errorf("search as data-a: %d items, want the 2 matching issues of %s: %s", n, nsA, a.body)
	}
	for _, it := range a.items() {
		if c := it.(map[string]any)["connection"].(map[string]any); c["namespace"] != nsA || c["name"] != "jira" {
			t.Errorf("search as data-a: item through %v", c)
		}
	}
	// The cluster-wide reader sees both namespaces.
	a = s.do(t, req{path: "/api/v1/search?q=matrix&namespaces=" + nsA + "," + nsB, token: reader.token})
	if n := len(a.items()); n != 4 {
		t.Errorf("search as reader: %d items, want 4: %s", n, a.body)
	}
	// A grant of one Connection by name (RBAC resourceNames) is honoured by search and
	// by the data routes, and nothing else of its namespace is.
	named := s.newUser(t, "named")
	byName := rule("connections/data", "get")
	byName.ResourceNames = []string{"jira"}
	s.grant(t, named, nsB, byName)
	a = s.do(t, req{path: "/api/v1/search?q=matrix", token: named.token})
	if srcs := a.data()["sources"].([]any); len(srcs) != 1 || srcs[0].(map[string]any)["namespace"] != nsB || len(a.items()) != 2 {
		t.Errorf("search as a user granted %s/jira by name: %s", nsB, clipBody(a.body))
	}
	if a := s.do(t, req{path: connPath(nsB, "jira", "items", issue), token: named.token}); a.status != ok {
		t.Errorf("item through a Connection granted by name: %d", a.status)
	}
	if a := s.do(t, req{path: connPath(nsB, "other", "items", issue), token: named.token}); a.status != forbidden {
		t.Errorf("item through another Connection of that namespace: %d, want 403", a.status)
	}

	// Users who may read nothing get an empty answer, not an error.
	for _, u := range []user{none, getOnly} {
		a := s.do(t, req{path: "/api/v1/search?q=matrix", token: u.token})
		if len(a.items()) != 0 || len(a.data()["sources"].([]any)) != 0 {
			t.Errorf("search as %s: %s, want nothing", u.name, a.body)
		}
	}

	// X-Tenant-Id narrows a search to that namespace.
	a = s.do(t, req{path: "/api/v1/search?q=matrix", token: reader.token, header: map[string]string{"X-Tenant-Id": nsB}})
	for _, src := range a.data()["sources"].([]any) {
		if ns := src.(map[string]any)["namespace"]; ns != nsB {
			t.Errorf("search with X-Tenant-Id %s reports source in %v", nsB, ns)
		}
	}

	// Without a token, or with one the API server refuses: UNAUTHENTICATED everywhere.
	forged := strings.Join(strings.Split(reader.token, ".")[:2], ".") + ".c2lnbmF0dXJl"
	for _, rw := range rows {
		for _, token := range []string{"", forged, "not-a-jwt"} {
			r := rw.r
			r.token = token
			if a := s.do(t, r); a.status != http.StatusUnauthorized || a.code() != "UNAUTHENTICATED" {
				t.Errorf("%s with token %.10q: %d %s, want 401 UNAUTHENTICATED", rw.name, token, a.status, a.body)
			}
		}
	}
	assertNoLeaks(t)
}

// TestConnectorsForTenant lists only the Connectors that admit X-Tenant-Id's namespace.
func TestConnectorsForTenant(t *testing.T) {
	s := testEnv(t)
	open := s.newSite(t, v1alpha1.ConnectorTypeJira)
	closed := s.newSite(t, v1alpha1.ConnectorTypeJira, func(c *v1alpha1.Connector) {
		c.Spec.AllowedNamespaces = &metav1.LabelSelector{MatchLabels: map[string]string{"connectors": "allowed"}}
	})
	ns := s.newNamespace(t, "tenant")
	reader := s.newUser(t, "cnr-reader")
	s.grantCluster(t, reader, rule("connectors", "list"))

	names := func(a answer) map[string]bool {
		out := map[string]bool{}
		for _, it := range a.items() {
			out[it.(map[string]any)["name"].(string)] = true
		}
		return out
	}
	var all, tenant map[string]bool
	deadline := time.Now().Add(10 * time.Second)
	for {
		all = names(s.do(t, req{path: "/api/v1/connectors", token: reader.token}))
		if all[open.connector.Name] && all[closed.connector.Name] || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !all[open.connector.Name] || !all[closed.connector.Name] {
		t.Fatalf("connectors = %v, want both %s and %s", all, open.connector.Name, closed.connector.Name)
	}
	tenant = names(s.do(t, req{path: "/api/v1/connectors", token: reader.token, header: map[string]string{"X-Tenant-Id": ns}}))
	if !tenant[open.connector.Name] || tenant[closed.connector.Name] {
		t.Errorf("connectors for tenant %s = %v, want %s and not %s", ns, tenant, open.connector.Name, closed.connector.Name)
	}
	if a := s.do(t, req{path: "/api/v1/connectors", token: reader.token, header: map[string]string{"X-Tenant-Id": "Not_A_Namespace"}}); a.status != http.StatusBadRequest {
		t.Errorf("bad X-Tenant-Id: %d, want 400", a.status)
	}
}

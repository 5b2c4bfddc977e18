package v1alpha1_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/unified-connectors/connector-operator/internal/testenv"
)

var (
	env     *testenv.Environment
	envOnce sync.Once
	envErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping the control plane:", err)
	}
	os.Exit(code)
}

// startAPIServer returns an admin client of the package's kube-apiserver with our CRDs
// installed, starting it on first use.
func startAPIServer(t *testing.T) client.Client {
	t.Helper()
	envOnce.Do(func() { env, envErr = testenv.Start(testenv.Options{}) })
	if envErr != nil {
		t.Fatalf("control plane: %v", envErr)
	}
	return env.Client
}

func object(t *testing.T, manifest string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(manifest), &u.Object); err != nil {
		t.Fatalf("bad test manifest: %v", err)
	}
	return u
}

const validConnector = `
apiVersion: connectors.unified.dev/v1alpha1
kind: Connector
metadata: {name: %NAME%}
spec:
  type: jira
  baseURL: https://acme.atlassian.net
`

const validConnection = `
apiVersion: connectors.unified.dev/v1alpha1
kind: Connection
metadata: {name: %NAME%, namespace: default}
spec:
  connectorRef: {name: acme}
  auth: {method: apiToken, secretRef: {name: jira}}
`

// TestInvalidManifestsAreRefused sends manifests a user could plausibly write to a real
// API server and checks each is refused with a message that says what to fix.
func TestInvalidManifestsAreRefused(t *testing.T) {
	c := startAPIServer(t)
	ctx := context.Background()

	cases := []struct {
		name, base, patch, want string
	}{
		{"ftp scheme", validConnector, `{"spec":{"baseURL":"ftp://acme.atlassian.net"}}`, "scheme https or http"},
		{"not a URL", validConnector, `{"spec":{"baseURL":"acme.atlassian.net"}}`, "scheme https or http"},
		{"userinfo in URL", validConnector, `{"spec":{"baseURL":"https://admin:hunter2@acme.atlassian.net"}}`, "must not contain userinfo"},
		{"query in URL", validConnector, `{"spec":{"baseURL":"https://acme.atlassian.net/?token=x"}}`, "must not contain a query or a fragment"},
		{"fragment in URL", validConnector, `{"spec":{"baseURL":"https://acme.atlassian.net/#x"}}`, "must not contain a query or a fragment"},
		{"oversize URL", validConnector, `{"spec":{"baseURL":"https://acme.atlassian.net/` + strings.Repeat("a", 2100) + `"}}`, "Too long"},
		{"unknown type", validConnector, `{"spec":{"type":"gitlab"}}`, `Unsupported value: "gitlab"`},
		{"unknown deployment", validConnector, `{"spec":{"deployment":"onprem"}}`, `Unsupported value: "onprem"`},
		{"unknown auth method", validConnector, `{"spec":{"authMethods":["basic"]}}`, `Unsupported value: "basic"`},
		{"oauth2 allowed without client secret", validConnector, `{"spec":{"authMethods":["oauth2"],"cloudID":"abc-123"}}`, "oauth2 must be set when authMethods allows oauth2"},
		{"oauth2 settings without oauth2 allowed", validConnector, `{"spec":{"oauth2":{"clientSecretRef":{"name":"c"}}}}`, "oauth2 must be set when authMethods allows oauth2, and only then"},
		{"oauth2 on cloud without cloudID", validConnector, `{"spec":{"authMethods":["oauth2"],"oauth2":{"clientSecretRef":{"name":"c"}}}}`, "cloudID is required"},
		{"oauth2 empty client secret name", validConnector, `{"spec":{"authMethods":["oauth2"],"cloudID":"abc","oauth2":{"clientSecretRef":{"name":""}}}}`, "clientSecretRef.name"},
		{"salesforce settings on jira", validConnector, `{"spec":{"salesforce":{"apiVersion":"v66.0"}}}`, "salesforce settings are only for type salesforce"},
		{"salesforce apiVersion not vNN.0", validConnector, `{"spec":{"type":"salesforce","salesforce":{"apiVersion":"66"}}}`, "spec.salesforce.apiVersion"},
		{"zero rate limit", validConnector, `{"spec":{"rateLimit":{"requestsPerSecond":0}}}`, "should be greater than or equal to 1"},
		{"zero probe interval", validConnector, `{"spec":{"defaults":{"probeInterval":"0s"}}}`, "probeInterval must be at least 10s"},
		{"negative sync interval", validConnector, `{"spec":{"defaults":{"syncInterval":"-5m"}}}`, "syncInterval"},
		{"interval in words", validConnector, `{"spec":{"defaults":{"probeInterval":"5 minutes"}}}`, "probeInterval"},
		{"empty secret name", validConnection, `{"spec":{"auth":{"secretRef":{"name":""}}}}`, "spec.auth.secretRef.name"},
		{"unknown connection auth method", validConnection, `{"spec":{"auth":{"method":"kerberos"}}}`, `Unsupported value: "kerberos"`},
		{"postgres scheme on jira", validConnector, `{"spec":{"baseURL":"postgres://db.internal:5432/app"}}`, "https or http for the other types"},
		{"https scheme on postgresql", validConnector, `{"spec":{"type":"postgresql","baseURL":"https://db.internal/app"}}`, "scheme postgres or postgresql for type postgresql"},
		{"postgresql without database", validConnector, `{"spec":{"type":"postgresql","baseURL":"postgres://db.internal:5432"}}`, "must name the database"},
		{"postgresql password in URL", validConnector, `{"spec":{"type":"postgresql","baseURL":"postgres://app:hunter2@db.internal/app"}}`, "must not contain userinfo"},
		{"postgresql sslmode in URL", validConnector, `{"spec":{"type":"postgresql","baseURL":"postgres://db.internal/app?sslmode=disable"}}`, "must not contain a query"},
		{"postgresql settings on jira", validConnector, `{"spec":{"postgresql":{"sslMode":"require"}}}`, "postgresql settings are only for type postgresql"},
		{"unknown sslMode", validConnector, `{"spec":{"type":"postgresql","baseURL":"postgres://db/app","postgresql":{"sslMode":"prefer"}}}`, `Unsupported value: "prefer"`},
		{"caRef without key", validConnector, `{"spec":{"type":"postgresql","baseURL":"postgres://db/app","postgresql":{"caRef":{"name":"ca"}}}}`, "spec.postgresql.caRef.key"},
		{"table without schema", validConnection, `{"spec":{"postgresql":{"tables":[{"name":"orders","cursorColumn":"updated_at"}]}}}`, "name must be schema.table"},
		{"no tables", validConnection, `{"spec":{"postgresql":{"tables":[]}}}`, "spec.postgresql.tables"},
		{"cursorColumn mode without cursorColumn", validConnection, `{"spec":{"postgresql":{"tables":[{"name":"public.orders"}]}}}`, "every table needs a cursorColumn in mode cursorColumn"},
		{"unknown postgresql mode", validConnection, `{"spec":{"postgresql":{"mode":"trigger","tables":[{"name":"public.orders"}]}}}`, `Unsupported value: "trigger"`},
		{"missing connectorRef", validConnection, `{"spec":{"connectorRef":null}}`, "connectorRef"},
		{"zero probe interval on Connection", validConnection, `{"spec":{"probe":{"interval":"0s"}}}`, "probe.interval must be at least 10s"},
		{"negative probe interval on Connection", validConnection, `{"spec":{"probe":{"interval":"-1m"}}}`, "spec.probe.interval"},
		{"oversize filter", validConnection, `{"spec":{"scope":{"filter":"` + strings.Repeat("x", 5000) + `"}}}`, "Too long"},
		{"container key with spaces", validConnection, `{"spec":{"scope":{"containers":["MY PROJECT"]}}}`, "spec.scope.containers[0]"},
		{"sink URL with userinfo", validConnection, `{"spec":{"sync":{"sink":{"url":"http://user:pw@sink.internal"}}}}`, "must not contain userinfo"},
		{"sink batch size zero", validConnection, `{"spec":{"sync":{"sink":{"url":"http://sink.internal","batchSize":0}}}}`, "batchSize"},
		{"prune interval too short", validConnection, `{"spec":{"sync":{"pruneInterval":"30s"}}}`, "pruneInterval must be at least 1m"},
		{"since not a time", validConnection, `{"spec":{"sync":{"since":"yesterday"}}}`, "since"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := object(t, strings.ReplaceAll(tc.base, "%NAME%", "invalid-"+strings.ToLower(strings.ReplaceAll(tc.name, " ", "-"))))
			patch := map[string]any{}
			if err := yaml.Unmarshal([]byte(tc.patch), &patch); err != nil {
				t.Fatalf("case %d: bad patch: %v", i, err)
			}
			merge(u.Object, patch)
			err := c.Create(ctx, u)
			if err == nil {
				t.Fatalf("the API server accepted an invalid %s", u.GetKind())
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("refused, but the message does not say %q:\n%v", tc.want, err)
			}
		})
	}
	if len(cases) < 12 {
		t.Fatalf("want at least 12 cases, have %d", len(cases))
	}
}

// TestSalesforceConnectorIsAccepted: a Salesforce Connector allowing oauth2 needs no
// cloudID (an Atlassian Cloud rule), takes clientCredentials, and gets the default API
// version.
func TestSalesforceConnectorIsAccepted(t *testing.T) {
	c := startAPIServer(t)
	u := object(t, strings.ReplaceAll(validConnector, "%NAME%", "salesforce"))
	merge(u.Object, map[string]any{"spec": map[string]any{
		"type": "salesforce", "baseURL": "https://acme.my.salesforce.com",
		"authMethods": []any{"oauth2", "clientCredentials"},
		"oauth2":      map[string]any{"clientSecretRef": map[string]any{"name": "sf-app"}},
		"salesforce":  map[string]any{},
	}})
	if err := c.Create(context.Background(), u); err != nil {
		t.Fatalf("a valid Salesforce Connector was refused: %v", err)
	}
	if got, _, _ := unstructured.NestedString(u.Object, "spec", "salesforce", "apiVersion"); got != "v66.0" {
		t.Errorf("spec.salesforce.apiVersion = %q, want the default v66.0", got)
	}
}

// TestPostgreSQLConnectorIsAccepted: a PostgreSQL Connector and a logicalReplication
// Connection with raw table and column names (spaces, capitals, quotes) are accepted,
// with sslMode verify-full by default.
func TestPostgreSQLConnectorIsAccepted(t *testing.T) {
	c := startAPIServer(t)
	ctx := context.Background()
	u := object(t, strings.ReplaceAll(validConnector, "%NAME%", "warehouse"))
	merge(u.Object, map[string]any{"spec": map[string]any{
		"type": "postgresql", "baseURL": "postgres://db.internal:5432/app",
		"authMethods": []any{"password"},
		"postgresql":  map[string]any{"caRef": map[string]any{"name": "db-ca", "key": "ca.crt"}},
	}})
	if err := c.Create(ctx, u); err != nil {
		t.Fatalf("a valid PostgreSQL Connector was refused: %v", err)
	}
	if got, _, _ := unstructured.NestedString(u.Object, "spec", "postgresql", "sslMode"); got != "verify-full" {
		t.Errorf("spec.postgresql.sslMode = %q, want the default verify-full", got)
	}
	if got, _, _ := unstructured.NestedString(u.Object, "spec", "postgresql", "caRef", "kind"); got != "ConfigMap" {
		t.Errorf("spec.postgresql.caRef.kind = %q, want the default ConfigMap", got)
	}
	conn := object(t, strings.ReplaceAll(validConnection, "%NAME%", "warehouse"))
	merge(conn.Object, map[string]any{"spec": map[string]any{
		"auth": map[string]any{"method": "password", "secretRef": map[string]any{"name": "db"}},
		"postgresql": map[string]any{"mode": "logicalReplication", "tables": []any{
			map[string]any{"name": `sales.Order "Lines"; DROP TABLE x`, "primaryKey": []any{"Order Id", "line"}, "textColumns": []any{"Note"}},
			map[string]any{"name": "public.orders"},
		}},
	}})
	if err := c.Create(ctx, conn); err != nil {
		t.Fatalf("a valid PostgreSQL Connection was refused: %v", err)
	}
}

func TestTypeIsImmutable(t *testing.T) {
	c := startAPIServer(t)
	ctx := context.Background()
	u := object(t, strings.ReplaceAll(validConnector, "%NAME%", "immutable"))
	if err := c.Create(ctx, u); err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedField(u.Object, "confluence", "spec", "type"); err != nil {
		t.Fatal(err)
	}
	err := c.Update(ctx, u)
	if err == nil || !strings.Contains(err.Error(), "type is immutable") {
		t.Fatalf("changing spec.type: want 'type is immutable', got %v", err)
	}
}

func TestDefaultsAreApplied(t *testing.T) {
	c := startAPIServer(t)
	ctx := context.Background()
	u := object(t, strings.ReplaceAll(validConnector, "%NAME%", "defaults"))
	if err := c.Create(ctx, u); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]any{
		"spec.deployment":                  "cloud",
		"spec.rateLimit.requestsPerSecond": int64(10),
		"spec.rateLimit.burst":             int64(20),
		"spec.defaults.probeInterval":      "5m",
		"spec.defaults.syncInterval":       "15m",
	} {
		got, _, _ := unstructured.NestedFieldNoCopy(u.Object, strings.Split(path, ".")...)
		if got != want {
			t.Errorf("%s = %v, want %v", path, got, want)
		}
	}
	methods, _, _ := unstructured.NestedStringSlice(u.Object, "spec", "authMethods")
	if len(methods) != 1 || methods[0] != "apiToken" {
		t.Errorf("spec.authMethods = %v, want [apiToken]", methods)
	}

	conn := object(t, strings.ReplaceAll(validConnection, "%NAME%", "defaults"))
	merge(conn.Object, map[string]any{"spec": map[string]any{"sync": map[string]any{"sink": map[string]any{"url": "http://sink.internal"}}}})
	if err := c.Create(ctx, conn); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := unstructured.NestedInt64(conn.Object, "spec", "sync", "sink", "batchSize"); got != 100 {
		t.Errorf("spec.sync.sink.batchSize = %d, want 100", got)
	}
	if got, _, _ := unstructured.NestedString(conn.Object, "spec", "sync", "pruneInterval"); got != "24h" {
		t.Errorf("spec.sync.pruneInterval = %q, want 24h", got)
	}
}

// merge deep-merges patch into obj; a nil value deletes the key.
func merge(obj, patch map[string]any) {
	for k, v := range patch {
		if v == nil {
			delete(obj, k)
			continue
		}
		if pm, ok := v.(map[string]any); ok {
			if om, ok := obj[k].(map[string]any); ok {
				merge(om, pm)
				continue
			}
		}
		obj[k] = v
	}
}

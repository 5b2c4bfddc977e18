package postgresql

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors"
)

func TestRegisteredAndDescribed(t *testing.T) {
	p, ok := connectors.Get(Type)
	if !ok || p != connectors.Provider(defaultProvider) {
		t.Fatalf("provider %q not registered as the package's provider", Type)
	}
	d := p.Describe()
	want := []connectors.AuthSpec{{Method: connectors.AuthPassword, SecretKeys: []string{"username", "password"}, OptionalKeys: []string{"tls.crt", "tls.key"}}}
	if !reflect.DeepEqual(d.Auth, want) {
		t.Errorf("Auth = %+v, want %+v", d.Auth, want)
	}
	if !reflect.DeepEqual(d.ItemKinds, []string{connectors.KindRow}) {
		t.Errorf("ItemKinds = %v", d.ItemKinds)
	}
	wantCaps := connectors.Capabilities{ChangeFeed: true, Search: true, RankedSearch: true, Snapshots: true, Deletions: true}
	if d.Capabilities != wantCaps {
		t.Errorf("Capabilities = %+v, want %+v", d.Capabilities, wantCaps)
	}
	if d.Egress != connectors.EgressDatabase || d.OAuth != nil {
		t.Errorf("Egress = %q, OAuth = %v", d.Egress, d.OAuth)
	}
	if lb, ok := p.(connectors.Lookbacker); !ok || lb.DefaultLookback() != DefaultLookback || DefaultLookback.Minutes() != 5 {
		t.Errorf("not a Lookbacker of 5m")
	}
	if _, ok := p.(connectors.ConnectionForgetter); !ok {
		t.Errorf("not a ConnectionForgetter")
	}
}

func TestValidate(t *testing.T) {
	table := func(name string) v1alpha1.PostgreSQLTable {
		return v1alpha1.PostgreSQLTable{Name: name, CursorColumn: "updated_at"}
	}
	conn := func(mutate func(*v1alpha1.ConnectionSpec)) func(*connectors.Config) {
		return func(c *connectors.Config) {
			c.Connection = &v1alpha1.Connection{Spec: v1alpha1.ConnectionSpec{PostgreSQL: &v1alpha1.PostgreSQLConnectionSpec{
				Tables: []v1alpha1.PostgreSQLTable{table("public.orders"), table(`"my.schema".Order Lines`)},
			}}}
			if mutate != nil {
				mutate(&c.Connection.Spec)
			}
		}
	}
	base := func(u string) func(*connectors.Config) { return func(c *connectors.Config) { c.BaseURL = u } }
	ssl := func(mode string) func(*connectors.Config) {
		return func(c *connectors.Config) {
			c.Connector = &v1alpha1.ConnectorSpec{PostgreSQL: &v1alpha1.PostgreSQLConnectorSpec{SSLMode: mode}}
		}
	}
	cases := []struct {
		name    string
		opts    []func(*connectors.Config)
		wantErr string // substring; "" means valid
		warning string // substring of a warning
	}{
		{name: "postgres scheme", opts: []func(*connectors.Config){base("postgres://db.internal/app")}},
		{name: "postgresql scheme and port", opts: []func(*connectors.Config){base("postgresql://db.internal:6543/app")}},
		{name: "ipv6", opts: []func(*connectors.Config){base("postgres://[::1]:5432/app")}},
		{name: "https", opts: []func(*connectors.Config){base("https://db.internal/app")}, wantErr: "postgres://"},
		{name: "no url", opts: []func(*connectors.Config){base("")}, wantErr: "required"},
		{name: "userinfo", opts: []func(*connectors.Config){base("postgres://u:secretpw@db/app")}, wantErr: "credentials"},
		{name: "query", opts: []func(*connectors.Config){base("postgres://db/app?sslmode=disable")}, wantErr: "query"},
		{name: "fragment", opts: []func(*connectors.Config){base("postgres://db/app#x")}, wantErr: "query or fragment"},
		{name: "no database", opts: []func(*connectors.Config){base("postgres://db/")}, wantErr: "database"},
		{name: "two segments", opts: []func(*connectors.Config){base("postgres://db/app/x")}, wantErr: "one segment"},
		{name: "bad port", opts: []func(*connectors.Config){base("postgres://db:0/app")}, wantErr: "port"},
		{name: "no host", opts: []func(*connectors.Config){base("postgres:///app")}, wantErr: "host"},
		{name: "disable without allow-insecure", opts: []func(*connectors.Config){ssl("disable")}, wantErr: "--allow-insecure-vendor-urls"},
		{name: "disable with allow-insecure", opts: []func(*connectors.Config){ssl("disable"), func(c *connectors.Config) { c.AllowInsecure = true }}, warning: "plain text"},
		{name: "require", opts: []func(*connectors.Config){ssl("require")}, warning: "does not check"},
		{name: "bad sslMode", opts: []func(*connectors.Config){ssl("prefer")}, wantErr: "sslMode"},
		{name: "tables", opts: []func(*connectors.Config){conn(nil)}},
		{name: "no postgresql block", opts: []func(*connectors.Config){conn(func(s *v1alpha1.ConnectionSpec) { s.PostgreSQL = nil })}, wantErr: "spec.postgresql.tables"},
		{name: "filter refused", opts: []func(*connectors.Config){conn(func(s *v1alpha1.ConnectionSpec) { s.Scope.Filter = "status = 'open'" })}, wantErr: "SQL written by the tenant"},
		{name: "containers listed", opts: []func(*connectors.Config){conn(func(s *v1alpha1.ConnectionSpec) { s.Scope.Containers = []string{"public.orders"} })}},
		{name: "containers not listed", opts: []func(*connectors.Config){conn(func(s *v1alpha1.ConnectionSpec) { s.Scope.Containers = []string{"public.other"} })}, wantErr: "not in spec.postgresql.tables"},
		{name: "name without dot", opts: []func(*connectors.Config){conn(func(s *v1alpha1.ConnectionSpec) { s.PostgreSQL.Tables[0].Name = "orders" })}, wantErr: "schema.table"},
		{name: "unterminated quote", opts: []func(*connectors.Config){conn(func(s *v1alpha1.ConnectionSpec) { s.PostgreSQL.Tables[0].Name = `"my.schema.orders` })}, wantErr: "closing double quote"},
		{name: "quote then no dot", opts: []func(*connectors.Config){conn(func(s *v1alpha1.ConnectionSpec) { s.PostgreSQL.Tables[0].Name = `"a"b.c` })}, wantErr: "followed by a dot"},
		{name: "empty table", opts: []func(*connectors.Config){conn(func(s *v1alpha1.ConnectionSpec) { s.PostgreSQL.Tables[0].Name = "public." })}, wantErr: "table is empty"},
		{name: "long identifier", opts: []func(*connectors.Config){conn(func(s *v1alpha1.ConnectionSpec) { s.PostgreSQL.Tables[0].Name = "public." + strings.Repeat("x", 64) })}, wantErr: "63 bytes"},
		{name: "duplicate table", opts: []func(*connectors.Config){conn(func(s *v1alpha1.ConnectionSpec) { s.PostgreSQL.Tables[1].Name = "public.orders" })}, wantErr: "twice"},
		{name: "cursorColumn needed", opts: []func(*connectors.Config){conn(func(s *v1alpha1.ConnectionSpec) { s.PostgreSQL.Tables[0].CursorColumn = "" })}, wantErr: "needs a cursorColumn"},
		{name: "logicalReplication needs no cursorColumn", opts: []func(*connectors.Config){conn(func(s *v1alpha1.ConnectionSpec) {
			s.PostgreSQL.Mode = v1alpha1.PostgreSQLModeLogicalReplication
			s.PostgreSQL.Tables[0].CursorColumn = ""
		})}},
		{name: "bad mode", opts: []func(*connectors.Config){conn(func(s *v1alpha1.ConnectionSpec) { s.PostgreSQL.Mode = "trigger" })}, wantErr: "mode"},
		{name: "NUL in a column", opts: []func(*connectors.Config){conn(func(s *v1alpha1.ConnectionSpec) { s.PostgreSQL.Tables[0].TextColumns = []string{"a\x00b"} })}, wantErr: "NUL"},
		{name: "other auth method", opts: []func(*connectors.Config){func(c *connectors.Config) { c.Credentials.Method = connectors.AuthOAuth2 }}, wantErr: "password"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := connectors.Config{BaseURL: "postgres://db.internal:5432/app"}
			for _, o := range tc.opts {
				o(&cfg)
			}
			warnings, err := prov.Validate(cfg)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Validate = %v, want an error with %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "secretpw") {
					t.Fatalf("the error echoes the URL's password: %v", err)
				}
				return
			}
			if tc.warning != "" && !slices.ContainsFunc(warnings, func(w string) bool { return strings.Contains(w, tc.warning) }) {
				t.Fatalf("warnings %q, want one with %q", warnings, tc.warning)
			}
			// NewClient checks the same way (and wants a user name).
			cfg.Credentials.Values = map[string]string{KeyUsername: "u", KeyPassword: "p"}
			cfg.Credentials.Method = connectors.AuthPassword
			if _, err := prov.NewClient(cfg); err != nil {
				t.Fatalf("NewClient: %v", err)
			}
		})
	}
}

func TestNewClientChecksCredentials(t *testing.T) {
	cfg := connectors.Config{BaseURL: "postgres://db/app"}
	if _, err := prov.NewClient(cfg); err == nil || !strings.Contains(err.Error(), "username") {
		t.Fatalf("NewClient without a user: %v", err)
	}
	cfg.Credentials.Values = map[string]string{KeyUsername: "u", KeyPassword: "p", KeyTLSCert: "-----BEGIN CERTIFICATE-----"}
	_, err := prov.NewClient(cfg)
	wantKind(t, err, connectors.KindAuth)
	cfg.Credentials.Values[KeyTLSKey] = "not a key"
	_, err = prov.NewClient(cfg)
	wantKind(t, err, connectors.KindAuth)
	if strings.Contains(err.Error(), "not a key") {
		t.Fatalf("the error shows the key: %v", err)
	}
}

func TestParseTableName(t *testing.T) {
	cases := []struct {
		in, schema, table, err string
	}{
		{in: "public.orders", schema: "public", table: "orders"},
		{in: "sales.Order Lines", schema: "sales", table: "Order Lines"},
		{in: "a.b.c", schema: "a", table: "b.c"},
		{in: `"my.schema".orders`, schema: "my.schema", table: "orders"},
		{in: `"we""ird".t`, schema: `we"ird`, table: "t"},
		{in: `"x".Weird "Name"; DROP TABLE x`, schema: "x", table: `Weird "Name"; DROP TABLE x`},
		{in: `public."quoted"`, schema: "public", table: `"quoted"`},
		{in: "orders", err: "schema.table"},
		{in: ".orders", err: "schema is empty"},
		{in: `"".orders`, err: "schema is empty"},
		{in: `"abc`, err: "closing"},
		{in: `"abc"`, err: "followed by a dot"},
		{in: `"abc".`, err: "table is empty"},
	}
	for _, tc := range cases {
		s, tb, err := parseTableName(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseTableName(%q) = %q, %q, %v; want error %q", tc.in, s, tb, err, tc.err)
			}
			continue
		}
		if err != nil || s != tc.schema || tb != tc.table {
			t.Errorf("parseTableName(%q) = %q, %q, %v; want %q, %q", tc.in, s, tb, err, tc.schema, tc.table)
		}
	}
}

// FuzzParseTableName: parsing never panics, what it accepts are identifiers PostgreSQL
// can hold, and writing the parts back (schema quoted) parses to the same parts.
func FuzzParseTableName(f *testing.F) {
	for _, s := range []string{"public.orders", `"my.schema".orders`, `"we""ird".t`, `"a`, `"a"b`, ".", "a.", `"".x`, "a.b.c", "\x00.x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		schema, table, err := parseTableName(name)
		if err != nil {
			return
		}
		for _, part := range []string{schema, table} {
			if part == "" || len(part) > maxIdentBytes || strings.IndexByte(part, 0) >= 0 || !utf8.ValidString(part) {
				t.Fatalf("parseTableName(%q) accepted part %q", name, part)
			}
		}
		if !strings.HasPrefix(name, `"`) && name != schema+"."+table {
			t.Fatalf("parseTableName(%q) = %q . %q, which is not the name split at its first dot", name, schema, table)
		}
		quoted := `"` + strings.ReplaceAll(schema, `"`, `""`) + `".` + table
		s2, t2, err := parseTableName(quoted)
		if err != nil || s2 != schema || t2 != table {
			t.Fatalf("parseTableName(%q) = %q, %q, %v; want %q, %q (from %q)", quoted, s2, t2, err, schema, table, name)
		}
	})
}

// FuzzItemID: an id decodes to the table and key it was made from, and decoding
// anything never panics.
func FuzzItemID(f *testing.F) {
	f.Add("public.orders", "42", "", "x")
	f.Add(`"my.schema".Order Lines`, "a,b", `"quoted"`, "")
	f.Add("t", "\\x00ff", "2024-01-01T00:00:00Z", "<&>")
	f.Fuzz(func(t *testing.T, name, k1, k2, junk string) {
		_, _, _ = decodeItemID(junk)
		if !utf8.ValidString(name) || !utf8.ValidString(k1) || !utf8.ValidString(k2) {
			return // PostgreSQL text (and a spec's names) is UTF-8
		}
		for _, pk := range [][]string{{k1}, {k1, k2}} {
			tb := &table{name: name}
			id := tb.itemID(pk)
			if strings.ContainsAny(id, "/?#%+= ") {
				t.Fatalf("id %q is not URL-path safe", id)
			}
			gotTable, gotPK, ok := decodeItemID(id)
			if len(id) > maxIDBytes {
				if ok {
					t.Fatalf("an id over %d bytes decoded", maxIDBytes)
				}
				continue
			}
			if !ok || gotTable != name || !slices.Equal(gotPK, pk) {
				t.Fatalf("decodeItemID(itemID(%q, %q)) = %q, %q, %v", name, pk, gotTable, gotPK, ok)
			}
		}
	})
}

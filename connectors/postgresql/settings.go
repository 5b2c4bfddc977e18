package postgresql

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors"
)

// defaultPort is PostgreSQL's.
const defaultPort = 5432

// maxIdentBytes is the longest identifier PostgreSQL keeps (NAMEDATALEN-1); longer ones
// are silently truncated by the server, so a longer name could reach another object.
const maxIdentBytes = 63

// settings are a Config's connection and table settings, checked.
type settings struct {
	host     string // host name or IP address, without brackets
	port     uint16
	database string
	baseURL  string // as written, for the pool fingerprint

	sslMode string
	caRef   *v1alpha1.KeyReference

	mode   string
	tables []*tableSpec
	// scope is spec.scope.containers: the tables probed and searched; empty means all.
	scope []string

	warnings []string
}

func (s settings) hostPort() string { return net.JoinHostPort(s.host, strconv.Itoa(int(s.port))) }

// tableSpec is one entry of spec.postgresql.tables with its name parsed.
type tableSpec struct {
	name   string // as written: the container's key and name
	schema string
	rel    string
	spec   v1alpha1.PostgreSQLTable
}

// parseSettings checks cfg as Validate documents it.
func parseSettings(cfg connectors.Config) (settings, error) {
	var s settings
	if err := s.parseBaseURL(cfg.BaseURL); err != nil {
		return settings{}, err
	}
	s.sslMode = v1alpha1.SSLModeVerifyFull
	if pg := pgConnector(cfg.Connector); pg != nil {
		if pg.SSLMode != "" {
			s.sslMode = pg.SSLMode
		}
		s.caRef = pg.CARef
	}
	switch s.sslMode {
	case v1alpha1.SSLModeVerifyFull:
	case v1alpha1.SSLModeRequire:
		s.warnings = append(s.warnings, "postgresql: sslMode require encrypts but does not check the server's certificate; use verify-full with caRef")
		if s.caRef != nil {
			s.warnings = append(s.warnings, "postgresql: caRef is ignored with sslMode require")
		}
	case v1alpha1.SSLModeDisable:
		if !cfg.AllowInsecure {
			return settings{}, errors.New("postgresql: sslMode disable sends the password and every row in plain text; the operator allows it only with --allow-insecure-vendor-urls (local development)")
		}
		s.warnings = append(s.warnings, "postgresql: sslMode disable: plain text, allowed by --allow-insecure-vendor-urls")
	default:
		return settings{}, fmt.Errorf("postgresql: spec.postgresql.sslMode must be verify-full, require or disable")
	}
	if m := cfg.Credentials.Method; m != "" && m != connectors.AuthPassword {
		return settings{}, fmt.Errorf("postgresql: auth method %q is not supported; use password", m)
	}
	s.mode = cursorColumn
	if cfg.Connection == nil {
		return s, nil
	}
	if err := s.parseConnection(&cfg.Connection.Spec); err != nil {
		return settings{}, err
	}
	return s, nil
}

func pgConnector(spec *v1alpha1.ConnectorSpec) *v1alpha1.PostgreSQLConnectorSpec {
	if spec == nil {
		return nil
	}
	return spec.PostgreSQL
}

func (s *settings) parseBaseURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		return errors.New("postgresql: baseURL is required (postgres://host:5432/dbname)")
	case err != nil:
		// Never echo the URL: it may hold a password.
		return errors.New("postgresql: baseURL is not a URL (postgres://host:5432/dbname)")
	case u.Scheme != "postgres" && u.Scheme != "postgresql":
		return errors.New("postgresql: baseURL must use postgres:// or postgresql://")
	case u.User != nil:
		return errors.New("postgresql: baseURL must not contain credentials: they belong in the Connection's Secret")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return errors.New("postgresql: baseURL must not have a query or fragment (settings such as sslMode are spec.postgresql fields)")
	case u.Opaque != "" || u.Hostname() == "":
		return errors.New("postgresql: baseURL has no host (postgres://host:5432/dbname)")
	}
	s.host = u.Hostname()
	s.port = defaultPort
	if p := u.Port(); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return errors.New("postgresql: baseURL's port must be 1-65535")
		}
		s.port = uint16(n)
	} else if strings.HasSuffix(u.Host, ":") {
		return errors.New("postgresql: baseURL's port must be 1-65535")
	}
	db := strings.TrimPrefix(u.Path, "/")
	switch {
	case db == "":
		return errors.New("postgresql: baseURL must name the database: postgres://host:5432/dbname")
	case strings.Contains(db, "/"):
		return errors.New("postgresql: baseURL's path must be /dbname, one segment")
	}
	if err := checkIdent("the database name", db); err != nil {
		return errors.New("postgresql: baseURL: " + err.Error())
	}
	s.database = db
	s.baseURL = raw
	return nil
}

func (s *settings) parseConnection(spec *v1alpha1.ConnectionSpec) error {
	pg := spec.PostgreSQL
	if pg == nil || len(pg.Tables) == 0 {
		return errors.New("postgresql: the Connection needs spec.postgresql.tables (the tables to sync, as schema.table)")
	}
	switch pg.Mode {
	case "", cursorColumn:
		s.mode = cursorColumn
	case logicalReplication:
		s.mode = logicalReplication
	default:
		return errors.New("postgresql: spec.postgresql.mode must be cursorColumn or logicalReplication")
	}
	if strings.TrimSpace(spec.Scope.Filter) != "" {
		return errors.New("postgresql: spec.scope.filter is not supported: a filter would be SQL written by the tenant and run by the operator; list the tables to sync in spec.postgresql.tables and narrow them with spec.scope.containers")
	}
	seen := map[string]bool{}
	for i := range pg.Tables {
		t := pg.Tables[i]
		schema, rel, err := parseTableName(t.Name)
		if err != nil {
			return fmt.Errorf("postgresql: spec.postgresql.tables[%d].name: %w", i, err)
		}
		if seen[t.Name] {
			return fmt.Errorf("postgresql: spec.postgresql.tables[%d]: table %s is listed twice", i, t.Name)
		}
		seen[t.Name] = true
		if s.mode == cursorColumn && t.CursorColumn == "" {
			return fmt.Errorf("postgresql: spec.postgresql.tables[%d] (%s) needs a cursorColumn in mode cursorColumn (a timestamp column the application sets on every write, e.g. updated_at)", i, t.Name)
		}
		if err := checkColumns(t); err != nil {
			return fmt.Errorf("postgresql: spec.postgresql.tables[%d] (%s): %w", i, t.Name, err)
		}
		s.tables = append(s.tables, &tableSpec{name: t.Name, schema: schema, rel: rel, spec: t})
	}
	for _, key := range spec.Scope.Containers {
		if !seen[key] {
			return fmt.Errorf("postgresql: spec.scope.containers names %q, which is not in spec.postgresql.tables", key)
		}
	}
	s.scope = append([]string(nil), spec.Scope.Containers...)
	return nil
}

func checkColumns(t v1alpha1.PostgreSQLTable) error {
	check := func(what, name string) error { return checkIdent(what+" "+strconv.Quote(name), name) }
	pk := map[string]bool{}
	for _, k := range t.PrimaryKey {
		if err := check("primaryKey column", k); err != nil {
			return err
		}
		if pk[k] {
			return fmt.Errorf("primaryKey lists column %q twice", k)
		}
		pk[k] = true
	}
	if t.CursorColumn != "" {
		if err := check("cursorColumn", t.CursorColumn); err != nil {
			return err
		}
	}
	if t.TitleColumn != "" {
		if err := check("titleColumn", t.TitleColumn); err != nil {
			return err
		}
	}
	for _, c := range t.TextColumns {
		if err := check("textColumns entry", c); err != nil {
			return err
		}
	}
	return nil
}

// checkIdent refuses what PostgreSQL cannot hold as an identifier: empty, a NUL byte,
// invalid UTF-8, or longer than 63 bytes (which the server would truncate).
func checkIdent(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%s is empty", what)
	case strings.IndexByte(s, 0) >= 0:
		return fmt.Errorf("%s holds a NUL byte", what)
	case !utf8.ValidString(s):
		return fmt.Errorf("%s is not valid UTF-8", what)
	case len(s) > maxIdentBytes:
		return fmt.Errorf("%s is longer than %d bytes", what, maxIdentBytes)
	}
	return nil
}

// parseTableName splits a spec table name into schema and table. The name is written
// raw: the first '.' separates the schema from the table, unless the name starts with a
// double quote: then the schema is a quoted identifier ("my.schema".orders, with ""
// standing for one quote inside it). The table part is the raw rest, whatever it holds
// (spaces, quotes, capitals, dots).
func parseTableName(name string) (schema, table string, err error) {
	var rest string
	if strings.HasPrefix(name, `"`) {
		var b strings.Builder
		i := 1
		for {
			j := strings.IndexByte(name[i:], '"')
			if j < 0 {
				return "", "", errors.New(`the quoted schema has no closing double quote (write "my.schema".table, with "" for a quote inside)`)
			}
			b.WriteString(name[i : i+j])
			i += j + 1
			if strings.HasPrefix(name[i:], `"`) {
				b.WriteByte('"')
				i++
				continue
			}
			break
		}
		if !strings.HasPrefix(name[i:], ".") {
			return "", "", errors.New(`a quoted schema must be followed by a dot and the table: "my.schema".table`)
		}
		schema, rest = b.String(), name[i+1:]
	} else {
		var ok bool
		schema, rest, ok = strings.Cut(name, ".")
		if !ok {
			return "", "", errors.New("must be schema.table, e.g. public.orders")
		}
	}
	if err := checkIdent("the schema", schema); err != nil {
		return "", "", fmt.Errorf("must be schema.table: %w", err)
	}
	if err := checkIdent("the table", rest); err != nil {
		return "", "", fmt.Errorf("must be schema.table: %w", err)
	}
	return schema, rest, nil
}

// ident is the quoted SQL form of the table: "schema"."table".
func (t *tableSpec) ident() string { return pgx.Identifier{t.schema, t.rel}.Sanitize() }

// table returns the tableSpec of container name, nil when the Connection lists none.
func (s *settings) table(name string) *tableSpec {
	for _, t := range s.tables {
		if t.name == name {
			return t
		}
	}
	return nil
}

// inScope reports whether table name is within spec.scope.containers (empty: all).
func (s *settings) inScope(name string) bool {
	if len(s.scope) == 0 {
		return true
	}
	for _, k := range s.scope {
		if k == name {
			return true
		}
	}
	return false
}

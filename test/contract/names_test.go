package contract_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/unified-connectors/connector-operator/internal/testenv"
)

// vendorName matches what only a vendor's own package may say in code: its name as a
// string, its package's import path, its ConnectorType constant.
var (
	vendorWord  = regexp.MustCompile(`(?i)\b(jira|confluence|atlassian|salesforce|postgres(ql)?)\b`)
	vendorIdent = regexp.MustCompile(`^ConnectorType(Jira|Confluence|Salesforce|PostgreSQL)$`)
)

// allowed are the files that may name vendors: the registration imports, the OpenAPI
// contract checker the Atlassian fake's tests use, and the throwaway PostgreSQL server of
// the tests and make dev (a real database, not operator code).
var allowed = []string{"internal/manager/vendors.go", "internal/vendorspec/", "internal/pgtest/"}

// TestNoVendorNamesOutsideVendorPackages: the reconcilers, the sync engine, the OAuth2
// refresher and the HTTP API ask a provider's Description; none of their code (comments
// aside) names a vendor, imports a vendor package or compares with a vendor's type.
func TestNoVendorNamesOutsideVendorPackages(t *testing.T) {
	root, err := testenv.RepoRoot()
	must(t, err)
	var found []string
	for _, dir := range []string{"internal", "controllers", "main.go"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			rel, _ := filepath.Rel(root, path)
			for _, a := range allowed {
				if strings.HasPrefix(filepath.ToSlash(rel), a) {
					return nil
				}
			}
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			ast.Inspect(f, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.BasicLit:
					if n.Kind == token.STRING {
						if s, err := strconv.Unquote(n.Value); err == nil && vendorWord.MatchString(s) {
							found = append(found, fset.Position(n.Pos()).String()+": "+n.Value)
						}
					}
				case *ast.Ident:
					if vendorIdent.MatchString(n.Name) {
						found = append(found, fset.Position(n.Pos()).String()+": "+n.Name)
					}
				}
				return true
			})
			return nil
		})
		must(t, err)
	}
	for _, f := range found {
		t.Errorf("vendor knowledge outside connectors/: %s", f)
	}
}

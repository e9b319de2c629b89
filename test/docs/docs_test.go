// Package docs checks that the documents keep their promises: every test a
// document names as proof exists.
package docs

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// testName matches a Go test, fuzz target or CLI script a document cites.
var testName = regexp.MustCompile("`((?:Test|Fuzz)[A-Z][A-Za-z0-9_]*|[a-z0-9-]+\\.txtar)`")

// TestDocumentsCiteRealTests: docs/security.md and docs/testing.md prove
// their claims by naming tests; a renamed or deleted test must not leave a
// claim without its proof.
func TestDocumentsCiteRealTests(t *testing.T) {
	root := filepath.Join("..", "..")
	funcs := map[string]bool{}
	scripts := map[string]bool{}
	decl := regexp.MustCompile(`(?m)^func ((?:Test|Fuzz)[A-Za-z0-9_]*)\(`)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		switch {
		case strings.HasSuffix(p, "_test.go"):
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for _, m := range decl.FindAllSubmatch(data, -1) {
				funcs[string(m[1])] = true
			}
		case strings.HasSuffix(p, ".txtar"):
			scripts[d.Name()] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range []string{"docs/security.md", "docs/testing.md"} {
		data, err := os.ReadFile(filepath.Join(root, doc))
		if err != nil {
			t.Fatal(err)
		}
		cited := 0
		for _, m := range testName.FindAllStringSubmatch(string(data), -1) {
			name := m[1]
			cited++
			if strings.HasSuffix(name, ".txtar") {
				if !scripts[name] {
					t.Errorf("%s cites the script %s, which does not exist", doc, name)
				}
			} else if !funcs[name] {
				t.Errorf("%s cites %s, which is not a test or fuzz target of this repository", doc, name)
			}
		}
		if cited == 0 {
			t.Errorf("%s cites no test at all", doc)
		}
	}
}

// Package docs holds the user documentation; its test keeps the links and
// the repository paths the pages mention pointing at things that exist, and
// the documents (and sections) Go comments cite.
package docs

import (
	"bufio"
	"bytes"
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/plexus-cni/plexus/pkg/testutil"
)

var (
	mdLink   = regexp.MustCompile(`\]\(([^)#\s]+)(#[^)]*)?\)`)
	repoPath = regexp.MustCompile("`((?:deployments|e2e|hack|images|pkg|cmd)/[A-Za-z0-9_./-]*[A-Za-z0-9_-])`")
)

func TestLinksAndPaths(t *testing.T) {
	root := testutil.RepoRoot()
	pages, err := filepath.Glob("*.md")
	if err != nil || len(pages) < 7 {
		t.Fatalf("pages %v (%v)", pages, err)
	}
	links, paths := 0, 0
	for _, page := range pages {
		b, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mdLink.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.Contains(target, "://") {
				continue
			}
			links++
			if _, err := os.Stat(filepath.Join(filepath.Dir(page), target)); err != nil {
				t.Errorf("%s: link %s: %v", page, target, err)
			}
		}
		for _, m := range repoPath.FindAllStringSubmatch(string(b), -1) {
			p := m[1]
			if strings.ContainsAny(p, "*<>") || strings.HasPrefix(p, "e2e/kind/.work") {
				continue
			}
			paths++
			if _, err := os.Stat(filepath.Join(root, p)); err != nil {
				t.Errorf("%s: mentions %s, which does not exist", page, p)
			}
		}
	}
	if links < 20 || paths < 20 {
		t.Errorf("checked only %d links and %d paths: the patterns no longer match the pages", links, paths)
	}
	t.Logf("%d links, %d repository paths checked", links, paths)
}

// A Go comment cites a document by its path from the repository's root (or
// from the citing file's directory), optionally followed by the section it
// means: `(docs/<page>.md, "Heading")` or `docs/<page>.md's "Heading"`.
var docRef = regexp.MustCompile("([A-Za-z0-9_][A-Za-z0-9_./-]*\\.md)\\b(?:(?:, |'s )\"([^\"]+)\")?")

type docCitation struct {
	path, section string
	line          int
}

// goCommentCitations returns the documents (and sections) the comments of
// one Go source file cite; string literals do not count.
func goCommentCitations(name string, src []byte) ([]docCitation, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, name, src, parser.ParseComments)
	if err != nil {
		return nil, err
	}
	var out []docCitation
	for _, g := range f.Comments {
		// Join the group's lines: a section name may go on to the next line.
		var text strings.Builder
		var starts []int // offset in text where each comment of g begins
		for _, c := range g.List {
			starts = append(starts, text.Len())
			body := strings.TrimPrefix(strings.TrimPrefix(strings.TrimSuffix(c.Text, "*/"), "/*"), "//")
			text.WriteString(strings.Join(strings.Fields(body), " ") + " ")
		}
		t := text.String()
		for _, m := range docRef.FindAllStringSubmatchIndex(t, -1) {
			i := 0
			for i+1 < len(starts) && starts[i+1] <= m[0] {
				i++
			}
			ref := docCitation{path: t[m[2]:m[3]], line: fset.Position(g.List[i].Pos()).Line}
			if m[4] >= 0 {
				ref.section = t[m[4]:m[5]]
			}
			out = append(out, ref)
		}
	}
	return out, nil
}

// checkCitation fails when the cited document is not in the repository
// (relative to its root or to the citing file's directory) or has no
// heading named like the cited section.
func checkCitation(root, goFile string, c docCitation) error {
	var doc []byte
	for _, p := range []string{filepath.Join(root, c.path), filepath.Join(filepath.Dir(goFile), c.path)} {
		if b, err := os.ReadFile(p); err == nil {
			doc = b
			break
		}
	}
	if doc == nil {
		return fmt.Errorf("cites %s, which is not in the repository (the design is docs/architecture.md)", c.path)
	}
	if c.section == "" {
		return nil
	}
	want := strings.ToLower(c.section)
	s := bufio.NewScanner(bytes.NewReader(doc))
	for s.Scan() {
		if h, ok := strings.CutPrefix(s.Text(), "#"); ok && strings.ToLower(strings.TrimSpace(strings.TrimLeft(h, "#"))) == want {
			return nil
		}
	}
	return fmt.Errorf("cites %s, %q: the document has no such heading", c.path, c.section)
}

func TestGoCommentCitationsFixtures(t *testing.T) {
	// The design notes kept outside the repository, spelt so that a grep
	// for comments citing them finds none here.
	const outside = "DESIGN" + ".md"
	root := testutil.RepoRoot()
	goFile := filepath.Join(root, "pkg", "x", "x.go")
	for _, tc := range []struct {
		name, src string
		bad       int
	}{
		{"design notes outside the repo", "// Package x (" + outside + ", \"Trust model\").\npackage x\n", 1},
		{"design notes, possessive", "package x\n\n// It reads like " + outside + "'s \"One ADD\".\nfunc f() {}\n", 1},
		{"a page that exists", "// Package x (docs/security.md).\npackage x\n", 0},
		{"a section that exists", "// Package x (docs/security.md, \"Trust model\").\npackage x\n", 0},
		{"a section that does not", "// Package x (docs/security.md, \"No such section\").\npackage x\n", 1},
		{"a missing page in a block comment", "/* see docs/nothing-here.md */\npackage x\n", 1},
		{"a section on the next line", "// Package x (docs/security.md, \"Trust\n// model\") and (docs/security.md, \"No\n// such\").\npackage x\n", 1},
		{"a string literal is not a citation", "package x\n\nconst s = \"" + outside + "\"\n", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			refs, err := goCommentCitations("x.go", []byte(tc.src))
			if err != nil {
				t.Fatal(err)
			}
			bad := 0
			for _, r := range refs {
				if checkCitation(root, goFile, r) != nil {
					bad++
				}
			}
			if bad != tc.bad {
				t.Errorf("%d bad citations among %+v, want %d", bad, refs, tc.bad)
			}
		})
	}
}

// TestGoCommentCitations: every document a Go comment of the repository
// cites exists, and so does the section it names.
func TestGoCommentCitations(t *testing.T) {
	root := testutil.RepoRoot()
	files, refs := 0, 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); p != root && (strings.HasPrefix(n, ".") || n == "bin" || n == "testdata" || n == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") {
			return nil
		}
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		cs, err := goCommentCitations(p, src)
		if err != nil {
			return err
		}
		files++
		for _, c := range cs {
			refs++
			if err := checkCitation(root, p, c); err != nil {
				rel, _ := filepath.Rel(root, p)
				t.Errorf("%s:%d: %v", rel, c.line, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 100 || refs < 10 {
		t.Errorf("checked only %d citations in %d Go files: the walk or the pattern no longer matches", refs, files)
	}
	t.Logf("%d citations in %d Go files checked", refs, files)
}

// Package docs holds the user documentation; its test keeps the links and
// the repository paths the pages mention pointing at things that exist.
package docs

import (
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

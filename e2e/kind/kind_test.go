// Package kind holds the kind e2e scripts (they need Docker and kind, so
// they do not run in make test); this test checks what can be checked
// without them: the scripts parse, and every repository file they use exists.
package kind

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/plexus-cni/plexus/pkg/testutil"
)

func TestScripts(t *testing.T) {
	root := testutil.RepoRoot()
	ref := regexp.MustCompile(`\$ROOT/([A-Za-z0-9_./-]+)`)
	for _, s := range []string{"lib.sh", "setup.sh", "run.sh"} {
		if out, err := exec.Command("bash", "-n", s).CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", s, err, out)
		}
		b, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ref.FindAllStringSubmatch(string(b), -1) {
			p := m[1]
			if filepath.Dir(p) == "bin" || filepath.Dir(filepath.Dir(p)) == "bin" || p == "e2e/kind/.work" {
				continue // build outputs
			}
			if _, err := os.Stat(filepath.Join(root, p)); err != nil {
				t.Errorf("%s uses %s: %v", s, p, err)
			}
		}
		if fi, _ := os.Stat(s); s != "lib.sh" && fi.Mode()&0o111 == 0 {
			t.Errorf("%s is not executable", s)
		}
	}
	var cfg struct {
		Kind       string `json:"kind"`
		APIVersion string `json:"apiVersion"`
		Nodes      []struct {
			Role string `json:"role"`
		} `json:"nodes"`
	}
	b, _ := os.ReadFile("kind-config.yaml")
	if err := yaml.UnmarshalStrict(b, &cfg); err != nil || cfg.Kind != "Cluster" || len(cfg.Nodes) != 2 {
		t.Errorf("kind-config.yaml: %+v %v", cfg, err)
	}
}

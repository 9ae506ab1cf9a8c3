package tests

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/matrix-gouv/homeserver/"

// components are the top-level folders that each hold one component.
var components = []string{"homeserver", "roomserver", "federation", "mediaapi", "appservices"}

// componentOf returns the component a package path belongs to, or "".
func componentOf(pkg string) string {
	rel := strings.TrimPrefix(pkg, module)
	for _, c := range components {
		if rel == c || strings.HasPrefix(rel, c+"/") {
			return c
		}
	}
	return ""
}

// TestImportsGoDownward enforces the dependency order of STYLE.md: a
// component reaches another only through its api/ package; shared plumbing
// (internal/, config/, migrations/) imports no component; only cmd/ and
// tests/ wire components together.
func TestImportsGoDownward(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, module+"...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg, imports := fields[0], fields[1:]
		rel := strings.TrimPrefix(pkg, module)
		if strings.HasPrefix(rel, "cmd/") || strings.HasPrefix(rel, "tests") {
			continue
		}
		from := componentOf(pkg)
		for _, imp := range imports {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			to := componentOf(imp)
			switch {
			case to == "" || to == from:
			case from == "":
				t.Errorf("%s is shared plumbing but imports component package %s", rel, strings.TrimPrefix(imp, module))
			case !strings.HasPrefix(strings.TrimPrefix(imp, module), to+"/api"):
				t.Errorf("%s imports %s: another component is reached only through its api/ package", rel, strings.TrimPrefix(imp, module))
			}
		}
	}
}

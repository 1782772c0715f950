package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jm-directory/jm-directory-server/internal/testkit"
)

// repoFile is the path of a file given relative to the repository root.
func repoFile(t *testing.T, rel string) string {
	t.Helper()
	return filepath.Join(testkit.RepoRoot(t), filepath.FromSlash(rel))
}

// readRepoFile returns a file's text, given its path relative to the repository root.
func readRepoFile(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(repoFile(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// goDirective returns the version of go.mod's go directive ("1.26.8").
func goDirective(t *testing.T) string {
	t.Helper()
	for line := range strings.Lines(readRepoFile(t, "go.mod")) {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "go" {
			return f[1]
		}
	}
	t.Fatal("go.mod has no go directive")
	return ""
}

// parseBool reads a boolean as the server's configuration does.
func parseBool(s string) (value, ok bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "1", "yes", "on":
		return true, true
	case "false", "0", "no", "off":
		return false, true
	}
	return false, false
}

package main

import (
	"strings"
	"testing"

	"github.com/jm-directory/jm-directory-server/internal/buildinfo"
)

// TestVersion: --version prints the build's version, commit and Go version on one line
// and exits 0, before any configuration is read (an invalid environment does not matter).
func TestVersion(t *testing.T) {
	t.Setenv("NETWORK", "not-a-network")
	for _, args := range [][]string{{"--version"}, {"-version"}, {"--version", "--port=5333"}} {
		var stdout, stderr strings.Builder
		if code := run(args, &stdout, &stderr); code != 0 {
			t.Fatalf("run(%q) = %d, stderr %q", args, code, stderr.String())
		}
		want := buildinfo.Line("jm-directory-server") + "\n"
		if stdout.String() != want || stderr.Len() != 0 {
			t.Errorf("run(%q): stdout %q, stderr %q; want stdout %q", args, stdout.String(), stderr.String(), want)
		}
		for _, part := range []string{buildinfo.Version, buildinfo.Commit, buildinfo.GoVersion()} {
			if !strings.Contains(stdout.String(), part) {
				t.Errorf("run(%q): %q lacks %q", args, stdout.String(), part)
			}
		}
	}
}

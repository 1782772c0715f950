package main

import (
	"strings"
	"testing"

	"github.com/jm-directory/jm-directory-server/internal/buildinfo"
)

// TestVersion: --version prints the build's version, commit and Go version on one line
// and exits 0 without asking any server.
func TestVersion(t *testing.T) {
	env := func(string) string { return "" }
	for _, arg := range []string{"--version", "-version"} {
		var stdout, stderr strings.Builder
		if code := run([]string{arg}, env, &stdout, &stderr); code != 0 {
			t.Fatalf("run(%s) = %d, stderr %q", arg, code, stderr.String())
		}
		want := buildinfo.Line(prog) + "\n"
		if stdout.String() != want || stderr.Len() != 0 {
			t.Errorf("run(%s): stdout %q, stderr %q; want stdout %q", arg, stdout.String(), stderr.String(), want)
		}
		for _, part := range []string{buildinfo.Version, buildinfo.Commit, buildinfo.GoVersion()} {
			if !strings.Contains(stdout.String(), part) {
				t.Errorf("run(%s): %q lacks %q", arg, stdout.String(), part)
			}
		}
	}
}

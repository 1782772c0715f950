package buildinfo

import (
	"runtime"
	"strings"
	"testing"
)

func TestLine(t *testing.T) {
	got := Line("jm-directory-ctl")
	want := "jm-directory-ctl " + Version + " (commit " + Commit + ", " + runtime.Version() + ", " +
		runtime.GOOS + "/" + runtime.GOARCH + ")"
	if got != want {
		t.Errorf("Line = %q, want %q", got, want)
	}
	if strings.Contains(got, "\n") || Commit == "" || Version == "" {
		t.Errorf("Line = %q: want one line with a version and a commit", got)
	}
	if GoVersion() != runtime.Version() {
		t.Errorf("GoVersion = %q, want %q", GoVersion(), runtime.Version())
	}
}

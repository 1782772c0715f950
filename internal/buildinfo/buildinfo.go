// Package buildinfo holds what a build of the commands knows about itself: the release
// version and the git commit, stamped at link time by scripts/release.sh
// (-ldflags "-X …/internal/buildinfo.Version=… -X …/internal/buildinfo.Commit=…"), and
// the Go toolchain that built it. Both commands print it with --version; the server
// also puts the version into the motd's version line, /status and build_info in /metrics.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is the release version. scripts/release.sh stamps the repository's VERSION
// file; a plain go build or go run keeps this default, which is kept equal to VERSION
// (test/release checks it).
var Version = "0.1.0-dev"

// Commit is the full git commit the binary was built from. scripts/release.sh stamps
// git rev-parse HEAD (or $RELEASE_COMMIT); without a stamp it is the revision the Go
// toolchain recorded (go build in a git checkout, "-dirty" when the tree had changes),
// else "unknown".
var Commit = ""

func init() {
	if Commit == "" {
		Commit = vcsRevision()
	}
	if Commit == "" {
		Commit = "unknown"
	}
}

// vcsRevision is the commit go build recorded in the binary, "" when there is none
// (-buildvcs=false, go run, go test, a build outside git).
func vcsRevision() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev != "" && modified == "true" {
		rev += "-dirty"
	}
	return rev
}

// GoVersion is the version of the Go toolchain that built the binary ("go1.26.8").
func GoVersion() string { return runtime.Version() }

// Line is what --version prints for the command prog, on one line:
//
//	jm-directory-server 0.1.0 (commit 77553f4…, go1.26.8, linux/amd64)
func Line(prog string) string {
	return fmt.Sprintf("%s %s (commit %s, %s, %s/%s)", prog, Version, Commit, GoVersion(), runtime.GOOS, runtime.GOARCH)
}

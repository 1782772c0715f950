// Package release tests scripts/release.sh: two builds of the same source give the same
// bytes, and the binaries are static, stamped and free of build paths.
package release

import (
	"bytes"
	"debug/elf"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/buildinfo"
	"github.com/jm-directory/jm-directory-server/internal/testkit"
)

// commit is the commit stamped through RELEASE_COMMIT, as the Docker build does: the
// test also runs in copies of the repository without .git.
const commit = "0123456789abcdef0123456789abcdef01234567"

// target is the platform the test builds; the binaries run only on a host of it.
const target = "linux/amd64"

var commands = []string{"jm-directory-server", "jm-directory-ctl"}

// version is the VERSION file's version.
func version(t *testing.T, root string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// release runs scripts/release.sh in src with args and the extra environment, and
// fails the test with its output if it fails.
func release(t *testing.T, src string, env []string, args ...string) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{filepath.Join(src, "scripts", "release.sh")}, args...)...)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "RELEASE_COMMIT="+commit)
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("release.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("release.sh %s:\n%s", strings.Join(args, " "), out)
}

// copySource copies what the build reads (go.mod, go.sum, VERSION, scripts/, cmd/,
// internal/) from root into dst.
func copySource(t *testing.T, root, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"go.mod", "go.sum", "VERSION", "scripts", "cmd", "internal"} {
		err := filepath.WalkDir(filepath.Join(root, name), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			to := filepath.Join(dst, rel)
			if d.IsDir() {
				return os.MkdirAll(to, 0o755)
			}
			if !d.Type().IsRegular() {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(to, b, info.Mode().Perm())
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestVersionFile: the VERSION file that releases are stamped with is the version a
// plain go build reports.
func TestVersionFile(t *testing.T) {
	if v := version(t, testkit.RepoRoot(t)); v != buildinfo.Version {
		t.Errorf("VERSION says %q, buildinfo.Version's default is %q: keep them equal", v, buildinfo.Version)
	}
}

// TestReproducible builds linux/amd64 twice, the second time from a copy of the source at
// another path with an empty build cache, and compares SHA256SUMS; then checks that the
// binaries are static, carry no build path, and print the stamped version and commit.
func TestReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the release binaries twice (about 30-60 s); skipped with -short")
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash not found")
	}
	root := testkit.RepoRoot(t)
	ver := version(t, root)

	start := time.Now()
	out1 := t.TempDir()
	release(t, root, nil, "--targets", target, "--out", out1)
	first := time.Since(start)

	src := filepath.Join(t.TempDir(), "elsewhere", "jm-directory-server")
	copySource(t, root, src)
	out2 := t.TempDir()
	release(t, src, []string{"GOCACHE=" + t.TempDir()}, "--targets="+target, "--out="+out2)
	t.Logf("first build %v, second (fresh cache) %v", first.Round(time.Millisecond), (time.Since(start) - first).Round(time.Millisecond))

	sums1, err := os.ReadFile(filepath.Join(out1, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	sums2, err := os.ReadFile(filepath.Join(out2, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sums1, sums2) {
		t.Errorf("the two builds differ:\n%s\n%s", sums1, sums2)
	}

	goos, goarch, _ := strings.Cut(target, "/")
	lines := strings.Split(strings.TrimSpace(string(sums1)), "\n")
	if len(lines) != len(commands) {
		t.Fatalf("SHA256SUMS has %d lines, want %d:\n%s", len(lines), len(commands), sums1)
	}
	for i, cmd := range []string{"jm-directory-ctl", "jm-directory-server"} { // sorted by name
		name := cmd + "_" + ver + "_" + goos + "_" + goarch
		if f := strings.Fields(lines[i]); len(f) != 2 || len(f[0]) != 64 || f[1] != name {
			t.Errorf("SHA256SUMS line %d = %q, want \"<sha256>  %s\"", i+1, lines[i], name)
		}
		bin := filepath.Join(out1, name)
		checkBinary(t, bin, []string{root, src})

		if runtime.GOOS != goos || runtime.GOARCH != goarch {
			continue
		}
		out, err := exec.Command(bin, "--version").Output()
		if err != nil {
			t.Errorf("%s --version: %v", name, err)
			continue
		}
		want := cmd + " " + ver + " (commit " + commit + ", " + runtime.Version() + ", " + target + ")\n"
		if string(out) != want {
			t.Errorf("%s --version = %q, want %q", name, out, want)
		}
	}
}

// checkBinary: a static ELF (no interpreter, no dynamic section), stripped, with no
// build ID and none of the source paths in it.
func checkBinary(t *testing.T, bin string, paths []string) {
	t.Helper()
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		if bytes.Contains(b, []byte(p)) {
			t.Errorf("%s contains the build path %s (-trimpath missing?)", bin, p)
		}
	}
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("%s is dynamically linked (%v): CGO_ENABLED=0 missing?", bin, p.Type)
		}
	}
	if f.Section(".symtab") != nil {
		t.Errorf("%s has a symbol table: -s missing?", bin)
	}
	if s := f.Section(".note.go.buildid"); s != nil {
		note, err := s.Data()
		if err != nil {
			t.Fatal(err)
		}
		// The note's name is "Go" and its type 4; its description, the build ID, must be
		// empty (-buildid=): 4+4+4 header bytes and "Go\x00\x00".
		if len(note) > 16 && len(bytes.Trim(note[16:], "\x00")) > 0 {
			t.Errorf("%s has a build ID %q: -buildid= missing?", bin, note[16:])
		}
	}
}

// TestBadTarget: an unknown target is refused with exit status 2, before anything is built.
func TestBadTarget(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash not found")
	}
	root := testkit.RepoRoot(t)
	out := t.TempDir()
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "release.sh"), "--targets", "plan9/z80", "--out", out)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "RELEASE_COMMIT="+commit)
	b, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(b), "unknown target plan9/z80") {
		t.Errorf("release.sh --targets plan9/z80: %v, %q; want exit status 2 naming the target", err, b)
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("release.sh --targets plan9/z80 wrote %d files", len(entries))
	}
}

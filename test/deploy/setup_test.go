package deploy

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const setupPath = "deploy/docker/setup.sh"

// setupDirs are the directories setup.sh makes, with their modes; all owned by 1000:1000.
var setupDirs = []struct {
	rel  string
	mode fs.FileMode
}{
	{"tor/conf", 0o755},
	{"tor/run", 0o755},
	{"tor/data", 0o700},
	{"tor/data/hs/directory", 0o700},
	{"data", 0o700},
}

// runSetup runs "sh setup.sh DIR", as the given user when cred is not nil.
func runSetup(t *testing.T, dir string, cred *syscall.Credential) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", repoFile(t, setupPath), dir)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// checkSetupDirs reports every directory of setupDirs whose mode or owner is wrong.
func checkSetupDirs(t *testing.T, dir string) {
	t.Helper()
	for _, d := range setupDirs {
		fi, err := os.Stat(filepath.Join(dir, d.rel))
		if err != nil {
			t.Errorf("setup.sh did not make %s: %v", d.rel, err)
			continue
		}
		if !fi.IsDir() || fi.Mode().Perm() != d.mode {
			t.Errorf("%s: mode %v, want a directory with mode %#o", d.rel, fi.Mode(), d.mode)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 1000 || st.Gid != 1000 {
			t.Errorf("%s: owner %d:%d, want 1000:1000", d.rel, st.Uid, st.Gid)
		}
	}
}

// TestSetupScriptText checks the script's form: POSIX sh, strict mode, valid syntax for
// every POSIX-ish shell on this machine.
func TestSetupScriptText(t *testing.T) {
	text := readRepoFile(t, setupPath)
	if !strings.HasPrefix(text, "#!/bin/sh\n") {
		t.Errorf("setup.sh: first line is not #!/bin/sh")
	}
	if !strings.Contains(text, "\nset -eu\n") {
		t.Errorf("setup.sh: no \"set -eu\" line")
	}
	fi, err := os.Stat(repoFile(t, setupPath))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o111 == 0 {
		t.Errorf("setup.sh is not executable (mode %v)", fi.Mode())
	}
	shells := [][]string{{"sh", "-n"}, {"dash", "-n"}, {"bash", "--posix", "-n"}, {"busybox", "sh", "-n"}}
	for _, sh := range shells {
		if _, err := exec.LookPath(sh[0]); err != nil {
			continue
		}
		args := append(sh[1:], repoFile(t, setupPath))
		if out, err := exec.Command(sh[0], args...).CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", strings.Join(sh, " "), err, out)
		}
	}
}

// TestSetupScript runs setup.sh in a temporary directory: modes and owners, the torrc
// copy, then a second run that changes nothing, then a run that repairs what was broken.
func TestSetupScript(t *testing.T) {
	uid := os.Geteuid()
	if uid != 0 && uid != 1000 {
		// Only root (chown) or uid 1000 (owner already) can do it; anyone else gets
		// the sudo hint and nothing is made.
		dir := filepath.Join(t.TempDir(), "deploy")
		out, err := runSetup(t, dir, nil)
		if err == nil || !strings.Contains(out, "sudo") {
			t.Errorf("setup.sh as uid %d: want an error with a sudo hint, got %v:\n%s", uid, err, out)
		}
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("setup.sh as uid %d made %s anyway", uid, dir)
		}
		t.Skipf("running as uid %d: setup.sh needs root (or uid 1000) to make directories owned by 1000", uid)
	}

	dir := t.TempDir()
	out, err := runSetup(t, dir, nil)
	if err != nil {
		t.Fatalf("setup.sh: %v\n%s", err, out)
	}
	checkSetupDirs(t, dir)
	for _, want := range []string{"docker compose up -d", "tor/data/hs/directory/hostname", "docker compose exec directory jm-directory-ctl status"} {
		if !strings.Contains(out, want) {
			t.Errorf("setup.sh output does not mention %q:\n%s", want, out)
		}
	}
	torrc, err := os.ReadFile(filepath.Join(dir, "tor", "conf", "torrc"))
	if err != nil || string(torrc) != readRepoFile(t, torrcPath) {
		t.Errorf("setup.sh did not copy the torrc into an empty target (%v)", err)
	}

	// Something inside must survive every later run.
	keep := filepath.Join(dir, "tor", "data", "hs", "directory", "hs_ed25519_secret_key")
	if err := os.WriteFile(keep, []byte("key"), 0o600); err != nil {
		t.Fatal(err)
	}

	out2, err := runSetup(t, dir, nil)
	if err != nil {
		t.Fatalf("second setup.sh run: %v\n%s", err, out2)
	}
	checkSetupDirs(t, dir)
	for line := range strings.Lines(out2) {
		if f := strings.Fields(line); len(f) > 0 && (f[0] == "created" || f[0] == "fixed" || f[0] == "WRONG") {
			t.Errorf("second setup.sh run changed something: %s", strings.TrimSpace(line))
		}
	}

	// Break a mode and an owner: a third run puts them right.
	if err := os.Chmod(filepath.Join(dir, "tor", "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if uid == 0 {
		if err := os.Chown(filepath.Join(dir, "data"), 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	out3, err := runSetup(t, dir, nil)
	if err != nil {
		t.Fatalf("third setup.sh run: %v\n%s", err, out3)
	}
	checkSetupDirs(t, dir)
	if !strings.Contains(out3, "fixed") {
		t.Errorf("third setup.sh run does not say what it fixed:\n%s", out3)
	}
	if b, err := os.ReadFile(keep); err != nil || string(b) != "key" {
		t.Errorf("setup.sh touched %s: %q %v", keep, b, err)
	}
}

// TestSetupScriptOtherUsers runs setup.sh, when the test is root, as uid 1000 (works
// without chown) and as nobody (refused with a sudo hint, nothing made).
func TestSetupScriptOtherUsers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run setup.sh as other users")
	}
	base := t.TempDir()
	for d := base; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The script's own directory must be readable by them: the repository may not be.
	script := filepath.Join(base, "script")
	if err := os.MkdirAll(filepath.Join(script, "tor", "conf"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"setup.sh", "tor/conf/torrc"} {
		b := readRepoFile(t, "deploy/docker/"+f)
		if err := os.WriteFile(filepath.Join(script, filepath.FromSlash(f)), []byte(b), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	run := func(dir string, uid uint32) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "sh", filepath.Join(script, "setup.sh"), dir)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	own := filepath.Join(base, "as1000")
	if err := os.Mkdir(own, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(own, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	if out, err := run(own, 1000); err != nil {
		t.Errorf("setup.sh as uid 1000: %v\n%s", err, out)
	} else {
		checkSetupDirs(t, own)
	}

	other := filepath.Join(base, "asnobody")
	if err := os.Mkdir(other, 0o777); err != nil {
		t.Fatal(err)
	}
	out, err := run(other, 65534)
	if err == nil || !strings.Contains(out, "sudo") {
		t.Errorf("setup.sh as nobody: want an error with a sudo hint, got %v:\n%s", err, out)
	}
	if entries, _ := os.ReadDir(other); len(entries) != 0 {
		t.Errorf("setup.sh as nobody made %d entries in %s", len(entries), other)
	}
}

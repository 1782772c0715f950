package deploy

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	unitPath   = "deploy/systemd/jm-directory-server.service"
	unitName   = "jm-directory-server.service"
	envExample = "deploy/systemd/env.example"
)

// unitFile maps "Section.Key" to the key's values in order of appearance.
type unitFile map[string][]string

// parseUnit reads a systemd unit: [Section] headers, Key=Value lines, "#" and ";"
// comments, backslash continuations.
func parseUnit(t *testing.T, text string) unitFile {
	t.Helper()
	u := unitFile{}
	section := ""
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		for strings.HasSuffix(line, `\`) && i+1 < len(lines) {
			i++
			line = strings.TrimSuffix(line, `\`) + " " + strings.TrimSpace(lines[i])
		}
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Errorf("%s line %d: not Key=Value inside a section: %q", unitPath, i+1, line)
				continue
			}
			key := section + "." + strings.TrimSpace(k)
			u[key] = append(u[key], strings.TrimSpace(v))
		}
	}
	return u
}

// last is the effective value of a single-valued key ("" and false when absent).
func (u unitFile) last(key string) (string, bool) {
	v := u[key]
	if len(v) == 0 {
		return "", false
	}
	return v[len(v)-1], true
}

// TestSystemdUnitDirectives checks the unit's identity, paths, restart policy and every
// hardening directive the deployment promises.
func TestSystemdUnitDirectives(t *testing.T) {
	u := parseUnit(t, readRepoFile(t, unitPath))
	exact := map[string]string{
		"Service.User":                    "jm-directory",
		"Service.Group":                   "jm-directory",
		"Service.ExecStart":               "/usr/local/bin/jm-directory-server",
		"Service.ExecReload":              "/bin/kill -HUP $MAINPID",
		"Service.KillSignal":              "SIGTERM",
		"Service.Restart":                 "on-failure",
		"Service.RestartSec":              "5",
		"Service.EnvironmentFile":         "-/etc/jm-directory-server/env",
		"Service.StateDirectory":          "jm-directory-server",
		"Service.ProtectSystem":           "strict",
		"Service.RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"Service.SystemCallArchitectures": "native",
		"Service.CapabilityBoundingSet":   "",
		"Service.LimitNOFILE":             "65536",
		"Install.WantedBy":                "multi-user.target",
	}
	for key, want := range exact {
		got, ok := u.last(key)
		if !ok {
			t.Errorf("unit: %s= missing", key)
		} else if got != want {
			t.Errorf("unit: %s=%s, want %s", key, got, want)
		}
	}
	if n := len(u["Service.CapabilityBoundingSet"]); n != 1 {
		t.Errorf("unit: CapabilityBoundingSet= appears %d times; a later value would add capabilities back", n)
	}
	for _, key := range []string{
		"ProtectHome", "PrivateTmp", "PrivateDevices", "NoNewPrivileges", "ProtectKernelTunables",
		"ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups", "RestrictNamespaces",
		"LockPersonality", "MemoryDenyWriteExecute",
	} {
		got, ok := u.last("Service." + key)
		if b, isBool := parseBool(got); !ok || !isBool || !b {
			t.Errorf("unit: %s=%q, want true", key, got)
		}
	}

	// DATA_DIR is the StateDirectory, the one writable path under ProtectSystem=strict.
	state, _ := u.last("Service.StateDirectory")
	dataDir := ""
	for _, e := range u["Service.Environment"] {
		for _, kv := range strings.Fields(e) {
			if v, ok := strings.CutPrefix(strings.Trim(kv, `"`), "DATA_DIR="); ok {
				dataDir = v
			}
		}
	}
	if dataDir != "/var/lib/"+state {
		t.Errorf("unit: Environment=DATA_DIR=%q, want /var/lib/%s (the StateDirectory)", dataDir, state)
	}

	// Stopping takes up to 5 s for peers and, in launch mode, up to 10 s for tor.
	stop, _ := u.last("Service.TimeoutStopSec")
	if d, ok := systemdTimespan(stop); !ok || d < 15*time.Second || d > 5*time.Minute {
		t.Errorf("unit: TimeoutStopSec=%q, want 15 s .. 5 min", stop)
	}
}

// systemdTimespan reads a systemd time span such as "30", "30s", "1min 30s".
func systemdTimespan(s string) (time.Duration, bool) {
	s = strings.TrimSpace(s)
	if n, err := strconv.Atoi(s); err == nil {
		return time.Duration(n) * time.Second, true
	}
	r := strings.NewReplacer(" ", "", "min", "m", "sec", "s", "hour", "h")
	d, err := time.ParseDuration(r.Replace(s))
	return d, err == nil
}

// analyze runs systemd-analyze with args and returns its output and error.
func analyze(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "systemd-analyze", args...)
	cmd.Env = append(os.Environ(), "SYSTEMD_LOG_COLOR=0", "SYSTEMD_PAGER=", "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// unitCopy writes the unit into a fresh directory with ExecStart pointing at an existing
// executable (the server binary is not installed here) and extra lines appended to
// [Service]; it returns the copy's path.
func unitCopy(t *testing.T, extra ...string) string {
	t.Helper()
	truePath, err := exec.LookPath("true")
	if err != nil {
		t.Skip("no true executable to stand in for the server")
	}
	text := readRepoFile(t, unitPath)
	text = regexp.MustCompile(`(?m)^ExecStart=.*$`).ReplaceAllString(text, "ExecStart="+truePath)
	if len(extra) > 0 {
		text = strings.Replace(text, "[Service]\n", "[Service]\n"+strings.Join(extra, "\n")+"\n", 1)
	}
	p := filepath.Join(t.TempDir(), unitName)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// environmental are systemd-analyze verify complaints about this machine, not the unit.
var environmental = regexp.MustCompile(`is not executable|Failed to (resolve|look up) (user|group)|cgroup|Failed to load unit .*(network-online|tor)\.`)

// TestSystemdVerify runs systemd-analyze verify on a copy of the unit. Complaints naming
// the unit's lines or directives fail the test; complaints about this machine are logged.
func TestSystemdVerify(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze is not installed: unit syntax not verified by systemd")
	}
	// systemd-analyze verify exits 0 on unknown keys and bad values: it only prints
	// them. Make sure it does print them here, or a pass would mean nothing.
	bad := unitCopy(t, "NoSuchDirective=1", "ProtectSystem=bogus")
	out, _ := analyze(t, "verify", "--man=no", bad)
	if !strings.Contains(out, "NoSuchDirective") || !strings.Contains(out, "bogus") {
		t.Skipf("systemd-analyze verify does not report unit errors in this environment:\n%s", out)
	}

	p := unitCopy(t)
	out, err := analyze(t, "verify", "--man=no", p)
	var problems []string
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		switch {
		case line == "":
		case strings.Contains(line, p+":"), strings.Contains(line, unitName) && !environmental.MatchString(line):
			problems = append(problems, line)
		default:
			t.Logf("systemd-analyze verify (environment, ignored): %s", line)
		}
	}
	for _, p := range problems {
		t.Errorf("systemd-analyze verify: %s", p)
	}
	if err != nil && len(problems) == 0 {
		t.Logf("systemd-analyze verify exited with %v without naming the unit:\n%s", err, out)
	}
}

// TestSystemdSecurity asks systemd-analyze security (offline) for the unit's exposure
// score and wants it at most 2.0 ("OK"): the hardening must stay in place.
func TestSystemdSecurity(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	p := unitCopy(t)
	out, err := analyze(t, "security", "--offline=yes", "--no-pager", p)
	m := regexp.MustCompile(`Overall exposure level for \S+: (\d+\.\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Skipf("systemd-analyze security --offline is not available here (%v):\n%s", err, out)
	}
	score, _ := strconv.ParseFloat(m[1], 64)
	if score > 2.0 {
		t.Errorf("systemd-analyze security: exposure %.1f, want <= 2.0:\n%s", score, out)
	}
	t.Logf("systemd-analyze security: exposure %.1f", score)
}

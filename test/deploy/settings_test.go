package deploy

import (
	"bytes"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/jm-directory/jm-directory-server/internal/config"
)

// knownEnv returns every environment variable the server's configuration reads, from its
// --help text.
func knownEnv(t *testing.T) map[string]bool {
	t.Helper()
	var help bytes.Buffer
	_, _ = config.Load(config.Options{Args: []string{"--help"}, Output: &help})
	known := map[string]bool{}
	for _, m := range regexp.MustCompile(`\(env ([A-Z0-9_, ]+)\)`).FindAllStringSubmatch(help.String(), -1) {
		for _, name := range strings.Split(m[1], ",") {
			known[strings.TrimSpace(name)] = true
		}
	}
	if len(known) < 20 || !known["NETWORK"] {
		t.Fatalf("could not read the environment variables from --help (format changed?):\n%s", help.String())
	}
	return known
}

// loadEnv runs the server's configuration loader on exactly these variables (data dir
// in a temporary directory) and checks each one was taken from the environment.
func loadEnv(t *testing.T, what string, env map[string]string) {
	t.Helper()
	dir := t.TempDir()
	environ := []string{"DATA_DIR=" + dir}
	names := make([]string, 0, len(env))
	for k, v := range env {
		if k == "DATA_DIR" {
			continue // a fixed path of the deployment; the temporary one stands in
		}
		environ = append(environ, k+"="+v)
		names = append(names, k)
	}
	sort.Strings(names)
	cfg, err := config.Load(config.Options{Environ: environ, HomeDir: dir})
	if err != nil {
		t.Fatalf("%s: the server rejects these settings: %v", what, err)
	}
	for _, k := range names {
		if src := cfg.Source(strings.ToLower(k)); src != config.SourceEnv {
			t.Errorf("%s: %s=%s is not taken from the environment (source %q)", what, k, env[k], src)
		}
	}
}

// TestSettingsNames checks every variable the deployment files set against the server's
// configuration: the names exist, and each file's values together are a valid
// configuration.
func TestSettingsNames(t *testing.T) {
	known := knownEnv(t)
	notServer := map[string]bool{"PATH": true, "HOME": true}

	// The image's ENV plus the compose file's environment: what the container runs with.
	container := map[string]string{}
	for k, v := range loadDockerfile(t, dockerfilePath).finalEnv() {
		if !notServer[k] {
			container[k] = v
		}
	}
	c := loadCompose(t)
	for k, v := range c.Services["directory"].Environment {
		container[k] = v
	}
	for k := range container {
		if !known[k] {
			t.Errorf("Dockerfile/compose set %s, which the server does not read", k)
		}
	}
	loadEnv(t, "Dockerfile ENV + compose environment", container)

	// env.example: active lines are one configuration; commented-out "#NAME=value"
	// lines must name real settings, and a non-empty example value must be valid.
	active := map[string]string{}
	commented := map[string]string{}
	re := regexp.MustCompile(`^(#?)([A-Z][A-Z0-9_]*)=(.*)$`)
	for line := range strings.Lines(readRepoFile(t, envExample)) {
		m := re.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		if m[1] == "" {
			active[m[2]] = m[3]
		} else {
			commented[m[2]] = m[3]
		}
	}
	if len(active) == 0 || len(commented) < 10 {
		t.Fatalf("env.example: %d active and %d commented settings: parse problem?", len(active), len(commented))
	}
	for k := range active {
		if !known[k] {
			t.Errorf("env.example sets %s, which the server does not read", k)
		}
	}
	for k := range commented {
		if !known[k] {
			t.Errorf("env.example documents %s, which the server does not read", k)
		}
	}
	loadEnv(t, "env.example", active)
	for k, v := range commented {
		if v == "" {
			continue
		}
		env := map[string]string{"NETWORK": "mainnet", k: v}
		switch {
		case strings.HasPrefix(k, "TOR_CONTROL_") || k == "TOR_COOKIE_FILE":
			env["TOR_MODE"] = "control"
		case k == "TOR_HIDDEN_SERVICE_DIR" || k == "TOR_PROXY_PROTOCOL":
			env["TOR_MODE"], env["TOR_HIDDEN_SERVICE_DIR"] = "external", "/var/lib/tor/jm-directory"
		case strings.HasPrefix(k, "TOR_") || k == "ONION_VIRTUAL_PORT":
			if k != "TOR_MODE" {
				env["TOR_MODE"] = "launch"
			}
		}
		loadEnv(t, "env.example #"+k, env)
	}
}

// TestCircuitIDExport checks tor's PROXY headers against the directory's setting: tor's
// HiddenServiceExportCircuitID haproxy makes every connection start with a PROXY v1
// line, which only a directory with TOR_PROXY_PROTOCOL=true reads (one without it closes
// every connection as malformed; one with it and no header waits for a header that never
// comes). So: both or neither, both only with a server that has the setting, and both as
// soon as it has it (per-circuit limits are what the deployment is for).
func TestCircuitIDExport(t *testing.T) {
	known := knownEnv(t)["TOR_PROXY_PROTOCOL"]
	exports := torrcValues(torrcOptions(t), "HiddenServiceExportCircuitID")
	exported := len(exports) > 0 && exports[len(exports)-1] != "none"
	if exported && exports[len(exports)-1] != "haproxy" {
		t.Errorf("torrc: HiddenServiceExportCircuitID %s, want haproxy (the PROXY v1 format)", exports[len(exports)-1])
	}
	v, set := loadCompose(t).Services["directory"].Environment["TOR_PROXY_PROTOCOL"]
	on, _ := parseBool(v)
	on = set && on

	switch {
	case exported != on:
		t.Errorf("torrc exports circuit IDs: %v, but compose sets TOR_PROXY_PROTOCOL=%q: enable both or neither", exported, v)
	case (exported || set) && !known:
		t.Errorf("the server does not read TOR_PROXY_PROTOCOL: tor must not send PROXY headers (comment out HiddenServiceExportCircuitID in torrc and TOR_PROXY_PROTOCOL in compose)")
	case known && !exported:
		t.Errorf("the server now reads TOR_PROXY_PROTOCOL: enable HiddenServiceExportCircuitID haproxy in torrc and TOR_PROXY_PROTOCOL: \"true\" in docker-compose.yml, so that limits are per circuit")
	}
	if !strings.Contains(readRepoFile(t, torrcPath), "HiddenServiceExportCircuitID haproxy") {
		t.Errorf("torrc: the HiddenServiceExportCircuitID haproxy line (active or commented out) is gone")
	}
}

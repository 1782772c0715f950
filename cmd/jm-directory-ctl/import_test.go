package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jm-directory/jm-directory-server/internal/config"
	"github.com/jm-directory/jm-directory-server/internal/onionkey"
)

// placeholders in testdata/import/joinmarket.cfg, replaced by each test.
const (
	cfgHSDirPlaceholder = "/home/jm/.joinmarket/hidserv"
	cfgOnionPlaceholder = "DIRECTORY_ONION_PLACEHOLDER"
)

// fakeHSDir writes a HiddenServiceDir the way tor leaves one (mode 0700; the key files
// 0600; hostname "<onion>.onion\n") for a new key, and returns the key.
func fakeHSDir(t *testing.T, dir string) onionkey.Key {
	t.Helper()
	k, err := onionkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		onionkey.SecretFileName: k.SecretFile(),
		onionkey.PublicFileName: k.PublicFile(),
		"hostname":              []byte(k.Onion() + ".onion\n"),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return k
}

// referenceCfg writes testdata's joinmarket.cfg into dir with hidden_service_dir and
// directory_nodes filled in, and returns its path.
func referenceCfg(t *testing.T, dir, hsDir, onion string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "import", "joinmarket.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(b), cfgHSDirPlaceholder, hsDir)
	s = strings.ReplaceAll(s, cfgOnionPlaceholder, onion)
	path := filepath.Join(dir, "joinmarket.cfg")
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// ngDataDir writes testdata's joinmarket-ng config.toml into a new data dir.
func ngDataDir(t *testing.T, content string) string {
	t.Helper()
	if content == "" {
		b, err := os.ReadFile(filepath.Join("testdata", "import", "ng-config.toml"))
		if err != nil {
			t.Fatal(err)
		}
		content = string(b)
	}
	dir := filepath.Join(t.TempDir(), "ng")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// loadImported loads the data dir's config with the server's own loader and the key
// from where the server reads it.
func loadImported(t *testing.T, dataDir string) (config.Config, onionkey.Key) {
	t.Helper()
	cfg, err := config.Load(config.Options{Args: []string{"--data-dir", dataDir}})
	if err != nil {
		t.Fatalf("the server cannot load the imported config: %v", err)
	}
	if ign := cfg.IgnoredKeys(); len(ign) > 0 {
		t.Errorf("the written config.toml has keys the server ignores: %q", ign)
	}
	fi, err := os.Stat(cfg.OnionKeyPath())
	if err != nil {
		t.Fatalf("no key where the server reads it: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %04o, want 0600", fi.Mode().Perm())
	}
	k, err := onionkey.Load(cfg.OnionKeyPath())
	if err != nil {
		t.Fatal(err)
	}
	return cfg, k
}

// hostnameOf reads a HiddenServiceDir's hostname file.
func hostnameOf(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "hostname"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// wantLines checks that out has every want as a substring.
func wantLines(t *testing.T, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

// TestImportReference: start-dn.py's joinmarket.cfg with its hidden_service_dir.
func TestImportReference(t *testing.T) {
	t.Parallel()
	jm := t.TempDir()
	hs := filepath.Join(jm, "hidserv")
	k := fakeHSDir(t, hs)
	cfgPath := referenceCfg(t, jm, hs, k.Onion())
	data := filepath.Join(t.TempDir(), "data")

	code, out, errs := ctl(environ(t), "import", cfgPath, "--data-dir", data)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q\n%s", code, errs, out)
	}
	wantLines(t, out,
		`network = "mainnet"`, "← [BLOCKCHAIN] network (joinmarket.cfg)",
		`log_level = "INFO"`, "← [LOGGING] console_log_level (joinmarket.cfg)",
		`tor_mode = "launch"`, "as start-dn.py did",
		"[MESSAGING:onion] onion_serving_host, onion_serving_port (127.0.0.1:8080): ",
		"ONION_VIRTUAL_PORT", "clients keep <onion>:5222",
		"[MESSAGING:onion] tor_control_host, tor_control_port (localhost:9051): start-dn.py with a hidden_service_dir launched its own tor",
		"[MESSAGING:onion] socks5_host, socks5_port: "+socksReason,
		"[POLICY] segwit, native, merge_algorithm and 8 more: wallet and coinjoin policy",
		"[PAYJOIN] ", "[DAEMON] ", "[YIELDGENERATOR] ", "[SNICKER] ", "[TIMEOUT] ",
		"[BLOCKCHAIN] blockchain_source, rpc_host, rpc_port and 3 more: a directory needs no Bitcoin node",
		"[LOGGING] color: ",
		"Note: motd: start-dn.py took it as its first command-line argument",
		"Note: directory_nodes lists "+k.Onion()+".onion:5222",
		"Onion key: "+k.Onion()+".onion → "+filepath.Join(data, "onion", "hs_ed25519_secret_key")+" (0600, written)",
		"Hostname:  matches "+filepath.Join(hs, "hostname"),
		"Config:    wrote "+filepath.Join(data, "config.toml"),
		"jm-directory-server --data-dir "+data,
		"jm-directory-ctl probe "+k.Onion()+".onion:5222 --socks 127.0.0.1:9050 --network mainnet",
	)
	cfg, got := loadImported(t, data)
	if got.Onion()+".onion" != hostnameOf(t, hs) {
		t.Errorf("imported key is %s.onion, the reference's hostname %s", got.Onion(), hostnameOf(t, hs))
	}
	if cfg.Network != "mainnet" || cfg.TorMode != "launch" || cfg.LogLevel != "INFO" || cfg.Port != 5222 || cfg.HealthCheckPort != 8080 {
		t.Errorf("imported config: %+v", cfg)
	}

	// Again: the same key and settings are accepted, nothing changes.
	before, _ := os.ReadFile(filepath.Join(data, "config.toml"))
	code, out, errs = ctl(environ(t), "import", cfgPath, "--data-dir", data)
	if code != 0 {
		t.Fatalf("second import: exit %d, stderr %q", code, errs)
	}
	wantLines(t, out, "(0600, already there)", "already holds these settings")
	if after, _ := os.ReadFile(filepath.Join(data, "config.toml")); !bytes.Equal(before, after) {
		t.Error("config.toml changed on a repeated import")
	}

	// --motd and --tor-mode control: the control port is copied, the motd mapped.
	data2 := filepath.Join(t.TempDir(), "data")
	code, out, errs = ctl(environ(t), "import", "--tor-mode", "control", "--motd", "Greetings from Directory Node", cfgPath, "--data-dir", data2)
	if code != 0 {
		t.Fatalf("--tor-mode control: exit %d, stderr %q\n%s", code, errs, out)
	}
	wantLines(t, out, `tor_mode = "control"`, `tor_control_host = "localhost"`, "tor_control_port = 9051", `motd = "Greetings from Directory Node"  ← --motd`)
	if strings.Contains(out, "Note: motd") {
		t.Errorf("the motd note is shown although --motd was given:\n%s", out)
	}
	cfg, _ = loadImported(t, data2)
	if cfg.TorMode != "control" || cfg.TorControlHost != "localhost" || cfg.TorControlPort != 9051 || cfg.MOTD != "Greetings from Directory Node" {
		t.Errorf("imported config: %+v", cfg)
	}
}

// TestImportReferenceDataDir: the reference's data dir (holding joinmarket.cfg) and a
// relative hidden_service_dir, read against that directory; a unix: control socket.
func TestImportReferenceDataDir(t *testing.T) {
	t.Parallel()
	jm := t.TempDir()
	k := fakeHSDir(t, filepath.Join(jm, "hidserv"))
	cfgPath := referenceCfg(t, jm, "hidserv", k.Onion())
	b, _ := os.ReadFile(cfgPath)
	b = bytes.Replace(b, []byte("tor_control_host = localhost"), []byte("tor_control_host = unix:/run/tor/control"), 1)
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(t.TempDir(), "data")
	code, out, errs := ctl(environ(t), "import", jm, "--data-dir", data, "--tor-mode", "control")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q\n%s", code, errs, out)
	}
	wantLines(t, out, `hidden_service_dir "hidserv" is relative: read as `+filepath.Join(jm, "hidserv"),
		`tor_control_socket = "/run/tor/control"`)
	cfg, got := loadImported(t, data)
	if !got.Equal(k) || cfg.TorControlSocket != "/run/tor/control" {
		t.Errorf("key %v, socket %q", got, cfg.TorControlSocket)
	}
}

// TestImportDryRun: everything is checked and printed, nothing written.
func TestImportDryRun(t *testing.T) {
	t.Parallel()
	jm := t.TempDir()
	hs := filepath.Join(jm, "hidserv")
	k := fakeHSDir(t, hs)
	cfgPath := referenceCfg(t, jm, hs, k.Onion())
	data := filepath.Join(t.TempDir(), "data")
	code, out, errs := ctl(environ(t), "import", "--dry-run", cfgPath, "--data-dir", data)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	wantLines(t, out, "Dry run: nothing is written.", "(0600, would be written)", "Config:    would write "+filepath.Join(data, "config.toml"), "Hostname:  matches")
	if _, err := os.Stat(data); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("--dry-run created the data dir (%v)", err)
	}
}

// TestImportRefusesDifferentKey: an existing different key is never replaced, and a
// refused import writes nothing at all.
func TestImportRefusesDifferentKey(t *testing.T) {
	t.Parallel()
	hs := filepath.Join(t.TempDir(), "hs")
	k := fakeHSDir(t, hs)
	data := t.TempDir()
	other, err := onionkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(data, "onion", "hs_ed25519_secret_key")
	if err := onionkey.WriteSecretFile(dest, other); err != nil {
		t.Fatal(err)
	}
	for _, dry := range []bool{true, false} {
		args := []string{"import", hs, "--data-dir", data}
		if dry {
			args = append(args, "--dry-run")
		}
		code, _, errs := ctl(environ(t), args...)
		if code != 1 {
			t.Fatalf("dry-run %v: exit %d, want 1; stderr %q", dry, code, errs)
		}
		wantLines(t, errs, dest+" already holds a different key ("+other.Onion()+".onion); not overwriting it with "+k.Onion()+".onion: nothing written")
		if b, _ := os.ReadFile(dest); !bytes.Equal(b, other.SecretFile()) {
			t.Fatal("the existing key was changed")
		}
		if _, err := os.Stat(filepath.Join(data, "config.toml")); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("config.toml written by a refused import (%v)", err)
		}
	}
}

// TestImportHostnameMismatch: a key that is not the hostname's onion is an error.
func TestImportHostnameMismatch(t *testing.T) {
	t.Parallel()
	hs := filepath.Join(t.TempDir(), "hs")
	fakeHSDir(t, hs)
	other, _ := onionkey.Generate()
	if err := os.WriteFile(filepath.Join(hs, "hostname"), []byte(other.Onion()+".onion\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(hs, onionkey.PublicFileName))
	data := filepath.Join(t.TempDir(), "data")
	code, _, errs := ctl(environ(t), "import", hs, "--data-dir", data)
	if code != 1 || !strings.Contains(errs, "says "+other.Onion()+".onion: not the same onion; nothing written") {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	if _, err := os.Stat(data); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("something was written")
	}

	// A public key file that does not belong to the secret key is refused too.
	hs2 := filepath.Join(t.TempDir(), "hs")
	fakeHSDir(t, hs2)
	if err := os.WriteFile(filepath.Join(hs2, onionkey.PublicFileName), other.PublicFile(), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := ctl(environ(t), "import", hs2, "--data-dir", data); code != 1 || !strings.Contains(errs, "does not belong to") {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
}

// TestImportNG: joinmarket-ng's data dir: its directory settings under every name the
// server reads, the rest listed as ignored; with its HiddenServiceDir, the key.
func TestImportNG(t *testing.T) {
	t.Parallel()
	ng := ngDataDir(t, "")
	data := filepath.Join(t.TempDir(), "data")
	code, out, errs := ctl(environ(t), "import", ng, "--data-dir", data)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q\n%s", code, errs, out)
	}
	wantLines(t, out,
		`network = "signet"`, "← network_config.network (config.toml)",
		`log_level = "DEBUG"`, "← logging.level (config.toml)",
		"max_peers = 2000", "message_rate_limit = 100", "heartbeat_idle_threshold = 900",
		`motd = "Signet directory (joinmarket-ng)"`,
		"directory_server.max_message_size: not a setting of this server",
		`nick_auth_mode = "prefer_verified"`,
		"[bitcoin] backend_type, rpc_url: a directory needs no Bitcoin node",
		"[tor] socks_host, socks_port: ",
		"[network_config] directory_servers: ",
		"[logging] sensitive: ",
		"Note: no onion key imported",
		"Config:    wrote "+filepath.Join(data, "config.toml"),
	)
	cfg, err := config.Load(config.Options{Args: []string{"--data-dir", data}})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Network != "signet" || cfg.LogLevel != "DEBUG" || cfg.MaxPeers != 2000 || cfg.MessageRateLimit != 100 ||
		cfg.HeartbeatIdleThreshold.Seconds() != 900 || cfg.TorMode != "none" || len(cfg.IgnoredKeys()) != 0 {
		t.Errorf("imported config: %+v, ignored %q", cfg, cfg.IgnoredKeys())
	}

	// With the HiddenServiceDir of its tor (the compose deployment's tor/data).
	torData := filepath.Join(t.TempDir(), "tor", "data")
	k := fakeHSDir(t, torData)
	data2 := filepath.Join(t.TempDir(), "data")
	code, out, errs = ctl(environ(t), "import", ng, torData, "--data-dir", data2)
	if code != 0 {
		t.Fatalf("with the HiddenServiceDir: exit %d, stderr %q\n%s", code, errs, out)
	}
	wantLines(t, out, `tor_mode = "launch"`, "Hostname:  matches "+filepath.Join(torData, "hostname"), "--network signet")
	cfg, got := loadImported(t, data2)
	if !got.Equal(k) || cfg.TorMode != "launch" || cfg.Network != "signet" {
		t.Errorf("key %v, config %+v", got, cfg)
	}

	// An invalid value stops the import, naming the key.
	bad := ngDataDir(t, "[directory_server]\nport = 70000\n")
	code, _, errs = ctl(environ(t), "import", filepath.Join(bad, "config.toml"), "--data-dir", filepath.Join(t.TempDir(), "d"))
	if code != 1 || !strings.Contains(errs, "not valid for this server") || !strings.Contains(errs, "port=70000") {
		t.Fatalf("invalid port: exit %d, stderr %q", code, errs)
	}
}

// TestImportConflict: two sources that disagree are an error naming both.
func TestImportConflict(t *testing.T) {
	t.Parallel()
	jm := t.TempDir()
	hs := filepath.Join(jm, "hidserv")
	k := fakeHSDir(t, hs)
	cfgPath := referenceCfg(t, jm, hs, k.Onion())
	ng := ngDataDir(t, "")
	code, _, errs := ctl(environ(t), "import", cfgPath, ng, "--data-dir", filepath.Join(t.TempDir(), "d"))
	if code != 1 || !strings.Contains(errs, `network: "mainnet" from [BLOCKCHAIN] network (joinmarket.cfg) conflicts with "signet" from network_config.network (config.toml)`) {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}

	// Two different keys.
	hs2 := filepath.Join(t.TempDir(), "hs2")
	fakeHSDir(t, hs2)
	code, _, errs = ctl(environ(t), "import", cfgPath, hs2, "--data-dir", filepath.Join(t.TempDir(), "d"))
	if code != 1 || !strings.Contains(errs, "two different onion keys") {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	// The same key twice (the cfg's hidden_service_dir named again) is fine.
	if code, _, errs := ctl(environ(t), "import", cfgPath, hs, "--data-dir", filepath.Join(t.TempDir(), "d")); code != 0 {
		t.Fatalf("same key twice: exit %d, stderr %q", code, errs)
	}
}

// TestImportExistingConfig: a config.toml that differs is left alone; the result goes
// to config.toml.imported.
func TestImportExistingConfig(t *testing.T) {
	t.Parallel()
	hs := filepath.Join(t.TempDir(), "hs")
	k := fakeHSDir(t, hs)
	data := t.TempDir()
	mine := []byte("[directory_server]\nmotd = \"mine\"\n")
	if err := os.WriteFile(filepath.Join(data, "config.toml"), mine, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := ctl(environ(t), "import", filepath.Join(hs, onionkey.SecretFileName), "--data-dir", data)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	wantLines(t, out, "Note: no source names the network", "wrote "+filepath.Join(data, "config.toml.imported")+" ("+filepath.Join(data, "config.toml")+" exists and differs: left as it is")
	if b, _ := os.ReadFile(filepath.Join(data, "config.toml")); !bytes.Equal(b, mine) {
		t.Error("the existing config.toml was changed")
	}
	c, err := config.LoadFile(filepath.Join(data, "config.toml.imported"))
	if err != nil || c.TorMode != "launch" {
		t.Fatalf("config.toml.imported: %v, tor_mode %q", err, c.TorMode)
	}
	if fi, _ := os.Stat(filepath.Join(data, "config.toml.imported")); fi.Mode().Perm() != 0o600 {
		t.Errorf("config.toml.imported mode %04o", fi.Mode().Perm())
	}
	if got, err := onionkey.Load(filepath.Join(data, "onion", onionkey.SecretFileName)); err != nil || !got.Equal(k) {
		t.Fatalf("key: %v %v", got, err)
	}
}

// TestImportErrors: usage errors exit 2, unusable sources 1.
func TestImportErrors(t *testing.T) {
	t.Parallel()
	jm := t.TempDir()
	k := fakeHSDir(t, filepath.Join(jm, "hidserv"))
	noHS := filepath.Join(t.TempDir(), "joinmarket.cfg")
	cfg := referenceCfg(t, jm, filepath.Join(jm, "hidserv"), k.Onion())
	b, _ := os.ReadFile(cfg)
	if err := os.WriteFile(noHS, bytes.Replace(b, []byte("hidden_service_dir = "+filepath.Join(jm, "hidserv")), []byte("hidden_service_dir ="), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	tn4 := filepath.Join(t.TempDir(), "joinmarket.cfg")
	if err := os.WriteFile(tn4, bytes.Replace(b, []byte("network = mainnet"), []byte("network = testnet4"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	irc := filepath.Join(t.TempDir(), "joinmarket.cfg")
	if err := os.WriteFile(irc, []byte("[BLOCKCHAIN]\nnetwork = mainnet\n[MESSAGING:hackint]\nhost = irc.hackint.org\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(t.TempDir(), "data")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"import"}, 2, "missing SOURCE"},
		{[]string{"import", cfg, "--tor-mode", "bogus"}, 2, "--tor-mode"},
		{[]string{"import", cfg, "--bogus"}, 2, "flag provided but not defined"},
		{[]string{"import", filepath.Join(jm, "nonexistent")}, 1, "no such file"},
		{[]string{"import", t.TempDir()}, 1, "neither a HiddenServiceDir"},
		{[]string{"import", noHS}, 1, "has no hidden_service_dir"},
		{[]string{"import", tn4}, 1, "not testnet4"},
		{[]string{"import", irc}, 1, "no [MESSAGING:…] section with type = onion"},
	} {
		args := append(tc.args, "--data-dir", data)
		if tc.args[len(tc.args)-1] == "import" {
			args = []string{"import", "--data-dir", data}
		}
		code, _, errs := ctl(environ(t), args...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", tc.args, code, errs, tc.code, tc.want)
		}
	}
	if _, err := os.Stat(data); !errors.Is(err, fs.ErrNotExist) {
		t.Error("a failed import wrote something")
	}

	// -h prints the help and exits 0.
	if code, out, _ := ctl(environ(t), "import", "-h"); code != 0 || !strings.Contains(out, "Usage: jm-directory-ctl import SOURCE") {
		t.Errorf("-h: exit %d, %q", code, out)
	}
}

// TestImportJSON: --json prints the result as one JSON object, also on failure.
func TestImportJSON(t *testing.T) {
	t.Parallel()
	hs := filepath.Join(t.TempDir(), "hs")
	k := fakeHSDir(t, hs)
	data := filepath.Join(t.TempDir(), "data")
	code, out, errs := ctl(environ(t), "import", hs, "--data-dir", data, "--json", "--dry-run")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	var r importJSON
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if len(r.Notes) != 1 || !strings.Contains(r.Notes[0], "the server's default applies: regtest") {
		t.Errorf("notes %q: want the one about the network", r.Notes)
	}
	if !r.OK || !r.DryRun || r.Onion != k.Onion()+".onion" || r.KeyState != "would be written" || len(r.Mapped) != 1 || r.Mapped[0].Key != "tor_mode" ||
		len(r.Sources) != 1 || r.Sources[0].Path != hs || !strings.Contains(out, `"path": "`+hs+`"`) {
		t.Errorf("%+v", r)
	}
	other, _ := onionkey.Generate()
	if err := onionkey.WriteSecretFile(filepath.Join(data, "onion", onionkey.SecretFileName), other); err != nil {
		t.Fatal(err)
	}
	code, out, _ = ctl(environ(t), "import", hs, "--data-dir", data, "--json")
	if err := json.Unmarshal([]byte(out), &r); err != nil || code != 1 || r.OK || !strings.Contains(r.Error, "different key") {
		t.Errorf("exit %d, %v, %+v", code, err, r)
	}
}

// TestParseINI: the parts of ConfigParser's format a joinmarket.cfg uses.
func TestParseINI(t *testing.T) {
	secs, err := parseINI([]byte("# comment\n[A]\nKey = v1\nother: two words \n  continued\n; c\n[B]\nk=\n[A]\nkey = v2\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(secs) != 2 || secs[0].name != "A" || secs[1].name != "B" {
		t.Fatalf("sections %+v", secs)
	}
	if v, _ := secs[0].get("key"); v != "v2" {
		t.Errorf("key = %q, want the later v2", v)
	}
	if v, _ := secs[0].get("other"); v != "two words\ncontinued" {
		t.Errorf("other = %q", v)
	}
	if v, ok := secs[1].get("k"); !ok || v != "" {
		t.Errorf("k = %q, %v", v, ok)
	}
	for _, bad := range []string{"key = v\n", "[A]\njust words\n"} {
		if _, err := parseINI([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestImportNGInPlace: joinmarket-ng's data dir is this server's default data dir too;
// importing it into itself leaves its config.toml alone.
func TestImportNGInPlace(t *testing.T) {
	t.Parallel()
	ng := ngDataDir(t, "")
	before, _ := os.ReadFile(filepath.Join(ng, "config.toml"))
	hs := filepath.Join(t.TempDir(), "hs")
	k := fakeHSDir(t, hs)
	code, out, errs := ctl(environ(t, "DATA_DIR", ng), "import", ng, hs)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	wantLines(t, out, "config.toml.imported ("+filepath.Join(ng, "config.toml")+" is the imported file itself: left as it is")
	if after, _ := os.ReadFile(filepath.Join(ng, "config.toml")); !bytes.Equal(before, after) {
		t.Error("the source config.toml was changed")
	}
	if got, err := onionkey.Load(filepath.Join(ng, "onion", onionkey.SecretFileName)); err != nil || !got.Equal(k) {
		t.Fatalf("key: %v %v", got, err)
	}
}

// TestImportTorModeNone: a source that says tor_mode = "none" keeps it, with a note that
// the onion is then not published.
func TestImportTorModeNone(t *testing.T) {
	t.Parallel()
	ng := ngDataDir(t, "[directory_server]\ntor_mode = \"none\"\n")
	hs := filepath.Join(t.TempDir(), "hs")
	fakeHSDir(t, hs)
	code, out, errs := ctl(environ(t), "import", ng, hs, "--data-dir", filepath.Join(t.TempDir(), "d"), "--dry-run")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	wantLines(t, out, `tor_mode = "none"`, "Note: tor_mode is none (from tor_mode (config.toml)): the onion is not published")
	code, out, _ = ctl(environ(t), "import", ng, hs, "--data-dir", filepath.Join(t.TempDir(), "d"), "--dry-run", "--tor-mode", "launch")
	if code != 0 {
		t.Fatalf("--tor-mode launch: exit %d", code)
	}
	wantLines(t, out, `tor_mode = "launch"  ← --tor-mode`, `tor_mode = "none" from tor_mode (config.toml): overridden by --tor-mode launch`)
}

// TestImportNetworkFlag: --network for a HiddenServiceDir alone; it conflicts with a
// source that names another network.
func TestImportNetworkFlag(t *testing.T) {
	t.Parallel()
	hs := filepath.Join(t.TempDir(), "hs")
	k := fakeHSDir(t, hs)
	data := filepath.Join(t.TempDir(), "data")
	code, out, errs := ctl(environ(t), "import", hs, "--network", "Mainnet", "--data-dir", data)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	wantLines(t, out, `network = "mainnet"  ← --network`, "--network mainnet")
	if strings.Contains(out, "no source names the network") {
		t.Errorf("network note despite --network:\n%s", out)
	}
	cfg, got := loadImported(t, data)
	if cfg.Network != "mainnet" || !got.Equal(k) {
		t.Errorf("network %q, key %v", cfg.Network, got)
	}
	code, _, errs = ctl(environ(t), "import", ngDataDir(t, ""), hs, "--network", "mainnet", "--data-dir", filepath.Join(t.TempDir(), "d"))
	if code != 1 || !strings.Contains(errs, `network: "mainnet" from --network conflicts with "signet" from network_config.network`) {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	code, _, errs = ctl(environ(t), "import", hs, "--network", "bitcoin", "--data-dir", filepath.Join(t.TempDir(), "d"))
	if code != 1 || !strings.Contains(errs, "not valid for this server") {
		t.Fatalf("--network bitcoin: exit %d, stderr %q", code, errs)
	}
}

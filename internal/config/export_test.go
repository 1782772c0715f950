package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// TestFileSettings: every setting but data_dir, in table order, with its aliases and
// secrecy.
func TestFileSettings(t *testing.T) {
	fs := FileSettings()
	byKey := map[string]FileSetting{}
	var keys []string
	for _, s := range fs {
		byKey[s.Key] = s
		keys = append(keys, s.Key)
		if len(s.Names) == 0 || s.Names[0] != (FileKey{FileSection, s.Key}) {
			t.Errorf("%s: first name %v, want [directory_server] %s", s.Key, s.Names, s.Key)
		}
	}
	if _, ok := byKey["data_dir"]; ok {
		t.Error("data_dir listed: it locates the file, the file cannot set it")
	}
	if len(fs) != len(settingsTable())-1 {
		t.Errorf("%d file settings, %d settings", len(fs), len(settingsTable()))
	}
	if got := byKey["network"].Names; !slices.Equal(got, []FileKey{{"directory_server", "network"}, {"network_config", "network"}}) {
		t.Errorf("network names %v", got)
	}
	if got := byKey["log_level"].Names; len(got) != 2 || got[1].String() != "logging.level" {
		t.Errorf("log_level names %v", got)
	}
	if !byKey["ops_token"].Secret || !byKey["tor_control_password"].Secret || byKey["motd"].Secret {
		t.Error("secrecy not carried over")
	}
	if keys[0] != "network" {
		t.Errorf("first key %q, want network (table order)", keys[0])
	}
}

// TestEncodeFileRoundTrip: what EncodeFile writes, LoadFile reads back to the same
// values, and a TOML decoder to the same raw values.
func TestEncodeFileRoundTrip(t *testing.T) {
	motd := "Greetings from \"Directory\" Node \\ ünïcode ✓"
	values := []FileValue{
		{"network", "signet"},
		{"port", int64(5223)},
		{"motd", motd},
		{"message_rate_limit", float64(250)}, // integral: written 250.0
		{"message_byte_rate", 1234.5},
		{"heartbeat_idle_threshold", int64(700)},
		{"handshake_timeout", 0.5},
		{"status_hide_nicks", true},
		{"max_peers", 42},
		{"tor_mode", "launch"},
		{"log_level", "debug"},
	}
	data, err := EncodeFile([]string{"written by a test", "second line"}, values)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), "# written by a test\n# second line\n\n[directory_server]\nnetwork = \"signet\"\n") {
		t.Errorf("unexpected layout:\n%s", data)
	}
	if !strings.Contains(string(data), "message_rate_limit = 250.0\n") {
		t.Errorf("an integral float must keep a decimal point:\n%s", data)
	}
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadFile(path)
	if err != nil {
		t.Fatalf("LoadFile: %v\n%s", err, data)
	}
	if c.Network != "signet" || c.Port != 5223 || c.MOTD != motd || c.MessageRateLimit != 250 ||
		c.MessageByteRate != 1234.5 || c.HeartbeatIdleThreshold != 700*time.Second ||
		c.HandshakeTimeout != 500*time.Millisecond || !c.HideNicks || c.MaxPeers != 42 ||
		c.TorMode != "launch" || c.LogLevel != "DEBUG" {
		t.Errorf("values changed in the round trip: %+v", c)
	}
	if c.Source("port") != SourceTOML || c.ConfigFile() != path {
		t.Errorf("port from %q, file %q", c.Source("port"), c.ConfigFile())
	}

	var raw map[string]map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		t.Fatal(err)
	}
	if raw[FileSection]["message_rate_limit"] != float64(250) || raw[FileSection]["port"] != int64(5223) {
		t.Errorf("raw types changed: %#v", raw[FileSection])
	}
}

// TestEncodeValueStrings: control characters, quotes and backslashes survive a TOML
// decoder; bad input is refused.
func TestEncodeValueStrings(t *testing.T) {
	for _, s := range []string{"", "plain", `a"b`, `back\slash`, "tab\there", "nl\nx", "bell\a\x7f", "€ and 𝄞"} {
		text, err := EncodeValue(s)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		var m map[string]string
		if _, err := toml.Decode("v = "+text, &m); err != nil {
			t.Fatalf("%q encoded as %s: %v", s, text, err)
		}
		if m["v"] != s {
			t.Errorf("%q came back as %q (encoded %s)", s, m["v"], text)
		}
	}
	if _, err := EncodeValue("\xff"); err == nil {
		t.Error("invalid UTF-8 accepted")
	}
	if _, err := EncodeValue([]string{"x"}); err == nil {
		t.Error("an array accepted")
	}
	if _, err := EncodeFile(nil, []FileValue{{"bad key", "x"}}); err == nil {
		t.Error("a key with a space accepted")
	}
}

// TestLoadFileInvalid: LoadFile validates and names the key as written.
func TestLoadFileInvalid(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte("[directory_server]\nport = 70000\nnick_auth = true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadFile(path)
	if err == nil || !strings.Contains(err.Error(), "port=70000 (config.toml)") {
		t.Fatalf("LoadFile: %v", err)
	}
	if err := os.WriteFile(path, []byte("[directory_server]\nport = 7000\nnick_auth = true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.IgnoredKeys(); !slices.Equal(got, []string{"directory_server.nick_auth"}) {
		t.Errorf("IgnoredKeys = %q", got)
	}
}

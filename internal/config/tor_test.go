package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTorSettings(t *testing.T) {
	f := newFixture(t)
	c := mustLoad(t, f.opts(nil))
	if c.TorMode != "none" || c.TorControlPort != 9051 || c.OnionVirtualPort != 5222 || !c.TorPoW {
		t.Fatalf("defaults: %+v", c)
	}
	if want := filepath.Join(f.dataDir, "onion", "hs_ed25519_secret_key"); c.OnionKeyPath() != want {
		t.Fatalf("OnionKeyPath = %q, want %q", c.OnionKeyPath(), want)
	}
	c = mustLoad(t, f.opts([]string{"--tor", "Launch", "--tor-pow=false"}, "TOR_CONTROL_PASSWORD=hunter2hunter2"))
	if c.TorMode != "launch" || c.TorPoW || c.TorControlPassword != "hunter2hunter2" {
		t.Fatalf("--tor launch: %+v", c)
	}
	if d := c.Describe(); strings.Contains(d, "hunter2") || !strings.Contains(d, "tor_mode") {
		t.Fatalf("Describe leaks the password or lacks tor_mode:\n%s", d)
	}
	for _, tc := range []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"--tor", "socks"}, nil, "accepted values are none, control, launch, external"},
		{[]string{"--tor", "external"}, nil, "needs tor_hidden_service_dir"},
		{nil, []string{"TOR_MODE=control", "LOCATION=abc.onion:5222"}, "unset location"},
		{[]string{"--tor-control-port", "0"}, nil, "1..65535"},
		{nil, []string{"TOR_CONTROL_PASSWORD=a\nb"}, "(redacted)"},
		{[]string{"--tor", "control", "--tor-proxy-protocol"}, nil, "ADD_ONION, which cannot export circuit IDs"},
		{nil, []string{"CIRCUIT_MAX_CONNECTIONS=0"}, "CIRCUIT_MAX_CONNECTIONS=0 (environment): accepted values are integers >= 1"},
		{nil, []string{"CIRCUIT_MAX_PENDING=0"}, "CIRCUIT_MAX_PENDING=0 (environment)"},
		{nil, []string{"CIRCUIT_BAN_AFTER=-1"}, "0 = never ban"},
		{nil, []string{"CIRCUIT_BAN_DURATION=0"}, "CIRCUIT_BAN_DURATION=0 (environment): accepted values are durations > 0"},
	} {
		_, err := Load(f.opts(tc.args, tc.env...))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: error %v, want it to contain %q", tc.args, tc.env, err, tc.want)
		}
	}
	c = mustLoad(t, f.opts([]string{"--tor", "external", "--tor-hidden-service-dir", "/var/lib/tor/jm"}))
	if c.TorHiddenServiceDir != "/var/lib/tor/jm" {
		t.Fatalf("hidden service dir %q", c.TorHiddenServiceDir)
	}
	c = mustLoad(t, f.opts([]string{"--tor", "external", "--tor-hidden-service-dir", "/var/lib/tor/jm"},
		"TOR_PROXY_PROTOCOL=yes", "CIRCUIT_MAX_CONNECTIONS=3", "CIRCUIT_MAX_PENDING=2", "CIRCUIT_BAN_AFTER=0", "CIRCUIT_BAN_DURATION=90"))
	if !c.TorProxyProtocol || c.CircuitMaxConnections != 3 || c.CircuitMaxPending != 2 || c.CircuitBanAfter != 0 || c.CircuitBanDuration != 90*time.Second {
		t.Fatalf("circuit settings: %+v", c)
	}
	d := Default()
	if d.TorProxyProtocol || d.CircuitMaxConnections != 10 || d.CircuitMaxPending != 4 || d.CircuitBanAfter != 3 || d.CircuitBanDuration != 10*time.Minute {
		t.Fatalf("circuit defaults: %+v", d)
	}
	// Without tor (tor_mode none) the header may come from any proxy in front; launch
	// publishes from a torrc HiddenServiceDir that exports circuit IDs.
	for _, mode := range []string{"none", "launch"} {
		if c := mustLoad(t, f.opts([]string{"--tor", mode}, "TOR_PROXY_PROTOCOL=true")); !c.TorProxyProtocol {
			t.Fatalf("tor_proxy_protocol refused with tor_mode %s", mode)
		}
	}
}

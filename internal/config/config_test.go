package config

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestDefault(t *testing.T) {
	c := Default()
	checks := []struct {
		name      string
		got, want any
	}{
		{"DataDir", c.DataDir, ""},
		{"Network", c.Network, "regtest"},
		{"Host", c.Host, "127.0.0.1"},
		{"Port", c.Port, 5222},
		{"Location", c.Location, ""},
		{"MOTD", c.MOTD, "JoinMarket directory node (Go)"},
		{"MaxPeers", c.MaxPeers, 10000},
		{"MaxPendingHandshakes", c.MaxPendingHandshakes, 2048},
		{"MaxLineLength", c.MaxLineLength, 40000},
		{"MessageRateLimit", c.MessageRateLimit, 500.0},
		{"MessageBurstLimit", c.MessageBurstLimit, 1000},
		{"RateLimitDisconnectThreshold", c.RateLimitDisconnectThreshold, 100},
		{"GetPeerlistPerMinute", c.GetPeerlistPerMinute, 3},
		{"OrderbookPerMinute", c.OrderbookPerMinute, 3},
		{"SpoofDisconnectThreshold", c.SpoofDisconnectThreshold, 3},
		{"HandshakeTimeout", c.HandshakeTimeout, 30 * time.Second},
		{"NickCheckTimeout", c.NickCheckTimeout, 20 * time.Second},
		{"OutboundQueueBytes", c.OutboundQueueBytes, 8388608},
		{"WriteTimeout", c.WriteTimeout, 30 * time.Second},
		{"HeartbeatSweepInterval", c.HeartbeatSweepInterval, 60 * time.Second},
		{"HeartbeatIdleThreshold", c.HeartbeatIdleThreshold, 600 * time.Second},
		{"HeartbeatHardEvict", c.HeartbeatHardEvict, 1500 * time.Second},
		{"HeartbeatPongWait", c.HeartbeatPongWait, 30 * time.Second},
		{"HealthCheckHost", c.HealthCheckHost, "127.0.0.1"},
		{"HealthCheckPort", c.HealthCheckPort, 8080},
		{"OpsToken", c.OpsToken, ""},
		{"HideNicks", c.HideNicks, false},
		{"Pprof", c.Pprof, false},
		{"HealthAddr", c.HealthAddr(), "127.0.0.1:8080"},
		{"LogLevel", c.LogLevel, "INFO"},
		{"LogFormat", c.LogFormat, "text"},
		{"CheckConfig", c.CheckConfig, false},
		{"ShowVersion", c.ShowVersion, false},
		{"ListenAddr", c.ListenAddr(), "127.0.0.1:5222"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		want   string // exact error; "" = valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"port 0", func(c *Config) { c.Port = 0 }, ""},
		{"port max", func(c *Config) { c.Port = 65535 }, ""},
		{"port too big", func(c *Config) { c.Port = 70000 }, "port=70000: accepted values are integers 0..65535"},
		{"port negative", func(c *Config) { c.Port = -1 }, "port=-1: accepted values are integers 0..65535"},
		{"network", func(c *Config) { c.Network = "foo" }, `network="foo": accepted values are mainnet, testnet, signet, regtest`},
		{"network mainnet", func(c *Config) { c.Network = "mainnet" }, ""},
		{"host empty", func(c *Config) { c.Host = "" }, `host="": accepted values are an IP address or host name without port (0.0.0.0 = all interfaces)`},
		{"host with port", func(c *Config) { c.Host = "127.0.0.1:80" }, `host="127.0.0.1:80": accepted values are an IP address or host name without port (0.0.0.0 = all interfaces)`},
		{"host ipv6", func(c *Config) { c.Host = "::1" }, ""},
		{"host name", func(c *Config) { c.Host = "localhost" }, ""},
		{"location onion", func(c *Config) { c.Location = "abcdefghijklmnop.onion:5222" }, ""},
		{"location no port", func(c *Config) { c.Location = "abc.onion" }, `location="abc.onion": accepted values are "" (derive at runtime) or host:port (e.g. xyz.onion:5222) with port 1..65535`},
		{"location port 0", func(c *Config) { c.Location = "abc.onion:0" }, `location="abc.onion:0": accepted values are "" (derive at runtime) or host:port (e.g. xyz.onion:5222) with port 1..65535`},
		{"location separator", func(c *Config) { c.Location = "a;b:1" }, `location="a;b:1": accepted values are "" (derive at runtime) or host:port (e.g. xyz.onion:5222) with port 1..65535`},
		{"motd newline", func(c *Config) { c.MOTD = "a\nb" }, `motd="a\nb": accepted values are single-line text without control characters`},
		{"motd empty", func(c *Config) { c.MOTD = "" }, ""},
		{"max peers 0", func(c *Config) { c.MaxPeers = 0 }, "max_peers=0: accepted values are integers >= 1"},
		{"pending 0", func(c *Config) { c.MaxPendingHandshakes = 0 }, "max_pending_handshakes=0: accepted values are integers >= 1"},
		{"line short", func(c *Config) { c.MaxLineLength = 1023 }, "max_line_length=1023: accepted values are integers 1024..2097152"},
		{"line long", func(c *Config) { c.MaxLineLength = 2097153 }, "max_line_length=2097153: accepted values are integers 1024..2097152"},
		{"line edges", func(c *Config) { c.MaxLineLength = 2097152 }, ""},
		{"rate 0", func(c *Config) { c.MessageRateLimit = 0 }, "message_rate_limit=0: accepted values are numbers > 0"},
		{"rate small", func(c *Config) { c.MessageRateLimit = 0.1 }, ""},
		{"burst 0", func(c *Config) { c.MessageBurstLimit = 0 }, "message_burst_limit=0: accepted values are integers >= 1"},
		{"disconnect 0 ok", func(c *Config) { c.RateLimitDisconnectThreshold = 0 }, ""},
		{"disconnect negative", func(c *Config) { c.RateLimitDisconnectThreshold = -1 }, "rate_limit_disconnect_threshold=-1: accepted values are integers >= 0 (0 = never disconnect)"},
		{"getpeerlist 0", func(c *Config) { c.GetPeerlistPerMinute = 0 }, "getpeerlist_per_minute=0: accepted values are integers >= 1"},
		{"orderbook 0", func(c *Config) { c.OrderbookPerMinute = 0 }, "orderbook_per_minute=0: accepted values are integers >= 1"},
		{"spoof 0", func(c *Config) { c.SpoofDisconnectThreshold = 0 }, "spoof_disconnect_threshold=0: accepted values are integers >= 1"},
		{"handshake 0", func(c *Config) { c.HandshakeTimeout = 0 }, "handshake_timeout=0s: accepted values are durations > 0: seconds (30, 0.5) or Go durations (1m30s)"},
		{"nick check 60s", func(c *Config) { c.NickCheckTimeout = time.Minute }, ""},
		{"nick auth 30s", func(c *Config) { c.NickAuthTimeout = 30 * time.Second }, ""},
		{"nick auth 31s", func(c *Config) { c.NickAuthTimeout = 31 * time.Second }, "nick_auth_timeout=31s: accepted values are durations > 0 and <= 30s: seconds (30, 0.5) or Go durations (1m30s)"},
		{"nick auth mode", func(c *Config) { c.NickAuthMode = "strict" }, `nick_auth_mode="strict": accepted values are disabled, prefer_verified, require_verified`},
		{"directory-id", func(c *Config) { c.NickAuthDirectoryID = "Upper:5222" }, `nick_auth_directory_id="Upper:5222": accepted values are "" or [a-z0-9][a-z0-9.:_-]*`},
		{"nick check 61s", func(c *Config) { c.NickCheckTimeout = 61 * time.Second }, "nick_check_timeout=61s: accepted values are durations > 0 and <= 60s: seconds (30, 0.5) or Go durations (1m30s)"},
		{"queue small", func(c *Config) { c.OutboundQueueBytes = 65535 }, "outbound_queue_bytes=65535: accepted values are integers >= 65536"},
		{"write negative", func(c *Config) { c.WriteTimeout = -time.Second }, "write_timeout=-1s: accepted values are durations > 0: seconds (30, 0.5) or Go durations (1m30s)"},
		{"sweep 0", func(c *Config) { c.HeartbeatSweepInterval = 0 }, "heartbeat_sweep_interval=0s: accepted values are durations > 0: seconds (30, 0.5) or Go durations (1m30s)"},
		{"idle 0", func(c *Config) { c.HeartbeatIdleThreshold = 0 }, "heartbeat_idle_threshold=0s: accepted values are durations > 0: seconds (30, 0.5) or Go durations (1m30s)"},
		{"pong 0", func(c *Config) { c.HeartbeatPongWait = 0 }, "heartbeat_pong_wait=0s: accepted values are durations > 0: seconds (30, 0.5) or Go durations (1m30s)"},
		{"hard < idle", func(c *Config) { c.HeartbeatHardEvict = 100 * time.Second }, "heartbeat_hard_evict=100s: must be >= heartbeat_idle_threshold (600s)"},
		{"hard == idle", func(c *Config) { c.HeartbeatHardEvict = c.HeartbeatIdleThreshold }, ""},
		{"health host empty", func(c *Config) { c.HealthCheckHost = "" }, `health_check_host="": accepted values are an IP address or host name without port (0.0.0.0 = all interfaces)`},
		{"health host with port", func(c *Config) { c.HealthCheckHost = "0.0.0.0:8080" }, `health_check_host="0.0.0.0:8080": accepted values are an IP address or host name without port (0.0.0.0 = all interfaces)`},
		{"health host ipv6", func(c *Config) { c.HealthCheckHost = "::" }, ""},
		{"health port 0", func(c *Config) { c.HealthCheckPort = 0 }, ""},
		{"health port too big", func(c *Config) { c.HealthCheckPort = 65536 }, "health_check_port=65536: accepted values are integers 0..65535"},
		{"health port negative", func(c *Config) { c.HealthCheckPort = -1 }, "health_check_port=-1: accepted values are integers 0..65535"},
		{"ops token 16", func(c *Config) { c.OpsToken = strings.Repeat("a", 16) }, ""},
		{"ops token 256", func(c *Config) { c.OpsToken = strings.Repeat("~", 256) }, ""},
		{"ops token short", func(c *Config) { c.OpsToken = strings.Repeat("a", 15) }, opsTokenErr("ops_token=(redacted)")},
		{"ops token long", func(c *Config) { c.OpsToken = strings.Repeat("a", 257) }, opsTokenErr("ops_token=(redacted)")},
		{"ops token space", func(c *Config) { c.OpsToken = "secret token with spaces" }, opsTokenErr("ops_token=(redacted)")},
		{"ops token non-ascii", func(c *Config) { c.OpsToken = "sécret-token-0123456" }, opsTokenErr("ops_token=(redacted)")},
		{"ops token tab", func(c *Config) { c.OpsToken = "secret-token\t0123456" }, opsTokenErr("ops_token=(redacted)")},
		{"bools", func(c *Config) { c.HideNicks, c.Pprof = true, true }, ""},
		{"log level", func(c *Config) { c.LogLevel = "VERBOSE" }, `log_level="VERBOSE": accepted values are DEBUG, INFO, WARNING, ERROR (any case; aliases TRACE, WARN, SUCCESS, CRITICAL)`},
		{"log format", func(c *Config) { c.LogFormat = "xml" }, `log_format="xml": accepted values are text, json`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.modify(&c)
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("Validate() = %q\nwant         %q", err, tt.want)
			}
		})
	}
}

// opsTokenErr is the error for an invalid ops_token labelled lbl.
func opsTokenErr(lbl string) string {
	return lbl + `: accepted values are "" (generate one into the data dir) or 16..256 printable ASCII characters without spaces`
}

func TestSlogLevel(t *testing.T) {
	tests := []struct {
		level string
		want  slog.Level
	}{
		{"DEBUG", slog.LevelDebug},
		{"INFO", slog.LevelInfo},
		{"WARNING", slog.LevelWarn},
		{"ERROR", slog.LevelError},
		{"trace", slog.LevelDebug},
		{"warn", slog.LevelWarn},
		{"", slog.LevelInfo},
	}
	for _, tt := range tests {
		c := Default()
		c.LogLevel = tt.level
		if got := c.SlogLevel(); got != tt.want {
			t.Errorf("LogLevel %q: SlogLevel() = %v, want %v", tt.level, got, tt.want)
		}
	}
}

func TestListenAddr(t *testing.T) {
	tests := []struct {
		host string
		port int
		want string
	}{
		{"127.0.0.1", 5222, "127.0.0.1:5222"},
		{"0.0.0.0", 0, "0.0.0.0:0"},
		{"::1", 5222, "[::1]:5222"},
	}
	for _, tt := range tests {
		c := Default()
		c.Host, c.Port = tt.host, tt.port
		if got := c.ListenAddr(); got != tt.want {
			t.Errorf("ListenAddr(%q, %d) = %q, want %q", tt.host, tt.port, got, tt.want)
		}
		c = Default()
		c.HealthCheckHost, c.HealthCheckPort = tt.host, tt.port
		if got := c.HealthAddr(); got != tt.want {
			t.Errorf("HealthAddr(%q, %d) = %q, want %q", tt.host, tt.port, got, tt.want)
		}
	}
}

func TestDescribeWithoutLoad(t *testing.T) {
	c := Default()
	c.Port = 7000
	d := c.Describe()
	for _, want := range []string{
		"port = 7000  (set in code)\n",
		`network = "regtest"  (default)` + "\n",
		"heartbeat_hard_evict = 1500s  (default)\n",
		"message_rate_limit = 500  (default)\n",
		`health_check_host = "127.0.0.1"  (default)` + "\n",
		"health_check_port = 8080  (default)\n",
		`ops_token = ""  (default)` + "\n",
		"status_hide_nicks = false  (default)\n",
		"pprof = false  (default)\n",
	} {
		if !strings.Contains(d, want) {
			t.Errorf("Describe() lacks %q:\n%s", want, d)
		}
	}
	if got := len(strings.Split(strings.TrimSpace(d), "\n")); got != len(settingsTable()) {
		t.Errorf("Describe() has %d lines, want one per setting (%d):\n%s", got, len(settingsTable()), d)
	}
	if c.Source("port") != SourceCode || c.Source("host") != SourceDefault || c.Source("nope") != "" {
		t.Errorf("Source: port=%q host=%q nope=%q", c.Source("port"), c.Source("host"), c.Source("nope"))
	}
}

func TestSettingsTableConsistent(t *testing.T) {
	seenKey := map[string]bool{}
	seenFlag := map[string]bool{}
	var c Config
	for _, s := range settingsTable() {
		if seenKey[s.key] || seenFlag[s.flag] {
			t.Errorf("duplicate key or flag %q/%q", s.key, s.flag)
		}
		seenKey[s.key], seenFlag[s.flag] = true, true
		if s.help == "" || s.accepted == "" || len(s.env) == 0 {
			t.Errorf("%s: missing help, accepted text or env names", s.key)
		}
		// The field pointer must match the kind.
		p := s.field(&c)
		var ok bool
		switch s.kind {
		case kindString:
			_, ok = p.(*string)
		case kindInt:
			_, ok = p.(*int)
		case kindFloat:
			_, ok = p.(*float64)
		case kindDuration:
			_, ok = p.(*time.Duration)
		case kindBool:
			_, ok = p.(*bool)
		}
		if !ok {
			t.Errorf("%s: field type %T does not match kind %v", s.key, p, s.kind)
		}
	}
	if settingsTable()[0].key != keyDataDir {
		t.Errorf("data_dir must come first; Load resolves it before the rest")
	}
}

func TestDescribeSecretInCode(t *testing.T) {
	const token = "in-code-secret-0123456789"
	c := Default()
	c.OpsToken = token
	c.Pprof = true
	d := c.Describe()
	if strings.Contains(d, token) || strings.Contains(d, "in-code-secret") {
		t.Errorf("Describe() prints the ops token:\n%s", d)
	}
	for _, want := range []string{"ops_token = (set)  (set in code)\n", "pprof = true  (set in code)\n"} {
		if !strings.Contains(d, want) {
			t.Errorf("Describe() lacks %q:\n%s", want, d)
		}
	}
	c.OpsToken = token + " x"
	if err := c.Validate(); err == nil || strings.Contains(err.Error(), "in-code-secret") || err.Error() != opsTokenErr("ops_token=(redacted)") {
		t.Errorf("Validate() = %v, want redacted ops_token error", err)
	}
}

func TestDiff(t *testing.T) {
	const tokA, tokB = "first-secret-token-aaaa", "second-secret-token-bbbb"
	tests := []struct {
		name   string
		modify func(*Config)
		want   []Change
	}{
		{"identical", func(*Config) {}, nil},
		{"motd", func(c *Config) { c.MOTD = "new motd" },
			[]Change{{"motd", `"JoinMarket directory node (Go)"`, `"new motd"`}}},
		{"max_peers and heartbeat in table order", func(c *Config) {
			c.HeartbeatIdleThreshold = 700 * time.Second
			c.MaxPeers = 5
			c.HeartbeatPongWait = 1500 * time.Millisecond
		}, []Change{
			{"max_peers", "10000", "5"},
			{"heartbeat_idle_threshold", "600s", "700s"},
			{"heartbeat_pong_wait", "30s", "1.5s"},
		}},
		{"health and bools", func(c *Config) {
			c.HealthCheckPort = 0
			c.HideNicks = true
			c.Pprof = true
		}, []Change{
			{"health_check_port", "8080", "0"},
			{"status_hide_nicks", "false", "true"},
			{"pprof", "false", "true"},
		}},
		{"ops token set", func(c *Config) { c.OpsToken = tokA },
			[]Change{{"ops_token", "(changed)", "(changed)"}}},
		{"message rate", func(c *Config) { c.MessageRateLimit = 12.5 },
			[]Change{{"message_rate_limit", "500", "12.5"}}},
		{"not settings", func(c *Config) { c.CheckConfig, c.ShowVersion = true, true }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := Default()
			after := Default()
			tt.modify(&after)
			got := Diff(before, after)
			if len(got) != len(tt.want) {
				t.Fatalf("Diff = %+v, want %+v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("Diff[%d] = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
	// Changing one token to another shows neither.
	a, b := Default(), Default()
	a.OpsToken, b.OpsToken = tokA, tokB
	got := Diff(a, b)
	if len(got) != 1 || got[0] != (Change{"ops_token", "(changed)", "(changed)"}) {
		t.Errorf("Diff(token A, token B) = %+v", got)
	}
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", []Change{{"ops_token", "(changed)", "(changed)"}}) ||
		strings.Contains(fmt.Sprint(got), "secret") {
		t.Errorf("Diff leaks the token: %+v", got)
	}
	if got := Diff(a, a); got != nil {
		t.Errorf("Diff(a, a) = %+v, want nil", got)
	}
}

// TestClearnetRail: a real network served without tor on an address other than loopback
// needs allow_clearnet; regtest, loopback and any tor mode do not.
func TestClearnetRail(t *testing.T) {
	for _, tc := range []struct {
		network, host, tor string
		allow, ok          bool
	}{
		{"mainnet", "0.0.0.0", "none", false, false},
		{"testnet", "192.0.2.7", "none", false, false},
		{"signet", "dir.example", "none", false, false},
		{"mainnet", "0.0.0.0", "none", true, true},
		{"mainnet", "127.0.0.1", "none", false, true},
		{"mainnet", "::1", "none", false, true},
		{"mainnet", "localhost", "none", false, true},
		{"regtest", "0.0.0.0", "none", false, true},
		{"mainnet", "0.0.0.0", "launch", false, true},
	} {
		c := Default()
		c.Network, c.Host, c.TorMode, c.AllowClearnet = tc.network, tc.host, tc.tor, tc.allow
		err := c.Validate()
		if tc.ok != (err == nil) || (err != nil && !strings.Contains(err.Error(), "allow_clearnet")) {
			t.Errorf("%+v: %v", tc, err)
		}
	}
}

package config

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fixture is a temporary home and work dir; the default data dir is
// <home>/.joinmarket-ng.
type fixture struct {
	home, work, dataDir string
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	home := t.TempDir()
	return fixture{home: home, work: t.TempDir(), dataDir: filepath.Join(home, ".joinmarket-ng")}
}

func (f fixture) opts(args []string, environ ...string) Options {
	return Options{Args: args, Environ: environ, WorkDir: f.work, HomeDir: f.home}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (f fixture) writeTOML(t *testing.T, content string) {
	t.Helper()
	writeFile(t, filepath.Join(f.dataDir, "config.toml"), content)
}

func (f fixture) writeDotEnv(t *testing.T, content string) {
	t.Helper()
	writeFile(t, filepath.Join(f.work, ".env"), content)
}

func mustLoad(t *testing.T, opts Options) Config {
	t.Helper()
	c, err := Load(opts)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

func TestLoadDefaults(t *testing.T) {
	f := newFixture(t)
	c := mustLoad(t, Options{HomeDir: f.home})
	want := Default()
	want.DataDir = f.dataDir
	c.info, want.info = nil, nil
	if c != want {
		t.Errorf("Load with nothing set:\n got %+v\nwant %+v", c, want)
	}
	if c.Network != "regtest" || c.ListenAddr() != "127.0.0.1:5222" || c.DataDir != f.dataDir {
		t.Errorf("network %q, listen %q, data dir %q", c.Network, c.ListenAddr(), c.DataDir)
	}
	if _, err := os.Stat(f.dataDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load created or touched the data dir: stat err = %v", err)
	}
	c = mustLoad(t, Options{HomeDir: f.home})
	for _, s := range settingsTable() {
		if got := c.Source(s.key); got != SourceDefault {
			t.Errorf("Source(%q) = %q, want default", s.key, got)
		}
	}
	if c.ConfigFile() != filepath.Join(f.dataDir, "config.toml") {
		t.Errorf("ConfigFile() = %q", c.ConfigFile())
	}
}

func TestLoadNoHome(t *testing.T) {
	if _, err := Load(Options{}); err == nil || !strings.Contains(err.Error(), "--data-dir") {
		t.Errorf("Load(Options{}) error = %v, want one telling to set --data-dir", err)
	}
	dir := t.TempDir()
	c := mustLoad(t, Options{Args: []string{"--data-dir", dir}})
	if c.DataDir != dir {
		t.Errorf("DataDir = %q, want %q", c.DataDir, dir)
	}
}

// TestPrecedence stacks the layers one by one (config.toml, .env,
// environment, flag) and checks that each new layer wins.
func TestPrecedence(t *testing.T) {
	type layerVals struct{ toml, dotenv, env, flag string }
	tests := []struct {
		key   string
		flag  string // flag name
		env   string // environment and .env name
		vals  layerVals
		get   func(Config) any
		wants [5]any // default, +toml, +.env, +environment, +flag
	}{
		{
			key: "port", flag: "--port", env: "PORT",
			vals:  layerVals{"1001", "1002", "1003", "1004"},
			get:   func(c Config) any { return c.Port },
			wants: [5]any{5222, 1001, 1002, 1003, 1004},
		},
		{
			key: "network", flag: "--network", env: "NETWORK",
			vals:  layerVals{`"testnet"`, "signet", "mainnet", "REGTEST"},
			get:   func(c Config) any { return c.Network },
			wants: [5]any{"regtest", "testnet", "signet", "mainnet", "regtest"},
		},
		{
			key: "heartbeat_pong_wait", flag: "--heartbeat-pong-wait", env: "HEARTBEAT_PONG_WAIT",
			vals:  layerVals{"31.0", "32", "33s", "1m"},
			get:   func(c Config) any { return c.HeartbeatPongWait },
			wants: [5]any{30 * time.Second, 31 * time.Second, 32 * time.Second, 33 * time.Second, time.Minute},
		},
		{
			key: "message_rate_limit", flag: "--message-rate-limit", env: "MESSAGE_RATE_LIMIT",
			vals:  layerVals{"10", "20.5", "30", "40"},
			get:   func(c Config) any { return c.MessageRateLimit },
			wants: [5]any{500.0, 10.0, 20.5, 30.0, 40.0},
		},
		{
			key: "motd", flag: "--motd", env: "MOTD",
			vals:  layerVals{`"from toml"`, "from dotenv", "from env", "from flag"},
			get:   func(c Config) any { return c.MOTD },
			wants: [5]any{"JoinMarket directory node (Go)", "from toml", "from dotenv", "from env", "from flag"},
		},
		{
			key: "nick_auth_mode", flag: "--nick-auth-mode", env: "NICK_AUTH_MODE",
			vals:  layerVals{`"disabled"`, "require_verified", " Prefer_Verified ", "disabled"},
			get:   func(c Config) any { return c.NickAuthMode },
			wants: [5]any{"prefer_verified", "disabled", "require_verified", "prefer_verified", "disabled"},
		},
		{
			key: "nick_auth_directory_id", flag: "--nick-auth-directory-id", env: "NICK_AUTH_DIRECTORY_ID",
			vals:  layerVals{`"test:a"`, "test:b", "test:c", "abc.onion:5222"},
			get:   func(c Config) any { return c.NickAuthDirectoryID },
			wants: [5]any{"", "test:a", "test:b", "test:c", "abc.onion:5222"},
		},
		{
			key: "nick_auth_timeout", flag: "--nick-auth-timeout", env: "NICK_AUTH_TIMEOUT",
			vals:  layerVals{"10", "20s", "0.5", "30"},
			get:   func(c Config) any { return c.NickAuthTimeout },
			wants: [5]any{30 * time.Second, 10 * time.Second, 20 * time.Second, 500 * time.Millisecond, 30 * time.Second},
		},
		{
			key: "health_check_host", flag: "--health-check-host", env: "HEALTH_CHECK_HOST",
			vals:  layerVals{`"10.0.0.1"`, "10.0.0.2", " 10.0.0.3 ", "::1"},
			get:   func(c Config) any { return c.HealthCheckHost },
			wants: [5]any{"127.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.3", "::1"},
		},
		{
			key: "health_check_port", flag: "--health-check-port", env: "HEALTH_CHECK_PORT",
			vals:  layerVals{"8001", "8002", "8003", "0"},
			get:   func(c Config) any { return c.HealthCheckPort },
			wants: [5]any{8080, 8001, 8002, 8003, 0},
		},
		{
			key: "ops_token", flag: "--ops-token", env: "OPS_TOKEN",
			vals:  layerVals{`"toml-token-0123456789"`, "dotenv-token-0123456789", "env-token-0123456789", "flag-token-0123456789"},
			get:   func(c Config) any { return c.OpsToken },
			wants: [5]any{"", "toml-token-0123456789", "dotenv-token-0123456789", "env-token-0123456789", "flag-token-0123456789"},
		},
		{
			key: "status_hide_nicks", flag: "--status-hide-nicks", env: "STATUS_HIDE_NICKS",
			vals:  layerVals{"true", "no", "ON", "0"},
			get:   func(c Config) any { return c.HideNicks },
			wants: [5]any{false, true, false, true, false},
		},
		{
			key: "pprof", flag: "--pprof", env: "PPROF",
			vals:  layerVals{`"yes"`, "False", "1", "false"},
			get:   func(c Config) any { return c.Pprof },
			wants: [5]any{false, true, false, true, false},
		},
		{
			key: "log_level", flag: "--log-level", env: "LOG_LEVEL",
			vals:  layerVals{`"warning"`, "error", "trace", "warn"},
			get:   func(c Config) any { return c.LogLevel },
			wants: [5]any{"INFO", "WARNING", "ERROR", "DEBUG", "WARNING"},
		},
	}
	sources := [5]string{SourceDefault, SourceTOML, SourceDotEnv, SourceEnv, SourceFlag}
	for _, tt := range tests {
		for n := 0; n <= 4; n++ {
			t.Run(tt.key+"/"+sources[n], func(t *testing.T) {
				f := newFixture(t)
				var args, environ []string
				if n >= 1 {
					f.writeTOML(t, "[directory_server]\n"+tt.key+" = "+tt.vals.toml+"\n")
				}
				if n >= 2 {
					f.writeDotEnv(t, tt.env+"="+`"`+tt.vals.dotenv+`"`+"\n")
				}
				if n >= 3 {
					environ = []string{tt.env + "=" + tt.vals.env}
				}
				if n >= 4 {
					args = []string{tt.flag + "=" + tt.vals.flag}
				}
				c := mustLoad(t, f.opts(args, environ...))
				if got := tt.get(c); got != tt.wants[n] {
					t.Errorf("value = %v, want %v", got, tt.wants[n])
				}
				if got := c.Source(tt.key); got != sources[n] {
					t.Errorf("Source(%q) = %q, want %q", tt.key, got, sources[n])
				}
			})
		}
	}
}

func TestDataDirResolution(t *testing.T) {
	tests := []struct {
		name    string
		flag    bool
		envDD   bool // DATA_DIR in the environment
		envJM   bool // JOINMARKET_DATA_DIR in the environment
		dotDD   bool // DATA_DIR in .env
		dotJM   bool // JOINMARKET_DATA_DIR in .env
		want    string
		wantSrc string
	}{
		{"default", false, false, false, false, false, "default", SourceDefault},
		{".env JOINMARKET_DATA_DIR", false, false, false, false, true, "dotjm", SourceDotEnv},
		{".env DATA_DIR beats JOINMARKET_DATA_DIR", false, false, false, true, true, "dotdd", SourceDotEnv},
		{"env JOINMARKET_DATA_DIR beats .env", false, false, true, true, true, "envjm", SourceEnv},
		{"env DATA_DIR beats JOINMARKET_DATA_DIR", false, true, true, true, true, "envdd", SourceEnv},
		{"flag beats all", true, true, true, true, true, "flag", SourceFlag},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			root := t.TempDir()
			dir := func(n string) string { return filepath.Join(root, n) }
			var args, environ []string
			var dot strings.Builder
			if tt.flag {
				args = []string{"--data-dir", dir("flag")}
			}
			if tt.envDD {
				environ = append(environ, "DATA_DIR="+dir("envdd"))
			}
			if tt.envJM {
				environ = append(environ, "JOINMARKET_DATA_DIR="+dir("envjm"))
			}
			if tt.dotDD {
				dot.WriteString("DATA_DIR=" + dir("dotdd") + "\n")
			}
			if tt.dotJM {
				dot.WriteString("JOINMARKET_DATA_DIR=" + dir("dotjm") + "\n")
			}
			f.writeDotEnv(t, dot.String())
			want := f.dataDir
			if tt.want != "default" {
				want = dir(tt.want)
			}
			// The config file is read from the resolved data dir.
			writeFile(t, filepath.Join(want, "config.toml"), "[directory_server]\nport = 4242\n")
			c := mustLoad(t, f.opts(args, environ...))
			if c.DataDir != want {
				t.Errorf("DataDir = %q, want %q", c.DataDir, want)
			}
			if got := c.Source(keyDataDir); got != tt.wantSrc {
				t.Errorf("Source(data_dir) = %q, want %q", got, tt.wantSrc)
			}
			if c.Port != 4242 {
				t.Errorf("Port = %d: config.toml not read from %s", c.Port, want)
			}
		})
	}
}

func TestDataDirTilde(t *testing.T) {
	f := newFixture(t)
	c := mustLoad(t, f.opts(nil, "JOINMARKET_DATA_DIR=~/jm"))
	if want := filepath.Join(f.home, "jm"); c.DataDir != want {
		t.Errorf("DataDir = %q, want %q", c.DataDir, want)
	}
}

// TestJoinMarketEnvNames checks that joinmarket-ng's environment names work
// as written, flat and nested, in any case.
func TestJoinMarketEnvNames(t *testing.T) {
	tests := []struct {
		env  string
		get  func(Config) any
		want any
	}{
		{"NETWORK=mainnet", func(c Config) any { return c.Network }, "mainnet"},
		{"NETWORK_CONFIG__NETWORK=signet", func(c Config) any { return c.Network }, "signet"},
		{"DIRECTORY_SERVER__NETWORK=testnet", func(c Config) any { return c.Network }, "testnet"},
		{"HOST=0.0.0.0", func(c Config) any { return c.Host }, "0.0.0.0"},
		{"PORT=5333", func(c Config) any { return c.Port }, 5333},
		{"DIRECTORY_SERVER__PORT=5444", func(c Config) any { return c.Port }, 5444},
		{"directory_server__port=5555", func(c Config) any { return c.Port }, 5555},
		{"MAX_PEERS=42", func(c Config) any { return c.MaxPeers }, 42},
		{"max_peers=43", func(c Config) any { return c.MaxPeers }, 43},
		{"MESSAGE_RATE_LIMIT=12.5", func(c Config) any { return c.MessageRateLimit }, 12.5},
		{"LOG_LEVEL=debug", func(c Config) any { return c.LogLevel }, "DEBUG"},
		{"LOGGING__LEVEL=TRACE", func(c Config) any { return c.LogLevel }, "DEBUG"},
		{"DIRECTORY_SERVER__LOG_LEVEL=Error", func(c Config) any { return c.LogLevel }, "ERROR"},
		{"LOG_FORMAT=JSON", func(c Config) any { return c.LogFormat }, "json"},
		{"MOTD=hello world", func(c Config) any { return c.MOTD }, "hello world"},
		{"LOCATION=abcdef.onion:5222", func(c Config) any { return c.Location }, "abcdef.onion:5222"},
		{"MAX_PENDING_HANDSHAKES=7", func(c Config) any { return c.MaxPendingHandshakes }, 7},
		{"MAX_LINE_LENGTH=65536", func(c Config) any { return c.MaxLineLength }, 65536},
		{"MESSAGE_BURST_LIMIT=9", func(c Config) any { return c.MessageBurstLimit }, 9},
		{"RATE_LIMIT_DISCONNECT_THRESHOLD=0", func(c Config) any { return c.RateLimitDisconnectThreshold }, 0},
		{"GETPEERLIST_PER_MINUTE=5", func(c Config) any { return c.GetPeerlistPerMinute }, 5},
		{"ORDERBOOK_PER_MINUTE=6", func(c Config) any { return c.OrderbookPerMinute }, 6},
		{"SPOOF_DISCONNECT_THRESHOLD=8", func(c Config) any { return c.SpoofDisconnectThreshold }, 8},
		{"HANDSHAKE_TIMEOUT=11", func(c Config) any { return c.HandshakeTimeout }, 11 * time.Second},
		{"NICK_CHECK_TIMEOUT=2.5", func(c Config) any { return c.NickCheckTimeout }, 2500 * time.Millisecond},
		{"DIRECTORY_SERVER__NICK_AUTH_MODE=require_verified", func(c Config) any { return c.NickAuthMode }, "require_verified"},
		{"DIRECTORY_SERVER__NICK_AUTH_DIRECTORY_ID=test:jm-directory-5222", func(c Config) any { return c.NickAuthDirectoryID }, "test:jm-directory-5222"},
		{"DIRECTORY_SERVER__NICK_AUTH_TIMEOUT=5", func(c Config) any { return c.NickAuthTimeout }, 5 * time.Second},
		{"OUTBOUND_QUEUE_BYTES=65536", func(c Config) any { return c.OutboundQueueBytes }, 65536},
		{"WRITE_TIMEOUT=1m", func(c Config) any { return c.WriteTimeout }, time.Minute},
		{"HEARTBEAT_SWEEP_INTERVAL=5", func(c Config) any { return c.HeartbeatSweepInterval }, 5 * time.Second},
		{"HEARTBEAT_IDLE_THRESHOLD=700", func(c Config) any { return c.HeartbeatIdleThreshold }, 700 * time.Second},
		{"HEARTBEAT_HARD_EVICT=2000", func(c Config) any { return c.HeartbeatHardEvict }, 2000 * time.Second},
		{"HEARTBEAT_PONG_WAIT=45", func(c Config) any { return c.HeartbeatPongWait }, 45 * time.Second},
		{"HEALTH_CHECK_HOST=0.0.0.0", func(c Config) any { return c.HealthCheckHost }, "0.0.0.0"},
		{"DIRECTORY_SERVER__HEALTH_CHECK_HOST=::", func(c Config) any { return c.HealthCheckHost }, "::"},
		{"HEALTH_CHECK_PORT=9090", func(c Config) any { return c.HealthCheckPort }, 9090},
		{"DIRECTORY_SERVER__HEALTH_CHECK_PORT=9091", func(c Config) any { return c.HealthCheckPort }, 9091},
		{"OPS_TOKEN=flat-token-0123456789", func(c Config) any { return c.OpsToken }, "flat-token-0123456789"},
		{"DIRECTORY_SERVER__OPS_TOKEN=nested-token-0123456789", func(c Config) any { return c.OpsToken }, "nested-token-0123456789"},
		{"STATUS_HIDE_NICKS=true", func(c Config) any { return c.HideNicks }, true},
		{"DIRECTORY_SERVER__STATUS_HIDE_NICKS=yes", func(c Config) any { return c.HideNicks }, true},
		{"PPROF=on", func(c Config) any { return c.Pprof }, true},
		{"directory_server__pprof=1", func(c Config) any { return c.Pprof }, true},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			f := newFixture(t)
			c := mustLoad(t, f.opts(nil, tt.env))
			if got := tt.get(c); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestNestedWins checks the documented tie-break inside one source.
func TestNestedWins(t *testing.T) {
	tests := []struct {
		name    string
		environ []string
		get     func(Config) any
		want    any
	}{
		{"port", []string{"PORT=1", "DIRECTORY_SERVER__PORT=2"}, func(c Config) any { return c.Port }, 2},
		{"port reversed", []string{"DIRECTORY_SERVER__PORT=2", "PORT=1"}, func(c Config) any { return c.Port }, 2},
		{"network", []string{"NETWORK=mainnet", "NETWORK_CONFIG__NETWORK=signet"}, func(c Config) any { return c.Network }, "signet"},
		{"network directory_server", []string{"NETWORK_CONFIG__NETWORK=signet", "DIRECTORY_SERVER__NETWORK=testnet", "NETWORK=mainnet"}, func(c Config) any { return c.Network }, "testnet"},
		{"log level", []string{"LOG_LEVEL=ERROR", "LOGGING__LEVEL=DEBUG"}, func(c Config) any { return c.LogLevel }, "DEBUG"},
		{"log level directory_server", []string{"LOGGING__LEVEL=DEBUG", "DIRECTORY_SERVER__LOG_LEVEL=WARNING"}, func(c Config) any { return c.LogLevel }, "WARNING"},
		{"first of same name", []string{"PORT=1", "port=2"}, func(c Config) any { return c.Port }, 1},
		{"health port", []string{"HEALTH_CHECK_PORT=1", "DIRECTORY_SERVER__HEALTH_CHECK_PORT=2"}, func(c Config) any { return c.HealthCheckPort }, 2},
		{"pprof", []string{"DIRECTORY_SERVER__PPROF=false", "PPROF=true"}, func(c Config) any { return c.Pprof }, false},
		{"ops token", []string{"OPS_TOKEN=flat-token-0123456789", "DIRECTORY_SERVER__OPS_TOKEN=nested-token-0123456789"}, func(c Config) any { return c.OpsToken }, "nested-token-0123456789"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustLoad(t, newFixture(t).opts(nil, tt.environ...))
			if got := tt.get(c); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

const realisticTOML = `# JoinMarket-NG configuration (abridged)

[tor]
socks_host = "127.0.0.1"
socks_port = 9050
connection_timeout = 120.0
control_enabled = true

[bitcoin]
backend_type = "descriptor_wallet"
rpc_url = "http://127.0.0.1:8332"
rpc_user = "jm"
rpc_password = "secret"

[network_config]
network = "signet"
directory_servers = ["aaaa.onion:5222", "bbbb.onion:5222"]
directory_reconnect_interval = 300

[wallet]
mixdepth_count = 5
gap_limit = 20

[logging]
level = "TRACE"
sensitive = false

[notifications]
enabled = false
urls = []

[maker]
min_size = 100000
cj_fee_relative = "0.00002"
message_rate_limit = 10

[directory_server]
host = "0.0.0.0"
port = 5222
max_peers = 5000
max_message_size = 2097152
max_line_length = 65536
max_json_nesting_depth = 10
message_rate_limit = 250
message_burst_limit = 500
rate_limit_disconnect_threshold = 0
broadcast_batch_size = 50
health_check_host = "127.0.0.1"
health_check_port = 8081
nick_auth_mode = "require_verified"
nick_auth_directory_id = "test:jm-directory-5222"
motd = "JoinMarket NG Directory Server"
heartbeat_sweep_interval = 60.0
heartbeat_idle_threshold = 600.0
heartbeat_hard_evict = 1500.0
heartbeat_pong_wait = 30.0

[orderbook_watcher]
http_port = 8000
max_message_size = 2097152

[tui]
log_level = "WARNING"
`

func TestRealisticConfigTOML(t *testing.T) {
	f := newFixture(t)
	f.writeTOML(t, realisticTOML)
	// joinmarket-ng's realistic config binds 0.0.0.0 on signet, behind a tor it does not
	// manage: here that needs tor_mode=external, or allow_clearnet said out loud.
	if _, err := Load(f.opts(nil)); err == nil || !strings.Contains(err.Error(), "allow_clearnet=true") {
		t.Fatalf("0.0.0.0 on signet without tor: %v; want the clearnet refusal", err)
	}
	c := mustLoad(t, f.opts(nil, "ALLOW_CLEARNET=true"))
	checks := []struct {
		name      string
		got, want any
	}{
		{"Network", c.Network, "signet"},
		{"Host", c.Host, "0.0.0.0"},
		{"Port", c.Port, 5222},
		{"MaxPeers", c.MaxPeers, 5000},
		{"MaxLineLength", c.MaxLineLength, 65536},
		{"MessageRateLimit", c.MessageRateLimit, 250.0},
		{"MessageBurstLimit", c.MessageBurstLimit, 500},
		{"RateLimitDisconnectThreshold", c.RateLimitDisconnectThreshold, 0},
		{"MOTD", c.MOTD, "JoinMarket NG Directory Server"},
		{"HeartbeatSweepInterval", c.HeartbeatSweepInterval, 60 * time.Second},
		{"HeartbeatIdleThreshold", c.HeartbeatIdleThreshold, 600 * time.Second},
		{"HeartbeatHardEvict", c.HeartbeatHardEvict, 1500 * time.Second},
		{"HeartbeatPongWait", c.HeartbeatPongWait, 30 * time.Second},
		{"NickAuthMode", c.NickAuthMode, "require_verified"},
		{"NickAuthDirectoryID", c.NickAuthDirectoryID, "test:jm-directory-5222"},
		{"LogLevel", c.LogLevel, "DEBUG"},
		{"HealthCheckHost", c.HealthCheckHost, "127.0.0.1"},
		{"HealthCheckPort", c.HealthCheckPort, 8081},
		{"HealthAddr", c.HealthAddr(), "127.0.0.1:8081"},
		{"Source(network)", c.Source("network"), SourceTOML},
		{"Source(health_check_host)", c.Source("health_check_host"), SourceTOML},
		{"Source(health_check_port)", c.Source("health_check_port"), SourceTOML},
		{"Source(handshake_timeout)", c.Source("handshake_timeout"), SourceDefault},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	wantIgnored := []string{
		"directory_server.broadcast_batch_size",
		"directory_server.max_json_nesting_depth",
		"directory_server.max_message_size",
	}
	if got := c.IgnoredKeys(); strings.Join(got, ",") != strings.Join(wantIgnored, ",") {
		t.Errorf("IgnoredKeys() = %v, want %v", got, wantIgnored)
	}
	d := c.Describe()
	if !strings.Contains(d, "# ignored: directory_server.broadcast_batch_size, ") {
		t.Errorf("Describe() does not list ignored keys:\n%s", d)
	}
	for _, l := range strings.Split(d, "\n") {
		if strings.HasPrefix(l, "# ignored:") && strings.Contains(l, "health_check") {
			t.Errorf("Describe() lists health_check_* as ignored: %s", l)
		}
	}
	if !hasLine(d, "health_check_port = 8081  (config.toml)") {
		t.Errorf("Describe() lacks health_check_port from config.toml:\n%s", d)
	}
	if !strings.Contains(d, "(loaded)") {
		t.Errorf("Describe() does not say the config file was loaded:\n%s", d)
	}
}

func TestTOMLSectionPrecedence(t *testing.T) {
	tests := []struct {
		name, toml string
		get        func(Config) any
		want       any
	}{
		{"network_config only", "[network_config]\nnetwork = \"mainnet\"\n", func(c Config) any { return c.Network }, "mainnet"},
		{"directory_server wins", "[network_config]\nnetwork = \"mainnet\"\n[directory_server]\nnetwork = \"testnet\"\n", func(c Config) any { return c.Network }, "testnet"},
		{"logging only", "[logging]\nlevel = \"warn\"\n", func(c Config) any { return c.LogLevel }, "WARNING"},
		{"directory_server log_level wins", "[logging]\nlevel = \"warn\"\n[directory_server]\nlog_level = \"error\"\n", func(c Config) any { return c.LogLevel }, "ERROR"},
		{"empty file", "", func(c Config) any { return c.Port }, 5222},
		{"port as string", "[directory_server]\nport = \"6000\"\n", func(c Config) any { return c.Port }, 6000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.writeTOML(t, tt.toml)
			if got := tt.get(mustLoad(t, f.opts(nil))); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDurationForms(t *testing.T) {
	tests := []struct {
		name    string
		toml    string // value written after "handshake_timeout = "
		envText string // same setting through the environment
		want    time.Duration
	}{
		{"int seconds", "60", "60", time.Minute},
		{"float seconds", "0.5", "0.5", 500 * time.Millisecond},
		{"float whole", "45.0", "45.0", 45 * time.Second},
		{"go duration", `"1m30s"`, "1m30s", 90 * time.Second},
		{"go millis", `"250ms"`, "250ms", 250 * time.Millisecond},
		{"string seconds", `"12"`, " 12 ", 12 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.writeTOML(t, "[directory_server]\nhandshake_timeout = "+tt.toml+"\n")
			if got := mustLoad(t, f.opts(nil)).HandshakeTimeout; got != tt.want {
				t.Errorf("toml %s: got %v, want %v", tt.toml, got, tt.want)
			}
			if got := mustLoad(t, f.opts(nil, "HANDSHAKE_TIMEOUT="+tt.envText)).HandshakeTimeout; got != tt.want {
				t.Errorf("env %q: got %v, want %v", tt.envText, got, tt.want)
			}
			if got := mustLoad(t, f.opts([]string{"-handshake-timeout", tt.envText})).HandshakeTimeout; got != tt.want {
				t.Errorf("flag %q: got %v, want %v", tt.envText, got, tt.want)
			}
		})
	}
}

func TestConfigFileEnv(t *testing.T) {
	t.Run("environment", func(t *testing.T) {
		f := newFixture(t)
		f.writeTOML(t, "[directory_server]\nport = 1111\n") // must be ignored
		other := filepath.Join(t.TempDir(), "other.toml")
		writeFile(t, other, "[directory_server]\nport = 2222\n")
		c := mustLoad(t, f.opts(nil, "JOINMARKET_CONFIG_FILE="+other))
		if c.Port != 2222 || c.ConfigFile() != other {
			t.Errorf("Port = %d, ConfigFile = %q; want 2222 from %s", c.Port, c.ConfigFile(), other)
		}
	})
	t.Run(".env", func(t *testing.T) {
		f := newFixture(t)
		other := filepath.Join(t.TempDir(), "other.toml")
		writeFile(t, other, "[directory_server]\nport = 3333\n")
		f.writeDotEnv(t, "JOINMARKET_CONFIG_FILE="+other+"\n")
		if c := mustLoad(t, f.opts(nil)); c.Port != 3333 {
			t.Errorf("Port = %d, want 3333", c.Port)
		}
	})
	t.Run("environment beats .env", func(t *testing.T) {
		f := newFixture(t)
		dir := t.TempDir()
		a, b := filepath.Join(dir, "a.toml"), filepath.Join(dir, "b.toml")
		writeFile(t, a, "[directory_server]\nport = 4444\n")
		writeFile(t, b, "[directory_server]\nport = 5555\n")
		f.writeDotEnv(t, "JOINMARKET_CONFIG_FILE="+b+"\n")
		if c := mustLoad(t, f.opts(nil, "joinmarket_config_file="+a)); c.Port != 4444 {
			t.Errorf("Port = %d, want 4444", c.Port)
		}
	})
	t.Run("missing named file", func(t *testing.T) {
		f := newFixture(t)
		missing := filepath.Join(t.TempDir(), "nope.toml")
		_, err := Load(f.opts(nil, "JOINMARKET_CONFIG_FILE="+missing))
		want := `JOINMARKET_CONFIG_FILE="` + missing + `" (environment): config file not found`
		if err == nil || err.Error() != want {
			t.Errorf("err = %v, want %q", err, want)
		}
	})
}

func TestLoadErrors(t *testing.T) {
	const durAccepted = "accepted values are durations > 0: seconds (30, 0.5) or Go durations (1m30s)"
	tests := []struct {
		name    string
		args    []string
		environ []string
		dotenv  string
		toml    string
		want    string // exact error
	}{
		{name: "network env", environ: []string{"NETWORK=foo"},
			want: `NETWORK="foo" (environment): accepted values are mainnet, testnet, signet, regtest`},
		{name: "port flag", args: []string{"--port=70000"},
			want: `--port=70000 (flag): accepted values are integers 0..65535`},
		{name: "port single dash flag", args: []string{"-port", "-5"},
			want: `--port=-5 (flag): accepted values are integers 0..65535`},
		{name: "hard evict toml", toml: "[directory_server]\nheartbeat_hard_evict = 100\n",
			want: `heartbeat_hard_evict=100 (config.toml): must be >= heartbeat_idle_threshold (600s)`},
		{name: "idle threshold flag vs default hard evict", args: []string{"--heartbeat-idle-threshold=2000"},
			want: `--heartbeat-idle-threshold=2000 (flag): must be <= heartbeat_hard_evict (1500s)`},
		{name: "max peers parse", environ: []string{"MAX_PEERS=abc"},
			want: `MAX_PEERS=abc (environment): accepted values are integers >= 1`},
		{name: "max peers zero lower-case name", environ: []string{"max_peers=0"},
			want: `max_peers=0 (environment): accepted values are integers >= 1`},
		{name: "nested port .env", dotenv: "DIRECTORY_SERVER__PORT=http\n",
			want: `DIRECTORY_SERVER__PORT=http (.env): accepted values are integers 0..65535`},
		{name: "empty port env", environ: []string{"PORT="},
			want: `PORT="" (environment): accepted values are integers 0..65535`},
		{name: "rate limit", environ: []string{"MESSAGE_RATE_LIMIT=-1"},
			want: `MESSAGE_RATE_LIMIT=-1 (environment): accepted values are numbers > 0`},
		{name: "rate limit NaN", args: []string{"--message-rate-limit=NaN"},
			want: `--message-rate-limit=NaN (flag): accepted values are numbers > 0`},
		{name: "rate limit toml string", toml: "[directory_server]\nmessage_rate_limit = \"fast\"\n",
			want: `message_rate_limit="fast" (config.toml): accepted values are numbers > 0`},
		{name: "port toml float", toml: "[directory_server]\nport = 5222.5\n",
			want: `port=5222.5 (config.toml): accepted values are integers 0..65535`},
		{name: "host toml int", toml: "[directory_server]\nhost = 1\n",
			want: `host=1 (config.toml): accepted values are an IP address or host name without port (0.0.0.0 = all interfaces)`},
		{name: "duration garbage", environ: []string{"HANDSHAKE_TIMEOUT=soon"},
			want: `HANDSHAKE_TIMEOUT=soon (environment): ` + durAccepted},
		{name: "duration zero", args: []string{"--write-timeout=0"},
			want: `--write-timeout=0 (flag): ` + durAccepted},
		{name: "duration toml bool", toml: "[directory_server]\nheartbeat_pong_wait = true\n",
			want: `heartbeat_pong_wait=true (config.toml): ` + durAccepted},
		{name: "nick check too long", environ: []string{"NICK_CHECK_TIMEOUT=90"},
			want: `NICK_CHECK_TIMEOUT=90 (environment): accepted values are durations > 0 and <= 60s: seconds (30, 0.5) or Go durations (1m30s)`},
		{name: "network in network_config", toml: "[network_config]\nnetwork = \"bitcoin\"\n",
			want: `network_config.network="bitcoin" (config.toml): accepted values are mainnet, testnet, signet, regtest`},
		{name: "logging level", toml: "[logging]\nlevel = \"loud\"\n",
			want: `logging.level="loud" (config.toml): accepted values are DEBUG, INFO, WARNING, ERROR (any case; aliases TRACE, WARN, SUCCESS, CRITICAL)`},
		{name: "log format", environ: []string{"LOG_FORMAT=yaml"},
			want: `LOG_FORMAT="yaml" (environment): accepted values are text, json`},
		{name: "log json conflict", args: []string{"--log-format=text", "--log-json"},
			want: `--log-json (flag) conflicts with --log-format="text" (flag)`},
		{name: "location", args: []string{"--location=myonion.onion"},
			want: `--location="myonion.onion" (flag): accepted values are "" (derive at runtime) or host:port (e.g. xyz.onion:5222) with port 1..65535`},
		{name: "line length", environ: []string{"DIRECTORY_SERVER__MAX_LINE_LENGTH=100"},
			want: `DIRECTORY_SERVER__MAX_LINE_LENGTH=100 (environment): accepted values are integers 1024..2097152`},
		{name: "queue bytes", toml: "[directory_server]\noutbound_queue_bytes = 1024\n",
			want: `outbound_queue_bytes=1024 (config.toml): accepted values are integers >= 65536`},
		{name: "empty data dir flag", args: []string{"--data-dir="}, environ: []string{"DATA_DIR=/tmp"},
			want: `--data-dir="" (flag): accepted values are non-empty paths`},
		{name: "unknown flag", args: []string{"--max-peer=5"},
			want: `flag provided but not defined: -max-peer`},
		{name: "positional argument", args: []string{"serve"},
			want: `unexpected argument "serve": all settings are flags (--name=value)`},
		{name: "bool env", environ: []string{"PPROF=maybe"},
			want: `PPROF=maybe (environment): ` + boolAccepted},
		{name: "bool env empty", environ: []string{"STATUS_HIDE_NICKS="},
			want: `STATUS_HIDE_NICKS="" (environment): ` + boolAccepted},
		{name: "bool flag", args: []string{"--pprof=maybe"},
			want: `--pprof=maybe (flag): ` + boolAccepted},
		{name: "bool nested .env", dotenv: "DIRECTORY_SERVER__STATUS_HIDE_NICKS=2\n",
			want: `DIRECTORY_SERVER__STATUS_HIDE_NICKS=2 (.env): ` + boolAccepted},
		{name: "bool toml int", toml: "[directory_server]\npprof = 2\n",
			want: `pprof=2 (config.toml): ` + boolAccepted},
		{name: "bool toml string", toml: "[directory_server]\npprof = \"maybe\"\n",
			want: `pprof="maybe" (config.toml): ` + boolAccepted},
		{name: "bool toml float", toml: "[directory_server]\nstatus_hide_nicks = 1.0\n",
			want: `status_hide_nicks=1 (config.toml): ` + boolAccepted},
		{name: "port toml bool", toml: "[directory_server]\nhealth_check_port = true\n",
			want: `health_check_port=true (config.toml): accepted values are integers 0..65535`},
		{name: "health port env", environ: []string{"HEALTH_CHECK_PORT=65536"},
			want: `HEALTH_CHECK_PORT=65536 (environment): accepted values are integers 0..65535`},
		{name: "health host flag", args: []string{"--health-check-host=0.0.0.0:8080"},
			want: `--health-check-host="0.0.0.0:8080" (flag): accepted values are an IP address or host name without port (0.0.0.0 = all interfaces)`},
		{name: "bare non-bool flag", args: []string{"--health-check-port"},
			want: `flag needs an argument: -health-check-port`},
		{name: "directory_server not a table", toml: "directory_server = 5\n",
			want: `config file {toml}: directory_server must be a table ([directory_server])`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			if tt.toml != "" {
				f.writeTOML(t, tt.toml)
			}
			if tt.dotenv != "" {
				f.writeDotEnv(t, tt.dotenv)
			}
			var out bytes.Buffer
			opts := f.opts(tt.args, tt.environ...)
			opts.Output = &out
			_, err := Load(opts)
			want := strings.ReplaceAll(tt.want, "{toml}", filepath.Join(f.dataDir, "config.toml"))
			if err == nil {
				t.Fatalf("Load succeeded, want error %q", want)
			}
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Errorf("error is not one line: %q", err)
			}
			if err.Error() != want {
				t.Errorf("error = %q\n   want %q", err, want)
			}
		})
	}
}

func TestBadFiles(t *testing.T) {
	t.Run("invalid toml", func(t *testing.T) {
		f := newFixture(t)
		f.writeTOML(t, "[directory_server]\nport = \n")
		_, err := Load(f.opts(nil))
		path := filepath.Join(f.dataDir, "config.toml")
		if err == nil || !strings.HasPrefix(err.Error(), "config file "+path+": ") || strings.Contains(err.Error(), "\n") {
			t.Errorf("err = %v, want one line starting with the path", err)
		}
	})
	t.Run("duplicate toml key", func(t *testing.T) {
		f := newFixture(t)
		f.writeTOML(t, "[directory_server]\nport = 1\nport = 2\n")
		if _, err := Load(f.opts(nil)); err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("err = %v, want one-line error", err)
		}
	})
	t.Run("config file is a directory", func(t *testing.T) {
		f := newFixture(t)
		if err := os.MkdirAll(filepath.Join(f.dataDir, "config.toml"), 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(f.opts(nil)); err == nil || !strings.Contains(err.Error(), "config.toml") {
			t.Errorf("err = %v, want error naming config.toml", err)
		}
	})
	t.Run(".env is a directory", func(t *testing.T) {
		f := newFixture(t)
		if err := os.Mkdir(filepath.Join(f.work, ".env"), 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(f.opts(nil)); err == nil || !strings.HasPrefix(err.Error(), ".env file ") {
			t.Errorf("err = %v, want .env error", err)
		}
	})
	t.Run("missing .env and config are fine", func(t *testing.T) {
		mustLoad(t, newFixture(t).opts(nil))
	})
}

func TestDotEnvFormats(t *testing.T) {
	f := newFixture(t)
	f.writeDotEnv(t, "# comment\nexport PORT=6001\nMOTD='single quoted'\nHOST=\"::1\"\nmax_peers=12 # trailing comment\n")
	c := mustLoad(t, f.opts(nil))
	if c.Port != 6001 || c.MOTD != "single quoted" || c.Host != "::1" || c.MaxPeers != 12 {
		t.Errorf("got port %d motd %q host %q max_peers %d", c.Port, c.MOTD, c.Host, c.MaxPeers)
	}
	if c.Source("port") != SourceDotEnv {
		t.Errorf("Source(port) = %q, want .env", c.Source("port"))
	}
	if c.ListenAddr() != "[::1]:6001" {
		t.Errorf("ListenAddr() = %q", c.ListenAddr())
	}
}

func TestNoWorkDirNoDotEnv(t *testing.T) {
	f := newFixture(t)
	f.writeDotEnv(t, "PORT=6001\n")
	opts := f.opts(nil)
	opts.WorkDir = ""
	if c := mustLoad(t, opts); c.Port != 5222 {
		t.Errorf("Port = %d: .env read without WorkDir", c.Port)
	}
}

func TestBooleanFlags(t *testing.T) {
	tests := []struct {
		args              []string
		check, json, vers bool
	}{
		{nil, false, false, false},
		{[]string{"--check-config"}, true, false, false},
		{[]string{"-check-config", "--log-json"}, true, true, false},
		{[]string{"--log-json=false"}, false, false, false},
		{[]string{"--log-json", "--log-format=json"}, false, true, false},
		{[]string{"--version"}, false, false, true},
		{[]string{"--version", "--port=99999"}, false, false, true}, // --version skips the rest
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			c := mustLoad(t, newFixture(t).opts(tt.args))
			if c.CheckConfig != tt.check || (c.LogFormat == "json") != tt.json || c.ShowVersion != tt.vers {
				t.Errorf("CheckConfig %v LogFormat %q ShowVersion %v", c.CheckConfig, c.LogFormat, c.ShowVersion)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	for _, arg := range []string{"-h", "--help"} {
		var out bytes.Buffer
		opts := newFixture(t).opts([]string{arg})
		opts.Output = &out
		_, err := Load(opts)
		if !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%s: err = %v, want flag.ErrHelp", arg, err)
		}
		for _, want := range []string{
			"-max-peers int", "-heartbeat-sweep-interval duration", "MAX_PEERS", "-check-config", "(default 5222)",
			"-health-check-host string", "-health-check-port int", "(default 8080)", "-ops-token string", "OPS_TOKEN, DIRECTORY_SERVER__OPS_TOKEN",
			"  -pprof\n", "  -status-hide-nicks\n", "PPROF, DIRECTORY_SERVER__PPROF", "bare boolean flag",
		} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%s: usage lacks %q:\n%s", arg, want, out.String())
			}
		}
		if strings.Contains(out.String(), "-pprof bool") || strings.Contains(out.String(), "(default false)") {
			t.Errorf("%s: boolean flags shown as taking a value or with a false default:\n%s", arg, out.String())
		}
	}
	// Without Output nothing is written anywhere and nothing breaks.
	if _, err := Load(newFixture(t).opts([]string{"-h"})); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("err = %v, want flag.ErrHelp", err)
	}
}

func TestDescribeSources(t *testing.T) {
	f := newFixture(t)
	f.writeTOML(t, "[directory_server]\nmax_peers = 77\nheartbeat_pong_wait = 0.5\nfuture_key = 1\n")
	f.writeDotEnv(t, "MOTD=hi there\n")
	c := mustLoad(t, f.opts([]string{"--port=6000", "--log-json"}, "NETWORK=signet", "HEARTBEAT_IDLE_THRESHOLD=1m30s"))
	d := c.Describe()
	lines := strings.Split(strings.TrimRight(d, "\n"), "\n")
	wantLines := []string{
		"# config file: " + filepath.Join(f.dataDir, "config.toml") + " (loaded)",
		`data_dir = "` + f.dataDir + `"  (default)`,
		`network = "signet"  (environment)`,
		`host = "127.0.0.1"  (default)`,
		"port = 6000  (flag)",
		`motd = "hi there"  (.env)`,
		"max_peers = 77  (config.toml)",
		"heartbeat_idle_threshold = 90s  (environment)",
		"heartbeat_pong_wait = 0.5s  (config.toml)",
		`log_format = "json"  (flag)`,
		"# ignored: directory_server.future_key",
	}
	for _, want := range wantLines {
		found := false
		for _, l := range lines {
			if l == want {
				found = true
			}
		}
		if !found {
			t.Errorf("Describe() lacks line %q:\n%s", want, d)
		}
	}
	if got, want := len(lines), len(settingsTable())+2; got != want {
		t.Errorf("Describe() has %d lines, want %d:\n%s", got, want, d)
	}
	// A value changed after Load is reported as set in code, and the copy
	// does not affect the original.
	c2 := c
	c2.MaxPeers = 1
	if c2.Source("max_peers") != SourceCode || c.Source("max_peers") != SourceTOML {
		t.Errorf("after change: copy %q, original %q", c2.Source("max_peers"), c.Source("max_peers"))
	}
	if err := c2.Validate(); err != nil {
		t.Errorf("Validate copy: %v", err)
	}
	c2.MaxPeers = 0
	if err := c2.Validate(); err == nil || err.Error() != "max_peers=0: accepted values are integers >= 1" {
		t.Errorf("Validate changed copy = %v", err)
	}
}

func TestConcurrentUse(t *testing.T) {
	f := newFixture(t)
	c := mustLoad(t, f.opts([]string{"--port=6000"}))
	done := make(chan string)
	for range 4 {
		go func() {
			cc := c
			cc.Port = 1
			_ = cc.Validate()
			done <- c.Describe() + cc.Describe()
		}()
	}
	for range 4 {
		if s := <-done; !hasLine(s, "port = 6000  (flag)") {
			t.Errorf("Describe lost the original source:\n%s", s)
		}
	}
}

func TestBoolForms(t *testing.T) {
	tests := []struct {
		text string
		want bool
	}{
		{"true", true}, {"TRUE", true}, {"True", true}, {"1", true}, {"yes", true}, {"YES", true}, {"on", true}, {"On", true}, {" true ", true},
		{"false", false}, {"FALSE", false}, {"0", false}, {"no", false}, {"No", false}, {"off", false}, {"OFF", false},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			f := newFixture(t)
			if got := mustLoad(t, f.opts(nil, "PPROF="+tt.text)).Pprof; got != tt.want {
				t.Errorf("env: got %v, want %v", got, tt.want)
			}
			if got := mustLoad(t, f.opts([]string{"--status-hide-nicks=" + tt.text})).HideNicks; got != tt.want {
				t.Errorf("flag: got %v, want %v", got, tt.want)
			}
			f.writeTOML(t, "[directory_server]\npprof = \""+tt.text+"\"\n")
			if got := mustLoad(t, f.opts(nil)).Pprof; got != tt.want {
				t.Errorf("toml string: got %v, want %v", got, tt.want)
			}
		})
	}
	for _, tt := range []struct {
		toml string
		want bool
	}{{"true", true}, {"false", false}, {"1", true}, {"0", false}} {
		f := newFixture(t)
		f.writeTOML(t, "[directory_server]\nstatus_hide_nicks = "+tt.toml+"\n")
		c := mustLoad(t, f.opts(nil))
		if c.HideNicks != tt.want || c.Source("status_hide_nicks") != SourceTOML {
			t.Errorf("toml %s: got %v from %q, want %v from config.toml", tt.toml, c.HideNicks, c.Source("status_hide_nicks"), tt.want)
		}
	}
}

func TestBareBoolFlags(t *testing.T) {
	tests := []struct {
		args            []string
		env             []string
		pprof, hideNick bool
	}{
		{nil, nil, false, false},
		{[]string{"--pprof"}, nil, true, false},
		{[]string{"-pprof"}, nil, true, false},
		{[]string{"--status-hide-nicks"}, nil, false, true},
		{[]string{"--pprof", "--status-hide-nicks", "--port=6000"}, nil, true, true},
		{[]string{"--pprof=false"}, []string{"PPROF=true"}, false, false},
		{[]string{"--pprof"}, []string{"PPROF=false"}, true, false},
		{[]string{"--pprof=0", "--status-hide-nicks=yes"}, nil, false, true},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			c := mustLoad(t, newFixture(t).opts(tt.args, tt.env...))
			if c.Pprof != tt.pprof || c.HideNicks != tt.hideNick {
				t.Errorf("Pprof %v HideNicks %v, want %v %v", c.Pprof, c.HideNicks, tt.pprof, tt.hideNick)
			}
			fromFlag := strings.Contains(strings.Join(tt.args, " "), "pprof")
			if (c.Source("pprof") == SourceFlag) != fromFlag {
				t.Errorf("Source(pprof) = %q, from flag %v", c.Source("pprof"), fromFlag)
			}
		})
	}
	// A bare boolean flag does not swallow the next argument.
	if _, err := Load(newFixture(t).opts([]string{"--pprof", "false"})); err == nil || !strings.Contains(err.Error(), `unexpected argument "false"`) {
		t.Errorf("--pprof false: err = %v, want unexpected argument", err)
	}
	c := mustLoad(t, newFixture(t).opts([]string{"--pprof"}))
	if d := c.Describe(); !strings.Contains(d, "pprof = true  (flag)\n") || !strings.Contains(d, "status_hide_nicks = false  (default)\n") {
		t.Errorf("Describe():\n%s", d)
	}
}

// TestOpsTokenSecret checks that the token is never printed: not by
// Describe, not in an error for an invalid token from any source.
func TestOpsTokenSecret(t *testing.T) {
	const token = "Sup3r-secret-ops-token-XYZ"
	t.Run("describe", func(t *testing.T) {
		sources := []struct {
			name   string
			args   []string
			env    []string
			dotenv string
			toml   string
			src    string
		}{
			{name: "flag", args: []string{"--ops-token=" + token}, src: SourceFlag},
			{name: "env", env: []string{"OPS_TOKEN=" + token}, src: SourceEnv},
			{name: "nested env", env: []string{"DIRECTORY_SERVER__OPS_TOKEN=" + token}, src: SourceEnv},
			{name: ".env", dotenv: "OPS_TOKEN=" + token + "\n", src: SourceDotEnv},
			{name: "toml", toml: "[directory_server]\nops_token = \"" + token + "\"\n", src: SourceTOML},
		}
		for _, tt := range sources {
			t.Run(tt.name, func(t *testing.T) {
				f := newFixture(t)
				if tt.dotenv != "" {
					f.writeDotEnv(t, tt.dotenv)
				}
				if tt.toml != "" {
					f.writeTOML(t, tt.toml)
				}
				c := mustLoad(t, f.opts(tt.args, tt.env...))
				if c.OpsToken != token {
					t.Fatalf("OpsToken = %q", c.OpsToken)
				}
				d := c.Describe()
				if strings.Contains(d, token) || strings.Contains(d, "secret") {
					t.Errorf("Describe() prints the token:\n%s", d)
				}
				if want := "ops_token = (set)  (" + tt.src + ")\n"; !strings.Contains(d, want) {
					t.Errorf("Describe() lacks %q:\n%s", want, d)
				}
				if c.Source("ops_token") != tt.src {
					t.Errorf("Source(ops_token) = %q", c.Source("ops_token"))
				}
				c2 := c
				c2.OpsToken = "x"
				if err := c2.Validate(); err == nil || err.Error() != opsTokenErr("ops_token=(redacted)") {
					t.Errorf("Validate after change = %v", err)
				}
			})
		}
		c := mustLoad(t, newFixture(t).opts(nil))
		if d := c.Describe(); !strings.Contains(d, `ops_token = ""  (default)`+"\n") {
			t.Errorf("Describe() without token:\n%s", d)
		}
	})
	t.Run("errors", func(t *testing.T) {
		const bad = "Sup3r secret ops token XYZ" // spaces
		tests := []struct {
			name   string
			args   []string
			env    []string
			dotenv string
			toml   string
			want   string
		}{
			{name: "flag space", args: []string{"--ops-token=" + bad}, want: opsTokenErr("--ops-token=(redacted) (flag)")},
			{name: "env space", env: []string{"OPS_TOKEN=" + bad}, want: opsTokenErr("OPS_TOKEN=(redacted) (environment)")},
			{name: "env short", env: []string{"OPS_TOKEN=Sup3r-secret"}, want: opsTokenErr("OPS_TOKEN=(redacted) (environment)")},
			{name: "nested env newline", env: []string{"DIRECTORY_SERVER__OPS_TOKEN=Sup3r-secret-ops\ntoken-XYZ"}, want: opsTokenErr("DIRECTORY_SERVER__OPS_TOKEN=(redacted) (environment)")},
			{name: ".env space", dotenv: "OPS_TOKEN=\"" + bad + "\"\n", want: opsTokenErr("OPS_TOKEN=(redacted) (.env)")},
			{name: "toml space", toml: "[directory_server]\nops_token = \"" + bad + "\"\n", want: opsTokenErr("ops_token=(redacted) (config.toml)")},
			{name: "toml int", toml: "[directory_server]\nops_token = 12345678901234567\n", want: opsTokenErr("ops_token=(redacted) (config.toml)")},
			{name: ".env unterminated quote", dotenv: "PORT=1\nOPS_TOKEN=\"Sup3r-secret-ops-token-XYZ\n"},
			{name: ".env bad name before token", dotenv: "BAD-NAME=1\nOPS_TOKEN=Sup3r-secret-ops-token-XYZ\n"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				f := newFixture(t)
				if tt.dotenv != "" {
					f.writeDotEnv(t, tt.dotenv)
				}
				if tt.toml != "" {
					f.writeTOML(t, tt.toml)
				}
				_, err := Load(f.opts(tt.args, tt.env...))
				if err == nil {
					t.Fatal("Load succeeded, want error")
				}
				for _, part := range []string{"Sup3r", "secret", "XYZ", "1234567"} {
					if strings.Contains(err.Error(), part) {
						t.Errorf("error echoes the token (%q): %q", part, err)
					}
				}
				if strings.ContainsAny(err.Error(), "\r\n") {
					t.Errorf("error is not one line: %q", err)
				}
				if tt.want != "" && err.Error() != tt.want {
					t.Errorf("error = %q\n   want %q", err, tt.want)
				}
			})
		}
	})
}

func TestDiffAfterLoad(t *testing.T) {
	f := newFixture(t)
	f.writeTOML(t, "[directory_server]\nmotd = \"old motd\"\nmax_peers = 100\nheartbeat_pong_wait = 30\nops_token = \"old-token-0123456789\"\n")
	before := mustLoad(t, f.opts(nil))
	// Same values from other sources: nothing changed.
	same := mustLoad(t, f.opts([]string{"--max-peers=100"}, "MOTD=old motd", "HEARTBEAT_PONG_WAIT=30s"))
	if d := Diff(before, same); len(d) != 0 {
		t.Errorf("Diff with equal values from other sources = %+v, want none", d)
	}
	f.writeTOML(t, "[directory_server]\nmotd = \"new motd\"\nmax_peers = 200\nheartbeat_pong_wait = 2.5\nops_token = \"new-token-0123456789\"\npprof = true\n")
	after := mustLoad(t, f.opts(nil))
	want := []Change{
		{"motd", `"old motd"`, `"new motd"`},
		{"max_peers", "100", "200"},
		{"heartbeat_pong_wait", "30s", "2.5s"},
		{"ops_token", "(changed)", "(changed)"},
		{"pprof", "false", "true"},
	}
	got := Diff(before, after)
	if len(got) != len(want) {
		t.Fatalf("Diff = %+v\nwant %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Diff[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
}

// hasLine reports whether text holds want as one whole line (not as part of a longer
// one: "port = 6000" must not match "health_check_port = 6000").
func hasLine(text, want string) bool {
	for _, l := range strings.Split(text, "\n") {
		if l == want {
			return true
		}
	}
	return false
}

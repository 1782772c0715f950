// Package config holds the directory server's configuration: one Config
// struct, its defaults, loading from flags, environment, a .env file and
// config.toml (see Load), validation, and a printable effective
// configuration for --check-config.
//
// Setting names follow joinmarket-ng so that this server is a drop-in
// replacement for its directory server: every setting with TOML key k in
// section [directory_server] can be given as
//
//	flag   --k-with-dashes
//	env    K_UPPER or DIRECTORY_SERVER__K_UPPER (names are case-insensitive;
//	       the nested form wins when both are set in the same source)
//	TOML   [directory_server] k
//
// Durations accept a number of seconds (30, 0.5) or a Go duration ("1m30s").
// Booleans accept true/false, 1/0, yes/no, on/off in any case; a bare boolean
// flag (--pprof) means true.
//
// Secret settings (ops_token) are never printed: Describe shows "(set)" or
// "", error messages show "(redacted)" and Diff shows "(changed)".
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/jm-directory/jm-directory-server/internal/nickauth"
)

// Source names recorded by Load and shown by Describe.
const (
	// SourceFlag marks a value given as a command-line flag.
	SourceFlag = "flag"
	// SourceEnv marks a value taken from the process environment.
	SourceEnv = "environment"
	// SourceDotEnv marks a value taken from the .env file in the work dir.
	SourceDotEnv = ".env"
	// SourceTOML marks a value taken from the config file.
	SourceTOML = "config.toml"
	// SourceDefault marks a built-in default.
	SourceDefault = "default"
	// SourceCode marks a value that differs from what Load recorded (or a
	// Config not produced by Load) and is not the default: it was set in code.
	SourceCode = "set in code"
)

// Config is the complete, validated configuration of the directory server.
// Load fills it; Default gives the built-in values.
type Config struct {
	DataDir  string // data dir; holds config.toml and the server's key files
	Network  string // mainnet | testnet | signet | regtest (default regtest)
	Host     string // listen host, default "127.0.0.1"
	Port     int    // listen port, default 5222; 0 = OS-assigned; 0..65535
	Location string // own location-string advertised to clients ("onion:port" or "host:port"); "" = derive at runtime
	MOTD     string // operator message of the day; default "JoinMarket directory node (Go)"

	MaxPeers             int // default 10000, >= 1
	MaxPendingHandshakes int // connections not yet handshaked, default 2048, >= 1
	MaxLineLength        int // default 40000, 1024..2097152

	MessageRateLimit             float64 // msgs/s per connection, default 500, > 0
	MessageBurstLimit            int     // default 1000, >= 1
	RateLimitDisconnectThreshold int     // violations before disconnect; default 100; 0 = never
	GetPeerlistPerMinute         int     // default 3, >= 1
	OrderbookPerMinute           int     // default 3, >= 1 (public !orderbook requests per connection)
	SpoofDisconnectThreshold     int     // spoofed-sender messages before disconnect; default 3, >= 1

	HandshakeTimeout time.Duration // default 30s, > 0
	FirstByteTimeout time.Duration // time to a connection's first byte, default 10s, > 0; a silent connection is closed after it
	NickCheckTimeout time.Duration // how long a live incumbent of a nick may take to answer a probe; default 20s; (0, 60s]

	NickAuthMode        string        // JMP-0005: disabled | prefer_verified (default) | require_verified
	NickAuthDirectoryID string        // the directory-id clients expect; "" = this directory's own location, lower-cased
	NickAuthTimeout     time.Duration // how long a client may take to answer the challenge, and bound on the directory's own sends; default 30s; (0, 30s]
	OutboundQueueBytes  int           // per-peer outbound queue cap in bytes, default 8 MiB (8388608), >= 65536
	WriteTimeout        time.Duration // default 30s, > 0
	OutboundLagBytes    int           // broadcasts to a peer with more than this queued are dropped, default 1 MiB, >= 4096 (used as at most outbound_queue_bytes)
	OutboundTotalBytes  int           // bound on the bytes queued to all peers together, default 512 MiB, >= 1 MiB (used as at least outbound_queue_bytes)
	MessageByteRate     float64       // bytes/s of relayed pubmsg and privmsg text per connection (per circuit), default 102400, > 0
	MessageByteBurst    int           // bytes of relayed text allowed at once, default 1 MiB, >= 1024 (used as at least max_line_length)

	HeartbeatSweepInterval time.Duration // default 60s, > 0
	HeartbeatIdleThreshold time.Duration // default 600s, > 0
	HeartbeatHardEvict     time.Duration // default 1500s, > 0, must be >= idle threshold
	HeartbeatPongWait      time.Duration // default 30s, > 0

	HealthCheckHost string // ops HTTP listener host, default "127.0.0.1"
	HealthCheckPort int    // ops HTTP listener port, default 8080; 0 = OS-assigned; 0..65535
	OpsToken        string // SECRET bearer token for the ops endpoints on a non-loopback address; "" = the server generates one into the data dir; else 16..256 printable ASCII, no spaces
	OpsTLSCert      string // PEM certificate (chain) the ops listener serves over HTTPS off loopback; "" = a self-signed one generated into the data dir; with OpsTLSKey
	OpsTLSKey       string // its PEM private key; set with OpsTLSCert or not at all
	HideNicks       bool   // status_hide_nicks: /status and the live page omit nick lists; default false
	Pprof           bool   // serve /debug/pprof/ on the ops listener; default false

	TorMode             string // none | control | launch | external (--tor); default none
	TorControlHost      string // control: tor's control port host, default "127.0.0.1"
	TorControlPort      int    // control: tor's control port, default 9051; 1..65535
	TorControlSocket    string // control: tor's control socket path; "" = use host:port
	TorControlPassword  string // SECRET control: password for HASHEDPASSWORD authentication; "" = cookie
	TorCookieFile       string // control: cookie file; "" = the path tor reports
	TorBinary           string // launch: the tor executable, default "tor" (looked up in PATH)
	TorHiddenServiceDir string // external: the HiddenServiceDir of the operator's tor (its hostname is read)
	TorOnionKeyFile     string // control/launch: the onion's hs_ed25519_secret_key; "" = <data dir>/onion/hs_ed25519_secret_key
	OnionVirtualPort    int    // the onion's virtual port, default 5222; 1..65535
	TorPoW              bool   // control/launch: enable tor's proof-of-work defences when tor supports them; default true
	AllowClearnet       bool   // serve a real network (mainnet, testnet, signet) on a non-loopback address without tor; default false
	TorSocksHost        string // a SOCKS port of tor for the self-probe: host; "" = launch: the launched tor's, control: ask tor, external: none
	TorSocksPort        int    // its port, default 9050; 1..65535
	TorProxyProtocol    bool   // every connection starts with a PROXY v1 header (tor's HiddenServiceExportCircuitID haproxy); limits and bans are keyed on the circuit it names; default false; not with control; launch then publishes from a torrc HiddenServiceDir

	SelfProbeInterval       time.Duration // how often the directory dials its own onion through tor and handshakes; default 10m; 0 = never
	SelfProbeTimeout        time.Duration // bound on one self-probe; default 2m; > 0
	SelfProbeUnhealthyAfter time.Duration // /health turns unhealthy after this long without a successful self-probe; default 30m; 0 = never

	CircuitMaxConnections int           // open connections per circuit (tor_proxy_protocol), default 10 (as the deploy torrc's HiddenServiceMaxStreams), >= 1
	CircuitMaxPending     int           // connections per circuit still handshaking, default 4, >= 1
	CircuitBanAfter       int           // abusive closes that ban a circuit, default 3; 0 = never ban
	CircuitBanDuration    time.Duration // how long a ban (and a strike) lasts, default 600s, > 0

	LogLevel  string // DEBUG | INFO | WARNING | ERROR, stored upper-case canonical; default INFO
	LogFormat string // text | json, default text

	CheckConfig bool // --check-config was given: validate, print, exit
	ShowVersion bool // --version was given

	// info records where Load found each value. It is shared between
	// copies of a Config and never modified after Load returns.
	info *loadInfo
}

// loadInfo is what Load learned besides the values themselves.
type loadInfo struct {
	origins     map[string]origin // by setting key
	configFile  string            // path of the config file considered
	configFound bool              // whether it existed and was read
	ignored     []string          // unknown [directory_server] keys, "directory_server.k"
	unknownEnv  []string          // variables with a nested prefix that name no setting, "NAME (source)"
}

// origin tells where one setting's value came from.
type origin struct {
	source string // one of the Source* constants
	name   string // the key as the user wrote it: "--port", "PORT", "port", "logging.level"
	shown  string // the value as the user wrote it, ready to print
	value  string // formatValue of the parsed value, to detect later changes in code
}

// Default returns the built-in defaults. DataDir is left "": Load fills it
// with <home>/.joinmarket-ng unless configured otherwise.
func Default() Config {
	return Config{
		Network:  "regtest",
		Host:     "127.0.0.1",
		Port:     5222,
		Location: "",
		MOTD:     "JoinMarket directory node (Go)",

		MaxPeers:             10000,
		MaxPendingHandshakes: 2048,
		MaxLineLength:        40000,

		MessageRateLimit:             500,
		MessageBurstLimit:            1000,
		RateLimitDisconnectThreshold: 100,
		GetPeerlistPerMinute:         3,
		OrderbookPerMinute:           3,
		SpoofDisconnectThreshold:     3,

		HandshakeTimeout:   30 * time.Second,
		FirstByteTimeout:   10 * time.Second,
		NickCheckTimeout:   20 * time.Second,
		NickAuthMode:       "prefer_verified",
		NickAuthTimeout:    30 * time.Second,
		OutboundQueueBytes: 8 << 20,
		WriteTimeout:       30 * time.Second,
		OutboundLagBytes:   1 << 20,
		OutboundTotalBytes: 512 << 20,
		MessageByteRate:    100 << 10,
		MessageByteBurst:   1 << 20,

		HeartbeatSweepInterval: 60 * time.Second,
		HeartbeatIdleThreshold: 600 * time.Second,
		HeartbeatHardEvict:     1500 * time.Second,
		HeartbeatPongWait:      30 * time.Second,

		HealthCheckHost: "127.0.0.1",

		TorMode:          "none",
		TorControlHost:   "127.0.0.1",
		TorControlPort:   9051,
		TorBinary:        "tor",
		OnionVirtualPort: 5222,
		TorPoW:           true,
		TorSocksPort:     9050,

		SelfProbeInterval:       10 * time.Minute,
		SelfProbeTimeout:        2 * time.Minute,
		SelfProbeUnhealthyAfter: 30 * time.Minute,

		CircuitMaxConnections: 10,
		CircuitMaxPending:     4,
		CircuitBanAfter:       3,
		CircuitBanDuration:    10 * time.Minute,

		HealthCheckPort: 8080,
		OpsToken:        "",
		HideNicks:       false,
		Pprof:           false,

		LogLevel:  "INFO",
		LogFormat: "text",
	}
}

// ListenAddr returns the address to listen on, "host:port".
func (c Config) ListenAddr() string {
	return net.JoinHostPort(c.Host, strconv.Itoa(c.Port))
}

// HealthAddr returns the address of the ops HTTP listener,
// "health_check_host:health_check_port".
func (c Config) HealthAddr() string {
	return net.JoinHostPort(c.HealthCheckHost, strconv.Itoa(c.HealthCheckPort))
}

// Change is one setting whose value differs between two configurations.
// Old and New are formatted as Describe does; for a secret setting both are
// "(changed)".
type Change struct{ Key, Old, New string }

// Diff lists the settings whose values differ between before and after, in
// table (and Describe) order. Where the values came from does not matter.
// The result is nil when nothing differs.
func Diff(before, after Config) []Change {
	var out []Change
	for _, s := range settingsTable() {
		if ch, ok := s.change(&before, &after); ok {
			out = append(out, ch)
		}
	}
	return out
}

// Apply works out what a reload from the configuration in force, cur, to next does.
// applied is the configuration to put in force: next, except that every setting that
// needs a restart keeps its value from cur. changes lists the settings a reload
// applies whose value differs (they take next's value); restart lists the settings
// whose value differs but that need a restart, so applied keeps cur's value and the
// caller must not report them as changed. Both lists are in table order and formatted
// as Diff's; together they are Diff(cur, next). A setting needs a restart unless its
// row is marked live. Fields no setting names (CheckConfig, ShowVersion) are next's.
func Apply(cur, next Config) (applied Config, changes, restart []Change) {
	return apply(settingsTable(), cur, next)
}

// apply is Apply over the given settings table.
func apply(table []setting, cur, next Config) (applied Config, changes, restart []Change) {
	applied = next
	for _, s := range table {
		ch, differs := s.change(&cur, &next)
		if s.live {
			if differs {
				changes = append(changes, ch)
			}
			continue
		}
		assign(s.field(&applied), deref(s.field(&cur)))
		if differs {
			restart = append(restart, ch)
		}
	}
	return applied, changes, restart
}

// change compares the setting's values in before and after; a secret's values are
// shown as "(changed)".
func (s setting) change(before, after *Config) (Change, bool) {
	a, b := deref(s.field(before)), deref(s.field(after))
	if formatValue(a) == formatValue(b) {
		return Change{}, false
	}
	ch := Change{Key: s.key, Old: s.display(a), New: s.display(b)}
	if s.secret {
		ch.Old, ch.New = redactedChanged, redactedChanged
	}
	return ch, true
}

// SlogLevel maps LogLevel to a slog level. Aliases are understood in any
// case; an unknown level maps to slog.LevelInfo.
func (c Config) SlogLevel() slog.Level {
	switch canonicalLogLevel(c.LogLevel) {
	case "DEBUG":
		return slog.LevelDebug
	case "WARNING":
		return slog.LevelWarn
	case "ERROR":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

// Validate checks every setting and returns the first problem as a one-line
// error naming the key (as the user wrote it, with its source, when the
// Config came from Load) and the accepted values. DataDir is not checked:
// Load always fills it.
func (c Config) Validate() error {
	for _, s := range settingsTable() {
		if s.valid == nil {
			continue
		}
		v := deref(s.field(&c))
		if !s.valid(v) {
			return errors.New(c.label(s.key, v) + ": " + s.accepted)
		}
	}
	switch {
	case c.TorMode == "external" && c.TorHiddenServiceDir == "":
		return errors.New(`tor_mode="external" needs tor_hidden_service_dir: the HiddenServiceDir whose hostname file names this directory's onion`)
	case c.TorProxyProtocol && c.TorMode == "control":
		return errors.New(`tor_proxy_protocol is set, but with tor_mode="control" tor publishes the onion with ADD_ONION, which cannot export circuit IDs: use tor_mode=launch, or tor_mode=external with HiddenServiceExportCircuitID haproxy in the torrc (as deploy/docker does), or unset tor_proxy_protocol`)
	case (c.OpsTLSCert == "") != (c.OpsTLSKey == ""):
		return fmt.Errorf("ops_tls_cert %q and ops_tls_key %q go together: set both (the operator's certificate and its key) or neither (a self-signed certificate in the data dir)", c.OpsTLSCert, c.OpsTLSKey)
	case c.TorMode != "none" && c.Location != "":
		return fmt.Errorf("location %q is set, but with tor_mode=%q the location is the onion's: unset location", c.Location, c.TorMode)
	case c.TorMode == "none" && c.Network != "regtest" && !IsLoopback(c.Host) && !c.AllowClearnet:
		return fmt.Errorf("host %q with network=%s and tor_mode=none would serve JoinMarket peers in the clear, with no onion: use a tor_mode (launch, control, external), bind to 127.0.0.1, or set allow_clearnet=true if that is really meant", c.Host, c.Network)
	}
	if c.SelfProbeUnhealthyAfter > 0 && c.SelfProbeInterval > 0 && c.SelfProbeUnhealthyAfter < c.SelfProbeInterval {
		return fmt.Errorf("%s: must be 0 or >= self_probe_interval (%s), or the directory turns unhealthy between two probes",
			c.label(keySelfProbeUnhealthy, c.SelfProbeUnhealthyAfter), formatDuration(c.SelfProbeInterval))
	}
	if c.HeartbeatHardEvict < c.HeartbeatIdleThreshold {
		hard, idle := c.HeartbeatHardEvict, c.HeartbeatIdleThreshold
		if c.Source(keyHardEvict) == SourceDefault && c.Source(keyIdleThreshold) != SourceDefault {
			return fmt.Errorf("%s: must be <= %s (%s)", c.label(keyIdleThreshold, idle), keyHardEvict, formatDuration(hard))
		}
		return fmt.Errorf("%s: must be >= %s (%s)", c.label(keyHardEvict, hard), keyIdleThreshold, formatDuration(idle))
	}
	return nil
}

// IsLoopback reports whether a listen host, or address ("host:port"), binds only to
// loopback.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Describe returns the effective configuration, one "key = value  (source)"
// line per setting, for --check-config. Comment lines starting with "#" name
// the config file considered and any ignored [directory_server] keys.
func (c Config) Describe() string {
	var b strings.Builder
	if c.info != nil && c.info.configFile != "" {
		state := "not found"
		if c.info.configFound {
			state = "loaded"
		}
		fmt.Fprintf(&b, "# config file: %s (%s)\n", c.info.configFile, state)
	}
	for _, s := range settingsTable() {
		v := deref(s.field(&c))
		fmt.Fprintf(&b, "%s = %s  (%s)\n", s.key, s.display(v), c.sourceOf(s.key, v))
	}
	if ign := c.IgnoredKeys(); len(ign) > 0 {
		fmt.Fprintf(&b, "# ignored: %s\n", strings.Join(ign, ", "))
	}
	if c.info != nil && len(c.info.unknownEnv) > 0 {
		fmt.Fprintf(&b, "# ignored environment: %s\n", strings.Join(c.info.unknownEnv, ", "))
	}
	return b.String()
}

// Source returns where the current value of the setting with the given key
// (TOML key such as "port", or "data_dir", "network", "log_level") came
// from: one of the Source* constants, or "" for an unknown key.
func (c Config) Source(key string) string {
	for _, s := range settingsTable() {
		if s.key == key {
			return c.sourceOf(key, deref(s.field(&c)))
		}
	}
	return ""
}

// ConfigFile returns the path of the config file Load considered (whether
// or not it existed), or "" for a Config not produced by Load.
func (c Config) ConfigFile() string {
	if c.info == nil {
		return ""
	}
	return c.info.configFile
}

// IgnoredKeys returns the unknown keys of [directory_server] in the config
// file, as "directory_server.key", sorted. The result is a fresh slice.
func (c Config) IgnoredKeys() []string {
	if c.info == nil || len(c.info.ignored) == 0 {
		return nil
	}
	return append([]string(nil), c.info.ignored...)
}

// UnknownKeys returns what Load found that no setting uses, for one warning at start:
// the unknown keys of [directory_server] in the config file, as "directory_server.key
// (config.toml)" (IgnoredKeys: typos, and joinmarket-ng keys this server does not use),
// then the variables of the environment and of .env that carry one of this server's
// nested prefixes (DIRECTORY_SERVER__, NETWORK_CONFIG__, LOGGING__) but name no
// setting, as "NAME (environment)" or "NAME (.env)". The result is a fresh slice; nil
// when there is nothing to report or the Config is not from Load.
func (c Config) UnknownKeys() []string {
	if c.info == nil {
		return nil
	}
	var out []string
	for _, k := range c.info.ignored {
		out = append(out, k+" ("+SourceTOML+")")
	}
	return append(out, c.info.unknownEnv...)
}

// recorded returns the origin Load recorded for key if the current value v
// is still the one Load set.
func (c Config) recorded(key string, v any) (origin, bool) {
	if c.info == nil {
		return origin{}, false
	}
	o, ok := c.info.origins[key]
	if !ok || o.value != formatValue(v) {
		return origin{}, false
	}
	return o, true
}

func (c Config) sourceOf(key string, v any) string {
	if o, ok := c.recorded(key, v); ok {
		return o.source
	}
	d := Default()
	for _, s := range settingsTable() {
		if s.key == key && formatValue(deref(s.field(&d))) == formatValue(v) {
			return SourceDefault
		}
	}
	return SourceCode
}

// label renders `name=value (source)` for error messages, using the name and
// value as the user wrote them when known. Secret values are redacted.
func (c Config) label(key string, v any) string {
	if o, ok := c.recorded(key, v); ok {
		return fmt.Sprintf("%s=%s (%s)", o.name, o.shown, o.source)
	}
	shown := formatValue(v)
	if isSecret(key) {
		shown = redactedValue
	}
	return fmt.Sprintf("%s=%s", key, shown)
}

// Redaction markers for secret settings.
const (
	redactedSet     = "(set)"      // Describe: a non-empty secret
	redactedValue   = "(redacted)" // error messages: the value as written
	redactedChanged = "(changed)"  // Diff: old and new value
)

// display renders v for Describe and Diff: formatValue, except that a
// non-empty secret is shown as "(set)".
func (s setting) display(v any) string {
	if s.secret {
		if str, _ := v.(string); str != "" {
			return redactedSet
		}
	}
	return formatValue(v)
}

// isSecret reports whether the setting with the given key is secret.
func isSecret(key string) bool {
	for _, s := range settingsTable() {
		if s.key == key {
			return s.secret
		}
	}
	return false
}

// kind is the type of a setting's value.
type kind uint8

const (
	kindString kind = iota
	kindInt
	kindFloat
	kindDuration
	kindBool
)

// String names the kind in usage text.
func (k kind) String() string {
	switch k {
	case kindInt:
		return "int"
	case kindFloat:
		return "number"
	case kindDuration:
		return "duration"
	case kindBool:
		return "bool"
	}
	return "string"
}

// tomlKey is a key inside a TOML section.
type tomlKey struct{ section, key string }

// setting describes one configuration setting: its names in every source,
// how to parse and check it, and which Config field holds it.
type setting struct {
	key      string              // canonical name; the TOML key in [directory_server]
	kind     kind                // value type
	help     string              // one-line description for --help
	flag     string              // flag name without dashes
	env      []string            // environment names, highest priority first
	toml     []tomlKey           // TOML keys, highest priority first
	accepted string              // "accepted values are ..." for error messages
	norm     func(string) string // for kindString: canonicalise text input
	valid    func(any) bool      // nil = anything goes
	field    func(*Config) any   // pointer to the Config field
	secret   bool                // never print the value (Describe, errors, Diff)
	live     bool                // a reload (SIGHUP) applies it; false (the default): it needs a restart
}

// live marks a setting that a reload applies (see Apply): something reads it again after
// start. Only a row marked live is ever changed by a reload, so a new setting needs a
// restart until someone makes it live on purpose.
func live(s setting) setting {
	s.live = true
	return s
}

const (
	keyDataDir            = "data_dir"
	keySelfProbeUnhealthy = "self_probe_unhealthy_after"
	keyIdleThreshold      = "heartbeat_idle_threshold"
	keyHardEvict          = "heartbeat_hard_evict"
	sectionDS             = "directory_server"
	nestedPrefix          = "DIRECTORY_SERVER__"
	durationForms         = "seconds (30, 0.5) or Go durations (1m30s)"
	boolAccepted          = "accepted values are true, false, 1, 0, yes, no, on, off (any case)"
)

// dsSetting builds a setting following the standard naming rule for key k
// in [directory_server].
func dsSetting(k string, kd kind, help, accepted string, valid func(any) bool, field func(*Config) any) setting {
	up := strings.ToUpper(k)
	return setting{
		key:      k,
		kind:     kd,
		help:     help,
		flag:     strings.ReplaceAll(k, "_", "-"),
		env:      []string{nestedPrefix + up, up},
		toml:     []tomlKey{{sectionDS, k}},
		accepted: accepted,
		valid:    valid,
		field:    field,
	}
}

// settingsTable returns all settings in display order. It builds a fresh
// table on every call so that there is no package-level state.
func settingsTable() []setting {
	posDur := "accepted values are durations > 0: " + durationForms
	nonNegDur := "accepted values are durations >= 0 (0 = never): " + durationForms
	intsFrom := func(lo int) string { return fmt.Sprintf("accepted values are integers >= %d", lo) }

	dataDir := setting{
		key: keyDataDir, kind: kindString,
		help:     "data dir holding config.toml and key files (default <home>/.joinmarket-ng)",
		flag:     "data-dir",
		env:      []string{"DATA_DIR", "JOINMARKET_DATA_DIR"},
		accepted: "accepted values are non-empty paths",
		field:    func(c *Config) any { return &c.DataDir },
	}

	network := dsSetting("network", kindString, "bitcoin network: mainnet, testnet, signet or regtest",
		"accepted values are mainnet, testnet, signet, regtest", validNetwork,
		func(c *Config) any { return &c.Network })
	network.env = []string{nestedPrefix + "NETWORK", "NETWORK_CONFIG__NETWORK", "NETWORK"}
	network.toml = []tomlKey{{sectionDS, "network"}, {"network_config", "network"}}
	network.norm = lowerTrim

	host := dsSetting("host", kindString, "listen host",
		"accepted values are an IP address or host name without port (0.0.0.0 = all interfaces)", validHost,
		func(c *Config) any { return &c.Host })
	host.norm = strings.TrimSpace

	location := dsSetting("location", kindString, `own location-string advertised to clients ("" = derive at runtime)`,
		`accepted values are "" (derive at runtime) or host:port (e.g. xyz.onion:5222) with port 1..65535`, validLocation,
		func(c *Config) any { return &c.Location })
	location.norm = strings.TrimSpace

	healthHost := dsSetting("health_check_host", kindString, "ops HTTP listener host (/status, live page, /debug/pprof/)",
		"accepted values are an IP address or host name without port (0.0.0.0 = all interfaces)", validHost,
		func(c *Config) any { return &c.HealthCheckHost })
	healthHost.norm = strings.TrimSpace

	opsToken := dsSetting("ops_token", kindString,
		`bearer token for the ops endpoints on a non-loopback address ("" = generate one into the data dir); secret`,
		`accepted values are "" (generate one into the data dir) or 16..256 printable ASCII characters without spaces`, validOpsToken,
		func(c *Config) any { return &c.OpsToken })
	opsToken.secret = true

	nickAuthMode := dsSetting("nick_auth_mode", kindString,
		"nick authentication (JMP-0005): disabled, prefer_verified (authenticate clients that offer it), require_verified (refuse the others: every reference client)",
		"accepted values are disabled, prefer_verified, require_verified", validNickAuthMode,
		func(c *Config) any { return &c.NickAuthMode })
	nickAuthMode.norm = lowerTrim

	torMode := dsSetting("tor_mode", kindString, "tor: none (plain TCP), control (publish the onion through a tor control port), launch (start tor), external (behind an operator-run tor)",
		"accepted values are none, control, launch, external", validTorMode,
		func(c *Config) any { return &c.TorMode })
	torMode.flag = "tor"
	torMode.norm = lowerTrim
	torPassword := dsSetting("tor_control_password", kindString, "tor control port password (HASHEDPASSWORD); secret",
		"accepted values are single-line text", validLine,
		func(c *Config) any { return &c.TorControlPassword })
	torPassword.secret = true
	pathSetting := func(k, help string, field func(*Config) any) setting {
		s := dsSetting(k, kindString, help, "accepted values are a file system path (single line) or \"\"", validLine, field)
		s.norm = strings.TrimSpace
		return s
	}

	logLevel := dsSetting("log_level", kindString, "log level: DEBUG, INFO, WARNING or ERROR",
		"accepted values are DEBUG, INFO, WARNING, ERROR (any case; aliases TRACE, WARN, SUCCESS, CRITICAL)", validLogLevel,
		func(c *Config) any { return &c.LogLevel })
	logLevel.env = []string{nestedPrefix + "LOG_LEVEL", "LOGGING__LEVEL", "LOG_LEVEL"}
	logLevel.toml = []tomlKey{{sectionDS, "log_level"}, {"logging", "level"}}
	logLevel.norm = canonicalLogLevel
	logLevel.live = true // the caller owns the logger and sets its level

	logFormat := dsSetting("log_format", kindString, "log format: text or json (--log-json = json)",
		"accepted values are text, json", validLogFormat,
		func(c *Config) any { return &c.LogFormat })
	logFormat.norm = lowerTrim

	return []setting{
		dataDir,
		network,
		host,
		dsSetting("port", kindInt, "listen port (0 = OS-assigned)",
			"accepted values are integers 0..65535", intIn(0, 65535),
			func(c *Config) any { return &c.Port }),
		location,
		live(dsSetting("motd", kindString, "operator message of the day",
			"accepted values are single-line text without control characters", validMOTD,
			func(c *Config) any { return &c.MOTD })),

		live(dsSetting("max_peers", kindInt, "maximum number of connected peers",
			intsFrom(1), intIn(1, math.MaxInt),
			func(c *Config) any { return &c.MaxPeers })),
		live(dsSetting("max_pending_handshakes", kindInt, "maximum connections not yet handshaked",
			intsFrom(1), intIn(1, math.MaxInt),
			func(c *Config) any { return &c.MaxPendingHandshakes })),
		live(dsSetting("max_line_length", kindInt, "maximum length of one protocol line in bytes",
			"accepted values are integers 1024..2097152", intIn(1024, 2097152),
			func(c *Config) any { return &c.MaxLineLength })),

		live(dsSetting("message_rate_limit", kindFloat, "messages per second per connection",
			"accepted values are numbers > 0", validPositiveFloat,
			func(c *Config) any { return &c.MessageRateLimit })),
		live(dsSetting("message_burst_limit", kindInt, "message burst allowance per connection",
			intsFrom(1), intIn(1, math.MaxInt),
			func(c *Config) any { return &c.MessageBurstLimit })),
		live(dsSetting("rate_limit_disconnect_threshold", kindInt, "rate-limit violations before disconnect (0 = never)",
			"accepted values are integers >= 0 (0 = never disconnect)", intIn(0, math.MaxInt),
			func(c *Config) any { return &c.RateLimitDisconnectThreshold })),
		live(dsSetting("getpeerlist_per_minute", kindInt, "getpeerlist requests per minute per connection",
			intsFrom(1), intIn(1, math.MaxInt),
			func(c *Config) any { return &c.GetPeerlistPerMinute })),
		live(dsSetting("orderbook_per_minute", kindInt, "public !orderbook requests per minute per connection",
			intsFrom(1), intIn(1, math.MaxInt),
			func(c *Config) any { return &c.OrderbookPerMinute })),
		live(dsSetting("spoof_disconnect_threshold", kindInt, "spoofed-sender messages before disconnect",
			intsFrom(1), intIn(1, math.MaxInt),
			func(c *Config) any { return &c.SpoofDisconnectThreshold })),

		live(dsSetting("handshake_timeout", kindDuration, "time allowed to complete the handshake",
			posDur, durIn(0, 0),
			func(c *Config) any { return &c.HandshakeTimeout })),
		live(dsSetting("first_byte_timeout", kindDuration, "time allowed from connecting to a connection's first byte",
			posDur, durIn(0, 0),
			func(c *Config) any { return &c.FirstByteTimeout })),
		live(dsSetting("nick_check_timeout", kindDuration, "time a live incumbent of a nick may take to answer a probe",
			"accepted values are durations > 0 and <= 60s: "+durationForms, durIn(0, 60*time.Second),
			func(c *Config) any { return &c.NickCheckTimeout })),
		nickAuthMode,
		dsSetting("nick_auth_directory_id", kindString,
			`the directory-id of nick authentication (JMP-0005): what clients expect, their dialled onion:port lower-cased ("" = this directory's own location)`,
			`accepted values are "" or [a-z0-9][a-z0-9.:_-]*`, validDirectoryID,
			func(c *Config) any { return &c.NickAuthDirectoryID }),
		live(dsSetting("nick_auth_timeout", kindDuration, "time a client may take to answer the nick-authentication challenge (also bounds the directory's own sends)",
			"accepted values are durations > 0 and <= 30s: "+durationForms, durIn(0, 30*time.Second),
			func(c *Config) any { return &c.NickAuthTimeout })),
		live(dsSetting("outbound_queue_bytes", kindInt, "per-peer outbound queue cap in bytes",
			intsFrom(65536), intIn(65536, math.MaxInt),
			func(c *Config) any { return &c.OutboundQueueBytes })),
		live(dsSetting("write_timeout", kindDuration, "time allowed for one write to a peer",
			posDur, durIn(0, 0),
			func(c *Config) any { return &c.WriteTimeout })),
		live(dsSetting("outbound_lag_bytes", kindInt, "broadcasts to a peer with more than this many bytes queued are dropped (never privmsgs)",
			intsFrom(4096), intIn(4096, math.MaxInt),
			func(c *Config) any { return &c.OutboundLagBytes })),
		live(dsSetting("outbound_total_bytes", kindInt, "bound on the bytes queued to all peers together",
			intsFrom(1<<20), intIn(1<<20, math.MaxInt),
			func(c *Config) any { return &c.OutboundTotalBytes })),
		live(dsSetting("message_byte_rate", kindFloat, "bytes per second of relayed pubmsg and privmsg text per connection",
			"accepted values are numbers > 0", validPositiveFloat,
			func(c *Config) any { return &c.MessageByteRate })),
		live(dsSetting("message_byte_burst", kindInt, "bytes of relayed text a connection may send at once (>= max_line_length)",
			intsFrom(1024), intIn(1024, math.MaxInt),
			func(c *Config) any { return &c.MessageByteBurst })),

		live(dsSetting("heartbeat_sweep_interval", kindDuration, "interval between heartbeat sweeps",
			posDur, durIn(0, 0),
			func(c *Config) any { return &c.HeartbeatSweepInterval })),
		live(dsSetting(keyIdleThreshold, kindDuration, "idle time before a peer is probed",
			posDur, durIn(0, 0),
			func(c *Config) any { return &c.HeartbeatIdleThreshold })),
		live(dsSetting(keyHardEvict, kindDuration, "idle time before a peer is evicted (>= idle threshold)",
			posDur, durIn(0, 0),
			func(c *Config) any { return &c.HeartbeatHardEvict })),
		live(dsSetting("heartbeat_pong_wait", kindDuration, "time to wait for a probe answer",
			posDur, durIn(0, 0),
			func(c *Config) any { return &c.HeartbeatPongWait })),

		healthHost,
		dsSetting("health_check_port", kindInt, "ops HTTP listener port (0 = OS-assigned)",
			"accepted values are integers 0..65535", intIn(0, 65535),
			func(c *Config) any { return &c.HealthCheckPort }),
		opsToken,
		pathSetting("ops_tls_cert", `PEM certificate (chain) for the ops listener's HTTPS off loopback, with ops_tls_key ("" = self-signed, generated into <data dir>/ops-tls.crt)`,
			func(c *Config) any { return &c.OpsTLSCert }),
		pathSetting("ops_tls_key", `PEM private key of ops_tls_cert ("" = <data dir>/ops-tls.key, generated with the certificate)`,
			func(c *Config) any { return &c.OpsTLSKey }),
		dsSetting("status_hide_nicks", kindBool, "omit nick lists from /status and the live page",
			boolAccepted, nil,
			func(c *Config) any { return &c.HideNicks }),
		dsSetting("pprof", kindBool, "serve /debug/pprof/ on the ops listener",
			boolAccepted, nil,
			func(c *Config) any { return &c.Pprof }),

		torMode,
		dsSetting("tor_control_host", kindString, "tor control port host (tor_mode=control)",
			"accepted values are an IP address or host name without port", validHost,
			func(c *Config) any { return &c.TorControlHost }),
		dsSetting("tor_control_port", kindInt, "tor control port (tor_mode=control)",
			"accepted values are integers 1..65535", intIn(1, 65535),
			func(c *Config) any { return &c.TorControlPort }),
		pathSetting("tor_control_socket", `tor control socket path, instead of host:port ("" = use host:port)`,
			func(c *Config) any { return &c.TorControlSocket }),
		torPassword,
		pathSetting("tor_cookie_file", `tor control cookie file ("" = the path tor reports)`,
			func(c *Config) any { return &c.TorCookieFile }),
		pathSetting("tor_binary", "tor executable for tor_mode=launch",
			func(c *Config) any { return &c.TorBinary }),
		pathSetting("tor_hidden_service_dir", "HiddenServiceDir of the operator's tor (tor_mode=external; its hostname file is read)",
			func(c *Config) any { return &c.TorHiddenServiceDir }),
		pathSetting("tor_onion_key_file", `the onion's key, tor's hs_ed25519_secret_key format ("" = <data dir>/onion/hs_ed25519_secret_key)`,
			func(c *Config) any { return &c.TorOnionKeyFile }),
		dsSetting("onion_virtual_port", kindInt, "the onion service's port",
			"accepted values are integers 1..65535", intIn(1, 65535),
			func(c *Config) any { return &c.OnionVirtualPort }),
		dsSetting("tor_pow", kindBool, "enable tor's proof-of-work defences for the onion (tor >= 0.4.8)",
			boolAccepted, nil,
			func(c *Config) any { return &c.TorPoW }),
		dsSetting("allow_clearnet", kindBool,
			"with tor_mode none, allow serving mainnet, testnet or signet on a non-loopback address (peers and their traffic seen in the clear)",
			boolAccepted, nil,
			func(c *Config) any { return &c.AllowClearnet }),
		dsSetting("tor_socks_host", kindString,
			`a SOCKS port of tor for the self-probe: host ("" = launch: the launched tor's; control: ask tor; external: none, no self-probe)`,
			"accepted values are an IP address or host name without port, or \"\"", validOptionalHost,
			func(c *Config) any { return &c.TorSocksHost }),
		dsSetting("tor_socks_port", kindInt, "the port of tor_socks_host",
			"accepted values are integers 1..65535", intIn(1, 65535),
			func(c *Config) any { return &c.TorSocksPort }),
		live(dsSetting("self_probe_interval", kindDuration,
			"how often the directory dials its own onion through tor and performs a handshake (0 = never)",
			nonNegDur, durIn(-1, 0),
			func(c *Config) any { return &c.SelfProbeInterval })),
		live(dsSetting("self_probe_timeout", kindDuration, "time allowed for one self-probe",
			posDur, durIn(0, 0),
			func(c *Config) any { return &c.SelfProbeTimeout })),
		live(dsSetting(keySelfProbeUnhealthy, kindDuration,
			"/health turns unhealthy after this long without a successful self-probe (0 = never)",
			nonNegDur, durIn(-1, 0),
			func(c *Config) any { return &c.SelfProbeUnhealthyAfter })),
		dsSetting("tor_proxy_protocol", kindBool,
			"expect tor's PROXY v1 header on every connection (HiddenServiceExportCircuitID haproxy) and key rate limits, caps and bans on the circuit; not with tor_mode control",
			boolAccepted, nil,
			func(c *Config) any { return &c.TorProxyProtocol }),
		live(dsSetting("circuit_max_connections", kindInt, "open connections per Tor circuit (tor_proxy_protocol)",
			intsFrom(1), intIn(1, math.MaxInt),
			func(c *Config) any { return &c.CircuitMaxConnections })),
		live(dsSetting("circuit_max_pending", kindInt, "connections per Tor circuit still handshaking (tor_proxy_protocol)",
			intsFrom(1), intIn(1, math.MaxInt),
			func(c *Config) any { return &c.CircuitMaxPending })),
		live(dsSetting("circuit_ban_after", kindInt, "abusive disconnects that ban a Tor circuit (tor_proxy_protocol; 0 = never ban)",
			"accepted values are integers >= 0 (0 = never ban)", intIn(0, math.MaxInt),
			func(c *Config) any { return &c.CircuitBanAfter })),
		live(dsSetting("circuit_ban_duration", kindDuration, "how long a circuit ban, and a strike towards one, lasts",
			posDur, durIn(0, 0),
			func(c *Config) any { return &c.CircuitBanDuration })),

		logLevel,
		logFormat,
	}
}

// deref returns the value a field pointer points to.
func deref(p any) any {
	switch p := p.(type) {
	case *string:
		return *p
	case *int:
		return *p
	case *float64:
		return *p
	case *time.Duration:
		return *p
	case *bool:
		return *p
	}
	panic(fmt.Sprintf("config: unsupported field type %T", p))
}

// assign stores v (of the field's type) through the field pointer p.
func assign(p, v any) {
	switch p := p.(type) {
	case *string:
		*p = v.(string)
	case *int:
		*p = v.(int)
	case *float64:
		*p = v.(float64)
	case *time.Duration:
		*p = v.(time.Duration)
	case *bool:
		*p = v.(bool)
	default:
		panic(fmt.Sprintf("config: unsupported field type %T", p))
	}
}

// formatValue renders a value for Describe and error messages: strings
// quoted, durations in seconds ("600s", "0.5s"), booleans true/false. It
// does not redact secrets: see setting.display.
func formatValue(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(v)
	case int:
		return strconv.Itoa(v)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case time.Duration:
		return formatDuration(v)
	case bool:
		return strconv.FormatBool(v)
	}
	return fmt.Sprint(v)
}

// formatDuration renders d in seconds with a unit, e.g. "600s" or "0.5s";
// the result parses with time.ParseDuration.
func formatDuration(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s"
}

func lowerTrim(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// canonicalLogLevel upper-cases a level and maps aliases (TRACE→DEBUG,
// WARN→WARNING, SUCCESS→INFO, CRITICAL→ERROR). Unknown levels are returned
// upper-cased so that Validate can reject them.
func canonicalLogLevel(s string) string {
	u := strings.ToUpper(strings.TrimSpace(s))
	switch u {
	case "TRACE":
		return "DEBUG"
	case "WARN":
		return "WARNING"
	case "SUCCESS":
		return "INFO"
	case "CRITICAL", "FATAL":
		return "ERROR"
	}
	return u
}

// parseBool accepts true/false, 1/0, yes/no, on/off in any case, with
// surrounding spaces.
func parseBool(raw string) (bool, bool) {
	switch lowerTrim(raw) {
	case "true", "1", "yes", "on":
		return true, true
	case "false", "0", "no", "off":
		return false, true
	}
	return false, false
}

func intIn(lo, hi int) func(any) bool {
	return func(v any) bool { n := v.(int); return n >= lo && n <= hi }
}

// durIn accepts durations in (lo, hi]; hi == 0 means no upper bound.
func durIn(lo, hi time.Duration) func(any) bool {
	return func(v any) bool {
		d := v.(time.Duration)
		return d > lo && (hi == 0 || d <= hi)
	}
}

func validPositiveFloat(v any) bool {
	f := v.(float64)
	return f > 0 && !math.IsInf(f, 0) && !math.IsNaN(f)
}

func validNetwork(v any) bool {
	switch v.(string) {
	case "mainnet", "testnet", "signet", "regtest":
		return true
	}
	return false
}

func validLogLevel(v any) bool {
	switch v.(string) {
	case "DEBUG", "INFO", "WARNING", "ERROR":
		return true
	}
	return false
}

// OnionKeyPath is where the onion's key lives: tor_onion_key_file, or
// <data dir>/onion/hs_ed25519_secret_key.
func (c Config) OnionKeyPath() string {
	if c.TorOnionKeyFile != "" {
		return c.TorOnionKeyFile
	}
	return filepath.Join(c.DataDir, "onion", "hs_ed25519_secret_key")
}

func validNickAuthMode(v any) bool {
	switch v.(string) {
	case "disabled", "prefer_verified", "require_verified":
		return true
	}
	return false
}

// validDirectoryID accepts "" or JMP-0005's directory-id grammar (nickauth.ValidDirectoryID),
// at most 256 bytes.
func validDirectoryID(v any) bool {
	s := v.(string)
	return s == "" || len(s) <= 256 && nickauth.ValidDirectoryID(s)
}

func validTorMode(v any) bool {
	switch v.(string) {
	case "none", "control", "launch", "external":
		return true
	}
	return false
}

// validLine accepts any text without control characters (paths, passwords).
func validLine(v any) bool {
	return !strings.ContainsFunc(v.(string), unicode.IsControl)
}

func validLogFormat(v any) bool {
	s := v.(string)
	return s == "text" || s == "json"
}

// validHost accepts an IP literal or a host name: non-empty, no port, no
// brackets, no whitespace or control characters.
func validHost(v any) bool {
	h := v.(string)
	if h == "" || strings.ContainsFunc(h, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return false
	}
	if strings.ContainsAny(h, "[]/") {
		return false
	}
	if strings.Contains(h, ":") {
		return net.ParseIP(h) != nil // IPv6 literal
	}
	return true
}

// validLocation accepts "" or host:port with a non-empty host free of the
// characters JoinMarket uses as separators in peer lists.
func validLocation(v any) bool {
	s := v.(string)
	if s == "" {
		return true
	}
	if strings.ContainsAny(s, ";,") || strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return false
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return false
	}
	p, err := strconv.Atoi(port)
	return err == nil && p >= 1 && p <= 65535
}

// validMOTD rejects control characters: the MOTD travels inside one
// line-delimited protocol message.
func validMOTD(v any) bool {
	return !strings.ContainsFunc(v.(string), unicode.IsControl)
}

// validOpsToken accepts "" (the server generates a token) or 16..256
// printable ASCII characters other than space.
func validOpsToken(v any) bool {
	s := v.(string)
	if s == "" {
		return true
	}
	if len(s) < 16 || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// validOptionalHost accepts "" or what validHost accepts.
func validOptionalHost(v any) bool { return v.(string) == "" || validHost(v) }

// TorSOCKS is the configured SOCKS port of tor ("host:port"), "" when tor_socks_host
// is unset.
func (c Config) TorSOCKS() string {
	if c.TorSocksHost == "" {
		return ""
	}
	return net.JoinHostPort(c.TorSocksHost, strconv.Itoa(c.TorSocksPort))
}

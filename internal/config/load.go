package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/BurntSushi/toml"
	"github.com/joho/godotenv"
)

// Options tells Load where to look. Zero values mean: no args, empty
// environment, no .env file.
type Options struct {
	Args    []string  // command-line arguments without the program name
	Environ []string  // "KEY=VALUE" entries (os.Environ())
	WorkDir string    // directory searched for .env ("" = no .env)
	HomeDir string    // used for the default data dir
	Output  io.Writer // where flag usage/help goes (nil = io.Discard)
}

// Load builds the configuration from, highest precedence first: flags, the
// process environment (opts.Environ), the .env file in opts.WorkDir,
// config.toml in the data dir, and the defaults. It validates the result.
//
// The data dir is resolved first, from --data-dir, DATA_DIR,
// JOINMARKET_DATA_DIR (environment, then .env), else <HomeDir>/.joinmarket-ng;
// a leading "~" means HomeDir, and empty environment values count as unset. Other
// relative paths are used as given. The config file is <data dir>/config.toml,
// or the file named by JOINMARKET_CONFIG_FILE (environment, then .env). A
// missing default config file is fine; a missing file named by
// JOINMARKET_CONFIG_FILE, an unreadable file or invalid TOML is an error.
// Load creates nothing on disk.
//
// With -h/--help Load writes usage to opts.Output and returns an error
// matching flag.ErrHelp. With --version it returns the defaults with
// ShowVersion set, without reading anything else. Every other error is a
// single line naming the key as written, its source and what is accepted.
func Load(opts Options) (Config, error) {
	out := opts.Output
	if out == nil {
		out = io.Discard
	}
	table := settingsTable()

	fl, err := parseFlags(table, opts.Args, out)
	if err != nil {
		return Config{}, err
	}
	if fl.version {
		c := Default()
		c.ShowVersion = true
		return c, nil
	}

	l := &loader{
		home:  opts.HomeDir,
		flags: fl,
		env:   newEnvLayer(SourceEnv, opts.Environ),
		info:  &loadInfo{origins: make(map[string]origin, len(table))},
	}
	if opts.WorkDir != "" {
		l.dotenv, err = readDotEnv(filepath.Join(opts.WorkDir, ".env"))
		if err != nil {
			return Config{}, err
		}
	}

	c := Default()
	c.CheckConfig = fl.checkConfig

	// table[0] is data_dir: it is resolved first because it locates config.toml.
	if err := l.resolveDataDir(&c, table[0]); err != nil {
		return Config{}, err
	}
	if err := l.readConfigFile(c.DataDir, table); err != nil {
		return Config{}, err
	}
	for _, s := range table[1:] {
		if err := l.apply(&c, s); err != nil {
			return Config{}, err
		}
	}
	if fl.logJSON {
		if o, ok := l.info.origins["log_format"]; ok && o.source == SourceFlag && c.LogFormat != "json" {
			return Config{}, fmt.Errorf("--log-json (flag) conflicts with %s=%s (flag)", o.name, o.shown)
		}
		c.LogFormat = "json"
		l.info.origins["log_format"] = origin{source: SourceFlag, name: "--log-json", shown: "true", value: formatValue("json")}
	}

	l.info.unknownEnv = unknownEnv(table, l.env, l.dotenv)
	c.info = l.info
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// loader holds the parsed sources while Load works through the settings.
type loader struct {
	home     string
	flags    *flagValues
	env      *envLayer
	dotenv   *envLayer      // nil without a .env file
	toml     map[string]any // nil without a config file
	tomlPath string
	info     *loadInfo
}

// candidate is one raw value found for a setting.
type candidate struct {
	source string
	name   string // key as written
	text   string // raw text (flag, environment, .env)
	tval   any    // raw TOML value (config.toml)
}

// find returns the highest-precedence raw value for s. With skipEmpty, an
// empty text value counts as unset.
func (l *loader) find(s setting, skipEmpty bool) (candidate, bool, error) {
	if v, ok := l.flags.text[s.key]; ok && v.set {
		if !(skipEmpty && v.val == "") {
			return candidate{source: SourceFlag, name: "--" + s.flag, text: v.val}, true, nil
		}
	}
	for _, layer := range []*envLayer{l.env, l.dotenv} {
		if layer == nil {
			continue
		}
		for _, n := range s.env {
			if e, ok := layer.get(n); ok && !(skipEmpty && e.value == "") {
				return candidate{source: layer.source, name: e.name, text: e.value}, true, nil
			}
		}
	}
	for _, tk := range s.toml {
		v, ok, err := l.tomlValue(tk)
		if err != nil {
			return candidate{}, false, err
		}
		if ok {
			name := tk.key
			if tk.section != sectionDS {
				name = tk.section + "." + tk.key
			}
			return candidate{source: SourceTOML, name: name, tval: v}, true, nil
		}
	}
	return candidate{}, false, nil
}

// apply sets one setting on c from the highest-precedence source that has it
// and records its origin.
func (l *loader) apply(c *Config, s setting) error {
	cand, ok, err := l.find(s, false)
	if err != nil {
		return err
	}
	p := s.field(c)
	if !ok {
		l.recordDefault(s, deref(p))
		return nil
	}
	v, shown, ok := parseCandidate(s, cand)
	if s.secret {
		shown = redactedValue
	}
	if !ok {
		return fmt.Errorf("%s=%s (%s): %s", cand.name, shown, cand.source, s.accepted)
	}
	assign(p, v)
	l.info.origins[s.key] = origin{source: cand.source, name: cand.name, shown: shown, value: formatValue(v)}
	return nil
}

func (l *loader) recordDefault(s setting, v any) {
	l.info.origins[s.key] = origin{source: SourceDefault, name: s.key, shown: formatValue(v), value: formatValue(v)}
}

// resolveDataDir fills c.DataDir from flag, environment or .env (empty
// values count as unset), else <home>/.joinmarket-ng.
func (l *loader) resolveDataDir(c *Config, s setting) error {
	if f, given := l.flags.text[s.key]; given && f.set && f.val == "" {
		return fmt.Errorf(`--%s="" (flag): %s`, s.flag, s.accepted)
	}
	cand, ok, err := l.find(s, true)
	if err != nil {
		return err
	}
	if !ok {
		if l.home == "" {
			return errors.New("no home directory to derive the default data dir from: set --data-dir or DATA_DIR")
		}
		c.DataDir = filepath.Join(l.home, ".joinmarket-ng")
		l.recordDefault(s, c.DataDir)
		return nil
	}
	c.DataDir = expandHome(cand.text, l.home)
	l.info.origins[s.key] = origin{source: cand.source, name: cand.name, shown: strconv.Quote(cand.text), value: formatValue(c.DataDir)}
	return nil
}

// readConfigFile locates, reads and parses the TOML config file, and records
// which [directory_server] keys are unknown.
func (l *loader) readConfigFile(dataDir string, table []setting) error {
	path := filepath.Join(dataDir, "config.toml")
	var named *candidate
	for _, layer := range []*envLayer{l.env, l.dotenv} {
		if layer == nil {
			continue
		}
		if e, ok := layer.get("JOINMARKET_CONFIG_FILE"); ok && e.value != "" {
			named = &candidate{source: layer.source, name: e.name, text: e.value}
			path = expandHome(e.value, l.home)
			break
		}
	}
	l.info.configFile = path

	data, err := os.ReadFile(path)
	switch {
	case err == nil:
	case errors.Is(err, fs.ErrNotExist) && named == nil:
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s=%q (%s): config file not found", named.name, named.text, named.source)
	default:
		return fmt.Errorf("config file %s: %s", path, oneLine(err))
	}
	l.info.configFound = true

	var m map[string]any
	if _, err := toml.Decode(string(data), &m); err != nil {
		return fmt.Errorf("config file %s: %s", path, oneLine(err))
	}
	if m == nil {
		m = map[string]any{}
	}
	l.toml = m
	l.tomlPath = path

	sec, ok, err := l.section(sectionDS)
	if err != nil || !ok {
		return err
	}
	known := map[string]bool{}
	for _, s := range table {
		for _, tk := range s.toml {
			if tk.section == sectionDS {
				known[tk.key] = true
			}
		}
	}
	for k := range sec {
		if !known[k] {
			l.info.ignored = append(l.info.ignored, sectionDS+"."+k)
		}
	}
	sort.Strings(l.info.ignored)
	return nil
}

// unknownEnv lists the variables of the layers that start with one of the nested
// prefixes the settings use (DIRECTORY_SERVER__, NETWORK_CONFIG__, LOGGING__) but name
// no setting, each as "NAME (source)", in layer order, sorted within a layer. Flat
// names (PORT) are not checked: nothing tells a typo from another program's variable.
func unknownEnv(table []setting, layers ...*envLayer) []string {
	known := map[string]bool{}
	var prefixes []string
	for _, s := range table {
		for _, n := range s.env {
			n = strings.ToUpper(n)
			known[n] = true
			if i := strings.Index(n, "__"); i > 0 && !slices.Contains(prefixes, n[:i+2]) {
				prefixes = append(prefixes, n[:i+2])
			}
		}
	}
	var out []string
	for _, layer := range layers {
		if layer == nil {
			continue
		}
		var found []string
		for up, e := range layer.vars {
			if known[up] {
				continue
			}
			for _, p := range prefixes {
				if strings.HasPrefix(up, p) {
					found = append(found, e.name+" ("+layer.source+")")
					break
				}
			}
		}
		sort.Strings(found)
		out = append(out, found...)
	}
	return out
}

// section returns the table [name] of the config file.
func (l *loader) section(name string) (map[string]any, bool, error) {
	raw, ok := l.toml[name]
	if !ok {
		return nil, false, nil
	}
	sec, ok := raw.(map[string]any)
	if !ok {
		return nil, false, fmt.Errorf("config file %s: %s must be a table ([%s])", l.tomlPath, name, name)
	}
	return sec, true, nil
}

func (l *loader) tomlValue(tk tomlKey) (any, bool, error) {
	if l.toml == nil {
		return nil, false, nil
	}
	sec, ok, err := l.section(tk.section)
	if err != nil || !ok {
		return nil, false, err
	}
	v, ok := sec[tk.key]
	return v, ok, nil
}

// parseCandidate converts a raw value to the setting's type. It also returns
// the raw value rendered for messages.
func parseCandidate(s setting, cand candidate) (v any, shown string, ok bool) {
	if cand.source != SourceTOML {
		v, ok := parseText(s, cand.text)
		return v, showText(s.kind, cand.text), ok
	}
	switch t := cand.tval.(type) {
	case string:
		v, ok := parseText(s, t)
		return v, strconv.Quote(t), ok
	case bool:
		return t, strconv.FormatBool(t), s.kind == kindBool
	case int64:
		shown = strconv.FormatInt(t, 10)
		switch s.kind {
		case kindBool:
			return t == 1, shown, t == 0 || t == 1
		case kindInt:
			if int64(int(t)) != t {
				return nil, shown, false
			}
			return int(t), shown, true
		case kindFloat:
			return float64(t), shown, true
		case kindDuration:
			d, ok := secondsToDuration(float64(t))
			return d, shown, ok
		}
		return nil, shown, false
	case float64:
		shown = strconv.FormatFloat(t, 'g', -1, 64)
		switch s.kind {
		case kindFloat:
			return t, shown, !math.IsNaN(t) && !math.IsInf(t, 0)
		case kindDuration:
			d, ok := secondsToDuration(t)
			return d, shown, ok
		}
		return nil, shown, false
	default:
		return nil, fmt.Sprint(t), false
	}
}

// parseText converts text from a flag, the environment or .env.
func parseText(s setting, raw string) (any, bool) {
	switch s.kind {
	case kindString:
		if s.norm != nil {
			return s.norm(raw), true
		}
		return raw, true
	case kindInt:
		n, err := strconv.Atoi(strings.TrimSpace(raw))
		return n, err == nil
	case kindFloat:
		f, err := strconv.ParseFloat(strings.TrimSpace(raw), 64)
		return f, err == nil && !math.IsNaN(f) && !math.IsInf(f, 0)
	case kindDuration:
		return parseDurationText(raw)
	case kindBool:
		return parseBool(raw)
	}
	return nil, false
}

// parseDurationText accepts a number of seconds ("30", "0.5") or a Go
// duration string ("1m30s").
func parseDurationText(raw string) (time.Duration, bool) {
	t := strings.TrimSpace(raw)
	if t == "" {
		return 0, false
	}
	if f, err := strconv.ParseFloat(t, 64); err == nil {
		return secondsToDuration(f)
	}
	d, err := time.ParseDuration(t)
	return d, err == nil
}

func secondsToDuration(f float64) (time.Duration, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	ns := math.Round(f * float64(time.Second))
	if ns >= math.MaxInt64 || ns <= math.MinInt64 {
		return 0, false
	}
	return time.Duration(ns), true
}

// showText renders raw text for a message: quoted for string settings and
// for anything that is not a plain token.
func showText(k kind, raw string) string {
	plain := raw != "" && !strings.ContainsFunc(raw, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r) || r == '"' || r == '\'' || r == '=' || r > unicode.MaxASCII
	})
	if k == kindString || !plain {
		return strconv.Quote(raw)
	}
	return raw
}

// expandHome replaces a leading "~" with home.
func expandHome(p, home string) string {
	if home == "" {
		return p
	}
	if p == "~" {
		return home
	}
	if strings.HasPrefix(p, "~/") || strings.HasPrefix(p, "~"+string(filepath.Separator)) {
		return filepath.Join(home, p[2:])
	}
	return p
}

// oneLine joins a possibly multi-line error message into one line.
func oneLine(err error) string {
	lines := strings.FieldsFunc(err.Error(), func(r rune) bool { return r == '\n' || r == '\r' })
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return strings.Join(lines, "; ")
}

// envEntry is one variable as written.
type envEntry struct{ name, value string }

// envLayer is a set of variables looked up case-insensitively.
type envLayer struct {
	source string
	vars   map[string]envEntry // by upper-case name
}

// newEnvLayer indexes "KEY=VALUE" entries; the first entry for a name wins,
// as with getenv.
func newEnvLayer(source string, environ []string) *envLayer {
	l := &envLayer{source: source, vars: make(map[string]envEntry, len(environ))}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			continue
		}
		up := strings.ToUpper(k)
		if _, dup := l.vars[up]; !dup {
			l.vars[up] = envEntry{name: k, value: v}
		}
	}
	return l
}

func (l *envLayer) get(name string) (envEntry, bool) {
	e, ok := l.vars[strings.ToUpper(name)]
	return e, ok
}

// readDotEnv parses path as a .env file; a missing file gives nil.
func readDotEnv(path string) (*envLayer, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf(".env file %s: %s", path, oneLine(err))
	}
	m, err := godotenv.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf(".env file %s: %s", path, dotEnvSyntaxError(err))
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names) // deterministic when names differ only in case
	environ := make([]string, 0, len(names))
	for _, k := range names {
		environ = append(environ, k+"="+m[k])
	}
	return newEnvLayer(SourceDotEnv, environ), nil
}

// dotEnvSyntaxError renders a godotenv parse error without the file text
// godotenv quotes ("near ...", the unterminated value), which may hold
// secrets such as ops_token.
func dotEnvSyntaxError(err error) string {
	msg := oneLine(err)
	if i := strings.Index(msg, " near "); i >= 0 {
		msg = msg[:i]
	}
	if strings.HasPrefix(msg, "unterminated quoted value") {
		msg = "unterminated quoted value"
	}
	return msg
}

// textFlag is a flag.Value holding raw text, so that parsing and error
// messages are the same for flags as for every other source.
type textFlag struct {
	set    bool
	val    string
	def    string // shown as the default in usage
	isBool bool   // a bare --name means --name=true
}

// IsBoolFlag tells the flag package that a boolean setting's flag may be
// given without a value.
func (f *textFlag) IsBoolFlag() bool { return f != nil && f.isBool }

func (f *textFlag) String() string {
	if f == nil {
		return ""
	}
	return f.def
}

func (f *textFlag) Set(s string) error {
	f.set, f.val = true, s
	return nil
}

// flagValues is the result of parsing the command line.
type flagValues struct {
	text        map[string]*textFlag // by setting key
	checkConfig bool
	version     bool
	logJSON     bool
}

// parseFlags parses args; usage and flag errors are written to out.
func parseFlags(table []setting, args []string, out io.Writer) (*flagValues, error) {
	fv := &flagValues{text: make(map[string]*textFlag, len(table))}
	fset := flag.NewFlagSet("jm-directory-server", flag.ContinueOnError)
	fset.SetOutput(out)
	def := Default()
	for _, s := range table {
		tf := &textFlag{isBool: s.kind == kindBool}
		if s.key != keyDataDir {
			tf.def = strings.Trim(formatValue(deref(s.field(&def))), `"`)
		}
		if tf.isBool && tf.def == "false" {
			tf.def = "" // like Go's own boolean flags: no "(default false)"
		}
		fv.text[s.key] = tf
		env := slices.Clone(s.env)
		slices.Reverse(env) // flat names first: easier to read
		kindName := "[`" + s.kind.String() + "`] "
		if tf.isBool {
			kindName = "" // usage shows "-pprof", not "-pprof bool": the value is optional
		}
		fset.Var(tf, s.flag, fmt.Sprintf("%s %s(env %s)", s.help, kindName, strings.Join(env, ", ")))
	}
	fset.BoolVar(&fv.logJSON, "log-json", false, "log in JSON (same as --log-format=json)")
	fset.BoolVar(&fv.checkConfig, "check-config", false, "validate the configuration, print it and exit")
	fset.BoolVar(&fv.version, "version", false, "print the version and exit")
	fset.Usage = func() {
		fmt.Fprintf(out, "Usage: %s [flags]\n\n", fset.Name())
		fmt.Fprintln(out, "Precedence: flags > environment > .env > <data dir>/config.toml ([directory_server]) > defaults.")
		fmt.Fprintln(out, "Durations are seconds (30, 0.5) or Go durations (1m30s). Flags take - or --.")
		fmt.Fprintln(out, "Booleans are true/false, 1/0, yes/no, on/off; a bare boolean flag (--pprof) means true.")
		fmt.Fprintln(out)
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, errors.New(oneLine(err))
	}
	if fset.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q: all settings are flags (--name=value)", fset.Arg(0))
	}
	return fv, nil
}

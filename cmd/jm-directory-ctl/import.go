package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/jm-directory/jm-directory-server/internal/config"
	"github.com/jm-directory/jm-directory-server/internal/onionkey"
	"github.com/jm-directory/jm-directory-server/internal/secretfile"
)

// The import command: jm-directory-ctl import SOURCE… [--data-dir D] [--dry-run]
// [--tor-mode launch|control] [--network N] [--motd TEXT] [--json].
//
// It takes over another directory's settings and, above all, its onion key, so that the
// onion clients know keeps working. Each SOURCE is one of
//   - a reference joinmarket.cfg (start-dn.py's; a directory holding one counts too),
//     whose [MESSAGING:onion] hidden_service_dir holds the onion key;
//   - a tor HiddenServiceDir (hs_ed25519_secret_key, hostname), or its key file;
//   - a joinmarket-ng data dir (its config.toml, or the file itself).
//
// It writes <data dir>/config.toml ([directory_server], only the settings it mapped) and
// the key where the server reads it (tor_onion_key_file, else
// <data dir>/onion/hs_ed25519_secret_key), mode 0600. A key file already there is never
// replaced: the same key is fine, a different one is refused (exit 1, nothing written).
// An existing config.toml that differs is left alone and the result written beside it as
// config.toml.imported. Every mapped setting is printed with where it came from, every
// ignored one with the reason, and the onion derived from the key must equal each
// source's hostname file.
const importCmd = "import"

// Files the command reads and writes.
const (
	hostnameFile     = "hostname"
	configFile       = "config.toml"
	importedSuffix   = ".imported"
	maxImportFile    = 1 << 20
	defaultTorImport = "launch"
)

// importOptions are the import command's arguments.
type importOptions struct {
	sources []string
	dryRun  bool
	torMode string // "" = launch when a key is imported
	motd    string
	network string
	json    bool
}

const importUsage = `Usage: %[1]s import SOURCE... [--data-dir DIR] [--dry-run] [--tor-mode launch|control] [--network N] [--motd TEXT] [--json]

Take over another JoinMarket directory, keeping its onion: read its settings and onion key
and write them into this server's data dir. Each SOURCE is one of
  - a reference joinmarket.cfg (start-dn.py's; or the directory holding it): network,
    log level, and the key in [MESSAGING:onion] hidden_service_dir;
  - a tor HiddenServiceDir (hs_ed25519_secret_key, hostname), e.g. joinmarket-ng's
    tor/data in its Docker deployment;
  - a joinmarket-ng data dir (config.toml, [directory_server]) or its config.toml.
Several sources may be given; values that disagree are an error naming both.

Writes <data dir>/config.toml and the onion key (<data dir>/onion/%[2]s, mode
0600). An existing different key is never replaced (exit 1); an existing config.toml that
differs is left alone and the result written to config.toml.imported. Prints every
setting mapped and every one ignored, with the reason, and checks that the onion of the
key equals the source's hostname file.
  --data-dir DIR       this server's data dir (default: $DATA_DIR, $JOINMARKET_DATA_DIR
                       or ~/.joinmarket-ng)
  --dry-run            check and print everything, write nothing
  --tor-mode MODE      how this server publishes the onion: launch (default: its own tor,
                       as start-dn.py did) or control (a running tor's control port, from
                       tor_control_host/port)
  --network N          the network, when no SOURCE names it (a HiddenServiceDir alone)
  --motd TEXT          the message of the day (start-dn.py's first argument)
  --json               print the result as JSON

Exit status: 0 imported (or would be), 1 refused or failed, 2 usage error.
`

// importCommand reports whether args (global flags first) name the import command, and
// returns the options so far and the arguments after it.
func importCommand(args []string, env func(string) string) (*options, []string, bool) {
	o := defaults(env)
	fs := flagSet(prog, o)
	if fs.Parse(args) != nil {
		return nil, nil, false
	}
	rest := fs.Args()
	if len(rest) == 0 || rest[0] != importCmd {
		return nil, nil, false
	}
	return o, rest[1:], true
}

// parseImport reads the sources and flags, in any order.
func parseImport(args []string, o *options) (importOptions, error) {
	var opt importOptions
	fs := flag.NewFlagSet(prog+" "+importCmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&o.dataDir, "data-dir", o.dataDir, "")
	fs.BoolVar(&opt.dryRun, "dry-run", false, "")
	fs.StringVar(&opt.torMode, "tor-mode", "", "")
	fs.StringVar(&opt.motd, "motd", "", "")
	fs.StringVar(&opt.network, "network", "", "")
	fs.BoolVar(&opt.json, "json", o.json, "")
	for {
		if err := fs.Parse(args); err != nil {
			return opt, flagError(err)
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		opt.sources = append(opt.sources, args[0])
		args = args[1:]
	}
	switch opt.torMode = strings.ToLower(strings.TrimSpace(opt.torMode)); opt.torMode {
	case "", "launch", "control":
	default:
		return opt, fmt.Errorf("import: --tor-mode %q: want launch or control", opt.torMode)
	}
	if len(opt.sources) == 0 {
		return opt, errors.New("import: missing SOURCE (a joinmarket.cfg, a HiddenServiceDir or a joinmarket-ng data dir; see import -h)")
	}
	return opt, nil
}

// runImport implements "import".
func runImport(args []string, o *options, env func(string) string, stdout, stderr io.Writer) int {
	opt, err := parseImport(args, o)
	switch {
	case errors.Is(err, errHelp):
		fmt.Fprintf(stdout, importUsage, prog, onionkey.SecretFileName)
		return 0
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return 2
	}
	dir := dataDir(o, env)
	if dir == "" {
		fmt.Fprintf(stderr, "%s: import: no data dir: pass --data-dir (no $HOME to derive ~/.joinmarket-ng from)\n", prog)
		return 2
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	p := &importPlan{dataDir: dir, home: strings.TrimSpace(env("HOME")), opts: opt, motd: opt.motd, values: map[string]*mapped{}}
	err = p.run()
	if opt.json {
		writeImportJSON(stdout, p, err)
	} else {
		p.write(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: import: %v\n", prog, err)
		return 1
	}
	return 0
}

// importPlan is everything an import finds, decides and does.
type importPlan struct {
	dataDir string
	home    string
	opts    importOptions
	motd    string

	sources []sourceInfo
	values  map[string]*mapped // by setting key
	order   []string           // keys in the order they were mapped
	ignored []ignoredItem
	notes   []string

	key        onionkey.Key
	keyFile    string // the source file holding the key
	keyFrom    string // what named it
	hostChecks []string

	controlHost, controlPort, controlKeys, controlFrom string // the reference's, for --tor-mode control
	directoryNodes                                     string // the reference's, checked against the key
	refWithoutHSDir                                    string // a joinmarket.cfg without hidden_service_dir

	// Results.
	keyDest     string
	keyState    string // "written", "already there", "would be written"
	configPath  string
	configState string
	configWhy   string // why config.toml.imported instead of config.toml
	nextSteps   []string
}

type sourceInfo struct {
	Path string `json:"path"`
	Kind string `json:"kind"`
}

type mapped struct {
	Key   string
	Value any
	From  string
	show  string
}

type ignoredItem struct{ What, Why string }

func (p *importPlan) ignore(what, why string) { p.ignored = append(p.ignored, ignoredItem{what, why}) }
func (p *importPlan) note(s string)           { p.notes = append(p.notes, s) }

// set maps one setting; the same key with another value from another source is an error
// naming both.
func (p *importPlan) set(key string, v any, from string) error {
	text, err := config.EncodeValue(v)
	if err != nil {
		return fmt.Errorf("%s from %s: %v", key, from, err)
	}
	if old, ok := p.values[key]; ok {
		if oldText, _ := config.EncodeValue(old.Value); oldText != text {
			return fmt.Errorf("%s: %s from %s conflicts with %s from %s", key, old.show, old.From, showValue(key, text), from)
		}
		return nil
	}
	p.values[key] = &mapped{Key: key, Value: v, From: from, show: showValue(key, text)}
	p.order = append(p.order, key)
	return nil
}

// showValue renders a mapped value for output: a secret as "(set)".
func showValue(key, text string) string {
	for _, s := range config.FileSettings() {
		if s.Key == key && s.Secret {
			return "(set)"
		}
	}
	return text
}

// run reads every source, maps, checks, and (unless dry-run) writes.
func (p *importPlan) run() error {
	if p.opts.motd != "" {
		if err := p.set("motd", p.opts.motd, "--motd"); err != nil {
			return err
		}
	}
	if n := strings.ToLower(strings.TrimSpace(p.opts.network)); n != "" {
		if err := p.set("network", n, "--network"); err != nil {
			return err
		}
	}
	for _, src := range p.opts.sources {
		if err := p.readSource(src); err != nil {
			return err
		}
	}
	if err := p.decideTor(); err != nil {
		return err
	}
	p.checkDirectoryNodes()
	if _, ok := p.values["network"]; !ok && !p.key.IsZero() {
		p.note("no source names the network, so the server's default applies: regtest. Pass --network mainnet (or signet, testnet) for the network the old directory served")
	}

	content, cfg, err := p.render()
	if err != nil {
		return err
	}
	p.configPath = filepath.Join(p.dataDir, configFile)
	p.keyDest = filepath.Join(p.dataDir, "onion", onionkey.SecretFileName)
	if cfg.TorOnionKeyFile != "" {
		p.keyDest = cfg.TorOnionKeyFile
	}
	if err := p.checkKeyDest(); err != nil {
		return err
	}
	configTarget, err := p.checkConfigDest(content)
	if err != nil {
		return err
	}
	p.plan(cfg)
	if p.opts.dryRun {
		return nil
	}
	if !p.key.IsZero() && p.keyState != "already there" {
		if _, err := onionkey.Import(p.keyFile, p.keyDest); err != nil {
			p.keyState = "refused"
			return err
		}
		p.keyState = "written"
	}
	switch configTarget {
	case "":
	case p.configPath:
		if err := secretfile.WriteNew(p.configPath, content); err != nil {
			return fmt.Errorf("writing %s: %v (the key is in place)", p.configPath, err)
		}
		p.configState = "wrote " + p.configPath
	default:
		if err := replaceFile(configTarget, content); err != nil {
			return fmt.Errorf("writing %s: %v (the key is in place)", configTarget, err)
		}
		p.configState = "wrote " + configTarget + " (" + p.configWhy + ")"
	}
	return nil
}

// readSource works out what src is and maps it.
func (p *importPlan) readSource(src string) error {
	path := expandTilde(src, p.home)
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("source %s: %v", src, unwrapPath(err))
	}
	if fi.IsDir() {
		switch {
		case exists(filepath.Join(path, onionkey.SecretFileName)):
			return p.fromHiddenServiceDir(path, "")
		case exists(filepath.Join(path, configFile)):
			return p.fromNG(filepath.Join(path, configFile))
		case exists(filepath.Join(path, "joinmarket.cfg")):
			return p.readReference(filepath.Join(path, "joinmarket.cfg"))
		}
		return fmt.Errorf("source %s: neither a HiddenServiceDir (%s) nor a data dir with config.toml (joinmarket-ng) or joinmarket.cfg (the reference)", src, onionkey.SecretFileName)
	}
	switch base := filepath.Base(path); {
	case base == onionkey.SecretFileName:
		return p.fromHiddenServiceDir(filepath.Dir(path), "")
	case strings.HasSuffix(base, ".toml"):
		return p.fromNG(path)
	case strings.HasSuffix(base, ".cfg"):
		return p.readReference(path)
	}
	data, err := readSmall(path)
	if err != nil {
		return fmt.Errorf("source %s: %v", src, err)
	}
	if bytes.Contains(data, []byte("[MESSAGING")) || bytes.Contains(data, []byte("[BLOCKCHAIN]")) {
		return p.readReference(path)
	}
	return fmt.Errorf("source %s: not a joinmarket.cfg, a HiddenServiceDir, its %s or a config.toml", src, onionkey.SecretFileName)
}

// readReference reads and maps a reference joinmarket.cfg.
func (p *importPlan) readReference(path string) error {
	data, err := readSmall(path)
	if err != nil {
		return err
	}
	p.sources = append(p.sources, sourceInfo{path, "reference joinmarket.cfg"})
	return p.fromReference(path, data)
}

// fromHiddenServiceDir reads a tor HiddenServiceDir: the key, checked against the
// hostname and public key files tor writes beside it.
func (p *importPlan) fromHiddenServiceDir(dir, namedBy string) error {
	kind := "tor HiddenServiceDir"
	if namedBy != "" {
		kind += ", named by " + namedBy
	}
	p.sources = append(p.sources, sourceInfo{dir, kind})
	keyFile := filepath.Join(dir, onionkey.SecretFileName)
	data, err := readSmall(keyFile)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("cannot read %s: %v (it belongs to the user tor runs as: run the import as that user, or with sudo)", keyFile, unwrapPath(err))
		}
		if errors.Is(err, fs.ErrNotExist) && namedBy != "" {
			return fmt.Errorf("%s names %s, which holds no %s: %v", namedBy, dir, onionkey.SecretFileName, unwrapPath(err))
		}
		return err
	}
	k, err := onionkey.ParseSecretFile(data)
	if err != nil {
		return fmt.Errorf("%s is not a tor v3 onion key: %v", keyFile, err)
	}
	onion := k.Onion() + ".onion"

	if pub, err := os.ReadFile(filepath.Join(dir, onionkey.PublicFileName)); err == nil {
		pk, err := onionkey.ParsePublicFile(pub)
		if err != nil || !bytes.Equal(pk, k.PublicKey()) {
			return fmt.Errorf("%s does not belong to %s (its public key differs, or is not one): nothing written", filepath.Join(dir, onionkey.PublicFileName), keyFile)
		}
	}
	hn := filepath.Join(dir, hostnameFile)
	switch b, err := os.ReadFile(hn); {
	case err == nil:
		got := strings.TrimSpace(string(b))
		if got != onion {
			return fmt.Errorf("the key in %s is %s, but %s says %s: not the same onion; nothing written", keyFile, onion, hn, got)
		}
		p.hostChecks = append(p.hostChecks, "matches "+hn+" ("+got+")")
	case errors.Is(err, fs.ErrNotExist):
		p.hostChecks = append(p.hostChecks, "no hostname file in "+dir+" to compare with")
	default:
		return fmt.Errorf("%s: %v", hn, unwrapPath(err))
	}

	from := keyFile
	if namedBy != "" {
		from = namedBy
	}
	if !p.key.IsZero() {
		if !p.key.Equal(k) {
			return fmt.Errorf("two different onion keys: %s.onion from %s and %s from %s", p.key.Onion(), p.keyFrom, onion, from)
		}
		return nil
	}
	p.key, p.keyFile, p.keyFrom = k, keyFile, from
	return nil
}

// ngSectionReasons says why a section of joinmarket-ng's config.toml is not used here.
var ngSectionReasons = map[string]string{
	"tor":            "joinmarket-ng's client tor settings (SOCKS, makers' onions); this server's are tor_mode and tor_* in [directory_server]",
	"bitcoin":        "a directory needs no Bitcoin node",
	"wallet":         "a directory has no wallet",
	"maker":          "maker settings",
	"taker":          "taker settings",
	"notifications":  "joinmarket-ng's notifications",
	"network_config": "client settings (directory servers to use, …); only network is a directory setting",
	"logging":        "logging details; only level is used here (log_level)",
}

// fromNG maps a joinmarket-ng config.toml: every setting this server knows, under any of
// the names its loader reads; the rest listed as ignored.
func (p *importPlan) fromNG(path string) error {
	data, err := readSmall(path)
	if err != nil {
		return err
	}
	p.sources = append(p.sources, sourceInfo{path, "joinmarket-ng config.toml"})
	var doc map[string]any
	if _, err := toml.Decode(string(data), &doc); err != nil {
		return fmt.Errorf("%s: %s", path, strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	base := filepath.Base(path)
	used := map[config.FileKey]bool{}
	for _, s := range config.FileSettings() {
		first := ""
		for _, n := range s.Names {
			sec, ok := doc[n.Section].(map[string]any)
			if !ok {
				continue
			}
			v, ok := sec[n.Key]
			if !ok {
				continue
			}
			used[n] = true
			name := tomlName(n)
			if first != "" {
				p.ignore(name, "overridden by "+first+", as the server reads it")
				continue
			}
			first = name
			if err := p.set(s.Key, v, name+" ("+base+")"); err != nil {
				return err
			}
		}
	}
	secs := make([]string, 0, len(doc))
	for name := range doc {
		secs = append(secs, name)
	}
	sort.Strings(secs)
	for _, name := range secs {
		sec, ok := doc[name].(map[string]any)
		if !ok {
			p.ignore(name, "not a table; this server reads [directory_server]")
			continue
		}
		var rest []string
		for k := range sec {
			if !used[config.FileKey{Section: name, Key: k}] {
				rest = append(rest, k)
			}
		}
		if len(rest) == 0 {
			continue
		}
		sort.Strings(rest)
		if name == config.FileSection {
			for _, k := range rest {
				p.ignore(name+"."+k, "not a setting of this server (a joinmarket-ng setting it does not have, or a typo)")
			}
			continue
		}
		reason, ok := ngSectionReasons[name]
		if !ok {
			reason = "not a directory server setting"
		}
		p.ignore("["+name+"] "+summarizeKeys(rest), reason)
	}
	return nil
}

// tomlName renders a config.toml key as this server's messages do.
func tomlName(k config.FileKey) string {
	if k.Section == config.FileSection {
		return k.Key
	}
	return k.String()
}

// decideTor sets tor_mode when a key is imported, and maps the reference's control
// settings for --tor-mode control.
func (p *importPlan) decideTor() error {
	if p.key.IsZero() {
		if p.refWithoutHSDir != "" {
			return fmt.Errorf("no onion key: %s has no hidden_service_dir (start-dn.py needs one to keep its onion) and no HiddenServiceDir was given as a SOURCE", p.refWithoutHSDir)
		}
		if p.opts.torMode != "" {
			return fmt.Errorf("--tor-mode %s: no onion key among the sources; give the HiddenServiceDir too", p.opts.torMode)
		}
		p.note("no onion key imported: joinmarket-ng publishes its onion from tor's HiddenServiceDir; give that directory as a SOURCE too to keep the onion")
		return nil
	}
	mode, from := p.opts.torMode, "--tor-mode"
	if mode == "" {
		if m, ok := p.values["tor_mode"]; ok {
			mode, _ = m.Value.(string)
			from = m.From
		} else {
			mode, from = defaultTorImport, "this server starts its own tor with the imported key, as start-dn.py did (--tor-mode control: a running tor's control port)"
		}
	}
	if m, ok := p.values["tor_mode"]; ok && p.opts.torMode != "" && m.Value != mode {
		p.ignore("tor_mode = "+m.show+" from "+m.From, "overridden by --tor-mode "+mode)
		delete(p.values, "tor_mode")
		p.order = slices.DeleteFunc(p.order, func(k string) bool { return k == "tor_mode" })
	}
	if err := p.set("tor_mode", mode, from); err != nil {
		return err
	}
	switch mode {
	case "control":
		return p.mapControl()
	case "launch":
		if p.controlFrom != "" {
			p.ignore(p.controlKeys+" ("+joinHostPort(p.controlHost, p.controlPort)+")",
				"start-dn.py with a hidden_service_dir launched its own tor and did not use them; tor_mode launch does the same (--tor-mode control uses them)")
		}
	case "none":
		p.note("tor_mode is none (from " + from + "): the onion is not published; pass --tor-mode launch or control to publish it")
	case "external":
		p.note("tor_mode is external: the server reads the onion from tor_hidden_service_dir; the key is also copied to this data dir for tor_mode launch or control")
	}
	return nil
}

// checkDirectoryNodes compares the reference's directory_nodes with the key's onion.
func (p *importPlan) checkDirectoryNodes() {
	if p.directoryNodes == "" || p.key.IsZero() {
		return
	}
	own := fmt.Sprintf("%s.onion:%d", p.key.Onion(), referenceVirtualPort)
	for _, e := range strings.Split(p.directoryNodes, ",") {
		if strings.TrimSpace(e) == own {
			p.note("directory_nodes lists " + own + ": the onion of the imported key")
			return
		}
	}
	p.note("directory_nodes does not list " + own + " (a directory lists only itself there); clients must use " + own)
}

// render builds the config.toml to write and checks it with the server's own loader.
func (p *importPlan) render() ([]byte, config.Config, error) {
	var vals []config.FileValue
	for _, s := range config.FileSettings() {
		if m, ok := p.values[s.Key]; ok {
			vals = append(vals, config.FileValue{Key: s.Key, Value: m.Value})
		}
	}
	header := []string{"Written by jm-directory-ctl import from:"}
	for _, s := range p.sources {
		header = append(header, "  "+s.Path+" ("+s.Kind+")")
	}
	header = append(header, "Every setting: jm-directory-server --help; effective values: jm-directory-server --check-config")
	content, err := config.EncodeFile(header, vals)
	if err != nil {
		return nil, config.Config{}, err
	}
	tmp, err := os.MkdirTemp("", "jm-directory-ctl-import-*")
	if err != nil {
		return nil, config.Config{}, err
	}
	defer os.RemoveAll(tmp)
	path := filepath.Join(tmp, configFile)
	if err := os.WriteFile(path, content, 0o600); err != nil {
		return nil, config.Config{}, err
	}
	cfg, err := config.LoadFile(path)
	if err != nil {
		return nil, config.Config{}, fmt.Errorf("the imported settings are not valid for this server: %v", err)
	}
	return content, cfg, nil
}

// checkKeyDest looks at the key destination before anything is written.
func (p *importPlan) checkKeyDest() error {
	if p.key.IsZero() {
		return nil
	}
	old, err := onionkey.Load(p.keyDest)
	switch {
	case err == nil && old.Equal(p.key):
		p.keyState = "already there"
	case err == nil:
		p.keyState = "refused"
		return fmt.Errorf("%s already holds a different key (%s.onion); not overwriting it with %s.onion: nothing written. Move it away first if this server's current onion is to be given up",
			p.keyDest, old.Onion(), p.key.Onion())
	case errors.Is(err, fs.ErrNotExist):
		p.keyState = "to write"
	default:
		p.keyState = "refused"
		return fmt.Errorf("%v: nothing written", err)
	}
	return nil
}

// checkConfigDest decides where config.toml goes: "" (already identical), the config
// path, or config.toml.imported beside an existing different one.
func (p *importPlan) checkConfigDest(content []byte) (string, error) {
	old, err := os.ReadFile(p.configPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		p.configState = "to write " + p.configPath
		return p.configPath, nil
	case err != nil:
		return "", fmt.Errorf("%s: %v", p.configPath, unwrapPath(err))
	case bytes.Equal(old, content):
		p.configState = p.configPath + " already holds these settings"
		return "", nil
	}
	target := p.configPath + importedSuffix
	p.configWhy = p.configPath + " exists and differs: left as it is; compare them and move " + filepath.Base(target) + " into place"
	for _, s := range p.sources {
		if s.Path == p.configPath {
			p.configWhy = p.configPath + " is the imported file itself: left as it is; the server reads it, ignoring the keys listed above (" + filepath.Base(target) + " holds only what it uses, and tor_mode)"
		}
	}
	p.configState = "to write " + target + " (" + p.configWhy + ")"
	return target, nil
}

// plan fills the key state for a dry run and the next steps.
func (p *importPlan) plan(cfg config.Config) {
	if p.opts.dryRun {
		if p.keyState == "to write" {
			p.keyState = "would be written"
		}
		p.configState = strings.Replace(p.configState, "to write", "would write", 1)
	}
	cmd := "jm-directory-server"
	if p.dataDir != filepath.Join(p.home, ".joinmarket-ng") || p.home == "" {
		cmd += " --data-dir " + p.dataDir
	}
	p.nextSteps = append(p.nextSteps, "stop the old directory and keep it stopped (two tors publishing one onion take turns at being reachable); for a system tor's HiddenServiceDir, remove it from that torrc")
	switch cfg.TorMode {
	case "launch":
		p.nextSteps = append(p.nextSteps, "start this server (tor must be on PATH): "+cmd)
	case "control":
		p.nextSteps = append(p.nextSteps, "start this server (the tor at the control port must let this user authenticate): "+cmd)
	default:
		p.nextSteps = append(p.nextSteps, "start this server: "+cmd)
	}
	if !p.key.IsZero() {
		p.nextSteps = append(p.nextSteps, fmt.Sprintf("check it as clients do: jm-directory-ctl probe %s.onion:%d --socks 127.0.0.1:9050 --network %s",
			p.key.Onion(), cfg.OnionVirtualPort, cfg.Network))
	}
}

// write prints the result for a person.
func (p *importPlan) write(w io.Writer) {
	if p.opts.dryRun {
		fmt.Fprintln(w, "Dry run: nothing is written.")
	}
	if len(p.sources) > 0 {
		fmt.Fprintln(w, "Sources:")
		for _, s := range p.sources {
			fmt.Fprintf(w, "  %s  (%s)\n", s.Path, s.Kind)
		}
	}
	if len(p.order) > 0 {
		fmt.Fprintln(w, "Mapped:")
		width := 0
		for _, k := range p.order {
			width = max(width, len(k)+3+len(p.values[k].show))
		}
		for _, k := range p.order {
			m := p.values[k]
			fmt.Fprintf(w, "  %-*s  ← %s\n", width, k+" = "+m.show, m.From)
		}
	}
	if len(p.ignored) > 0 {
		fmt.Fprintln(w, "Ignored:")
		for _, i := range p.ignored {
			fmt.Fprintf(w, "  %s: %s\n", i.What, i.Why)
		}
	}
	for _, n := range p.notes {
		fmt.Fprintf(w, "Note: %s\n", n)
	}
	if !p.key.IsZero() {
		dest := p.keyDest
		if dest == "" {
			dest = "(not decided)"
		}
		fmt.Fprintf(w, "Onion key: %s.onion → %s (0600, %s)\n", p.key.Onion(), dest, orDash(p.keyState))
		for _, h := range p.hostChecks {
			fmt.Fprintf(w, "Hostname:  %s\n", h)
		}
	}
	if p.configState != "" {
		fmt.Fprintf(w, "Config:    %s\n", p.configState)
	}
	for i, s := range p.nextSteps {
		fmt.Fprintf(w, "Next %d:    %s\n", i+1, s)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// importJSON is the --json output.
type importJSON struct {
	OK        bool          `json:"ok"`
	Error     string        `json:"error,omitempty"`
	DryRun    bool          `json:"dry_run"`
	DataDir   string        `json:"data_dir"`
	Sources   []sourceInfo  `json:"sources"`
	Mapped    []mappedJSON  `json:"mapped"`
	Ignored   []ignoredJSON `json:"ignored"`
	Notes     []string      `json:"notes"`
	Onion     string        `json:"onion,omitempty"`
	KeyFile   string        `json:"key_file,omitempty"`
	KeyState  string        `json:"key_state,omitempty"`
	Hostname  []string      `json:"hostname_checks"`
	Config    string        `json:"config,omitempty"`
	NextSteps []string      `json:"next_steps"`
}

type mappedJSON struct {
	Key   string `json:"key"`
	Value string `json:"value"`
	From  string `json:"from"`
}

type ignoredJSON struct {
	What string `json:"what"`
	Why  string `json:"why"`
}

func writeImportJSON(w io.Writer, p *importPlan, err error) {
	out := importJSON{OK: err == nil, DryRun: p.opts.dryRun, DataDir: p.dataDir, Sources: p.sources,
		Mapped: []mappedJSON{}, Ignored: []ignoredJSON{}, Notes: p.notes, Hostname: p.hostChecks,
		Config: p.configState, NextSteps: p.nextSteps}
	if err != nil {
		out.Error = err.Error()
		out.NextSteps = nil
	}
	for _, k := range p.order {
		m := p.values[k]
		out.Mapped = append(out.Mapped, mappedJSON{k, m.show, m.From})
	}
	for _, i := range p.ignored {
		out.Ignored = append(out.Ignored, ignoredJSON(i))
	}
	if !p.key.IsZero() {
		out.Onion, out.KeyFile, out.KeyState = p.key.Onion()+".onion", p.keyDest, p.keyState
	}
	b, _ := json.MarshalIndent(out, "", "  ")
	fmt.Fprintf(w, "%s\n", b)
}

// readSmall reads a source file, refusing anything implausibly large.
func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxImportFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxImportFile {
		return nil, fmt.Errorf("%s is larger than %d bytes: not a configuration or key file", path, maxImportFile)
	}
	return b, nil
}

// replaceFile writes data to path (mode 0600) atomically, replacing what is there.
func replaceFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// unwrapPath drops the operation and path of a *fs.PathError when the caller names the
// path itself.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

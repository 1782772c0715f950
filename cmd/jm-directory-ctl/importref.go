package main

import (
	"bufio"
	"bytes"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// The reference's (joinmarket-clientserver's) joinmarket.cfg, as start-dn.py runs from it.
//
// What the reference does with it (jmclient/configure.py, jmbase/twisted_utils.py,
// jmdaemon/onionmc.py):
//   - [BLOCKCHAIN] network is the network every handshake names (mainnet, testnet,
//     testnet4, signet; regtest setups say testnet with blockchain_source = regtest);
//     the default is mainnet. start-dn.py forces no-blockchain: no Bitcoin node.
//   - the one [MESSAGING:*] section with type = onion configures the onion channel. A
//     non-empty hidden_service_dir makes JMHiddenService start its own tor (txtorcon,
//     not the control port) with that HiddenServiceDir, mapping the onion's port 5222
//     (ONION_VIRTUAL_PORT) to onion_serving_host:onion_serving_port (127.0.0.1:8080);
//     tor writes hs_ed25519_secret_key and hostname there. The directory lists only its
//     own onion:5222 in directory_nodes.
//   - [LOGGING] console_log_level is the console's level (DEBUG, INFO, WARNING, ERROR).
//   - the motd is start-dn.py's first command-line argument, not a cfg setting.

// referenceVirtualPort is the reference's ONION_VIRTUAL_PORT, the onion port clients use.
const referenceVirtualPort = 5222

// iniSection is one section of an INI file as Python's ConfigParser reads it.
type iniSection struct {
	name string
	keys []string          // in order of first appearance, lower case
	vals map[string]string // by lower-case key; a later duplicate wins (strict=False)
}

func (s *iniSection) get(k string) (string, bool) {
	v, ok := s.vals[k]
	return v, ok
}

// parseINI reads an INI file the way the reference's ConfigParser(strict=False) does:
// "[section]" headers, "key = value" or "key: value" (split at the first = or :),
// keys case-insensitive, full-line comments starting with # or ;, indented lines
// continuing the previous value, repeated sections and keys merged (the later wins).
// Interpolation is not performed.
func parseINI(data []byte) ([]*iniSection, error) {
	var out []*iniSection
	byName := map[string]*iniSection{}
	var cur *iniSection
	lastKey := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		raw := strings.TrimRight(sc.Text(), " \t\r")
		line := strings.TrimSpace(raw)
		switch {
		case line == "":
			lastKey = ""
			continue
		case strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
			continue
		case raw[0] == ' ' || raw[0] == '\t':
			if cur != nil && lastKey != "" {
				cur.vals[lastKey] += "\n" + line
				continue
			}
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") && len(line) > 2 {
			name := line[1 : len(line)-1]
			if s, ok := byName[name]; ok {
				cur = s
			} else {
				cur = &iniSection{name: name, vals: map[string]string{}}
				byName[name] = cur
				out = append(out, cur)
			}
			lastKey = ""
			continue
		}
		if cur == nil {
			return nil, fmt.Errorf("line %d: %q comes before any [section]", n, line)
		}
		i := strings.IndexAny(line, "=:")
		if i <= 0 {
			return nil, fmt.Errorf("line %d: %q is not \"key = value\"", n, line)
		}
		k := strings.ToLower(strings.TrimSpace(line[:i]))
		if _, dup := cur.vals[k]; !dup {
			cur.keys = append(cur.keys, k)
		}
		cur.vals[k] = strings.TrimSpace(line[i+1:])
		lastKey = k
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// sectionReasons says why a whole section of joinmarket.cfg means nothing to a directory.
var sectionReasons = map[string]string{
	"DAEMON":         "the link between the reference's client and its daemon; this server is one process",
	"BLOCKCHAIN":     "a directory needs no Bitcoin node (start-dn.py forces no-blockchain)",
	"TIMEOUT":        "maker and taker timeouts",
	"POLICY":         "wallet and coinjoin policy; a directory has no wallet",
	"PAYJOIN":        "payjoin; not a directory's job",
	"YIELDGENERATOR": "a maker's offers; a directory makes none",
	"SNICKER":        "SNICKER; not a directory's job",
	"LOGGING":        "console colours and other logging details; this server logs text or JSON (log_format)",
	"MESSAGING":      "an IRC message channel; this server speaks only the onion protocol",
}

// socksReason says why the reference's SOCKS settings are not copied.
const socksReason = "the self-probe dials through the SOCKS port of the tor that publishes the onion (launch: its own socket; control: the one tor reports); tor_socks_host/tor_socks_port choose another"

// onionKeyReasons says why a [MESSAGING:onion] key is not copied, by key.
var onionKeyReasons = map[string]string{
	"socks5_host":     socksReason,
	"socks5_port":     socksReason,
	"directory_nodes": "a client setting; a directory lists only itself there (checked against the key below)",
	"regtest_count":   "the reference's test harness only",
}

// fromReference maps a joinmarket.cfg into the plan.
func (p *importPlan) fromReference(path string, data []byte) error {
	secs, err := parseINI(data)
	if err != nil {
		return fmt.Errorf("%s: not a joinmarket.cfg: %v", path, err)
	}
	base := filepath.Base(path)
	bySec := map[string]*iniSection{}
	var onion []*iniSection
	for _, s := range secs {
		bySec[s.name] = s
		if strings.HasPrefix(s.name, "MESSAGING:") {
			if t, _ := s.get("type"); strings.EqualFold(strings.TrimSpace(t), "onion") {
				onion = append(onion, s)
			}
		}
	}
	switch {
	case len(onion) == 0:
		return fmt.Errorf("%s has no [MESSAGING:…] section with type = onion: not the joinmarket.cfg of an onion directory (joinmarket-clientserver 0.9.6 or later)", path)
	case len(onion) > 1:
		return fmt.Errorf("%s has %d sections with type = onion ([%s], [%s]); the reference allows only one", path, len(onion), onion[0].name, onion[1].name)
	}
	on := onion[0]

	// [BLOCKCHAIN] network: the reference's default is mainnet.
	if err := p.referenceNetwork(bySec["BLOCKCHAIN"], base); err != nil {
		return err
	}
	// [LOGGING] console_log_level.
	if lg := bySec["LOGGING"]; lg != nil {
		if v, ok := lg.get("console_log_level"); ok && v != "" {
			if err := p.set("log_level", strings.ToUpper(v), "[LOGGING] console_log_level ("+base+")"); err != nil {
				return err
			}
		}
	}
	if err := p.referenceOnion(path, on); err != nil {
		return err
	}

	// Everything else: one line per section.
	for _, s := range secs {
		var rest []string
		for _, k := range s.keys {
			switch {
			case s == on:
			case s.name == "BLOCKCHAIN" && k == "network":
			case s.name == "LOGGING" && k == "console_log_level":
			default:
				rest = append(rest, k)
			}
		}
		if s == on || len(rest) == 0 {
			continue
		}
		reason, ok := sectionReasons[s.name]
		if !ok && strings.HasPrefix(s.name, "MESSAGING") {
			reason = sectionReasons["MESSAGING"]
		} else if !ok {
			reason = "not a directory setting"
		}
		p.ignore("["+s.name+"] "+summarizeKeys(rest), reason)
	}

	if p.motd == "" {
		p.note("motd: start-dn.py took it as its first command-line argument, not from " + base + "; pass --motd 'TEXT' to carry it over")
	}
	return nil
}

// referenceNetwork maps [BLOCKCHAIN] network.
func (p *importPlan) referenceNetwork(bc *iniSection, base string) error {
	from := "[BLOCKCHAIN] network (" + base + ")"
	net := ""
	if bc != nil {
		net, _ = bc.get("network")
	}
	net = strings.ToLower(strings.TrimSpace(net))
	if net == "" {
		net, from = "mainnet", "the reference's default ([BLOCKCHAIN] network not set in "+base+")"
	}
	switch net {
	case "mainnet", "testnet", "signet", "regtest":
	case "testnet4":
		return fmt.Errorf("[BLOCKCHAIN] network = testnet4 in %s: this server serves mainnet, testnet, signet or regtest, not testnet4", base)
	default:
		return fmt.Errorf("[BLOCKCHAIN] network = %q in %s: not a network the reference knows (mainnet, testnet, testnet4, signet)", net, base)
	}
	if bc != nil {
		if src, _ := bc.get("blockchain_source"); strings.EqualFold(strings.TrimSpace(src), "regtest") && net == "testnet" {
			p.note(`network: the reference's regtest setups say network = testnet (blockchain_source = regtest) and their clients send "testnet" in the handshake, so testnet it stays`)
		}
	}
	return p.set("network", net, from)
}

// referenceOnion maps the [MESSAGING:onion] section.
func (p *importPlan) referenceOnion(path string, on *iniSection) error {
	base := filepath.Base(path)
	sec := "[" + on.name + "] "

	host, _ := on.get("onion_serving_host")
	port, _ := on.get("onion_serving_port")
	if host != "" || port != "" {
		p.ignore(sec+"onion_serving_host, onion_serving_port ("+joinHostPort(host, port)+")",
			fmt.Sprintf("where start-dn.py listened behind its tor, which sent the onion's port %d (the reference's ONION_VIRTUAL_PORT) there; "+
				"this server listens on host:port (127.0.0.1:5222) and publishes onion port %d to it, so clients keep <onion>:%d. "+
				"8080 is this server's ops listener (health_check_port): the old directory must be stopped first",
				referenceVirtualPort, referenceVirtualPort, referenceVirtualPort))
	}

	ctlHost, hasHost := on.get("tor_control_host")
	ctlPort, hasPort := on.get("tor_control_port")
	if hasHost || hasPort {
		p.controlHost, p.controlPort = strings.TrimSpace(ctlHost), strings.TrimSpace(ctlPort)
		p.controlKeys = sec + "tor_control_host, tor_control_port"
		p.controlFrom = p.controlKeys + " (" + base + ")"
	}

	var reasons []string // in order of first use
	byReason := map[string][]string{}
	for _, k := range on.keys {
		switch k {
		case "type", "hidden_service_dir", "onion_serving_host", "onion_serving_port", "tor_control_host", "tor_control_port":
			continue
		case "directory_nodes":
			v, _ := on.get(k)
			p.directoryNodes = v
		}
		reason, ok := onionKeyReasons[k]
		if !ok {
			reason = "not a setting of the reference's onion channel"
		}
		if _, seen := byReason[reason]; !seen {
			reasons = append(reasons, reason)
		}
		byReason[reason] = append(byReason[reason], k)
	}
	for _, r := range reasons {
		p.ignore(sec+strings.Join(byReason[r], ", "), r)
	}

	dir, _ := on.get("hidden_service_dir")
	dir = strings.TrimSpace(dir)
	if dir == "" {
		p.refWithoutHSDir = path
		return nil
	}
	resolved := expandTilde(dir, p.home)
	if !filepath.IsAbs(resolved) {
		resolved = filepath.Join(filepath.Dir(path), resolved)
		p.note(fmt.Sprintf("hidden_service_dir %q is relative: read as %s (start-dn.py resolved it against its working directory; if that was elsewhere, give the HiddenServiceDir itself as a SOURCE)", dir, resolved))
	}
	return p.fromHiddenServiceDir(resolved, sec+"hidden_service_dir ("+base+")")
}

// mapControl maps the reference's tor control settings for tor_mode=control.
func (p *importPlan) mapControl() error {
	if p.controlFrom == "" {
		return nil
	}
	if sock, ok := strings.CutPrefix(p.controlHost, "unix:"); ok {
		if err := p.set("tor_control_socket", sock, p.controlFrom); err != nil {
			return err
		}
		p.ignore("tor_control_port "+p.controlPort, "ignored by the reference for a unix: control socket")
		return nil
	}
	if p.controlHost != "" {
		if err := p.set("tor_control_host", p.controlHost, p.controlFrom); err != nil {
			return err
		}
	}
	if p.controlPort != "" {
		n, err := strconv.Atoi(p.controlPort)
		if err != nil {
			return fmt.Errorf("%s: tor_control_port %q is not a number", p.controlFrom, p.controlPort)
		}
		return p.set("tor_control_port", int64(n), p.controlFrom)
	}
	return nil
}

// summarizeKeys lists keys for one ignored line: all of them when few, else a count.
func summarizeKeys(keys []string) string {
	if len(keys) <= 4 {
		return strings.Join(keys, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(keys[:3], ", "), len(keys)-3)
}

// joinHostPort renders host:port for a message, whichever parts are set.
func joinHostPort(host, port string) string {
	switch {
	case host == "":
		return ":" + port
	case port == "":
		return host
	}
	return host + ":" + port
}

// expandTilde replaces a leading "~" with home.
func expandTilde(p, home string) string {
	if home == "" {
		return p
	}
	if p == "~" {
		return home
	}
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		return filepath.Join(home, rest)
	}
	return p
}

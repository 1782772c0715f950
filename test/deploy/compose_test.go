package deploy

import (
	"fmt"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v2"
)

const composePath = "deploy/docker/docker-compose.yml"

// composeFile holds the parts of a compose file the tests look at.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Networks map[string]*struct {
		Internal bool   `yaml:"internal"`
		External bool   `yaml:"external"`
		Driver   string `yaml:"driver"`
		IPAM     struct {
			Config []struct {
				Subnet  string `yaml:"subnet"`
				IPRange string `yaml:"ip_range"`
			} `yaml:"config"`
		} `yaml:"ipam"`
	} `yaml:"networks"`
}

type composeService struct {
	Build       composeBuild           `yaml:"build"`
	Image       string                 `yaml:"image"`
	Restart     string                 `yaml:"restart"`
	User        string                 `yaml:"user"`
	Environment envMap                 `yaml:"environment"`
	Volumes     []string               `yaml:"volumes"` // short syntax only
	Networks    serviceNetworks        `yaml:"networks"`
	NetworkMode string                 `yaml:"network_mode"`
	Ports       []interface{}          `yaml:"ports"`
	Healthcheck map[string]interface{} `yaml:"healthcheck"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
}

// composeBuild is "build: DIR" or "build: {context, dockerfile}".
type composeBuild struct{ Context, Dockerfile string }

func (b *composeBuild) UnmarshalYAML(unmarshal func(interface{}) error) error {
	var s string
	if unmarshal(&s) == nil {
		b.Context = s
		return nil
	}
	var m struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	}
	if err := unmarshal(&m); err != nil {
		return err
	}
	b.Context, b.Dockerfile = m.Context, m.Dockerfile
	return nil
}

// envMap is "environment:" as a map or as a list of KEY=VALUE; values become strings
// as compose passes them (true -> "true").
type envMap map[string]string

func (e *envMap) UnmarshalYAML(unmarshal func(interface{}) error) error {
	*e = envMap{}
	var list []string
	if unmarshal(&list) == nil {
		for _, kv := range list {
			k, v, _ := strings.Cut(kv, "=")
			(*e)[k] = v
		}
		return nil
	}
	var m map[string]interface{}
	if err := unmarshal(&m); err != nil {
		return err
	}
	for k, v := range m {
		if v == nil {
			(*e)[k] = ""
		} else {
			(*e)[k] = fmt.Sprint(v)
		}
	}
	return nil
}

// serviceNetworks is a service's "networks:" as a list or as a map with per-network
// settings; the value holds the fixed IPv4 address, if any.
type serviceNetworks map[string]string

func (n *serviceNetworks) UnmarshalYAML(unmarshal func(interface{}) error) error {
	*n = serviceNetworks{}
	var list []string
	if unmarshal(&list) == nil {
		for _, name := range list {
			(*n)[name] = ""
		}
		return nil
	}
	var m map[string]*struct {
		IPv4 string `yaml:"ipv4_address"`
	}
	if err := unmarshal(&m); err != nil {
		return err
	}
	for name, v := range m {
		(*n)[name] = ""
		if v != nil {
			(*n)[name] = v.IPv4
		}
	}
	return nil
}

// volume is a short-syntax volume "SOURCE:TARGET[:MODE]".
type volume struct{ Source, Target, Mode string }

func (s composeService) volumes(t *testing.T, name string) []volume {
	t.Helper()
	var out []volume
	for _, v := range s.Volumes {
		f := strings.Split(v, ":")
		if len(f) < 2 || len(f) > 3 {
			t.Errorf("compose: %s volume %q: want SOURCE:TARGET[:MODE]", name, v)
			continue
		}
		vol := volume{Source: f[0], Target: f[1]}
		if len(f) == 3 {
			vol.Mode = f[2]
		}
		out = append(out, vol)
	}
	return out
}

// loadCompose parses the compose file strictly (duplicate keys fail) and into the
// structs above.
func loadCompose(t *testing.T) composeFile {
	t.Helper()
	text := readRepoFile(t, composePath)
	var generic interface{}
	if err := yaml.UnmarshalStrict([]byte(text), &generic); err != nil {
		t.Fatalf("%s is not valid YAML: %v", composePath, err)
	}
	var c composeFile
	if err := yaml.Unmarshal([]byte(text), &c); err != nil {
		t.Fatalf("%s: %v", composePath, err)
	}
	return c
}

// TestCompose checks the compose file's shape: the two services, the internal network
// the directory alone sits on, tor's two networks, mounts, users and the directory's tor
// settings.
func TestCompose(t *testing.T) {
	c := loadCompose(t)
	dir, okD := c.Services["directory"]
	tor, okT := c.Services["tor"]
	if !okD || !okT || len(c.Services) != 2 {
		names := make([]string, 0, len(c.Services))
		for n := range c.Services {
			names = append(names, n)
		}
		t.Fatalf("compose: services %q, want exactly directory and tor", names)
	}

	isInternal := func(name string) bool {
		n, ok := c.Networks[name]
		return ok && n != nil && n.Internal
	}
	// Directory: attached to internal networks only, nothing published.
	if len(dir.Networks) == 0 {
		t.Errorf("compose: directory has no networks: it would sit on the default network, which has a way out")
	}
	for name := range dir.Networks {
		if !isInternal(name) {
			t.Errorf("compose: directory is on network %q, which is not internal: true", name)
		}
	}
	if len(dir.Networks) != 1 {
		t.Errorf("compose: directory is on %d networks, want only the internal one", len(dir.Networks))
	}
	if dir.NetworkMode != "" || len(dir.Ports) != 0 {
		t.Errorf("compose: directory has network_mode %q / ports %v: it must be reachable only through tor", dir.NetworkMode, dir.Ports)
	}

	// tor: on the directory's internal network and on one with a way out.
	shared, egress := false, false
	for name := range tor.Networks {
		if _, ok := dir.Networks[name]; ok && isInternal(name) {
			shared = true
		}
		if n, ok := c.Networks[name]; name == "default" || (ok && (n == nil || !n.Internal)) {
			egress = true
		}
	}
	if !shared {
		t.Errorf("compose: tor is not on the directory's internal network (tor: %v)", tor.Networks)
	}
	if !egress {
		t.Errorf("compose: tor has no non-internal network to reach the Tor network (tor: %v)", tor.Networks)
	}

	// Both run as uid 1000 (the image's USER for the directory) and restart.
	if tor.User != "1000:1000" {
		t.Errorf("compose: tor user %q, want \"1000:1000\"", tor.User)
	}
	if dir.User != "" && dir.User != "1000:1000" {
		t.Errorf("compose: directory user %q, want the image's 1000:1000", dir.User)
	}
	for name, s := range c.Services {
		if s.Restart != "unless-stopped" {
			t.Errorf("compose: %s restart %q, want unless-stopped", name, s.Restart)
		}
	}

	// The directory's tor settings.
	env := dir.Environment
	if env["TOR_MODE"] != "external" {
		t.Errorf("compose: directory TOR_MODE=%q, want external", env["TOR_MODE"])
	}
	if env["NETWORK"] != "mainnet" {
		t.Errorf("compose: directory NETWORK=%q, want mainnet", env["NETWORK"])
	}
	if dir.Healthcheck != nil {
		t.Errorf("compose: directory overrides the image's HEALTHCHECK: %v", dir.Healthcheck)
	}
	if dep, ok := dir.DependsOn["tor"]; !ok || dep.Condition != "service_healthy" {
		t.Errorf("compose: directory must depend on tor being healthy (its hostname written): %+v", dir.DependsOn)
	}

	// The directory image is built from the repository root with deploy/docker/Dockerfile.
	composeDir := filepath.Dir(repoFile(t, composePath))
	ctx := filepath.Join(composeDir, filepath.FromSlash(dir.Build.Context))
	if _, err := os.Stat(filepath.Join(ctx, "go.mod")); err != nil {
		t.Errorf("compose: directory build context %q is not the repository root", dir.Build.Context)
	}
	if _, err := os.Stat(filepath.Join(ctx, filepath.FromSlash(dir.Build.Dockerfile))); dir.Build.Dockerfile == "" || err != nil {
		t.Errorf("compose: directory build dockerfile %q not found under the context", dir.Build.Dockerfile)
	}
	torCtx := filepath.Join(composeDir, filepath.FromSlash(tor.Build.Context))
	if tor.Image == "" && tor.Build.Context == "" {
		t.Errorf("compose: tor has neither image nor build")
	} else if tor.Build.Context != "" {
		if entries, err := os.ReadDir(torCtx); err != nil || len(entries) != 1 {
			t.Errorf("compose: tor build context %s must hold only its Dockerfile (keys live beside it): %v", tor.Build.Context, err)
		}
	}
}

// TestComposeMountsAndTorrc follows the onion from torrc to the directory: tor reads the
// mounted torrc, keeps its HiddenServiceDir in the mounted data dir, the directory mounts
// that same host directory read-only at TOR_HIDDEN_SERVICE_DIR, and tor forwards port
// 5222 to the directory's fixed address and listening port.
func TestComposeMountsAndTorrc(t *testing.T) {
	c := loadCompose(t)
	dir, tor := c.Services["directory"], c.Services["tor"]
	composeDir := filepath.Dir(repoFile(t, composePath))
	torVols := tor.volumes(t, "tor")

	find := func(vols []volume, pred func(volume) bool) (volume, bool) {
		for _, v := range vols {
			if pred(v) {
				return v, true
			}
		}
		return volume{}, false
	}
	cleanSrc := func(s string) string { return path.Clean(s) }

	// torrc: mounted read-only where tor's image reads it.
	conf, ok := find(torVols, func(v volume) bool { return cleanSrc(v.Source) == "tor/conf/torrc" })
	if !ok {
		t.Fatalf("compose: tor does not mount ./tor/conf/torrc (volumes %q)", tor.Volumes)
	}
	if conf.Mode != "ro" {
		t.Errorf("compose: tor mounts torrc %q, want read-only (:ro)", conf.Mode)
	}
	if _, err := os.Stat(filepath.Join(composeDir, filepath.FromSlash(conf.Source))); err != nil {
		t.Errorf("compose: torrc mount source: %v", err)
	}
	d := loadDockerfile(t, torDockerfilePath)
	for _, in := range d.stage(-1) {
		if argv, ok := execForm(in.Args); in.Cmd == "ENTRYPOINT" && ok && torrcArg(argv) != conf.Target {
			t.Errorf("compose: torrc mounted at %s, but the tor image reads %s", conf.Target, torrcArg(argv))
		}
	}

	// tor's data and run directories, as setup.sh makes them.
	data, ok := find(torVols, func(v volume) bool { return cleanSrc(v.Source) == "tor/data" })
	if !ok || data.Mode == "ro" {
		t.Fatalf("compose: tor does not mount ./tor/data read-write (volumes %q)", tor.Volumes)
	}
	if _, ok := find(torVols, func(v volume) bool { return cleanSrc(v.Source) == "tor/run" }); !ok {
		t.Errorf("compose: tor does not mount ./tor/run (volumes %q)", tor.Volumes)
	}

	opts := torrcOptions(t)
	hsDirs := torrcValues(opts, "HiddenServiceDir")
	dataDirs := torrcValues(opts, "DataDirectory")
	if len(hsDirs) != 1 || len(dataDirs) != 1 {
		t.Fatalf("torrc: want one HiddenServiceDir and one DataDirectory")
	}
	if path.Clean(dataDirs[0]) != path.Clean(data.Target) {
		t.Errorf("torrc DataDirectory %s is not the mounted ./tor/data (%s)", dataDirs[0], data.Target)
	}
	rel, ok := strings.CutPrefix(path.Clean(hsDirs[0]), path.Clean(data.Target)+"/")
	if !ok {
		t.Fatalf("torrc HiddenServiceDir %s is outside tor's mounted data dir %s", hsDirs[0], data.Target)
	}
	hsHost := path.Join(cleanSrc(data.Source), rel) // as seen from the compose file

	// The directory reads the hostname from the same host directory, read-only.
	hsEnv := dir.Environment["TOR_HIDDEN_SERVICE_DIR"]
	hsVol, ok := find(dir.volumes(t, "directory"), func(v volume) bool { return path.Clean(v.Target) == path.Clean(hsEnv) })
	switch {
	case hsEnv == "":
		t.Errorf("compose: directory has no TOR_HIDDEN_SERVICE_DIR")
	case !ok:
		t.Errorf("compose: nothing is mounted at the directory's TOR_HIDDEN_SERVICE_DIR %s", hsEnv)
	case cleanSrc(hsVol.Source) != hsHost:
		t.Errorf("compose: directory mounts %s at %s, but tor's HiddenServiceDir is ./%s", hsVol.Source, hsEnv, hsHost)
	case hsVol.Mode != "ro":
		t.Errorf("compose: the directory's hidden service mount is %q, want read-only", hsVol.Mode)
	}
	if hc := fmt.Sprint(tor.Healthcheck["test"]); !strings.Contains(hc, path.Join(hsDirs[0], "hostname")) {
		t.Errorf("compose: tor's healthcheck %s does not wait for %s/hostname", hc, hsDirs[0])
	}
	// setup.sh must make the host side, or Docker would create it as root.
	if !strings.Contains(readRepoFile(t, setupPath), strings.TrimPrefix(hsHost, "tor/data/")) {
		t.Errorf("setup.sh does not make ./%s", hsHost)
	}

	// The directory's data dir is a mounted, writable host directory.
	dataDir := loadDockerfile(t, dockerfilePath).finalEnv()["DATA_DIR"]
	if v, ok := dir.Environment["DATA_DIR"]; ok {
		dataDir = v
	}
	if v, ok := find(dir.volumes(t, "directory"), func(v volume) bool { return path.Clean(v.Target) == dataDir }); !ok || v.Mode == "ro" {
		t.Errorf("compose: the directory's DATA_DIR %s is not a writable mount", dataDir)
	} else if cleanSrc(v.Source) != "data" {
		t.Errorf("compose: the directory's data is %s, want ./data (made by setup.sh)", v.Source)
	}

	// HiddenServicePort 5222 -> the directory's fixed address on the shared internal
	// network, at the port it listens on.
	_, host, port := hiddenServicePort(t, opts)
	listen := loadDockerfile(t, dockerfilePath).finalEnv()["PORT"]
	if v, ok := dir.Environment["PORT"]; ok {
		listen = v
	}
	if port != listen {
		t.Errorf("torrc forwards to port %s, the directory listens on %s", port, listen)
	}
	var ip string
	var netName string
	for name, addr := range dir.Networks {
		ip, netName = addr, name
	}
	switch {
	case host == "directory":
		// A name: allowed, though tor resolves it only at start (see the torrc).
	case ip == "":
		t.Errorf("torrc forwards to %s, but the directory has no fixed ipv4_address", host)
	case host != ip:
		t.Errorf("torrc forwards to %s, the directory's ipv4_address is %s", host, ip)
	default:
		addr, err := netip.ParseAddr(ip)
		if err != nil {
			t.Fatalf("compose: directory ipv4_address %q: %v", ip, err)
		}
		n := c.Networks[netName]
		if n == nil || len(n.IPAM.Config) == 0 {
			t.Fatalf("compose: network %s has no ipam subnet for the fixed address", netName)
		}
		subnet, err := netip.ParsePrefix(n.IPAM.Config[0].Subnet)
		if err != nil || !subnet.Contains(addr) {
			t.Errorf("compose: directory address %s is not in %s's subnet %q", ip, netName, n.IPAM.Config[0].Subnet)
		}
		// Dynamic addresses (tor's) must not be able to take the directory's.
		if r := n.IPAM.Config[0].IPRange; r != "" {
			if rng, err := netip.ParsePrefix(r); err != nil || rng.Contains(addr) {
				t.Errorf("compose: ip_range %q contains the directory's fixed address %s", r, ip)
			}
		}
	}
}

// TestComposeSelfProbeSOCKS checks the self-probe's route in the compose setup: torrc's
// one SocksPort is on tor's fixed address on the internal network, the directory's
// TOR_SOCKS_HOST and TOR_SOCKS_PORT name it, and SocksPolicy lets the directory's fixed
// address alone use it.
func TestComposeSelfProbeSOCKS(t *testing.T) {
	c := loadCompose(t)
	dir, tor := c.Services["directory"], c.Services["tor"]
	opts := torrcOptions(t)
	socks := torrcValues(opts, "SocksPort")
	if len(socks) != 1 {
		t.Fatalf("torrc: SocksPort %q, want one", socks)
	}
	ap, err := netip.ParseAddrPort(socks[0])
	if err != nil {
		t.Fatalf("torrc: SocksPort %q: want IP:PORT on the internal network: %v", socks[0], err)
	}
	var dirIP, netName string
	for name, ip := range dir.Networks {
		dirIP, netName = ip, name
	}
	torIP := tor.Networks[netName]
	switch {
	case torIP == "":
		t.Errorf("compose: tor has no fixed ipv4_address on %s, which torrc's SocksPort %s needs", netName, socks[0])
	case ap.Addr().String() != torIP:
		t.Errorf("torrc: SocksPort %s is not on tor's address %s on %s", socks[0], torIP, netName)
	}
	if h, p := dir.Environment["TOR_SOCKS_HOST"], dir.Environment["TOR_SOCKS_PORT"]; h != torIP || p != fmt.Sprint(ap.Port()) {
		t.Errorf("compose: the directory's TOR_SOCKS_HOST:TOR_SOCKS_PORT is %s:%s, torrc's SocksPort %s", h, p, socks[0])
	}
	if pol := torrcValues(opts, "SocksPolicy"); !slices.Equal(pol, []string{"accept " + dirIP, "reject *"}) {
		t.Errorf("torrc: SocksPolicy %q, want the directory's address %s alone", pol, dirIP)
	}
	n := c.Networks[netName]
	if n == nil || len(n.IPAM.Config) == 0 {
		t.Fatalf("compose: network %s has no ipam subnet", netName)
	}
	subnet, err1 := netip.ParsePrefix(n.IPAM.Config[0].Subnet)
	rng, err2 := netip.ParsePrefix(n.IPAM.Config[0].IPRange)
	if err1 != nil || err2 != nil || !subnet.Contains(ap.Addr()) || rng.Contains(ap.Addr()) {
		t.Errorf("compose: tor's fixed address %s must be in %s's subnet %q and outside its dynamic ip_range %q",
			ap.Addr(), netName, n.IPAM.Config[0].Subnet, n.IPAM.Config[0].IPRange)
	}
}

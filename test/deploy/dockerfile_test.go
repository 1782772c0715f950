package deploy

import (
	"encoding/json"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/testkit"
)

const (
	dockerfilePath    = "deploy/docker/Dockerfile"
	dockerignorePath  = "deploy/docker/Dockerfile.dockerignore"
	torDockerfilePath = "deploy/docker/tor-image/Dockerfile"
)

// instruction is one Dockerfile instruction with continuations joined.
type instruction struct {
	Cmd   string // upper case: FROM, RUN, ...
	Args  string
	Line  int
	Stage int // index of the FROM it belongs to; -1 before the first FROM
}

// parseDockerfile splits a Dockerfile into instructions: "#" comment lines (also inside
// continuations) and blank lines are skipped; a trailing backslash continues a line.
func parseDockerfile(text string) []instruction {
	var out []instruction
	stage := -1
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		start := i + 1
		line := strings.TrimSpace(lines[i])
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		for strings.HasSuffix(line, `\`) && i+1 < len(lines) {
			i++
			next := strings.TrimSpace(lines[i])
			if strings.HasPrefix(next, "#") {
				line += `\`
				continue
			}
			line = strings.TrimSuffix(line, `\`) + " " + next
		}
		cmd, args, _ := strings.Cut(line, " ")
		cmd = strings.ToUpper(cmd)
		if cmd == "FROM" {
			stage++
		}
		out = append(out, instruction{Cmd: cmd, Args: strings.TrimSpace(args), Line: start, Stage: stage})
	}
	return out
}

// flagsAndRest splits leading --flag[=value] words off args.
func flagsAndRest(args string) (flags map[string]string, rest string) {
	flags = map[string]string{}
	rest = strings.TrimSpace(args)
	for strings.HasPrefix(rest, "--") {
		word, after, _ := strings.Cut(rest, " ")
		k, v, _ := strings.Cut(strings.TrimPrefix(word, "--"), "=")
		flags[k] = v
		rest = strings.TrimSpace(after)
	}
	return flags, rest
}

// execForm decodes an exec-form JSON array ("" and false for the shell form).
func execForm(s string) ([]string, bool) {
	var argv []string
	if err := json.Unmarshal([]byte(strings.TrimSpace(s)), &argv); err != nil || len(argv) == 0 {
		return nil, false
	}
	return argv, true
}

// envPairs reads the arguments of an ENV instruction: k=v pairs (optionally quoted) or
// the legacy "ENV k v" form.
func envPairs(args string) map[string]string {
	out := map[string]string{}
	words := splitWords(args)
	if len(words) >= 2 && !strings.Contains(words[0], "=") {
		out[words[0]] = strings.Join(words[1:], " ")
		return out
	}
	for _, w := range words {
		if k, v, ok := strings.Cut(w, "="); ok {
			out[k] = v
		}
	}
	return out
}

// splitWords splits on spaces outside double quotes and removes the quotes.
func splitWords(s string) []string {
	var words []string
	var cur strings.Builder
	quoted, inWord := false, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted, inWord = !quoted, true
		case (r == ' ' || r == '\t') && !quoted:
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// dockerfile is a parsed Dockerfile with the ARG defaults declared before the first FROM.
type dockerfile struct {
	ins    []instruction
	args   map[string]string
	stages int
}

func loadDockerfile(t *testing.T, rel string) dockerfile {
	t.Helper()
	d := dockerfile{ins: parseDockerfile(readRepoFile(t, rel)), args: map[string]string{}}
	for _, in := range d.ins {
		if in.Cmd == "FROM" {
			d.stages++
		}
		if in.Cmd == "ARG" && in.Stage < 0 {
			k, v, _ := strings.Cut(in.Args, "=")
			d.args[k] = v
		}
	}
	return d
}

// stage returns the instructions of stage i (-1 = the last stage).
func (d dockerfile) stage(i int) []instruction {
	if i < 0 {
		i = d.stages - 1
	}
	var out []instruction
	for _, in := range d.ins {
		if in.Stage == i {
			out = append(out, in)
		}
	}
	return out
}

// image returns the image a FROM names, with ${ARG} defaults substituted.
func (d dockerfile) image(from instruction) string {
	_, rest := flagsAndRest(from.Args)
	img, _, _ := strings.Cut(rest, " ")
	for k, v := range d.args {
		img = strings.ReplaceAll(img, "${"+k+"}", v)
		img = strings.ReplaceAll(img, "$"+k, v)
	}
	return img
}

// finalEnv is the environment the final stage sets.
func (d dockerfile) finalEnv() map[string]string {
	env := map[string]string{}
	for _, in := range d.stage(-1) {
		if in.Cmd == "ENV" {
			for k, v := range envPairs(in.Args) {
				env[k] = v
			}
		}
	}
	return env
}

// TestDockerfile checks the image recipe: a Go build stage on go.mod's toolchain that
// builds both commands through scripts/release.sh for the platform being built, with the
// commit passed in, and a minimal final stage running as uid 1000 with the container
// defaults, the /data volume, port 5222, the health check and the entrypoint.
func TestDockerfile(t *testing.T) {
	d := loadDockerfile(t, dockerfilePath)
	if d.stages < 2 {
		t.Fatalf("Dockerfile: %d FROM, want a multi-stage build (>= 2)", d.stages)
	}

	// Build stage: golang image of go.mod's version, running the release script.
	build := d.stage(0)
	goImage := d.image(build[0])
	gover := goDirective(t)
	if tag, ok := strings.CutPrefix(goImage, "golang:"); !ok ||
		(tag != gover && !strings.HasPrefix(tag, gover+"-")) {
		t.Errorf("Dockerfile: build stage FROM %s, want golang:%s (go.mod's go directive)", goImage, gover)
	}
	checkReleaseRun(t, d, 0, false)

	// Final stage: production, the default target.
	final := d.stage(-1)
	if name := stageName(final[0]); name != "production" {
		t.Errorf("Dockerfile: the last stage is named %q, want production (the default target)", name)
	}
	base := d.image(final[0])
	if !strings.HasPrefix(base, "gcr.io/distroless/static") && base != "scratch" {
		t.Errorf("Dockerfile: final stage FROM %s, want distroless/static or scratch", base)
	}
	var user, entrypoint, health string
	var exposed, volumes []string
	binDirs := map[string]string{}
	dataChown := false
	for _, in := range final {
		switch in.Cmd {
		case "USER":
			user = in.Args
		case "ENTRYPOINT":
			entrypoint = in.Args
		case "HEALTHCHECK":
			health = in.Args
		case "EXPOSE":
			exposed = append(exposed, strings.Fields(in.Args)...)
		case "VOLUME":
			if v, ok := execForm(in.Args); ok {
				volumes = append(volumes, v...)
			} else {
				volumes = append(volumes, strings.Fields(in.Args)...)
			}
		case "COPY", "ADD":
			flags, rest := flagsAndRest(in.Args)
			words := strings.Fields(rest)
			if len(words) < 2 {
				continue
			}
			dst := words[len(words)-1]
			for _, src := range words[:len(words)-1] {
				binDirs[path.Base(src)] = dst
			}
			if path.Clean(dst) == "/data" && (flags["chown"] == "1000:1000" || flags["chown"] == "1000") {
				dataChown = true
			}
		}
	}
	if user != "1000:1000" && user != "1000" {
		t.Errorf("Dockerfile: final USER %q, want 1000:1000", user)
	}
	if argv, ok := execForm(entrypoint); !ok || argv[0] != "jm-directory-server" {
		t.Errorf("Dockerfile: ENTRYPOINT %q, want exec form [\"jm-directory-server\", ...]", entrypoint)
	}
	if !contains(exposed, "5222") && !contains(exposed, "5222/tcp") {
		t.Errorf("Dockerfile: EXPOSE %q lacks 5222", exposed)
	}
	if !contains(volumes, "/data") {
		t.Errorf("Dockerfile: VOLUME %q lacks /data", volumes)
	}
	if !dataChown {
		t.Errorf("Dockerfile: /data is not created owned by 1000 (COPY --chown=1000:1000 ... /data)")
	}

	// Both binaries in a directory of the image's PATH, so that the exec forms find them.
	env := d.finalEnv()
	pathDirs := strings.Split(env["PATH"], ":")
	if env["PATH"] == "" {
		pathDirs = []string{"/usr/local/bin", "/usr/bin", "/bin"} // distroless's default
	}
	for _, bin := range []string{"jm-directory-server", "jm-directory-ctl"} {
		dst, ok := binDirs[bin]
		if !ok || !contains(pathDirs, path.Clean(dst)) {
			t.Errorf("Dockerfile: %s copied to %q, not into a PATH directory %q", bin, dst, pathDirs)
		}
	}

	// Container defaults.
	for k, want := range map[string]string{
		"HOST": "0.0.0.0", "DATA_DIR": "/data", "NETWORK": "mainnet", "HEALTH_CHECK_HOST": "127.0.0.1",
	} {
		if env[k] != want {
			t.Errorf("Dockerfile: ENV %s=%q, want %q", k, env[k], want)
		}
	}

	// HEALTHCHECK [options] CMD ["jm-directory-ctl", "health"].
	flags, rest := flagsAndRest(health)
	cmd, argsJSON, _ := strings.Cut(rest, " ")
	argv, ok := execForm(argsJSON)
	if cmd != "CMD" || !ok || argv[0] != "jm-directory-ctl" || !contains(argv, "health") {
		t.Errorf("Dockerfile: HEALTHCHECK %q, want exec form CMD [\"jm-directory-ctl\", \"health\"]", health)
	}
	durations := map[string]time.Duration{}
	for _, k := range []string{"interval", "timeout", "start-period"} {
		d, err := time.ParseDuration(flags[k])
		if err != nil {
			t.Errorf("Dockerfile: HEALTHCHECK --%s=%q: %v", k, flags[k], err)
		}
		durations[k] = d
	}
	if iv := durations["interval"]; iv < 5*time.Second || iv > 5*time.Minute {
		t.Errorf("Dockerfile: HEALTHCHECK --interval=%v, want 5s..5m", iv)
	}
	// jm-directory-ctl gives up after its own 5 s and says why; the check must wait longer.
	if to := durations["timeout"]; to <= 5*time.Second || to > durations["interval"] {
		t.Errorf("Dockerfile: HEALTHCHECK --timeout=%v, want > 5s (jm-directory-ctl's timeout) and <= interval", to)
	}
	if r := flags["retries"]; r == "" || r == "0" {
		t.Errorf("Dockerfile: HEALTHCHECK --retries=%q, want >= 1", r)
	}
}

// TestTorDockerfile checks the tor sidecar's recipe: Debian's tor, run as uid 1000,
// reading the torrc the compose file mounts.
func TestTorDockerfile(t *testing.T) {
	d := loadDockerfile(t, torDockerfilePath)
	if d.stages < 1 || !strings.HasPrefix(d.image(d.stage(0)[0]), "debian:") {
		t.Errorf("tor Dockerfile: want a debian base image")
	}
	var user, entrypoint, run string
	for _, in := range d.stage(-1) {
		switch in.Cmd {
		case "USER":
			user = in.Args
		case "ENTRYPOINT":
			entrypoint = in.Args
		case "RUN":
			run += in.Args
		}
	}
	if !strings.Contains(run, "apt-get install") || !strings.Contains(run, " tor") {
		t.Errorf("tor Dockerfile: tor is not installed from apt: %q", run)
	}
	if user != "1000:1000" && user != "1000" {
		t.Errorf("tor Dockerfile: USER %q, want 1000:1000", user)
	}
	argv, ok := execForm(entrypoint)
	if !ok || argv[0] != "tor" || torrcArg(argv) == "" {
		t.Errorf("tor Dockerfile: ENTRYPOINT %q, want exec form [\"tor\", \"-f\", TORRC, ...]", entrypoint)
	}
}

// torrcArg is the value of -f in a tor command line.
func torrcArg(argv []string) string {
	for i, a := range argv {
		if (a == "-f" || a == "--torrc-file") && i+1 < len(argv) {
			return argv[i+1]
		}
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// dockerignore is a parsed .dockerignore: patterns in order, "!" re-includes.
type dockerignore []struct {
	pattern string
	include bool
}

func parseDockerignore(t *testing.T, text string) dockerignore {
	t.Helper()
	var d dockerignore
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		include := strings.HasPrefix(line, "!")
		p := path.Clean(strings.TrimPrefix(strings.TrimPrefix(line, "!"), "/"))
		if strings.Contains(p, "**") {
			t.Fatalf("%s: pattern %q: this checker does not implement **", dockerignorePath, line)
		}
		d = append(d, struct {
			pattern string
			include bool
		}{p, include})
	}
	return d
}

// excluded applies Docker's rule: the last pattern that matches the path or one of its
// parent directories decides.
func (d dockerignore) excluded(rel string) bool {
	out := false
	for _, p := range d {
		for q := rel; q != "." && q != "/"; q = path.Dir(q) {
			if ok, _ := path.Match(p.pattern, q); ok {
				out = !p.include
				break
			}
		}
	}
	return out
}

// TestDockerignore checks the build-context filter: every file the image's go build needs
// is sent, and no key or repository metadata is.
func TestDockerignore(t *testing.T) {
	d := parseDockerignore(t, readRepoFile(t, dockerignorePath))
	root := testkit.RepoRoot(t)

	secrets := []string{
		".git/config",
		"deploy/docker/data/directory-nick.key",
		"deploy/docker/data/ops-token",
		"deploy/docker/tor/data/hs/directory/hs_ed25519_secret_key",
		"deploy/docker/tor/data/keys/secret_id_key",
		"test/deploy/doc.go",
		"dist/jm-directory-server_0.1.0_linux_amd64",
		"scripts/fuzz-long.sh",
	}
	for _, s := range secrets {
		if !d.excluded(s) {
			t.Errorf("%s sends %s to the build", dockerignorePath, s)
		}
	}

	needed := []string{"go.mod", "go.sum", "VERSION", "scripts/release.sh"}
	cmd := exec.Command("go", "list", "-buildvcs=false", "-deps", "-f",
		`{{if .Module}}{{if .Module.Main}}{{.Dir}}{{range .GoFiles}} {{.}}{{end}}{{range .EmbedFiles}} {{.}}{{end}}{{end}}{{end}}`,
		"./cmd/jm-directory-server", "./cmd/jm-directory-ctl")
	cmd.Dir = root
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		rel, err := filepath.Rel(root, f[0])
		if err != nil {
			t.Fatal(err)
		}
		for _, file := range f[1:] {
			needed = append(needed, filepath.ToSlash(filepath.Join(rel, file)))
		}
	}
	if len(needed) < 10 {
		t.Fatalf("go list found only %d files for the build: %q", len(needed), needed)
	}
	for _, n := range needed {
		if d.excluded(n) {
			t.Errorf("%s keeps %s out of the build, but go build needs it", dockerignorePath, n)
		}
	}
}

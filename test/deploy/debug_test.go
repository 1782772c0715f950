package deploy

import (
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v2"
)

const (
	releaseScriptPath = "scripts/release.sh"
	composeDebugPath  = "deploy/docker/docker-compose.debug.yml"
)

// stageName is the name a FROM gives its stage ("FROM image AS name"), "" without one.
func stageName(from instruction) string {
	f := strings.Fields(from.Args)
	for i := 0; i+1 < len(f); i++ {
		if strings.EqualFold(f[i], "AS") {
			return f[i+1]
		}
	}
	return ""
}

// stageIndex is the index of the stage called name, -1 without one.
func (d dockerfile) stageIndex(name string) int {
	for _, in := range d.ins {
		if in.Cmd == "FROM" && stageName(in) == name {
			return in.Stage
		}
	}
	return -1
}

// stageEnv is the environment stage i sets (-1 = the last stage).
func (d dockerfile) stageEnv(i int) map[string]string {
	env := map[string]string{}
	for _, in := range d.stage(i) {
		if in.Cmd == "ENV" {
			for k, v := range envPairs(in.Args) {
				env[k] = v
			}
		}
	}
	return env
}

// stageArgs are the ARGs stage i declares.
func (d dockerfile) stageArgs(i int) []string {
	var out []string
	for _, in := range d.stage(i) {
		if in.Cmd == "ARG" {
			k, _, _ := strings.Cut(in.Args, "=")
			out = append(out, k)
		}
	}
	return out
}

// checkReleaseRun checks that stage i builds the binaries with scripts/release.sh for the
// platform being built, with the commit passed in as a build argument (.git is not in
// the context), and --debug exactly when debug is set.
func checkReleaseRun(t *testing.T, d dockerfile, i int, debug bool) {
	t.Helper()
	var run string
	for _, in := range d.stage(i) {
		if in.Cmd == "RUN" && strings.Contains(in.Args, releaseScriptPath) {
			run = in.Args
		}
		if in.Cmd == "RUN" && strings.Contains(in.Args, "go build") {
			t.Errorf("Dockerfile stage %d: go build called directly (line %d), not through %s", i, in.Line, releaseScriptPath)
		}
	}
	if run == "" {
		t.Errorf("Dockerfile stage %d: no RUN of %s", i, releaseScriptPath)
		return
	}
	for _, want := range []string{"--targets ${TARGETOS}/${TARGETARCH}", "RELEASE_COMMIT=${COMMIT}", "--out "} {
		if !strings.Contains(run, want) {
			t.Errorf("Dockerfile stage %d: the release step lacks %q: %q", i, want, run)
		}
	}
	if got := strings.Contains(run, "--debug"); got != debug {
		t.Errorf("Dockerfile stage %d: release.sh --debug is %v, want %v: %q", i, got, debug, run)
	}
	args := d.stageArgs(i)
	for _, a := range []string{"TARGETOS", "TARGETARCH", "COMMIT"} {
		if !slices.Contains(args, a) {
			t.Errorf("Dockerfile stage %d: no ARG %s (build arguments are per stage)", i, a)
		}
	}
	// The script and the version it stamps are in the build stage.
	copied := map[string]bool{}
	for _, in := range d.stage(0) {
		if in.Cmd == "COPY" {
			_, rest := flagsAndRest(in.Args)
			words := strings.Fields(rest)
			for _, w := range words[:max(len(words)-1, 0)] {
				copied[path.Clean(w)] = true
			}
		}
	}
	for _, f := range []string{"VERSION", releaseScriptPath} {
		if !copied[f] {
			t.Errorf("Dockerfile: the build stage does not COPY %s", f)
		}
	}
}

// TestReleaseScriptFlags checks statically that scripts/release.sh (which the image
// builds with) makes static, reproducible, stamped binaries of both commands for the
// three release platforms; test/release builds with it.
func TestReleaseScriptFlags(t *testing.T) {
	s := readRepoFile(t, releaseScriptPath)
	for _, want := range []string{
		"CGO_ENABLED=0", "-trimpath", "-buildvcs=false", "-buildid=", `"-s -w `,
		"internal/buildinfo.Version=", "internal/buildinfo.Commit=", "RELEASE_COMMIT", "git rev-parse HEAD",
		"jm-directory-server", "jm-directory-ctl", "SHA256SUMS",
		"targets=linux/amd64,linux/arm64,darwin/arm64",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("%s lacks %q", releaseScriptPath, want)
		}
	}
}

// TestDockerfileDebug checks the debug target: a stage named debug before the production
// one, on the Go image of go.mod (a shell, go tool pprof), with binaries built by
// release.sh --debug, a pinned delve, pprof on and the ops listener on loopback, and
// otherwise the production stage's user, defaults, health check and entrypoint.
func TestDockerfileDebug(t *testing.T) {
	d := loadDockerfile(t, dockerfilePath)
	dbg := d.stageIndex("debug")
	if dbg < 0 {
		t.Fatal("Dockerfile: no stage named debug (docker build --target debug)")
	}
	if dbg == d.stages-1 {
		t.Fatal("Dockerfile: debug is the last stage; production must stay the default")
	}
	stage := d.stage(dbg)
	if img := d.image(stage[0]); img != "golang:"+goDirective(t) {
		t.Errorf("Dockerfile: debug FROM %s, want golang:%s (a shell and the Go toolchain)", img, goDirective(t))
	}
	if flags, _ := flagsAndRest(stage[0].Args); flags["platform"] != "" {
		t.Errorf("Dockerfile: debug FROM --platform=%s: the debug image runs on the target platform", flags["platform"])
	}

	// delve, pinned, installed where the binaries are built.
	dv := d.args["DELVE_VERSION"]
	if !regexp.MustCompile(`^v\d+\.\d+\.\d+$`).MatchString(dv) {
		t.Errorf("Dockerfile: ARG DELVE_VERSION=%q, want a pinned release (vX.Y.Z)", dv)
	}

	// The binaries and dlv come from the stage that runs release.sh --debug.
	env := d.stageEnv(dbg)
	pathDirs := strings.Split(env["PATH"], ":")
	froms := map[string]string{} // binary -> --from stage
	for _, in := range stage {
		if in.Cmd != "COPY" {
			continue
		}
		flags, rest := flagsAndRest(in.Args)
		words := strings.Fields(rest)
		if len(words) < 2 {
			continue
		}
		dst := path.Clean(words[len(words)-1])
		for _, src := range words[:len(words)-1] {
			if !slices.Contains(pathDirs, dst) && path.Base(src) != "data" {
				t.Errorf("Dockerfile: debug copies %s to %s, not a PATH directory %q", src, dst, pathDirs)
			}
			froms[path.Base(src)] = flags["from"]
		}
	}
	checked := map[int]bool{}
	for _, bin := range []string{"jm-directory-server", "jm-directory-ctl", "dlv"} {
		from, ok := froms[bin]
		if !ok {
			t.Errorf("Dockerfile: debug has no %s", bin)
			continue
		}
		i := d.stageIndex(from)
		if i < 0 {
			t.Errorf("Dockerfile: debug copies %s from %q, not a stage of this file", bin, from)
			continue
		}
		if bin == "dlv" {
			var install string
			for _, in := range d.stage(i) {
				if in.Cmd == "RUN" && strings.Contains(in.Args, "go install github.com/go-delve/delve/cmd/dlv@") {
					install = in.Args
				}
			}
			if !strings.Contains(install, "dlv@${DELVE_VERSION}") || !slices.Contains(d.stageArgs(i), "DELVE_VERSION") {
				t.Errorf("Dockerfile: stage %s does not go install dlv@${DELVE_VERSION} with ARG DELVE_VERSION", from)
			}
			continue
		}
		if !checked[i] {
			checkReleaseRun(t, d, i, true)
			checked[i] = true
		}
	}

	prod := d.stageEnv(-1)
	for k, want := range map[string]string{
		"PPROF": "true", "HEALTH_CHECK_HOST": "127.0.0.1",
		"HOST": prod["HOST"], "PORT": prod["PORT"], "DATA_DIR": prod["DATA_DIR"],
		"NETWORK": prod["NETWORK"], "HEALTH_CHECK_PORT": prod["HEALTH_CHECK_PORT"], "HOME": prod["HOME"],
	} {
		if env[k] != want {
			t.Errorf("Dockerfile: debug ENV %s=%q, want %q", k, env[k], want)
		}
	}
	if !strings.HasPrefix(env["GOCACHE"], "/tmp/") {
		t.Errorf("Dockerfile: debug ENV GOCACHE=%q, want under /tmp (go tool pprof builds itself there; the root is read-only)", env["GOCACHE"])
	}

	// Same user, entrypoint and health check as production.
	last := func(i int, cmd string) string {
		v := ""
		for _, in := range d.stage(i) {
			if in.Cmd == cmd {
				v = in.Args
			}
		}
		return v
	}
	for _, cmd := range []string{"USER", "ENTRYPOINT", "HEALTHCHECK", "WORKDIR", "VOLUME", "EXPOSE"} {
		if got, want := last(dbg, cmd), last(-1, cmd); got != want {
			t.Errorf("Dockerfile: debug %s %q, production %q: want the same", cmd, got, want)
		}
	}
}

// composeDebug is the part of docker-compose.debug.yml the test looks at.
type composeDebug struct {
	Services map[string]struct {
		Build struct {
			Target     string `yaml:"target"`
			Context    string `yaml:"context"`
			Dockerfile string `yaml:"dockerfile"`
		} `yaml:"build"`
		Image       string        `yaml:"image"`
		Environment envMap        `yaml:"environment"`
		CapAdd      []string      `yaml:"cap_add"`
		CapDrop     []string      `yaml:"cap_drop"`
		Tmpfs       []string      `yaml:"tmpfs"`
		ReadOnly    *bool         `yaml:"read_only"`
		Ports       []interface{} `yaml:"ports"`
		Networks    interface{}   `yaml:"networks"`
		SecurityOpt []string      `yaml:"security_opt"`
		User        string        `yaml:"user"`
	} `yaml:"services"`
}

// TestComposeDebugOverride checks docker-compose.debug.yml: it changes only the directory
// service, to the Dockerfile's debug target under its own image tag, adds the ptrace
// capability and a /tmp, keeps pprof on the loopback ops listener, and opens nothing:
// no port, no network, no writable root, no other capability.
func TestComposeDebugOverride(t *testing.T) {
	text := readRepoFile(t, composeDebugPath)
	var generic map[string]interface{}
	if err := yaml.UnmarshalStrict([]byte(text), &generic); err != nil {
		t.Fatalf("%s: %v", composeDebugPath, err)
	}
	var c composeDebug
	if err := yaml.UnmarshalStrict([]byte(text), &c); err != nil {
		t.Fatalf("%s: a key this test does not know (check what it opens, then add it here): %v", composeDebugPath, err)
	}
	if len(c.Services) != 1 {
		t.Fatalf("%s: services %d, want the directory only", composeDebugPath, len(c.Services))
	}
	s, ok := c.Services["directory"]
	if !ok {
		t.Fatalf("%s: no directory service", composeDebugPath)
	}
	base := loadCompose(t).Services["directory"]

	d := loadDockerfile(t, dockerfilePath)
	if s.Build.Target != "debug" || d.stageIndex(s.Build.Target) < 0 {
		t.Errorf("%s: build.target %q, want debug (a stage of %s)", composeDebugPath, s.Build.Target, dockerfilePath)
	}
	if s.Build.Context != "" || s.Build.Dockerfile != "" {
		t.Errorf("%s: build context/dockerfile %q/%q: leave them to docker-compose.yml", composeDebugPath, s.Build.Context, s.Build.Dockerfile)
	}
	if s.Image == "" || s.Image == base.Image {
		t.Errorf("%s: image %q, want a tag of its own (not %q: the production tag would then hold the debug image)", composeDebugPath, s.Image, base.Image)
	}
	if !slices.Equal(s.CapAdd, []string{"SYS_PTRACE"}) {
		t.Errorf("%s: cap_add %q, want [SYS_PTRACE] alone (delve's attach)", composeDebugPath, s.CapAdd)
	}
	if s.CapDrop != nil || s.SecurityOpt != nil || s.User != "" {
		t.Errorf("%s: changes cap_drop, security_opt or user: keep production's", composeDebugPath)
	}
	if s.ReadOnly != nil && !*s.ReadOnly {
		t.Errorf("%s: read_only: false; keep the root read-only (/tmp is a tmpfs)", composeDebugPath)
	}
	if !slices.Contains(s.Tmpfs, "/tmp") {
		t.Errorf("%s: tmpfs %q lacks /tmp (GOCACHE of go tool pprof, saved profiles)", composeDebugPath, s.Tmpfs)
	}
	if len(s.Ports) > 0 || s.Networks != nil {
		t.Errorf("%s: publishes ports or changes networks: the directory stays reachable only through tor", composeDebugPath)
	}

	// pprof on: the override's environment or the debug image's.
	env := d.stageEnv(d.stageIndex("debug"))
	for k, v := range s.Environment {
		env[k] = v
	}
	if on, ok := parseBool(env["PPROF"]); !ok || !on {
		t.Errorf("%s: PPROF=%q with the debug image, want true", composeDebugPath, env["PPROF"])
	}
	for _, k := range []string{"HEALTH_CHECK_HOST", "DIRECTORY_SERVER__HEALTH_CHECK_HOST"} {
		if h, set := s.Environment[k]; set && h != "127.0.0.1" && h != "localhost" && h != "::1" {
			t.Errorf("%s: %s=%q: pprof stays on the container's loopback", composeDebugPath, k, h)
		}
	}
}

// TestComposeCommitArg: the compose file passes the commit to the Dockerfile's COMMIT
// build argument, from $COMMIT (the context has no .git), with a default so that a
// plain "docker compose up --build" still builds.
func TestComposeCommitArg(t *testing.T) {
	var c struct {
		Services map[string]struct {
			Build struct {
				Args map[string]string `yaml:"args"`
			} `yaml:"build"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal([]byte(readRepoFile(t, composePath)), &c); err != nil {
		t.Fatalf("%s: %v", composePath, err)
	}
	if got := c.Services["directory"].Build.Args["COMMIT"]; !regexp.MustCompile(`^\$\{COMMIT:-[^}]+\}$`).MatchString(got) {
		t.Errorf("%s: directory build.args.COMMIT = %q, want ${COMMIT:-unknown}", composePath, got)
	}
	d := loadDockerfile(t, dockerfilePath)
	if !slices.Contains(d.stageArgs(0), "COMMIT") {
		t.Errorf("%s: the build stage declares no ARG COMMIT", dockerfilePath)
	}
}

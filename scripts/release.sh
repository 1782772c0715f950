#!/usr/bin/env bash
# Builds the release binaries of jm-directory-server and jm-directory-ctl: static
# (CGO_ENABLED=0) and reproducible (-trimpath, -buildvcs=false, -buildid=, stripped, no
# path or time of the build in them), stamped with the version and the commit, plus
# SHA256SUMS. The same source, Go version and target give the same bytes anywhere.
#
#   scripts/release.sh [--targets OS/ARCH[,OS/ARCH...]] [--out DIR] [--debug]
#
#   --targets  platforms to build (default: linux/amd64,linux/arm64,darwin/arm64)
#   --out      output directory (default: dist/ at the repository root); the binaries
#              are named <command>_<version>_<os>_<arch>, SHA256SUMS lists them
#   --debug    keep symbols and DWARF and turn off optimisations and inlining, for
#              delve (the Docker image's debug target); never for a release
#
# Version: the VERSION file at the repository root (one line), or $RELEASE_VERSION.
# Commit: git rev-parse HEAD, or $RELEASE_COMMIT (needed outside a git checkout, as in
# the Docker build, where .git is not sent). The Go toolchain is the one on PATH; go.mod's
# go directive names the version releases are built with, and a different one is
# reported (its binaries differ).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
module=github.com/jm-directory/jm-directory-server
commands=(jm-directory-server jm-directory-ctl)
targets=linux/amd64,linux/arm64,darwin/arm64
out=$root/dist
debug=false

die() { echo "release.sh: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
  case $1 in
    --targets) [ $# -ge 2 ] || die "--targets needs a value"; targets=$2; shift 2 ;;
    --targets=*) targets=${1#*=}; shift ;;
    --out) [ $# -ge 2 ] || die "--out needs a value"; out=$2; shift 2 ;;
    --out=*) out=${1#*=}; shift ;;
    --debug) debug=true; shift ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done

cd "$root"

version=${RELEASE_VERSION:-}
if [ -z "$version" ]; then
  [ -f VERSION ] || die "no VERSION file in $root and no RELEASE_VERSION"
  version=$(tr -d ' \t\r\n' < VERSION)
fi
[[ $version =~ ^[0-9A-Za-z][0-9A-Za-z.+_-]*$ ]] || die "invalid version \"$version\""

commit=${RELEASE_COMMIT:-}
if [ -z "$commit" ]; then
  commit=$(git rev-parse HEAD 2>/dev/null) ||
    die "not a git checkout: set RELEASE_COMMIT to the commit being built"
  if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    echo "release.sh: warning: the working tree has uncommitted changes; the binaries are stamped with HEAD ($commit) all the same" >&2
  fi
fi
[[ $commit =~ ^[0-9A-Za-z._-]+$ ]] || die "invalid commit \"$commit\""

want_go=$(awk '$1 == "go" { print "go" $2; exit }' go.mod)
have_go=$(go env GOVERSION)
if [ "$have_go" != "$want_go" ]; then
  echo "release.sh: warning: building with $have_go, go.mod says $want_go: the binaries will not match a release built with $want_go" >&2
fi

# Only what the flags below say may change the output: no flags, experiments or
# microarchitecture levels from the caller's environment, no cgo, no workspace.
export CGO_ENABLED=0 GOFLAGS= GOEXPERIMENT= GOWORK=off GOAMD64=v1 GOARM64=v8.0

ldflags="-buildid= -X $module/internal/buildinfo.Version=$version -X $module/internal/buildinfo.Commit=$commit"
gcflags=
if $debug; then
  gcflags="all=-N -l"
else
  ldflags="-s -w $ldflags"
fi

known=$(go tool dist list)
mkdir -p "$out"
files=()
for target in ${targets//,/ }; do
  grep -qxF "$target" <<<"$known" || die "unknown target $target (go tool dist list names them)"
  goos=${target%/*} goarch=${target#*/}
  for cmd in "${commands[@]}"; do
    name=${cmd}_${version}_${goos}_${goarch}
    GOOS=$goos GOARCH=$goarch go build -trimpath -buildvcs=false \
      -gcflags="$gcflags" -ldflags="$ldflags" -o "$out/$name" "./cmd/$cmd"
    files+=("$name")
    echo "built $out/$name"
  done
done

# SHA256SUMS covers the binaries of this run, sorted by name, in sha256sum's format.
(
  cd "$out"
  if command -v sha256sum >/dev/null; then sum=(sha256sum); else sum=(shasum -a 256); fi
  printf '%s\n' "${files[@]}" | LC_ALL=C sort | while read -r f; do "${sum[@]}" "$f"; done > SHA256SUMS
)
echo "wrote $out/SHA256SUMS (version $version, commit $commit, $have_go)"

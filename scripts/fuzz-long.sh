#!/usr/bin/env bash
# Long fuzzing, not run in CI (CI gives each target a few seconds; see .ci/run).
#
# Finds every `func Fuzz…` target of every package (go test -list) and fuzzes each for a
# fixed number of executions, one target after the other:
#
#   go test -run='^$' -fuzz='^Name$' -fuzztime=<execs>x -parallel=<workers> ./pkg
#
# then prints one summary line per target (package, target, executions, wall time,
# result) and exits 1 if any target failed (a crasher, a build failure, anything but
# PASS). A crasher is written by `go test` where it always is, to
# <pkg>/testdata/fuzz/<Target>/<hash>; the summary names every such new file. Those are
# the reproducer, not scratch: look at them, then delete them (or keep one as a seed).
# Everything else (logs) lives in a temporary directory outside the tree that is removed
# on exit; the fuzzing cache is Go's own ($GOCACHE/fuzz).
#
# Usage: scripts/fuzz-long.sh [-n EXECS] [-p WORKERS] [FILTER]
#   -n EXECS    executions per target (default 10000000)
#   -p WORKERS  fuzzing workers, go test's -parallel (default 1: the machine is shared;
#               use the core count on a machine of your own)
#   FILTER      extended regexp on "pkg.Target" (e.g. wire, 'jm\.FuzzValidNick$');
#               default: every target
# Example, niced, in the background: nice -n 19 scripts/fuzz-long.sh > /tmp/fuzz.txt 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."

execs=10000000
workers=1
while getopts 'n:p:h' opt; do
  case $opt in
    n) execs=$OPTARG ;;
    p) workers=$OPTARG ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; [ "$opt" = h ] && exit 0; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
filter=${1:-}
[[ $execs =~ ^[1-9][0-9]*$ && $workers =~ ^[1-9][0-9]*$ ]] || { echo "fuzz-long: -n and -p take positive integers" >&2; exit 2; }
[ $# -le 1 ] || { echo "fuzz-long: at most one FILTER" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Untracked files under any testdata/fuzz before we start, to tell new crashers apart.
crashers() { git ls-files --others --exclude-standard -- ':(glob)**/testdata/fuzz/**' | sort; }
crashers > "$tmp/before"

# "pkg Target" for every fuzz target: go test -list prints a package's matching names,
# then "ok  <import path> …" for that package.
module=$(go list -m)
set +e
go test -list '^Fuzz' ./... > "$tmp/list" 2>&1
list_rc=$?
set -e
names=()
targets=()
summary=()
failed=0
while read -r first second _; do
  case $first in
    Fuzz*) names+=("$first") ;;
    ok)
      if [ "$second" = "$module" ]; then pkg=.; else pkg=./${second#"$module"/}; fi
      for n in "${names[@]}"; do targets+=("$pkg $n"); done
      names=() ;;
    FAIL)
      # A package whose tests do not build: its targets (if any) cannot be listed.
      if [ -n "$second" ]; then
        summary+=("$(printf '%-22s %-22s %12s       %7s   %s' "./${second#"$module"/}" '(go test -list)' - - 'FAIL: does not build')")
        failed=1
      fi
      names=() ;;
  esac
done < "$tmp/list"
if [ "$list_rc" -ne 0 ]; then
  echo "fuzz-long: go test -list failed for some packages; fuzzing the targets of the others:" >&2
  grep -v -E '^(Fuzz|ok |\? |FAIL$)' "$tmp/list" >&2 || true
  failed=1
fi
if [ -n "$filter" ]; then
  kept=()
  for t in "${targets[@]}"; do
    read -r pkg name <<< "$t"
    if [[ "${pkg#./}.$name" =~ $filter ]] || [[ "$(basename "$pkg").$name" =~ $filter ]]; then kept+=("$t"); fi
  done
  targets=("${kept[@]}")
fi
if [ ${#targets[@]} -eq 0 ]; then
  echo "fuzz-long: no fuzz target${filter:+ matches $filter}" >&2
  exit 1
fi
echo "fuzz-long: ${#targets[@]} targets, $execs executions each, $workers worker(s)"

for t in "${targets[@]}"; do
  read -r pkg name <<< "$t"
  log="$tmp/$(basename "$pkg").$name.log"
  echo "== $pkg $name"
  start=$(date +%s)
  set +e
  go test -run='^$' -fuzz="^$name\$" -fuzztime="${execs}x" -parallel="$workers" -timeout=0 "$pkg" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  secs=$(( $(date +%s) - start ))
  # The fuzzer's last progress line carries the total: "fuzz: elapsed: 61s, execs: 10000000 (…/sec), …".
  ran=$(grep -o 'execs: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2 || true)
  if [ "$rc" -eq 0 ] && grep -q '^PASS$' "$log"; then result=PASS; else result=FAIL; failed=1; fi
  summary+=("$(printf '%-22s %-22s %12s execs %7ss  %s' "$pkg" "$name" "${ran:-?}" "$secs" "$result")")
done

echo
echo "== summary (package, target, executions, wall time, result)"
printf '%s\n' "${summary[@]}"
crashers > "$tmp/after"
new=$(comm -13 "$tmp/before" "$tmp/after")
if [ -n "$new" ]; then
  echo "new files under testdata/fuzz (failing inputs; reproduce with go test -run=<Target>/<hash> ./pkg, then delete):"
  echo "$new" | sed 's/^/  /'
fi
exit $failed

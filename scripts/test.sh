#!/usr/bin/env bash
# The test command: every test of the project, on a machine that already has the toolchain,
# cargo-nextest, Node.js + npm and Debian's Chromium (`.ci/run` installs what a fresh machine lacks).
#
#   scripts/test.sh
#
# Steps (each runs even if an earlier one failed, except those that need the binary):
#   1. unit + integration tests     cargo nextest run --workspace --profile ci --no-fail-fast
#   2. build the server binary      cargo build -p mcpauth-server   (reuses step 1's artifacts)
#   3. browser end-to-end test      e2e/browser: npm ci && node --test   (Chromium + playwright-core)
#   4. peer flow                    e2e/peer-flow/run.sh   (Better Auth's flow.mjs against mcpauth)
#
# Screenshots of the pages go to $SCREENSHOT_DIR (default target/e2e/screenshots) and the peer
# flow's JSON report to $FLOW_REPORT (default target/e2e/flow-report.json).
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

target_dir="${CARGO_TARGET_DIR:-$root/target}"
case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
export MCPAUTH_BIN="${MCPAUTH_BIN:-$target_dir/debug/mcpauth}"
if [[ -z "${SCREENSHOT_DIR:-}" ]]; then
  # our own folder: start empty so that no screenshot of an earlier run is mistaken for this one's
  export SCREENSHOT_DIR="$target_dir/e2e/screenshots"
  rm -rf "$SCREENSHOT_DIR"
fi
export FLOW_REPORT="${FLOW_REPORT:-$target_dir/e2e/flow-report.json}"

names=()
results=()
times=()
failed=0
passed=0
skipped=0

section() { printf '\n==== %s ====\n' "$*"; }

# run NAME COMMAND... : runs a step, records its result and duration
run() {
  local name="$1"
  shift
  section "$name"
  echo "+ $*"
  local start=$SECONDS rc=0
  "$@" || rc=$?
  names+=("$name")
  times+=("$((SECONDS - start))s")
  if [[ $rc -eq 0 ]]; then
    results+=("ok")
    passed=$((passed + 1))
  else
    results+=("FAILED (exit $rc)")
    failed=$((failed + 1))
  fi
  return "$rc"
}

skip() {
  section "$1"
  echo "skipped: $2"
  names+=("$1")
  results+=("SKIPPED ($2)")
  times+=("-")
  skipped=$((skipped + 1))
}

browser_test() {
  cd "$root/e2e/browser" && npm ci --no-audit --no-fund && node --test --test-reporter=spec browser.test.mjs
}

run "unit and integration tests (cargo nextest)" \
  cargo nextest run --workspace --profile ci --no-fail-fast

if run "build the server binary (cargo build -p mcpauth-server)" cargo build -p mcpauth-server; then
  run "browser end-to-end test (e2e/browser)" browser_test
  run "peer flow: Better Auth's flow.mjs against mcpauth (e2e/peer-flow)" "$root/e2e/peer-flow/run.sh"
else
  skip "browser end-to-end test (e2e/browser)" "no binary"
  skip "peer flow: Better Auth's flow.mjs against mcpauth (e2e/peer-flow)" "no binary"
fi

section "summary"
for i in "${!names[@]}"; do
  printf '  %-70s %-6s %s\n' "${names[$i]}" "${times[$i]}" "${results[$i]}"
done
[[ -d "$SCREENSHOT_DIR" ]] && echo "  screenshots: $SCREENSHOT_DIR"
[[ -f "$FLOW_REPORT" ]] && echo "  peer flow report: $FLOW_REPORT"
echo
if [[ $skipped -gt 0 ]]; then
  echo "steps: $passed passed, $failed failed, $skipped skipped"
else
  echo "steps: $passed passed, $failed failed"
fi
[[ $failed -eq 0 && $skipped -eq 0 ]]

#!/usr/bin/env bash
# Runs the Better Auth peer's end-to-end flow script (shared/peers/better-auth/flow.mjs) against a
# fresh `mcpauth serve`: discovery, 401, sign-up, DCR, authorize + consent, token, bearer session,
# refresh, then informational probes. Exits non-zero if flow.mjs does.
#
#   e2e/peer-flow/run.sh                 # after `cargo build -p mcpauth-server`
#
# Environment:
#   MCPAUTH_BIN   server binary (default: <repo>/target/debug/mcpauth, honouring CARGO_TARGET_DIR)
#   SHARED_DIR    the shared/ folder (default: <repo>/../shared, else /work/shared)
#   FLOW_REPORT   where flow.mjs writes its JSON report (default: a file in the temp dir, kept)
#   FLOW_ARGS     extra arguments for flow.mjs (e.g. "--strict")
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(git -C "$here" rev-parse --show-toplevel 2>/dev/null || (cd "$here/../.." && pwd))"

# --- inputs ---------------------------------------------------------------------------------
bin="${MCPAUTH_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/mcpauth}"
case "$bin" in /*) ;; *) [[ -e "$bin" ]] && bin="$PWD/$bin" || bin="$root/$bin" ;; esac
if [[ ! -x "$bin" ]]; then
  echo "peer-flow: mcpauth binary not found at $bin (run 'cargo build -p mcpauth-server' or set MCPAUTH_BIN)" >&2
  exit 2
fi

peer=""
for shared in "${SHARED_DIR:-}" "$root/../shared" /work/shared; do
  if [[ -n "$shared" && -f "$shared/peers/better-auth/flow.mjs" ]]; then
    peer="$(cd "$shared/peers/better-auth" && pwd)"
    break
  fi
done
if [[ -z "$peer" ]]; then
  echo "peer-flow: peers/better-auth/flow.mjs not found (set SHARED_DIR to the shared/ folder)" >&2
  exit 2
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/mcpauth-peer-flow.XXXXXX")"
report="${FLOW_REPORT:-$work/flow-report.json}"
mkdir -p "$(dirname "$report")"
server_pid=""
flow_pid=""

cleanup() {
  local rc=$?
  if [[ -n "$flow_pid" ]]; then kill -TERM "$flow_pid" 2>/dev/null || true; fi
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$server_pid" 2>/dev/null; then
      echo "peer-flow: server ignored SIGTERM for 10 s: killing it" >&2
      kill -KILL "$server_pid" 2>/dev/null || true
    fi
    wait "$server_pid" 2>/dev/null || true
  fi
  if [[ $rc -ne 0 && -f "$work/server.log" ]]; then
    echo "---- mcpauth server output (last 80 lines) ----"
    tail -n 80 "$work/server.log"
    echo "-----------------------------------------------"
  fi
  # keep the report (it may live in $work); drop the rest
  find "$work" -mindepth 1 ! -path "$report" -delete 2>/dev/null || true
  rmdir "$work" 2>/dev/null || true
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the peer's flow script -------------------------------------------------------------------
# flow.mjs is plain Node with built-in modules only; npm ci (which compiles better-sqlite3 for the
# peer's server) is needed only if it ever imports a package.
mkdir -p "$work/peer"
if grep -hoE "(from|import)[[:space:]]*\(?[[:space:]]*[\"'][^\"']+[\"']|require\([[:space:]]*[\"'][^\"']+[\"']" "$peer/flow.mjs" \
  | grep -oE "[\"'][^\"']+[\"']" | tr -d "\"'" | grep -vqE '^node:'; then
  echo "peer-flow: flow.mjs imports packages: copying the peer and running npm ci"
  cp -R "$peer/." "$work/peer/"
  rm -rf "$work/peer/node_modules"
  (cd "$work/peer" && npm ci --no-audit --no-fund)
else
  cp "$peer/flow.mjs" "$work/peer/flow.mjs"
fi

# --- the server -------------------------------------------------------------------------------
# The server reads every MCPAUTH_* variable as configuration and refuses unknown ones: keep this
# script's MCPAUTH_BIN away from it. It runs in the temp dir so that no ./mcpauth.toml is picked up.
(cd "$work" && exec env -u MCPAUTH_BIN MCPAUTH_RATE_LIMITS__ENABLED=false NO_COLOR=1 \
  "$bin" serve --bind 127.0.0.1:0 --database-url "sqlite://$work/mcpauth.db") >"$work/server.log" 2>&1 &
server_pid=$!

issuer=""
for _ in $(seq 1 600); do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "peer-flow: mcpauth exited before it was ready" >&2
    exit 1
  fi
  issuer="$(sed -nE 's/^[[:space:]]*Issuer:[[:space:]]*([^[:space:]]+).*/\1/p' "$work/server.log" | head -n1)"
  [[ -n "$issuer" ]] && grep -q "Listening on:" "$work/server.log" && break
  issuer=""
  sleep 0.1
done
if [[ -z "$issuer" ]]; then
  echo "peer-flow: mcpauth printed no Issuer line within 60 s" >&2
  exit 1
fi
issuer="${issuer%/}"
listen="$(sed -nE 's/^[[:space:]]*Listening on:[[:space:]]*([^[:space:]]+).*/\1/p' "$work/server.log" | head -n1)"
if [[ "$(curl -fsS --max-time 5 "http://$listen/healthz" 2>/dev/null || true)" != "ok" ]]; then
  echo "peer-flow: GET http://$listen/healthz did not answer ok" >&2
  exit 1
fi
echo "peer-flow: mcpauth ready at $issuer (listening on $listen); flow.mjs from $peer"

# --- the flow ---------------------------------------------------------------------------------
# In the background + wait, so that a signal to this script reaches the trap at once.
# shellcheck disable=SC2086 # FLOW_ARGS is split on purpose
node --dns-result-order=ipv4first "$work/peer/flow.mjs" "$issuer" /api/auth \
  --protected /api/auth/mcp/get-session --json "$report" ${FLOW_ARGS:-} &
flow_pid=$!
flow_rc=0
wait "$flow_pid" || flow_rc=$?
flow_pid=""
echo "peer-flow: report written to $report"
if [[ $flow_rc -ne 0 ]]; then
  echo "peer-flow: FAILED (flow.mjs exit code $flow_rc)" >&2
fi
exit "$flow_rc"

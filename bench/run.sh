#!/usr/bin/env bash
# mcpauth vs the Better Auth MCP peer, side by side on loopback (SPEC §8). See bench/README.md.
#
#   bench/run.sh                 # full run (~8 min after the builds): release build, 3 A/B pairs of 8 s per scenario,
#                                # scale scenario with 1 000 000 live tokens
#   bench/run.sh --quick         # smoke test (~1 min after the builds): 1 pair of 2 s, 10 000 tokens
#
# Options:
#   --quick            short smoke run (no timing assertions anywhere; fails only on errors)
#   --pairs N          A/B pairs per scenario (default 3; quick 1)
#   --duration S       seconds per measured run (default 8; quick 2)
#   --warmup S         seconds of unrecorded warm-up per target and scenario (default 2; quick 1)
#   --scale N          live tokens for the scale scenario (default 1000000; quick 10000); 0 = skip it
#   --debug            use the debug build of mcpauth and of the bench tools (CI smoke test)
#   --no-build         do not run cargo (the binaries must exist)
#   --out DIR          results directory (default target/bench/<timestamp>[-quick])
#   --keep             keep the temporary databases (the 1M-token one is ~750 MiB)
#   --loadgen-only     use bench/tools loadgen instead of wrk for every scenario (automatic
#                      with --quick when wrk is not installed)
#   --server-env "K=V ..."  extra environment for the mcpauth servers (experiments, e.g.
#                      MALLOC_ARENA_MAX=2); recorded in meta.json
#   --scenarios LIST   comma-separated subset of: validate, mcp, gateway (with gateway_latency,
#                      gateway_credential and gateway_python), jwt (JWT access tokens, with
#                      validate_miss), exchange (with authorize), client_credentials, dcr, refresh,
#                      scale (default: all)
#   --postgres URL     also run the selected validate/exchange/dcr/refresh scenarios with mcpauth on
#                      PostgreSQL (a loopback server; a fresh database is created there and dropped
#                      afterwards, with psql): one instance vs two instances on the same database,
#                      the load split evenly between the two (scenarios pg_<name>, targets one/two)
# Environment: MCPAUTH_BIN (server binary), SHARED_DIR (the shared/ folder holding
# peers/better-auth), CARGO_TARGET_DIR.
#
# The gateway scenarios start more mcpauth instances (`serve --upstream`) in front of
# mcp-baseline and, when interop/python's venv exists, the Python SDK upstream of interop/python.
# What it does: builds mcpauth (release) and bench/tools (mcp-baseline, loadgen); copies the
# Better Auth peer to target/bench/peer-better-auth and runs `npm ci` there (once per lockfile);
# starts mcpauth (rate limits off), the peer (SQLITE_WAL=1) and mcp-baseline on 127.0.0.1 with fresh
# databases; prepares a user, a client and tokens on both through the real flow (bench/prep.mjs);
# then per scenario runs a warm-up and N pairs A/B, alternating the order (AB, BA, AB, ...), and
# prints one table (bench/summarize.py): medians, ratio = median of the per-pair ratios.
# Every process it starts is stopped on exit (by PID). Only loopback addresses are ever contacted.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac

# ---- options ---------------------------------------------------------------------------------
command_line="bench/run.sh${*:+ $*}"
quick=0 pairs="" duration="" warmup="" scale="" profile=release build=1 out="" keep=0 loadgen_only=0 server_env=""
scenarios=all postgres_url=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) quick=1 ;;
    --pairs) pairs="$2"; shift ;;
    --duration) duration="$2"; shift ;;
    --warmup) warmup="$2"; shift ;;
    --scale) scale="$2"; shift ;;
    --debug) profile=debug ;;
    --no-build) build=0 ;;
    --out) out="$2"; shift ;;
    --keep) keep=1 ;;
    --loadgen-only) loadgen_only=1 ;;
    --server-env) server_env="$2"; shift ;;
    --scenarios) scenarios="$2"; shift ;;
    --postgres) postgres_url="$2"; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [[ $quick == 1 ]]; then
  pairs="${pairs:-1}" duration="${duration:-2}" warmup="${warmup:-1}" scale="${scale:-10000}"
else
  pairs="${pairs:-3}" duration="${duration:-8}" warmup="${warmup:-2}" scale="${scale:-1000000}"
fi
# want NAME: whether scenario NAME was selected (--scenarios)
want() { [[ $scenarios == all || ",$scenarios," == *",$1,"* ]]; }
for name in ${scenarios//,/ }; do
  case "$name" in all|validate|mcp|gateway|jwt|exchange|client_credentials|dcr|refresh|scale) ;;
    *) echo "bench: unknown scenario $name (see --help)" >&2; exit 2 ;; esac
done
want scale || scale=0
conc=32        # validation and MCP scenarios (wrk -c32)
token_conc=16  # authorize / token exchange / refresh (as the peer's own benchmark)
dcr_conc=16    # registration (as the peer's own benchmark)
chains=16      # refresh-token chains (one per connection)
sample_size=1000

stamp="$(date +%Y%m%dT%H%M%S)"
out="${out:-$target_dir/bench/$stamp$([[ $quick == 1 ]] && echo -quick || true)}"
mkdir -p "$out/raw"
out="$(cd "$out" && pwd)"
log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---- tools -----------------------------------------------------------------------------------
if [[ -n "$postgres_url" ]]; then
  command -v psql >/dev/null || { echo "bench: --postgres needs psql" >&2; exit 2; }
fi
for tool in node npm python3 curl cargo; do
  command -v "$tool" >/dev/null || { echo "bench: $tool not found" >&2; exit 2; }
done
if ! command -v wrk >/dev/null; then
  if [[ $quick == 1 || $loadgen_only == 1 ]]; then
    loadgen_only=1
    log "wrk not found: using bench/tools loadgen for every scenario (apt-get install -y wrk for the real thing)"
  else
    echo "bench: wrk not found (apt-get install -y wrk), or use --quick / --loadgen-only" >&2
    exit 2
  fi
fi

peer_src=""
for shared in "${SHARED_DIR:-}" "$root/../shared" /work/shared; do
  if [[ -n "$shared" && -f "$shared/peers/better-auth/server.mjs" ]]; then
    peer_src="$(cd "$shared/peers/better-auth" && pwd)"
    break
  fi
done
[[ -n "$peer_src" ]] || { echo "bench: peers/better-auth not found (set SHARED_DIR to the shared/ folder)" >&2; exit 2; }

# ---- processes: everything started here is stopped by PID on exit -----------------------------
pids=()      # servers
child=""     # the load generator running in the foreground
bg_jobs=()   # load generators running in parallel (the PostgreSQL two-instance runs)
work=""     # the temporary directory (set once the traps are in place)
stop_pid() {
  local pid="$1"
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [[ -n "$child" ]] && kill -TERM "$child" 2>/dev/null || true
  for job in "${bg_jobs[@]}"; do kill -TERM "$job" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do stop_pid "$pid"; done
  if [[ -n "${pg_db:-}" ]]; then
    psql "$postgres_url" -qX -c "DROP DATABASE IF EXISTS \"$pg_db\"" >/dev/null 2>&1 || log "could not drop database $pg_db"
  fi
  if [[ $keep == 1 ]]; then
    log "kept the databases in $work"
  else
    rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# the temporary databases: made only now, so that an early exit (a missing tool) leaves none
work="$(mktemp -d "${TMPDIR:-/tmp}/mcpauth-bench.XXXXXX")"

# run a command in the background and wait for it, so that a signal reaches the trap at once
fg() {
  "$@" &
  child=$!
  local rc=0
  wait "$child" || rc=$?
  child=""
  return "$rc"
}

is_loopback_url() {
  local host
  host="$(python3 -c 'import sys,urllib.parse as u;print(u.urlsplit(sys.argv[1]).hostname or "")' "$1")"
  [[ "$host" == 127.* || "$host" == localhost || "$host" == ::1 ]]
}
need_loopback() {
  is_loopback_url "$1" || { echo "bench: refusing non-loopback target $1" >&2; exit 2; }
}

rss_kb() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM/{print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
json_get() { python3 -c 'import json,sys;v=json.load(open(sys.argv[1]))[sys.argv[2]];print("\n".join(v) if isinstance(v,list) else v)' "$1" "$2"; }

# ---- build -----------------------------------------------------------------------------------
cargo_profile_flag=(); [[ $profile == release ]] && cargo_profile_flag=(--release)
mcpauth_bin="${MCPAUTH_BIN:-$target_dir/$profile/mcpauth}"
tools_target="$target_dir/bench-tools"
if [[ $build == 1 ]]; then
  log "building mcpauth ($profile)"
  (cd "$root" && cargo build "${cargo_profile_flag[@]}" -p mcpauth-server)
  log "building bench/tools ($profile)"
  CARGO_TARGET_DIR="$tools_target" cargo build "${cargo_profile_flag[@]}" --manifest-path "$here/tools/Cargo.toml"
fi
loadgen="$tools_target/$profile/loadgen"
baseline_bin="$tools_target/$profile/mcp-baseline"
for b in "$mcpauth_bin" "$loadgen" "$baseline_bin"; do
  [[ -x "$b" ]] || { echo "bench: $b not found (drop --no-build)" >&2; exit 2; }
done

# ---- the peer: a copy with its own node_modules (npm ci once per lockfile) ---------------------
peer_dir="$target_dir/bench/peer-better-auth"
mkdir -p "$peer_dir"
lock_hash="$(cat "$peer_src/package.json" "$peer_src/package-lock.json" | sha256sum | cut -d' ' -f1)"
for f in "$peer_src"/*; do
  case "$(basename "$f")" in node_modules|results) continue ;; esac
  cp -R "$f" "$peer_dir/"
done
if [[ "$(cat "$peer_dir/.npm-ci-stamp" 2>/dev/null || true)" != "$lock_hash" ]] \
  || ! (cd "$peer_dir" && node -e "require('better-sqlite3')" 2>/dev/null); then
  log "npm ci in $peer_dir (compiles better-sqlite3, ~1 min)"
  rm -rf "$peer_dir/node_modules"
  (cd "$peer_dir" && npm ci --no-audit --no-fund >"$out/npm-ci.log" 2>&1) || { cat "$out/npm-ci.log" >&2; exit 1; }
  (cd "$peer_dir" && node -e "require('better-sqlite3')") || (cd "$peer_dir" && npm rebuild better-sqlite3 >>"$out/npm-ci.log" 2>&1)
  echo "$lock_hash" >"$peer_dir/.npm-ci-stamp"
fi

# ---- servers ---------------------------------------------------------------------------------
# start_mcpauth NAME [SERVE_FLAGS...]: fresh database $work/NAME/mcpauth.db (or $DATABASE_URL when
# set); sets NAME_pid, NAME_issuer, NAME_url
start_mcpauth() {
  local name="$1" dir="$work/$1"
  shift
  mkdir -p "$dir"
  # The server refuses unknown MCPAUTH_* variables: pass only the one it should see.
  local unset_args=()
  while IFS= read -r var; do unset_args+=(-u "$var"); done < <(env | sed -n 's/^\(MCPAUTH_[A-Za-z0-9_]*\)=.*/\1/p')
  local extra_env=()
  [[ -n "$server_env" ]] && read -r -a extra_env <<<"$server_env"
  (cd "$dir" && exec env "${unset_args[@]}" "${extra_env[@]}" MCPAUTH_RATE_LIMITS__ENABLED=false NO_COLOR=1 \
    "$mcpauth_bin" serve --bind 127.0.0.1:0 --database-url "${DATABASE_URL:-sqlite://$dir/mcpauth.db}" "$@") >"$out/$name.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  local issuer="" listen=""
  for _ in $(seq 1 600); do
    kill -0 "$pid" 2>/dev/null || { cat "$out/$name.log" >&2; echo "bench: mcpauth ($name) exited" >&2; exit 1; }
    issuer="$(sed -nE 's/^[[:space:]]*Issuer:[[:space:]]*([^[:space:]]+).*/\1/p' "$out/$name.log" | head -n1)"
    listen="$(sed -nE 's/^[[:space:]]*Listening on:[[:space:]]*([^[:space:]]+).*/\1/p' "$out/$name.log" | head -n1)"
    [[ -n "$issuer" && -n "$listen" ]] && break
    sleep 0.1
  done
  [[ -n "$listen" ]] || { echo "bench: mcpauth ($name) printed no banner within 60 s" >&2; exit 1; }
  need_loopback "http://$listen"
  [[ "$(curl -fsS --max-time 5 "http://$listen/healthz")" == ok ]] || { echo "bench: mcpauth ($name) /healthz" >&2; exit 1; }
  printf -v "${name}_pid" '%s' "$pid"
  printf -v "${name}_issuer" '%s' "${issuer%/}"
  printf -v "${name}_url" '%s' "http://$listen"
  log "mcpauth ($name) pid $pid at http://$listen (issuer ${issuer%/})"
}

start_peer() {
  local port
  port="$(free_port)"
  (cd "$peer_dir" && exec env SQLITE_WAL=1 RESET_DB=1 DB_FILE="$work/peer.db" PORT="$port" HOST=127.0.0.1 \
    node server.mjs) >"$out/peer.log" 2>&1 &
  peer_pid=$!
  pids+=("$peer_pid")
  peer_url="http://127.0.0.1:$port"
  need_loopback "$peer_url"
  for _ in $(seq 1 300); do
    kill -0 "$peer_pid" 2>/dev/null || { cat "$out/peer.log" >&2; echo "bench: the peer exited" >&2; exit 1; }
    curl -fsS -o /dev/null --max-time 2 "$peer_url/healthz" 2>/dev/null && break
    sleep 0.2
  done
  curl -fsS -o /dev/null --max-time 5 "$peer_url/healthz" || { cat "$out/peer.log" >&2; echo "bench: the peer is not up" >&2; exit 1; }
  log "peer (Better Auth, SQLITE_WAL=1) pid $peer_pid at $peer_url"
}

start_baseline() {
  "$baseline_bin" --bind 127.0.0.1:0 >"$out/baseline.log" 2>&1 &
  baseline_pid=$!
  pids+=("$baseline_pid")
  local listen=""
  for _ in $(seq 1 100); do
    listen="$(sed -nE 's/^[[:space:]]*Listening on:[[:space:]]*([^[:space:]]+).*/\1/p' "$out/baseline.log" | head -n1)"
    [[ -n "$listen" ]] && break
    sleep 0.1
  done
  [[ -n "$listen" ]] || { cat "$out/baseline.log" >&2; echo "bench: mcp-baseline did not start" >&2; exit 1; }
  baseline_url="http://$listen"
  need_loopback "$baseline_url"
  log "mcp-baseline (demo MCP server without auth) pid $baseline_pid at $baseline_url"
}

# ---- one measured run --------------------------------------------------------------------------
results="$out/results.jsonl"
: >"$results"
TICK="$(getconf CLK_TCK)"

# record SCENARIO TARGET PAIR TOOL FILE PID TICKS_BEFORE
record() {
  local ticks=$(( $(cpu_ticks "$6") - $7 ))
  printf '{"scenario":"%s","target":"%s","pair":%s,"tool":"%s","file":"%s","cpu_ticks":%s,"tick_hz":%s,"rss_kb":%s}\n' \
    "$1" "$2" "$3" "$4" "$5" "$ticks" "$TICK" "$(rss_kb "$6")" >>"$results"
}

# http_load SCENARIO TARGET PAIR PID URL KIND CONC DURATION  (KIND: bearer|spread|dcr|mcp)
# wrk with the scenario's Lua script, or loadgen's fixed mode with the same request.
# PAIR 0 = warm-up (not recorded). Uses $TOKEN / $TOKENS_FILE from the environment.
http_load() {
  local scenario="$1" tgt="$2" pair="$3" pid="$4" url="$5" kind="$6" c="$7" d="$8"
  need_loopback "$url"
  local file t0
  file="$out/raw/$scenario-$tgt-$pair.$([[ $loadgen_only == 0 ]] && echo txt || echo json)"
  t0="$(cpu_ticks "$pid")"
  if [[ $loadgen_only == 0 ]]; then
    local script
    case "$kind" in
      bearer) script="$here/wrk-bearer.lua" ;;
      spread) script="$here/wrk-bearer-spread.lua" ;;
      dcr) script="$here/wrk-dcr.lua" ;;
      mcp) script="$here/wrk-mcp.lua" ;;
    esac
    fg timeout $((d + 60)) wrk -t1 -c"$c" -d"${d}s" --timeout 10s --latency -s "$script" "$url" >"$file"
  else
    local args=()
    case "$kind" in
      bearer) args=(--header "Authorization: Bearer $TOKEN") ;;
      spread) args=(--header "Authorization: Bearer $(head -n1 "$TOKENS_FILE")") ;;
      dcr) args=(--method POST --content-type application/json --template \
        '{"client_name":"wrk-dcr","redirect_uris":["http://localhost:9999/callback"],"token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"],"response_types":["code"]}') ;;
      mcp) args=(--method POST --content-type application/json --header "Accept: application/json, text/event-stream" \
        --header "MCP-Protocol-Version: 2025-06-18" \
        --template '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello from wrk"}}}')
        [[ -n "${TOKEN:-}" ]] && args+=(--header "Authorization: Bearer $TOKEN") ;;
    esac
    fg timeout $((d + 60)) "$loadgen" fixed --url "$url" --conc "$c" --duration "$d" "${args[@]}" >"$file"
  fi
  [[ "$pair" == 0 ]] || record "$scenario" "$tgt" "$pair" "$([[ $loadgen_only == 0 ]] && echo wrk || echo loadgen)" "$file" "$pid" "$t0"
}

# loadgen_run SCENARIO TARGET PAIR PID MODE URL ARGS...   (loadgen JSON on stdout -> raw file)
loadgen_run() {
  local scenario="$1" tgt="$2" pair="$3" pid="$4" mode="$5" url="$6"
  shift 6
  need_loopback "$url"
  local file="$out/raw/$scenario-$tgt-$pair.json" t0
  t0="$(cpu_ticks "$pid")"
  fg timeout $((duration + 60)) "$loadgen" "$mode" --url "$url" "$@" >"$file"
  [[ "$pair" == 0 ]] || record "$scenario" "$tgt" "$pair" loadgen "$file" "$pid" "$t0"
}

# pairs_of SCENARIO FUNC_A FUNC_B: warm-up both, then N pairs, alternating the order.
# FUNC_X PAIR DURATION runs one measurement.
pairs_of() {
  local scenario="$1" a="$2" b="$3"
  log "scenario $scenario: warm-up ${warmup}s each, then $pairs pair(s) of ${duration}s"
  "$a" 0 "$warmup"
  "$b" 0 "$warmup"
  for i in $(seq 1 "$pairs"); do
    if (( i % 2 == 1 )); then "$a" "$i" "$duration"; "$b" "$i" "$duration"
    else "$b" "$i" "$duration"; "$a" "$i" "$duration"; fi
  done
}

# ---- meta --------------------------------------------------------------------------------------
wrk_version=none
command -v wrk >/dev/null && wrk_version="$({ wrk --version 2>&1 || true; } | head -n1 | awk '{print $2}')"
STAMP="$stamp" MODE="$([[ $quick == 1 ]] && echo quick || echo full)" PROFILE="$profile" COMMAND="$command_line" \
PAIRS="$pairs" DURATION="$duration" WARMUP="$warmup" SCALE="$scale" CONC="$conc" TOKEN_CONC="$token_conc" \
DCR_CONC="$dcr_conc" CHAINS="$chains" SERVER_ENV="$server_env" \
LOADGEN="$([[ $loadgen_only == 0 ]] && echo "wrk -t1 (validation, MCP, DCR); bench/tools loadgen (authorize, exchange, refresh)" || echo "bench/tools loadgen for every scenario (no wrk)")" \
V_MCPAUTH="$("$mcpauth_bin" --version 2>/dev/null | head -n1 || true)" \
V_GIT="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$root" diff --quiet HEAD -- crates 2>/dev/null || echo +dirty)" \
V_RUSTC="$(rustc --version)" V_NODE="$(node --version)" \
V_BA="$(cd "$peer_dir" && node -p "require('./node_modules/better-auth/package.json').version")" \
V_BSQL="$(cd "$peer_dir" && node -p "require('./node_modules/better-sqlite3/package.json').version")" \
V_WRK="$wrk_version" \
python3 - "$out/meta.json" <<'PY'
import json, os, platform, sys
e = os.environ
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
import sqlite3
meta = {
    "stamp": e["STAMP"], "mode": e["MODE"], "profile": e["PROFILE"], "command": e["COMMAND"],
    "pairs": int(e["PAIRS"]), "duration_s": float(e["DURATION"]), "warmup_s": float(e["WARMUP"]),
    "scale_tokens": int(e["SCALE"]), "conc": int(e["CONC"]), "token_conc": int(e["TOKEN_CONC"]),
    "dcr_conc": int(e["DCR_CONC"]), "chains": int(e["CHAINS"]), "load_generator": e["LOADGEN"],
    "server_env": e["SERVER_ENV"],
    "versions": {"mcpauth": e["V_MCPAUTH"], "git": e["V_GIT"], "rustc": e["V_RUSTC"], "node": e["V_NODE"],
                 "better_auth": e["V_BA"], "better_sqlite3": e["V_BSQL"], "wrk": e["V_WRK"],
                 "python_sqlite": sqlite3.sqlite_version},
    "machine": {"nproc": os.cpu_count(), "cpu": cpu, "mem_gib": round(mem / 1048576, 1),
                "kernel": platform.release(), "loadavg_start": " ".join(open("/proc/loadavg").read().split()[:3])},
}
json.dump(meta, open(sys.argv[1], "w"), indent=1)
PY

# ---- start ---------------------------------------------------------------------------------------
start_mcpauth main
start_peer
start_baseline
sleep 1
main_rss_idle="$(rss_kb "$main_pid")"
peer_rss_idle="$(rss_kb "$peer_pid")"
baseline_rss_idle="$(rss_kb "$baseline_pid")"

log "preparing fixtures through the real flow (bench/prep.mjs)"
fg timeout 120 node "$here/prep.mjs" --base "$main_url" --origin "$main_issuer" --out "$work/prep-mcpauth.json" \
  --chains "$chains" --scope "openid profile email offline_access mcp:tools"
fg timeout 120 node "$here/prep.mjs" --base "$peer_url" --origin "$peer_url" --out "$work/prep-peer.json" \
  --chains "$chains" --scope "openid profile email offline_access"
m_token="$(json_get "$work/prep-mcpauth.json" accessToken)"
p_token="$(json_get "$work/prep-peer.json" accessToken)"

# sanity: every endpoint answers as expected before anything is measured
check() {  # check NAME EXPECTED_STATUS curl-args...
  local name="$1" want="$2"; shift 2
  local got
  got="$(curl -sS -o "$work/check.out" -w '%{http_code}' --max-time 10 "$@")"
  [[ "$got" == "$want" ]] || { echo "bench: sanity check '$name' got $got, expected $want:" >&2; head -c 400 "$work/check.out" >&2; echo >&2; exit 1; }
}
mcp_call=(-X POST -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream'
  -H 'MCP-Protocol-Version: 2025-06-18'
  --data '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello from wrk"}}}')
check "mcpauth get-session" 200 -H "Authorization: Bearer $m_token" "$main_url/api/auth/mcp/get-session"
check "mcpauth get-session, unknown token" 401 -H "Authorization: Bearer not-a-token" "$main_url/api/auth/mcp/get-session"
check "peer /api/protected" 200 -H "Authorization: Bearer $p_token" "$peer_url/api/protected"
check "peer /api/protected, unknown token" 401 -H "Authorization: Bearer not-a-token" "$peer_url/api/protected"
check "mcpauth MCP tools/call echo" 200 -H "Authorization: Bearer $m_token" "${mcp_call[@]}" "$main_url/api/mcp"
grep -q '"Tool echo: hello from wrk"' "$work/check.out" || { echo "bench: mcpauth echo answered $(cat "$work/check.out")" >&2; exit 1; }
check "mcpauth MCP without a token" 401 "${mcp_call[@]}" "$main_url/api/mcp"
check "baseline MCP tools/call echo" 200 "${mcp_call[@]}" "$baseline_url/api/mcp"
grep -q '"Tool echo: hello from wrk"' "$work/check.out" || { echo "bench: baseline echo answered $(cat "$work/check.out")" >&2; exit 1; }
log "sanity checks passed"

# ---- scenarios -------------------------------------------------------------------------------------
# 1. token validation hot path
v_m() { TOKEN="$m_token" http_load validate mcpauth "$1" "$main_pid" "$main_url/api/auth/mcp/get-session" bearer "$conc" "$2"; }
v_p() { TOKEN="$p_token" http_load validate peer "$1" "$peer_pid" "$peer_url/api/protected" bearer "$conc" "$2"; }
want validate && pairs_of validate v_m v_p

# 2. MCP tools/call echo: with a bearer (mcpauth) vs the same rmcp server without auth
mcp_m() { TOKEN="$m_token" http_load mcp mcpauth "$1" "$main_pid" "$main_url/api/mcp" mcp "$conc" "$2"; }
mcp_b() { TOKEN="" http_load mcp baseline "$1" "$baseline_pid" "$baseline_url/api/mcp" mcp "$conc" "$2"; }
want mcp && pairs_of mcp mcp_m mcp_b

# 2b. the gateway: the same call through `mcpauth serve --upstream` (a second instance) to
# mcp-baseline, vs mcp-baseline directly; 32 conns for throughput, 1 for the latency it adds
if want gateway; then
start_mcpauth gw --upstream "$baseline_url/api/mcp"
fg timeout 120 node "$here/prep.mjs" --base "$gw_url" --origin "$gw_issuer" --out "$work/prep-gw.json" --chains 0 \
  --scope "openid mcp:tools"
g_token="$(json_get "$work/prep-gw.json" accessToken)"
check "gateway MCP tools/call echo" 200 -H "Authorization: Bearer $g_token" "${mcp_call[@]}" "$gw_url/api/mcp"
grep -q '"Tool echo: hello from wrk"' "$work/check.out" || { echo "bench: gateway echo answered $(cat "$work/check.out")" >&2; exit 1; }
gw_g() { TOKEN="$g_token" http_load gateway gateway "$1" "$gw_pid" "$gw_url/api/mcp" mcp "$conc" "$2"; }
gw_d() { TOKEN="" http_load gateway direct "$1" "$baseline_pid" "$baseline_url/api/mcp" mcp "$conc" "$2"; }
pairs_of gateway gw_g gw_d
gl_g() { TOKEN="$g_token" http_load gateway_latency gateway "$1" "$gw_pid" "$gw_url/api/mcp" mcp 1 "$2"; }
gl_d() { TOKEN="" http_load gateway_latency direct "$1" "$baseline_pid" "$baseline_url/api/mcp" mcp 1 "$2"; }
pairs_of gateway_latency gl_g gl_d
stop_pid "$gw_pid"

# 2b'. the gateway with a connected account: one instance in front of mcp-baseline at two paths,
# /api/mcp with `credential` (the user's token at a connected service, injected into every
# tools/call: a vault read and an AEAD open) and /mcp/plain without; 1 conn, the latency it adds.
# The service is bench/connect.mjs's loopback OAuth provider, connected through the real flow.
gwc_provider_port="$(free_port)"
head -c 32 /dev/urandom | base64 >"$work/vault.key"
cat >"$work/gwc.toml" <<TOML
vault_key_file = "$work/vault.key"

[[connections]]
id = "bench"
name = "Bench service"
type = "oauth2"
authorization_url = "http://127.0.0.1:$gwc_provider_port/authorize"
token_url = "http://127.0.0.1:$gwc_provider_port/token"
client_id = "bench"
client_secret = "bench-secret"
scopes = ["read"]

[[upstreams]]
path = "/api/mcp"
url = "$baseline_url/api/mcp"
credential = { connection = "bench" }

[[upstreams]]
path = "/mcp/plain"
url = "$baseline_url/api/mcp"
TOML
start_mcpauth gwc --config "$work/gwc.toml"
fg timeout 120 node "$here/prep.mjs" --base "$gwc_url" --origin "$gwc_issuer" --out "$work/prep-gwc.json" --chains 0 \
  --scope "openid mcp:tools"
fg timeout 120 node "$here/prep.mjs" --base "$gwc_url" --origin "$gwc_issuer" --out "$work/prep-gwc-plain.json" --chains 0 \
  --scope "openid mcp:tools" --resource "$gwc_issuer/mcp/plain"
fg timeout 60 node "$here/connect.mjs" --prep "$work/prep-gwc.json" --mcp "$gwc_url/api/mcp" --provider-port "$gwc_provider_port"
c_token="$(json_get "$work/prep-gwc.json" accessToken)"
cp_token="$(json_get "$work/prep-gwc-plain.json" accessToken)"
check "gateway with a credential MCP tools/call echo" 200 -H "Authorization: Bearer $c_token" "${mcp_call[@]}" "$gwc_url/api/mcp"
grep -q '"Tool echo: hello from wrk"' "$work/check.out" || { echo "bench: gateway with a credential answered $(cat "$work/check.out")" >&2; exit 1; }
check "gateway without a credential MCP tools/call echo" 200 -H "Authorization: Bearer $cp_token" "${mcp_call[@]}" "$gwc_url/mcp/plain"
grep -q '"Tool echo: hello from wrk"' "$work/check.out" || { echo "bench: gateway without a credential answered $(cat "$work/check.out")" >&2; exit 1; }
gc_c() { TOKEN="$c_token" http_load gateway_credential credential "$1" "$gwc_pid" "$gwc_url/api/mcp" mcp 1 "$2"; }
gc_p() { TOKEN="$cp_token" http_load gateway_credential plain "$1" "$gwc_pid" "$gwc_url/mcp/plain" mcp 1 "$2"; }
pairs_of gateway_credential gc_c gc_p
stop_pid "$gwc_pid"

# 2c. the gateway to a Python upstream (interop/python/upstream_server.py on the official Python
# SDK, stateless JSON), when the interop venv exists (interop/python/run.sh builds it)
py_venv="${PY_INTEROP_VENV:-$target_dir/interop-python-venv}"
if [[ -x "$py_venv/bin/python" ]]; then
  py_port="$(free_port)"
  "$py_venv/bin/python" "$root/interop/python/upstream_server.py" "$py_port" --stateless >"$out/python-upstream.log" 2>&1 &
  py_pid=$!
  pids+=("$py_pid")
  py_url="http://127.0.0.1:$py_port/mcp"
  for _ in $(seq 1 300); do
    curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$py_port/" && break
    sleep 0.1
  done
  start_mcpauth gwpy --upstream "$py_url"
  fg timeout 120 node "$here/prep.mjs" --base "$gwpy_url" --origin "$gwpy_issuer" --out "$work/prep-gwpy.json" --chains 0 \
    --scope "openid mcp:tools"
  y_token="$(json_get "$work/prep-gwpy.json" accessToken)"
  check "gateway to Python MCP tools/call echo" 200 -H "Authorization: Bearer $y_token" "${mcp_call[@]}" "$gwpy_url/api/mcp"
  grep -q 'hello from wrk' "$work/check.out" || { echo "bench: Python upstream answered $(cat "$work/check.out")" >&2; exit 1; }
  py_conc=8
  gp_g() { TOKEN="$y_token" http_load gateway_python gateway "$1" "$gwpy_pid" "$gwpy_url/api/mcp" mcp "$py_conc" "$2"; }
  gp_d() { TOKEN="" http_load gateway_python direct "$1" "$py_pid" "$py_url" mcp "$py_conc" "$2"; }
  pairs_of gateway_python gp_g gp_d
  stop_pid "$gwpy_pid"
  stop_pid "$py_pid"
else
  log "no Python venv at $py_venv (interop/python/run.sh builds it): skipping the gateway-to-Python scenario"
fi
fi  # want gateway

# 3. authorization code -> token: mint codes for both first, then exchange each exactly once
mint() {  # mint NAME(mcpauth|peer) PAIR DURATION
  local prep="$work/prep-$1.json" url pid
  if [[ $1 == mcpauth ]]; then url="$main_url"; pid="$main_pid"; else url="$peer_url"; pid="$peer_pid"; fi
  loadgen_run authorize "$1" "$2" "$pid" mint "$url$(json_get "$prep" authorizePath)" \
    --header "Cookie: $(json_get "$prep" cookie)" --conc "$token_conc" --duration "$3" --max 500000 \
    --out "$work/codes-$1.txt"
}
exchange() {  # exchange NAME PAIR DURATION
  local prep="$work/prep-$1.json" url pid
  if [[ $1 == mcpauth ]]; then url="$main_url"; pid="$main_pid"; else url="$peer_url"; pid="$peer_pid"; fi
  loadgen_run exchange "$1" "$2" "$pid" list "$url/api/auth/mcp/token" \
    --template "$(json_get "$prep" exchangeTemplate)" --in "$work/codes-$1.txt" --conc "$token_conc" --duration "$3"
}
x_m() { exchange mcpauth "$1" "$2"; }
x_p() { exchange peer "$1" "$2"; }
if want exchange; then
log "scenario exchange: each pair mints codes on both servers (GET authorize), then exchanges them"
for i in $(seq 0 "$pairs"); do
  d="$duration"; [[ $i == 0 ]] && d="$warmup"
  mint mcpauth "$i" "$d"
  mint peer "$i" "$d"
  if (( i % 2 == 1 || i == 0 )); then x_m "$i" "$d"; x_p "$i" "$d"; else x_p "$i" "$d"; x_m "$i" "$d"; fi
done
fi

# 3b. client_credentials (issue 21): a machine's token (no user, no refresh token) from a second
# instance with a configured machine client, vs the code exchange on the main instance — both
# mcpauth (the peer has no client_credentials grant); the codes for the exchange are minted before
# each run and not recorded.
if want client_credentials; then
cc_secret="bench-machine-secret-that-is-long-enough-0123"
cat >"$work/cc.toml" <<TOML
[client_credentials]
enabled = true

[[trusted_clients]]
client_id = "bench-machine"
client_secret = "$cc_secret"
name = "Bench machine"
grant_types = ["client_credentials"]
scope = "mcp:tools"
TOML
start_mcpauth cc --config "$work/cc.toml"
cc_form="grant_type=client_credentials&client_id=bench-machine&client_secret=$cc_secret"
check "mcpauth client_credentials" 200 -X POST --data "$cc_form" "$cc_url/api/auth/mcp/token"
grep -q '"access_token"' "$work/check.out" || { echo "bench: client_credentials answered $(cat "$work/check.out")" >&2; exit 1; }
cc_m() {
  loadgen_run client_credentials client_credentials "$1" "$cc_pid" fixed "$cc_url/api/auth/mcp/token" \
    --method POST --template "$cc_form" --conc "$token_conc" --duration "$2"
}
cc_x() {
  local prep="$work/prep-mcpauth.json"
  fg timeout $(($2 + 60)) "$loadgen" mint --url "$main_url$(json_get "$prep" authorizePath)" \
    --header "Cookie: $(json_get "$prep" cookie)" --conc "$token_conc" --duration "$2" --max 500000 \
    --out "$work/codes-cc.txt" >/dev/null
  loadgen_run client_credentials exchange "$1" "$main_pid" list "$main_url/api/auth/mcp/token" \
    --template "$(json_get "$prep" exchangeTemplate)" --in "$work/codes-cc.txt" --conc "$token_conc" --duration "$2"
}
pairs_of client_credentials cc_m cc_x
stop_pid "$cc_pid"
fi

# 3c. JWT access tokens (issue 20): validation of an RFC 9068 JWT access token vs an opaque one,
# both through the token cache as configured by default (validate_jwt: a second instance issuing
# JWTs vs the main instance), and both with the cache off (validate_miss: every request verifies
# the token afresh: the JWT's signature and its stored row, the opaque token's row). DPoP-bound
# tokens are not measured: every request needs a fresh proof, which neither wrk nor loadgen signs.
if want jwt; then
printf 'access_token_format = "jwt"\n' >"$work/jwt.toml"
printf 'access_token_format = "jwt"\n\n[token_cache]\ncapacity = 0\n' >"$work/jwt-nocache.toml"
printf '[token_cache]\ncapacity = 0\n' >"$work/opaque-nocache.toml"
start_mcpauth jwt --config "$work/jwt.toml"
start_mcpauth jwtnc --config "$work/jwt-nocache.toml"
start_mcpauth opqnc --config "$work/opaque-nocache.toml"
for inst in jwt jwtnc opqnc; do
  url_var="${inst}_url"; issuer_var="${inst}_issuer"
  fg timeout 120 node "$here/prep.mjs" --base "${!url_var}" --origin "${!issuer_var}" --out "$work/prep-$inst.json" \
    --chains 1 --scope "openid mcp:tools"
done
jwt_token="$(json_get "$work/prep-jwt.json" accessToken)"
jwtnc_token="$(json_get "$work/prep-jwtnc.json" accessToken)"
opqnc_token="$(json_get "$work/prep-opqnc.json" accessToken)"
[[ "$jwt_token" == eyJ*.*.* && "$jwtnc_token" == eyJ*.*.* ]] || { echo "bench: the jwt instances issued no JWT" >&2; exit 1; }
check "mcpauth get-session with a JWT" 200 -H "Authorization: Bearer $jwt_token" "$jwt_url/api/auth/mcp/get-session"
check "mcpauth get-session with a JWT, no cache" 200 -H "Authorization: Bearer $jwtnc_token" "$jwtnc_url/api/auth/mcp/get-session"
check "mcpauth get-session, opaque, no cache" 200 -H "Authorization: Bearer $opqnc_token" "$opqnc_url/api/auth/mcp/get-session"
vj_j() { TOKEN="$jwt_token" http_load validate_jwt jwt "$1" "$jwt_pid" "$jwt_url/api/auth/mcp/get-session" bearer "$conc" "$2"; }
vj_o() { TOKEN="$m_token" http_load validate_jwt opaque "$1" "$main_pid" "$main_url/api/auth/mcp/get-session" bearer "$conc" "$2"; }
pairs_of validate_jwt vj_j vj_o
vm_j() { TOKEN="$jwtnc_token" http_load validate_miss jwt "$1" "$jwtnc_pid" "$jwtnc_url/api/auth/mcp/get-session" bearer "$conc" "$2"; }
vm_o() { TOKEN="$opqnc_token" http_load validate_miss opaque "$1" "$opqnc_pid" "$opqnc_url/api/auth/mcp/get-session" bearer "$conc" "$2"; }
pairs_of validate_miss vm_j vm_o
stop_pid "$jwt_pid"; stop_pid "$jwtnc_pid"; stop_pid "$opqnc_pid"
fi

# 4. dynamic client registration
dcr_m() { http_load dcr mcpauth "$1" "$main_pid" "$main_url/api/auth/mcp/register" dcr "$dcr_conc" "$2"; }
dcr_p() { http_load dcr peer "$1" "$peer_pid" "$peer_url/api/auth/mcp/register" dcr "$dcr_conc" "$2"; }
want dcr && pairs_of dcr dcr_m dcr_p

# 5. refresh grants: one chain per connection, each refresh token used once (rotation)
json_get "$work/prep-mcpauth.json" refreshTokens >"$work/refresh-mcpauth.txt"
json_get "$work/prep-peer.json" refreshTokens >"$work/refresh-peer.txt"
refresh() {  # refresh NAME PAIR DURATION
  local prep="$work/prep-$1.json" url pid
  if [[ $1 == mcpauth ]]; then url="$main_url"; pid="$main_pid"; else url="$peer_url"; pid="$peer_pid"; fi
  loadgen_run refresh "$1" "$2" "$pid" chain "$url/api/auth/mcp/token" \
    --template "$(json_get "$prep" refreshTemplate)" --in "$work/refresh-$1.txt" --out "$work/refresh-$1.next" \
    --conc "$chains" --duration "$3"
  mv "$work/refresh-$1.next" "$work/refresh-$1.txt"
}
r_m() { refresh mcpauth "$1" "$2"; }
r_p() { refresh peer "$1" "$2"; }
want refresh && pairs_of refresh r_m r_p

# 6. memory after load
sleep 1
main_rss_after="$(rss_kb "$main_pid")"; main_hwm="$(hwm_kb "$main_pid")"
peer_rss_after="$(rss_kb "$peer_pid")"; peer_hwm="$(hwm_kb "$peer_pid")"
baseline_rss_after="$(rss_kb "$baseline_pid")"
file_bytes() { if [[ -f "$1" ]]; then stat -c %s "$1"; else echo 0; fi; }
db_bytes() { echo $(( $(file_bytes "$1") + $(file_bytes "$1-wal") )); }
cat >"$out/memory.json" <<JSON
{"mcpauth": {"rss_idle_kb": $main_rss_idle, "rss_after_load_kb": $main_rss_after, "hwm_kb": $main_hwm, "db_bytes": $(file_bytes "$work/main/mcpauth.db"), "wal_bytes": $(file_bytes "$work/main/mcpauth.db-wal")},
 "peer": {"rss_idle_kb": $peer_rss_idle, "rss_after_load_kb": $peer_rss_after, "hwm_kb": $peer_hwm, "db_bytes": $(file_bytes "$work/peer.db"), "wal_bytes": $(file_bytes "$work/peer.db-wal")},
 "baseline": {"rss_idle_kb": $baseline_rss_idle, "rss_after_load_kb": $baseline_rss_after}}
JSON
log "RSS idle/after load: mcpauth $((main_rss_idle / 1024))/$((main_rss_after / 1024)) MiB, peer $((peer_rss_idle / 1024))/$((peer_rss_after / 1024)) MiB"

# 6b. PostgreSQL (--postgres): mcpauth alone, on one local PostgreSQL: one instance vs two instances
# sharing the database, the same total load split evenly between the two (scenarios pg_<name>,
# targets "two" and "one"; server CPU is that of both processes for "two").
# pg_load SCEN TARGET PAIR DURATION: runs SCEN's load on pga (one) or on pga and pgb at once (two)
pg_load() {
  local scen="$1" tgt="$2" pair="$3" d="$4" insts=(pga) inst
  [[ $tgt == two ]] && insts=(pga pgb)
  local n=${#insts[@]} files=() procs=() ticks0=0 jobs_here=()
  for inst in "${insts[@]}"; do
    local pid_var="${inst}_pid" url_var="${inst}_url" token_var="${inst}_token"
    local pid="${!pid_var}" url="${!url_var}" prep="$work/prep-$inst.json"
    local file="$out/raw/pg_$scen-$tgt-$inst-$pair"
    need_loopback "$url"
    procs+=("$pid")
    ticks0=$(( ticks0 + $(cpu_ticks "$pid") ))
    case "$scen" in
      validate|dcr)
        local c=$conc
        [[ $scen == dcr ]] && c=$dcr_conc
        c=$(( c / n ))
        local path=/api/auth/mcp/get-session kind=bearer
        [[ $scen == dcr ]] && path=/api/auth/mcp/register kind=dcr
        if [[ $loadgen_only == 0 ]]; then
          file+=.txt
          TOKEN="${!token_var}" timeout $((d + 60)) wrk -t1 -c"$c" -d"${d}s" --timeout 10s --latency \
            -s "$here/wrk-$([[ $kind == bearer ]] && echo bearer || echo dcr).lua" "$url$path" >"$file" &
        else
          file+=.json
          local args=(--header "Authorization: Bearer ${!token_var}")
          [[ $kind == dcr ]] && args=(--method POST --content-type application/json --template \
            '{"client_name":"wrk-dcr","redirect_uris":["http://localhost:9999/callback"],"token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"],"response_types":["code"]}')
          timeout $((d + 60)) "$loadgen" fixed --url "$url$path" --conc "$c" --duration "$d" "${args[@]}" >"$file" &
        fi ;;
      authorize)
        file+=.json
        timeout $((d + 60)) "$loadgen" mint --url "$url$(json_get "$prep" authorizePath)" \
          --header "Cookie: $(json_get "$prep" cookie)" --conc $((token_conc / n)) --duration "$d" --max 500000 \
          --out "$work/codes-$inst.txt" >"$file" & ;;
      exchange)
        file+=.json
        timeout $((d + 60)) "$loadgen" list --url "$url/api/auth/mcp/token" --template "$(json_get "$prep" exchangeTemplate)" \
          --in "$work/codes-$inst.txt" --conc $((token_conc / n)) --duration "$d" >"$file" & ;;
      refresh)
        # pga keeps $chains chains; with two instances it runs the first half, pgb its own half
        file+=.json
        local chain_in="$work/refresh-$inst.txt"
        if [[ $tgt == two && $inst == pga ]]; then
          head -n $((chains / 2)) "$work/refresh-pga.txt" >"$work/refresh-pga-half.txt"
          tail -n +$((chains / 2 + 1)) "$work/refresh-pga.txt" >"$work/refresh-pga-rest.txt"
          chain_in="$work/refresh-pga-half.txt"
        fi
        timeout $((d + 60)) "$loadgen" chain --url "$url/api/auth/mcp/token" --template "$(json_get "$prep" refreshTemplate)" \
          --in "$chain_in" --out "$chain_in.next" --conc $(( $(wc -l <"$chain_in") )) --duration "$d" >"$file" & ;;
    esac
    jobs_here+=("$!")
    bg_jobs+=("$!")
    files+=("$file")
  done
  local rc=0 j
  for j in "${jobs_here[@]}"; do wait "$j" || rc=$?; done
  bg_jobs=()
  [[ $rc == 0 ]] || { echo "bench: pg_$scen ($tgt) load failed" >&2; exit 1; }
  if [[ $scen == refresh ]]; then
    for inst in "${insts[@]}"; do
      if [[ $tgt == two && $inst == pga ]]; then
        cat "$work/refresh-pga-half.txt.next" "$work/refresh-pga-rest.txt" >"$work/refresh-pga.txt"
      else
        mv "$work/refresh-$inst.txt.next" "$work/refresh-$inst.txt"
      fi
    done
  fi
  [[ "$pair" == 0 ]] && return 0
  local ticks=0 pid
  for pid in "${procs[@]}"; do ticks=$(( ticks + $(cpu_ticks "$pid") )); done
  local joined
  joined="$(IFS='|'; echo "${files[*]}")"
  printf '{"scenario":"%s","target":"%s","pair":%s,"tool":"%s","file":"%s","cpu_ticks":%s,"tick_hz":%s,"rss_kb":%s}\n' \
    "pg_$scen" "$tgt" "$pair" "$([[ $loadgen_only == 0 && $scen =~ ^(validate|dcr)$ ]] && echo wrk || echo loadgen)" \
    "$joined" "$(( ticks - ticks0 ))" "$TICK" "$(rss_kb "${procs[0]}")" >>"$results"
}
if [[ -n "$postgres_url" ]]; then
  need_loopback "$postgres_url"
  pg_db="mcpauth_bench_${stamp,,}"
  psql "$postgres_url" -qX -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$pg_db\"" >/dev/null
  pg_db_url="$(python3 -c 'import sys,urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/"+sys.argv[2])))' "$postgres_url" "$pg_db")"
  DATABASE_URL="$pg_db_url" start_mcpauth pga
  DATABASE_URL="$pg_db_url" start_mcpauth pgb
  fg timeout 120 node "$here/prep.mjs" --base "$pga_url" --origin "$pga_issuer" --out "$work/prep-pga.json" \
    --chains "$chains" --scope "openid profile email offline_access mcp:tools"
  fg timeout 120 node "$here/prep.mjs" --base "$pgb_url" --origin "$pgb_issuer" --out "$work/prep-pgb.json" \
    --chains $((chains / 2)) --scope "openid profile email offline_access mcp:tools"
  pga_token="$(json_get "$work/prep-pga.json" accessToken)"
  pgb_token="$(json_get "$work/prep-pgb.json" accessToken)"
  check "PostgreSQL instance a get-session" 200 -H "Authorization: Bearer $pga_token" "$pga_url/api/auth/mcp/get-session"
  check "PostgreSQL instance b get-session" 200 -H "Authorization: Bearer $pgb_token" "$pgb_url/api/auth/mcp/get-session"
  json_get "$work/prep-pga.json" refreshTokens >"$work/refresh-pga.txt"
  json_get "$work/prep-pgb.json" refreshTokens >"$work/refresh-pgb.txt"
  pg_pairs() {  # pg_pairs SCEN...: warm-up, then the pairs, alternating which of two/one goes first
    local scen i order
    log "PostgreSQL scenario(s) $*: two instances vs one, $pairs pair(s) of ${duration}s"
    for i in $(seq 0 "$pairs"); do
      local d="$duration"; [[ $i == 0 ]] && d="$warmup"
      for order in $( (( i % 2 == 1 || i == 0 )) && echo "two one" || echo "one two"); do
        for scen in "$@"; do pg_load "$scen" "$order" "$i" "$d"; done
      done
    done
  }
  want validate && pg_pairs validate
  want exchange && pg_pairs authorize exchange
  want dcr && pg_pairs dcr
  want refresh && pg_pairs refresh
  stop_pid "$pga_pid"
  stop_pid "$pgb_pid"
fi

# 7. scale: validation with $scale live tokens vs 1 000, two fresh mcpauth instances side by side
if [[ "$scale" -gt 0 ]]; then
  for pid in "$baseline_pid" "$peer_pid" "$main_pid"; do stop_pid "$pid"; done
  small=1000
  (( scale < small )) && small="$scale"
  start_mcpauth small
  start_mcpauth big
  for inst in small big; do
    u="${inst}_url"; i="${inst}_issuer"
    fg timeout 120 node "$here/prep.mjs" --base "${!u}" --origin "${!i}" --out "$work/prep-$inst.json" --chains 0 \
      --scope "openid profile email offline_access mcp:tools"
  done
  log "seeding: $small and $scale live access tokens (bench/seed-tokens.py)"
  fg timeout 900 python3 "$here/seed-tokens.py" "$work/small/mcpauth.db" $((small - 1)) --sample "$work/sample-small.txt" --sample-size "$sample_size"
  fg timeout 900 python3 "$here/seed-tokens.py" "$work/big/mcpauth.db" $((scale - 1)) --sample "$work/sample-big.txt" --sample-size "$sample_size"
  s_token="$(json_get "$work/prep-small.json" accessToken)"
  b_token="$(json_get "$work/prep-big.json" accessToken)"
  check "small get-session" 200 -H "Authorization: Bearer $s_token" "$small_url/api/auth/mcp/get-session"
  check "big get-session" 200 -H "Authorization: Bearer $b_token" "$big_url/api/auth/mcp/get-session"
  check "big get-session, seeded token" 200 -H "Authorization: Bearer $(head -n1 "$work/sample-big.txt")" "$big_url/api/auth/mcp/get-session"
  # scale_one: the same single bearer as scenario 1; scale_spread: a random bearer per request out
  # of $sample_size seeded tokens (the small instance: all of its seeded tokens)
  so_b() { TOKEN="$b_token" http_load scale_one tokens_big "$1" "$big_pid" "$big_url/api/auth/mcp/get-session" bearer "$conc" "$2"; }
  so_s() { TOKEN="$s_token" http_load scale_one tokens_1k "$1" "$small_pid" "$small_url/api/auth/mcp/get-session" bearer "$conc" "$2"; }
  pairs_of scale_one so_b so_s
  ss_b() { TOKENS_FILE="$work/sample-big.txt" http_load scale_spread tokens_big "$1" "$big_pid" "$big_url/api/auth/mcp/get-session" spread "$conc" "$2"; }
  ss_s() { TOKENS_FILE="$work/sample-small.txt" http_load scale_spread tokens_1k "$1" "$small_pid" "$small_url/api/auth/mcp/get-session" spread "$conc" "$2"; }
  pairs_of scale_spread ss_b ss_s
  python3 - "$out/memory.json" "$scale" "$small" "$(rss_kb "$big_pid")" "$(rss_kb "$small_pid")" \
    "$(db_bytes "$work/big/mcpauth.db")" "$(db_bytes "$work/small/mcpauth.db")" <<'PY'
import json, sys
p, big, small, rb, rs, db_b, db_s = sys.argv[1:]
m = json.load(open(p))
m["scale"] = {"tokens_big": int(big), "tokens_small": int(small), "rss_big_kb": int(rb), "rss_small_kb": int(rs),
              "db_big_bytes": int(db_b), "db_small_bytes": int(db_s)}
json.dump(m, open(p, "w"), indent=1)
PY
fi

python3 - "$out/meta.json" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import json, sys
m = json.load(open(sys.argv[1])); m["machine"]["loadavg_end"] = sys.argv[2]
json.dump(m, open(sys.argv[1], "w"), indent=1)
PY
log "done; results in $out"
python3 "$here/summarize.py" "$out"

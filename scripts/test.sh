#!/usr/bin/env bash
# The test command: every test of the project, on a machine that already has the toolchain,
# cargo-nextest, Node.js + npm and Debian's Chromium (`.ci/run` installs what a fresh machine lacks).
#
#   scripts/test.sh
#
# Steps, in this order (each runs even if an earlier one failed, except steps 4-10 (4b, 4c, 5b, 6b, 9b and 9c included), which
# need the binary of step 3 and are skipped without it):
#   1. build the library examples   cargo build -p mcpauth --examples   (step 2's example test runs one)
#   2. unit + integration tests     cargo nextest run --workspace --profile ci --no-fail-fast
#   3. build the server binary      cargo build -p mcpauth-server   (reuses step 2's artifacts)
#   4. browser end-to-end test      e2e/browser: npm ci && node --test   (Chromium + playwright-core)
#   4b. browser email test          e2e/browser: node --test email.test.mjs   (password reset and
#                                   verification; mail received by smtp-server from npm)
#   4c. identity provider (browser) e2e/browser: node --test identity_provider.test.mjs   (oidc-provider in-process as the identity provider)
#   4d. the console (browser)       e2e/browser: node --test console.test.mjs   (the operator's console, SECURITY A1)
#   5. peer flow                    e2e/peer-flow/run.sh   (Better Auth's flow.mjs against mcpauth)
#   5b. container image             deploy/test-image.sh   (podman: the image recipe with step 3's binary;
#                                   health, flow, volume across a restart, SIGTERM, two instances on
#                                   PostgreSQL + Redis behind a proxy; deploy/compose.yaml checked)
#   6. TS SDK interop               interop/ts: npm ci && node --test   (MCP TypeScript SDK v1 and v2 clients)
#   6b. CIMD interop                interop/ts: node --test cimd.test.mjs   (TS SDK clientMetadataUrl, mcp-remote --client-metadata-url; openssl)
#   7. conformance (authorization)  interop/conformance/run.sh   (the MCP conformance suite's AS scenarios, Node 22)
#   8. OpenID RP interop            interop/openid-client: npm ci && node --test   (strict openid-client 6.x;
#                                   machine-clients.test.mjs: client_credentials, private_key_jwt, ID-JAG)
#   9. Python SDK interop           interop/python/run.sh   (MCP Python SDK client; venv from a hash-pinned lock)
#   9b. JWT access tokens + DPoP    interop/openid-client: node --test dpop-jwt.test.mjs   (openid-client DPoP flow,
#                                   the README's jose and PyJWT snippets; PyJWT from step 9's venv)
#   9c. connected accounts interop  interop/connections/run.sh   (oidc-provider + an introspecting API, the
#                                   gateway injecting the user's token into Python SDK upstreams, the TS
#                                   SDK client with URL elicitation (-32042), Chromium connecting; sqlite3)
#  10. benchmark smoke run          bench/run.sh --quick --debug   (every scenario briefly; never fails on timing)
#  11. fuzzing                      scripts/fuzz.sh 20   (every fuzz target 20 s on its corpus; nightly + cargo-fuzz)
#
# Screenshots of the pages go to $SCREENSHOT_DIR (default target/e2e/screenshots) and the peer
# flow's JSON report to $FLOW_REPORT (default target/e2e/flow-report.json), the conformance suite's
# to $CONFORMANCE_REPORT (default target/interop/conformance-report.json).
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
if [[ -z "${CONFORMANCE_REPORT:-}" ]]; then
  export CONFORMANCE_REPORT="$target_dir/interop/conformance-report.json"
  rm -f "$CONFORMANCE_REPORT" # no report of an earlier run is to be mistaken for this one's
fi

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

# Set by the build step: every step after it runs the server binary ($MCPAUTH_BIN).
server_built=no

# with_binary NAME COMMAND... : runs a step that needs the server binary, or skips it without one
with_binary() {
  if [[ $server_built == yes ]]; then
    run "$@"
  else
    skip "$1" "no binary"
  fi
}

browser_test() {
  cd "$root/e2e/browser" && npm ci --no-audit --no-fund && node --test --test-reporter=spec browser.test.mjs
}

# Password reset and email verification in Chromium, the mail received by a real SMTP server
# (nodemailer's smtp-server, pinned in e2e/browser/package.json). Subshell: its `cd` stays here.
browser_email_test() (
  cd "$root/e2e/browser" && { [[ -d node_modules/smtp-server ]] || npm ci --no-audit --no-fund; } \
    && node --test --test-reporter=spec email.test.mjs
)

# Same folder and packages as the browser test (npm ci again only if that step did not run it).
identity_provider_browser_test() (
  cd "$root/e2e/browser" && { [[ -d node_modules/oidc-provider ]] || npm ci --no-audit --no-fund; } \
    && node --test --test-reporter=spec identity_provider.test.mjs
)

# The operator's console in Chromium (SECURITY A1): same folder and packages.
console_browser_test() (
  cd "$root/e2e/browser" && { [[ -d node_modules/playwright-core ]] || npm ci --no-audit --no-fund; } \
    && node --test --test-reporter=spec console.test.mjs
)

# ---- examples (crates/mcpauth/examples) ----
# crates/mcpauth-server/tests/it/example.rs runs the built example binary
# (target/debug/examples/protected_server): Cargo builds examples only for their own package,
# so build them before the test step. If this fails, that test fails with a message saying so.
run "build the library examples (cargo build -p mcpauth --examples)" \
  cargo build -p mcpauth --examples
# ---- end of examples ----

run "unit and integration tests (cargo nextest)" \
  cargo nextest run --workspace --profile ci --no-fail-fast

run "build the server binary (cargo build -p mcpauth-server)" cargo build -p mcpauth-server \
  && server_built=yes

with_binary "browser end-to-end test (e2e/browser)" browser_test
with_binary "browser email test: password reset, verification (e2e/browser/email.test.mjs)" browser_email_test
with_binary "sign-in through an identity provider in the browser (e2e/browser: oidc-provider)" identity_provider_browser_test
with_binary "the console in the browser (e2e/browser/console.test.mjs)" console_browser_test
with_binary "peer flow: Better Auth's flow.mjs against mcpauth (e2e/peer-flow)" "$root/e2e/peer-flow/run.sh"

# ---- container image (deploy/) ----
# Builds the FROM scratch image from deploy/Containerfile with the debug binary of the build step
# (a release build would cost CI minutes: see deploy/test-image.sh) and tests it with podman on
# loopback. Needs podman (.ci/run installs it), PostgreSQL and Redis (as the Rust tests do).
with_binary "container image (deploy/test-image.sh: podman, debug binary)" "$root/deploy/test-image.sh"
# ---- end of container image ----

# ---- interop: TypeScript SDK clients and the conformance suite (interop/ts, interop/conformance) ----
# Both start their own `mcpauth serve` ($MCPAUTH_BIN) and need the binary of the build step above.
# Subshells: a step's `cd` must not move the steps after it.
ts_sdk_interop() (
  cd "$root/interop/ts" && npm ci --no-audit --no-fund \
    && node --test --test-reporter=spec ts-sdk.test.mjs ts-sdk-v2.test.mjs gateway.test.mjs
)
cimd_interop() (
  cd "$root/interop/ts" && { [[ -d node_modules/mcp-remote ]] || npm ci --no-audit --no-fund; } \
    && node --test --test-reporter=spec cimd.test.mjs
)
conformance_authorization() (
  cd "$root/interop/conformance" && npm ci --no-audit --no-fund && CONFORMANCE_NPM_CI=0 ./run.sh
)
with_binary "TS SDK interop (interop/ts: MCP TypeScript SDK v1 + v2 clients; gateway to a TS SDK server)" ts_sdk_interop
with_binary "CIMD interop (interop/ts: TS SDK clientMetadataUrl, mcp-remote --client-metadata-url)" cimd_interop
with_binary "conformance (authorization) (interop/conformance, Node 22)" conformance_authorization
# ---- end of interop (TypeScript) ----

# ---- interop: strict OpenID relying party (interop/openid-client) ----
# panva's openid-client (exact 6.x in interop/openid-client/package.json) as an OpenID RP: discovery
# with its issuer check, dynamic registration (client_secret_basic and none), code + PKCE + state +
# nonce with the id_token signature verified against jwks_uri (ES256, then an RS256 server),
# userinfo, refresh rotation, revocation; then machine-clients.test.mjs (issue 21): client_credentials
# with a secret and with private_key_jwt, ID-JAGs minted by a loopback issuer with jose and redeemed,
# and their refusals. Starts its own `mcpauth serve` ($MCPAUTH_BIN): needs the
# binary of the build step above. Subshell: its `cd` must not move the steps after it.
openid_client_interop() (
  cd "$root/interop/openid-client" && npm ci --no-audit --no-fund \
    && node --test --test-reporter=spec openid-client.test.mjs machine-clients.test.mjs
)
with_binary "OpenID RP interop (interop/openid-client: strict openid-client 6.x)" openid_client_interop
# ---- end of interop (openid-client) ----

# ---- interop: Python SDK client (interop/python) ----
# Starts its own `mcpauth serve` ($MCPAUTH_BIN): needs the binary of the build step above. Builds its
# venv (target/interop-python-venv) from interop/python/requirements.lock; one report per test goes
# to $PY_INTEROP_REPORT.
export PY_INTEROP_REPORT="${PY_INTEROP_REPORT:-$target_dir/interop-python}"
with_binary "Python SDK interop (interop/python: MCP Python SDK client; gateway to a Python SDK server)" "$root/interop/python/run.sh"
# ---- end of interop (Python) ----

# ---- interop: JWT access tokens and DPoP (interop/openid-client/dpop-jwt.test.mjs) ----
# openid-client 6 (oauth4webapi's DPoP) runs the code flow with a DPoP key against a server issuing
# JWT access tokens and calls the MCP endpoint; the README's verification snippets (jose, and
# PyJWT run with the venv of the Python step above) verify the tokens; proofs made with jose show
# the refusals of SECURITY T1–T3. Needs the binary of the build step and step 9's venv.
dpop_jwt_interop() (
  cd "$root/interop/openid-client" && npm ci --no-audit --no-fund \
    && PYTHON="${PY_INTEROP_VENV:-$target_dir/interop-python-venv}/bin/python" \
      node --test --test-reporter=spec dpop-jwt.test.mjs
)
with_binary "JWT access tokens + DPoP interop (interop/openid-client: openid-client DPoP, jose and PyJWT snippets)" dpop_jwt_interop
# ---- end of interop (JWT access tokens and DPoP) ----
# ---- interop: connected accounts (interop/connections) ----
# Starts its own `mcpauth serve` ($MCPAUTH_BIN) with [[connections]] and a credentialed upstream;
# reuses (or builds) interop/python's venv for its Python SDK upstreams; npm ci of its exact packages.
with_binary "connected accounts interop (interop/connections: oidc-provider, Python SDK upstreams, TS SDK client with URL elicitation, Chromium)" "$root/interop/connections/run.sh"
# ---- end of interop (connections) ----

# ---- bench: smoke run of the benchmark (bench/run.sh --quick) ----
# mcpauth vs the Better Auth peer, every scenario for ~2 s on loopback, with the debug binary of the
# build step above ($MCPAUTH_BIN) and the bench tools (bench/tools, built into target/bench-tools).
# Copies the peer to target/bench/peer-better-auth and runs npm ci there (compiles better-sqlite3,
# once per lockfile). Fails only if a scenario does not work; never on timing. Uses wrk when
# installed, else its own load generator. Report: target/bench/quick/summary.md.
bench_quick() {
  rm -rf "$target_dir/bench/quick"
  "$root/bench/run.sh" --quick --debug --out "$target_dir/bench/quick"
}
with_binary "benchmark smoke run (bench/run.sh --quick)" bench_quick
# ---- end of bench ----

# ---- fuzzing (fuzz/, scripts/fuzz.sh) ----
# Every parser that reads untrusted input, 20 s a target under libFuzzer (nightly, cargo-fuzz;
# .ci/run installs both). Its own target directory ($target_dir/fuzz): sanitizer builds.
run "fuzzing (scripts/fuzz.sh, 20 s a target)" "$root/scripts/fuzz.sh" "${FUZZ_SECONDS:-20}"
# ---- end of fuzzing ----

section "summary"
for i in "${!names[@]}"; do
  printf '  %-70s %-6s %s\n' "${names[$i]}" "${times[$i]}" "${results[$i]}"
done
[[ -d "$SCREENSHOT_DIR" ]] && echo "  screenshots: $SCREENSHOT_DIR"
[[ -f "$FLOW_REPORT" ]] && echo "  peer flow report: $FLOW_REPORT"
[[ -f "$CONFORMANCE_REPORT" ]] && echo "  conformance report: $CONFORMANCE_REPORT"
[[ -d "$PY_INTEROP_REPORT" ]] && echo "  Python SDK interop reports: $PY_INTEROP_REPORT"
echo
if [[ $skipped -gt 0 ]]; then
  echo "steps: $passed passed, $failed failed, $skipped skipped"
else
  echo "steps: $passed passed, $failed failed"
fi
[[ $failed -eq 0 && $skipped -eq 0 ]]

#!/usr/bin/env bash
# Interop with the official MCP Python SDK (PyPI `mcp`, pinned in requirements.txt and, with every
# transitive dependency and its hashes, in requirements.lock): builds a venv, installs the lock from
# PyPI, and runs test_python_sdk.py, which starts its own `mcpauth serve` (port 0, temp database),
# signs a user up and lets the SDK's OAuthClientProvider do the whole flow headlessly, and
# test_gateway.py, the same client through mcpauth's gateway to an MCP server written on the
# same SDK (upstream_server.py).
# Exits non-zero if the venv cannot be built or any test fails.
#
#   interop/python/run.sh                # after `cargo build -p mcpauth-server`
#   interop/python/run.sh -k step_up     # extra arguments go to pytest
#
# Environment:
#   MCPAUTH_BIN         server binary (default: <repo>/target/debug/mcpauth, honouring CARGO_TARGET_DIR)
#   PYTHON              interpreter that builds the venv (default: python3; needs the venv module)
#   PY_INTEROP_VENV     the venv (default: <target>/interop-python-venv; rebuilt when the lock or
#                       the interpreter changes)
#   PY_INTEROP_REPORT   folder for one report per test: every HTTP exchange the SDK made, the
#                       browser's hops, what the server logged (default: <target>/interop-python)
#   PY_INTEROP_VENV_ONLY=1  build (or reuse) the venv and stop: interop/connections runs its
#                       Python upstream in it
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(git -C "$here" rev-parse --show-toplevel 2>/dev/null || (cd "$here/../.." && pwd))"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac

bin="${MCPAUTH_BIN:-$target_dir/debug/mcpauth}"
case "$bin" in /*) ;; *) [[ -e "$bin" ]] && bin="$PWD/$bin" || bin="$root/$bin" ;; esac
if [[ ! -x "$bin" && "${PY_INTEROP_VENV_ONLY:-0}" != 1 ]]; then
  echo "python-interop: mcpauth binary not found at $bin (run 'cargo build -p mcpauth-server' or set MCPAUTH_BIN)" >&2
  exit 2
fi
export MCPAUTH_BIN="$bin"

python="${PYTHON:-python3}"
venv="${PY_INTEROP_VENV:-$target_dir/interop-python-venv}"
lock="$here/requirements.lock"
stamp="$("$python" -c 'import sys; print(sys.version)' | head -n1) $(sha256sum "$lock" | cut -d' ' -f1)"

# --- the venv ---------------------------------------------------------------------------------
if [[ -x "$venv/bin/python" && -f "$venv/.mcpauth-stamp" && "$(cat "$venv/.mcpauth-stamp")" == "$stamp" ]]; then
  echo "python-interop: reusing $venv"
else
  echo "python-interop: building $venv with $("$python" --version 2>&1) from $(command -v "$python")"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  # Exactly the lock: every package pinned and hash-checked, nothing resolved at install time.
  "$venv/bin/python" -m pip install --quiet --no-input --disable-pip-version-check \
    --require-hashes --no-deps --only-binary=:all: -r "$lock"
  "$venv/bin/python" -m pip check
  echo "$stamp" >"$venv/.mcpauth-stamp"
fi
"$venv/bin/python" -m pip list --disable-pip-version-check --format=freeze 2>/dev/null \
  | grep -iE '^(mcp|mcp-types|httpx2|httpcore2|anyio|pytest|pydantic)==' | tr '\n' ' ' || true
echo
[[ "${PY_INTEROP_VENV_ONLY:-0}" == 1 ]] && exit 0

# --- the tests --------------------------------------------------------------------------------
export PY_INTEROP_REPORT="${PY_INTEROP_REPORT:-$target_dir/interop-python}"
rm -rf "$PY_INTEROP_REPORT"
mkdir -p "$PY_INTEROP_REPORT"
export PYTHONDONTWRITEBYTECODE=1
# the tests' temporary folders (the server's database and log) live in one folder of ours,
# removed at the end even if pytest was killed before its own cleanup
work="$(mktemp -d "${TMPDIR:-/tmp}/mcpauth-python-interop.XXXXXX")"
export TMPDIR="$work"
cd "$here"
# In its own process group (pytest and the mcpauth it starts), in the background + wait: a signal
# to this script reaches pytest at once (its server fixture turns SIGTERM into a clean teardown
# that stops mcpauth), and whatever is left of that group when this script ends is stopped by id.
setsid "$venv/bin/python" -m pytest -v "$@" &
pytest_pid=$!
stop_group() {
  if kill -TERM -- "-$pytest_pid" 2>/dev/null; then
    for _ in $(seq 1 100); do kill -0 -- "-$pytest_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pytest_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap 'kill -TERM "$pytest_pid" 2>/dev/null || true' INT TERM
trap stop_group EXIT
rc=0
wait "$pytest_pid" || rc=$?
# a signal interrupts the first wait: wait again for pytest's teardown
if kill -0 "$pytest_pid" 2>/dev/null; then wait "$pytest_pid" || rc=$?; fi
echo "python-interop: reports in $PY_INTEROP_REPORT"
if [[ $rc -ne 0 ]]; then echo "python-interop: FAILED (pytest exit code $rc)" >&2; fi
exit "$rc"

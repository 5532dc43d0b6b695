#!/usr/bin/env bash
# Connected accounts end to end with real parts (connections.test.mjs): oidc-provider and a
# protected API, mcpauth's gateway in front of two MCP servers on the official Python SDK, the
# official TS SDK client with URL elicitation, Debian Chromium connecting the account.
#
#   interop/connections/run.sh          # after `cargo build -p mcpauth-server`
#
# Builds (or reuses) the Python venv of interop/python (its hash-pinned lock; PY_INTEROP_VENV),
# installs this folder's exact npm packages (npm ci), and runs the test.
# Environment: MCPAUTH_BIN, CHROMIUM_BIN, PY_INTEROP_VENV, SCREENSHOT_DIR, INTEROP_VERBOSE=1.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY_INTEROP_VENV_ONLY=1 "$here/../python/run.sh"
cd "$here"
[[ "${CONNECTIONS_NPM_CI:-1}" == 1 ]] && npm ci --no-audit --no-fund
exec node --test --test-reporter=spec connections.test.mjs

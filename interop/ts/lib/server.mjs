// Starts a fresh `mcpauth serve` for an interop test and stops it again. Plain Node (no packages),
// so that interop/conformance can use it too.
//
//   const server = await startServer();   // port 0, temp SQLite file, rate limits off
//   server.issuer, server.mcpUrl, server.log()
//   await server.stop();                   // SIGTERM, then SIGKILL after 10 s; removes the temp dir
//
// Environment:
//   MCPAUTH_BIN        server binary (default: <repo>/target/debug/mcpauth, honouring CARGO_TARGET_DIR)
//   INTEROP_KEEP_TMP=1 keep the server's temp dir (database, log) and print where it is
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(HERE, "..", "..", "..");

export function resolveBinary() {
  const fromEnv = process.env.MCPAUTH_BIN;
  const candidates = [];
  if (fromEnv) {
    if (path.isAbsolute(fromEnv)) candidates.push(fromEnv);
    else candidates.push(path.resolve(process.cwd(), fromEnv), path.resolve(REPO_ROOT, fromEnv));
  } else {
    const targetDir = process.env.CARGO_TARGET_DIR
      ? path.resolve(REPO_ROOT, process.env.CARGO_TARGET_DIR)
      : path.join(REPO_ROOT, "target");
    candidates.push(path.join(targetDir, "debug", "mcpauth"));
  }
  const found = candidates.find((c) => fs.existsSync(c));
  if (!found) {
    throw new Error(
      `mcpauth binary not found (tried ${candidates.join(", ")}); run \`cargo build -p mcpauth-server\` or set MCPAUTH_BIN`,
    );
  }
  return found;
}

// Every server started here, so that an abrupt exit of the test process still ends them: on exit
// (an uncaught error included) and on SIGINT/SIGTERM, which would otherwise end Node without
// running any cleanup.
const live = new Map(); // child process -> its temp dir
process.on("exit", () => {
  for (const [child, tmp] of live) {
    child.kill("SIGKILL");
    if (process.env.INTEROP_KEEP_TMP !== "1") fs.rmSync(tmp, { recursive: true, force: true });
  }
});
let signalsHooked = false;
function hookSignals() {
  if (signalsHooked) return;
  signalsHooked = true;
  for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]]) {
    process.once(signal, () => process.exit(code)); // runs the exit handler above
  }
}

/**
 * Starts `mcpauth serve --bind 127.0.0.1:0` on a new temp database and waits for its banner
 * (`Issuer:` and `Listening on:`) and for `GET /healthz` to answer `ok`.
 * `env` adds server settings (MCPAUTH_*); rate limits are off unless `env` turns them on. `args`
 * are more flags for `serve` (e.g. ["--issuer", url]); `bind` the address (default port 0: pass
 * a port of your own when something must know the issuer before the server starts).
 */
export async function startServer({ env = {}, args = [], timeoutMs = 60_000, name = "interop", bind = "127.0.0.1:0" } = {}) {
  const bin = resolveBinary();
  hookSignals();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `mcpauth-${name}-`));
  // The server reads every MCPAUTH_* variable as configuration and refuses unknown ones: keep
  // MCPAUTH_BIN (ours) away from it. It runs in the temp dir so that no ./mcpauth.toml is read.
  const childEnv = { ...process.env, MCPAUTH_RATE_LIMITS__ENABLED: "false", NO_COLOR: "1", ...env };
  delete childEnv.MCPAUTH_BIN;
  const child = spawn(
    bin,
    ["serve", "--bind", bind, "--database-url", `sqlite://${path.join(tmp, "mcpauth.db")}`, ...args],
    { cwd: tmp, env: childEnv, stdio: ["ignore", "pipe", "pipe"] },
  );
  live.set(child, tmp);
  let output = "";
  child.stdout.setEncoding("utf8").on("data", (d) => (output += d));
  child.stderr.setEncoding("utf8").on("data", (d) => (output += d));
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  let hasExited = false;
  exited.then(() => {
    hasExited = true;
    live.delete(child);
  });

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (!hasExited) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => {
        process.stderr.write("interop: mcpauth ignored SIGTERM for 10 s: killing it\n");
        child.kill("SIGKILL");
      }, 10_000);
      await exited;
      clearTimeout(timer);
    }
    if (process.env.INTEROP_KEEP_TMP === "1") {
      fs.writeFileSync(path.join(tmp, "server.log"), output);
      process.stderr.write(`interop: kept ${tmp}\n`);
    } else {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  };

  try {
    const deadline = Date.now() + timeoutMs;
    let issuer;
    let listen;
    while (!issuer || !listen) {
      if (hasExited) throw new Error(`mcpauth exited before it was ready:\n${output}`);
      if (Date.now() > deadline) throw new Error(`mcpauth printed no banner within ${timeoutMs} ms:\n${output}`);
      issuer = output.match(/^\s*Issuer:\s*(\S+)/m)?.[1]?.replace(/\/$/, "");
      listen = output.match(/^\s*Listening on:\s*(\S+)/m)?.[1];
      if (!issuer || !listen) await new Promise((r) => setTimeout(r, 50));
    }
    const health = await fetch(`http://${listen}/healthz`);
    const body = (await health.text()).trim();
    if (health.status !== 200 || body !== "ok") {
      throw new Error(`GET http://${listen}/healthz answered ${health.status} ${body}`);
    }
    return {
      issuer, // "http://localhost:PORT", exactly as printed (and as in every metadata document)
      listen, // "127.0.0.1:PORT"
      mcpUrl: `${issuer}/api/mcp`,
      tmp,
      pid: child.pid,
      log: () => output,
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** Creates a user through the account API (`POST /api/auth/sign-up/email`, same-origin). */
export async function signUp(issuer, { email, password, name }) {
  const res = await fetch(`${issuer}/api/auth/sign-up/email`, {
    method: "POST",
    headers: { "content-type": "application/json", origin: issuer },
    body: JSON.stringify({ email, password, name }),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`sign-up answered ${res.status}: ${text}`);
  return JSON.parse(text).user;
}

/** A TCP port on 127.0.0.1 that was free a moment ago (for a client's own callback listener). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

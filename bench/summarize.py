#!/usr/bin/env python3
"""Summarise one bench/run.sh results directory.

    summarize.py OUT_DIR

Reads OUT_DIR/results.jsonl (one line per measured run: scenario, target, pair, tool, raw file,
server CPU ticks), OUT_DIR/meta.json and OUT_DIR/memory.json; prints the table (markdown) and
writes OUT_DIR/summary.md and OUT_DIR/summary.json.

Value columns are medians over the pairs; "ratio" is the median of the per-pair ratios (each pair
ran A and B back to back, so a noisy moment hits both). Exit status 1 when a run failed
functionally (no successful request, non-2xx answers, errors) — never because of a timing target.
"""
import json
import os
import re
import statistics
import sys

out = sys.argv[1]


def unit_ms(v, u):
    return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[u]


def parse_wrk(path):
    t = open(path).read()
    r = {"ok": True}
    m = re.search(r"Requests/sec:\s+([\d.]+)", t)
    r["rps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", t)
    r["requests"] = int(m.group(1)) if m else 0
    for p in ("50", "90", "99"):
        m = re.search(rf"^\s+{p}(?:\.000)?%\s+([\d.]+)(us|ms|s|m)\s*$", t, re.M)
        r[f"p{p}"] = round(unit_ms(*m.groups()), 3) if m else None
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
    r["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
    r["sock_errors"] = sum(int(x) for x in m.groups()[:3]) if m else 0
    r["timeouts"] = int(m.group(4)) if m else 0
    r["errors"] = r["non2xx"] + r["sock_errors"]
    r["completed"] = r["requests"] - r["non2xx"]
    return r


def parse_loadgen(path):
    j = json.load(open(path))
    lat = j.get("latency_ms") or {}
    return {
        "rps": j.get("rate_per_s", 0.0),
        "requests": j.get("completed", 0) + j.get("errors", 0),
        "completed": j.get("completed", 0),
        "errors": j.get("errors", 0),
        "timeouts": 0,
        "p50": lat.get("p50"),
        "p90": lat.get("p90"),
        "p99": lat.get("p99"),
        "elapsed_s": j.get("elapsed_s"),
        "items": j.get("items"),
        "first_errors": j.get("first_errors", []),
    }


runs = []
with open(os.path.join(out, "results.jsonl")) as f:
    for line in f:
        if not line.strip():
            continue
        rec = json.loads(line)
        # Several files (joined by "|"): simultaneous loads on several instances, summed.
        parts = [parse_wrk(p) if p.endswith(".txt") else parse_loadgen(p) for p in rec["file"].split("|")]
        parsed = dict(parts[0])
        for part in parts[1:]:
            for key in ("rps", "requests", "completed", "errors", "timeouts"):
                parsed[key] = (parsed.get(key) or 0) + (part.get(key) or 0)
            for key in ("p50", "p90", "p99"):  # the slower instance's
                if part.get(key) is not None:
                    parsed[key] = max(parsed.get(key) or 0, part[key])
            parsed["first_errors"] = (parsed.get("first_errors") or []) + (part.get("first_errors") or [])
        rec.update(parsed)
        rec["cpu_us_per_req"] = (
            rec["cpu_ticks"] / rec["tick_hz"] * 1e6 / rec["completed"] if rec["completed"] else None
        )
        runs.append(rec)
meta = json.load(open(os.path.join(out, "meta.json")))
mem_path = os.path.join(out, "memory.json")
memory = json.load(open(mem_path)) if os.path.exists(mem_path) else {}
quick = meta.get("mode") == "quick"


def by(scenario, target):
    return {r["pair"]: r for r in runs if r["scenario"] == scenario and r["target"] == target}


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt_rate(x):
    if x is None:
        return "—"
    return f"{x:,.0f}".replace(",", " ") if x >= 100 else f"{x:.1f}"


def fmt_ms(x):
    return "—" if x is None else (f"{x:.2f}" if x < 10 else f"{x:.1f}")


def mib(kb):
    return None if kb is None else kb / 1024


rows = []  # (scenario, mcpauth, reference, ratio, target, status)
summary = {"meta": meta, "memory": memory, "scenarios": {}}


def paired(scenario, a, b):
    A, B = by(scenario, a), by(scenario, b)
    pairs = sorted(set(A) & set(B))
    ratios = [A[p]["rps"] / B[p]["rps"] for p in pairs if B[p]["rps"]]
    res = {
        "a": a,
        "b": b,
        "pairs": len(pairs),
        "a_rps": med([A[p]["rps"] for p in pairs]),
        "b_rps": med([B[p]["rps"] for p in pairs]),
        "ratio": med(ratios),
        "ratios": [round(x, 3) for x in ratios],
        "a_p50": med([A[p]["p50"] for p in pairs]),
        "a_p99": med([A[p]["p99"] for p in pairs]),
        "b_p50": med([B[p]["p50"] for p in pairs]),
        "b_p99": med([B[p]["p99"] for p in pairs]),
        "a_cpu_us": med([A[p]["cpu_us_per_req"] for p in pairs]),
        "b_cpu_us": med([B[p]["cpu_us_per_req"] for p in pairs]),
        "a_rps_all": [A[p]["rps"] for p in pairs],
        "b_rps_all": [B[p]["rps"] for p in pairs],
        "a_cpu_all": [A[p]["cpu_us_per_req"] for p in pairs],
        "b_cpu_all": [B[p]["cpu_us_per_req"] for p in pairs],
    }
    summary["scenarios"][scenario] = res
    return res


def status(ok):
    if ok is None:
        return "—"
    return "met" if ok else "**missed**"


def x(r):
    return "—" if r is None else f"{r:.2f}×"


def fmt_us(v):
    return "—" if v is None else f"{v:.0f}"


def cpu(res):
    """The two CPU cells of a scenario row: "A / B" µs per request (medians) and how many times
    less CPU A spends per request than B (the median of the per-pair B ÷ A, like the req/s ratio)."""
    a, b = res.get("a_cpu_us"), res.get("b_cpu_us")
    less = med([q / p for p, q in zip(res["a_cpu_all"], res["b_cpu_all"]) if p and q])
    res["cpu_less"] = less
    return (f"{fmt_us(a)} / {fmt_us(b)}", "—" if less is None else f"{less:.1f}× less")


NO_CPU = ("", "")


def write_path(res, cpu_cap=None):
    """Status of a write path (SPEC §8): ≥ 10× the peer's req/s and ≥ 10× less CPU per request,
    in the same run; `cpu_cap`: a ceiling on mcpauth's CPU per request, µs."""
    ratio, less, a = res["ratio"], res.get("cpu_less"), res.get("a_cpu_us")
    if ratio is None or less is None:
        return "—"
    ok = ratio >= 10 and less >= 10 and (cpu_cap is None or a <= cpu_cap)
    return status(ok)


# Every row: scenario, mcpauth, reference, req/s ratio, CPU µs per request (mcpauth / reference),
# how many times less CPU mcpauth spends, target, status. Latency and memory rows have no CPU.
# 1. validation
v = paired("validate", "mcpauth", "peer")
if v["pairs"]:
    rows.append(("Token validation: valid bearer on the session endpoint, 32 conns — req/s",
                 fmt_rate(v["a_rps"]), fmt_rate(v["b_rps"]), x(v["ratio"]), *cpu(v), "≥ 10×",
                 status(v["ratio"] is not None and v["ratio"] >= 10)))
    rows.append(("… latency p50 / p99 (ms)", f"{fmt_ms(v['a_p50'])} / {fmt_ms(v['a_p99'])}",
                 f"{fmt_ms(v['b_p50'])} / {fmt_ms(v['b_p99'])}", "", *NO_CPU, "p99 ≤ 5 ms",
                 status(v["a_p99"] is not None and v["a_p99"] <= 5)))
# 2. MCP call: auth vs no auth
m = paired("mcp", "mcpauth", "baseline")
if m["pairs"]:
    A, B = by("mcp", "mcpauth"), by("mcp", "baseline")
    overheads = [B[p]["rps"] / A[p]["rps"] - 1 for p in sorted(set(A) & set(B)) if A[p]["rps"]]
    ov = med(overheads)
    m["auth_overhead"] = ov
    rows.append(("MCP `tools/call echo`, 32 conns — req/s (mcpauth `/api/mcp` with a bearer; reference: the same rmcp server without auth, bench/tools mcp-baseline)",
                 fmt_rate(m["a_rps"]), fmt_rate(m["b_rps"]) + " (no auth)",
                 "—" if ov is None else f"auth adds {ov * 100:+.0f}%", *cpu(m), "≤ +20%",
                 status(ov is not None and ov <= 0.20)))
    rows.append(("… latency p50 / p99 (ms)", f"{fmt_ms(m['a_p50'])} / {fmt_ms(m['a_p99'])}",
                 f"{fmt_ms(m['b_p50'])} / {fmt_ms(m['b_p99'])}", "", *NO_CPU, "", ""))
# 2b. the gateway: mcpauth in front of an upstream vs the upstream directly
g = paired("gateway", "gateway", "direct")
if g["pairs"]:
    rows.append(("Gateway: `tools/call echo` through `mcpauth serve --upstream` to mcp-baseline vs mcp-baseline directly, 32 conns — req/s",
                 fmt_rate(g["a_rps"]), fmt_rate(g["b_rps"]) + " (direct)", x(g["ratio"]), *cpu(g), "≥ 0.80×",
                 status(g["ratio"] is not None and g["ratio"] >= 0.8)))
gl = paired("gateway_latency", "gateway", "direct")
if gl["pairs"] and gl["a_p50"] is not None and gl["b_p50"] is not None:
    added = gl["a_p50"] - gl["b_p50"]
    gl["added_p50_ms"] = added
    rows.append(("… 1 conn — latency p50 / p99 (ms)", f"{fmt_ms(gl['a_p50'])} / {fmt_ms(gl['a_p99'])}",
                 f"{fmt_ms(gl['b_p50'])} / {fmt_ms(gl['b_p99'])}", f"adds {added:+.2f} ms at p50", *cpu(gl),
                 "≤ +1 ms", status(added <= 1.0)))
gc = paired("gateway_credential", "credential", "plain")
if gc["pairs"] and gc["a_p50"] is not None and gc["b_p50"] is not None:
    added = gc["a_p50"] - gc["b_p50"]
    gc["added_p50_ms"] = added
    rows.append(("Gateway with a connected account: `tools/call echo` with the user's token injected (`credential`) vs the same instance without, 1 conn — latency p50 / p99 (ms)",
                 f"{fmt_ms(gc['a_p50'])} / {fmt_ms(gc['a_p99'])}",
                 f"{fmt_ms(gc['b_p50'])} / {fmt_ms(gc['b_p99'])} (no credential)", f"adds {added:+.3f} ms at p50",
                 *cpu(gc), "≤ +0.2 ms", status(added <= 0.2)))
gp = paired("gateway_python", "gateway", "direct")
if gp["pairs"]:
    rows.append(("Gateway to a Python SDK upstream (MCPServer, stateless JSON), 8 conns — req/s",
                 fmt_rate(gp["a_rps"]), fmt_rate(gp["b_rps"]) + " (direct)", x(gp["ratio"]), *cpu(gp), "", ""))
    rows.append(("… latency p50 / p99 (ms)", f"{fmt_ms(gp['a_p50'])} / {fmt_ms(gp['a_p99'])}",
                 f"{fmt_ms(gp['b_p50'])} / {fmt_ms(gp['b_p99'])}", "", *NO_CPU, "", ""))
# 3-5. the write paths: ≥ 10× the peer's req/s and ≥ 10× less CPU per request, in the same run;
# the code exchange also ≤ 150 µs of CPU
for scen, label, cap in (
    ("exchange", "Authorization code → token exchange, 16 conc — tokens/s", 150),
    ("authorize", "Authorize (minting codes: GET authorize with a session), 16 conc — codes/s", None),
    ("dcr", "Dynamic client registration, 16 conns — registrations/s", None),
    ("refresh", "Refresh grants (rotation), 16 chains — grants/s", None),
):
    s = paired(scen, "mcpauth", "peer")
    if s["pairs"]:
        target = "≥ 10× req/s and CPU" + (f"; CPU ≤ {cap} µs" if cap else "")
        rows.append((label, fmt_rate(s["a_rps"]), fmt_rate(s["b_rps"]), x(s["ratio"]), *cpu(s), target,
                     write_path(s, cap)))
# 5a. client_credentials (issue 21): a machine's token vs the code exchange, both mcpauth
cc = paired("client_credentials", "client_credentials", "exchange")
if cc["pairs"]:
    rows.append(("client_credentials (a machine's token, client_secret_post) vs the code exchange, 16 conc — tokens/s",
                 fmt_rate(cc["a_rps"]), fmt_rate(cc["b_rps"]) + " (exchange)", x(cc["ratio"]), *cpu(cc), "", ""))
    rows.append(("… latency p50 / p99 (ms)", f"{fmt_ms(cc['a_p50'])} / {fmt_ms(cc['a_p99'])}",
                 f"{fmt_ms(cc['b_p50'])} / {fmt_ms(cc['b_p99'])}", "", *NO_CPU, "", ""))
# 5c. JWT access tokens (issue 20): a JWT vs an opaque bearer, with the cache and without
vj = paired("validate_jwt", "jwt", "opaque")
vm = paired("validate_miss", "jwt", "opaque")
if vj["pairs"]:
    rows.append(("Token validation of a JWT access token (RFC 9068) vs an opaque one, token cache on, 32 conns — req/s",
                 fmt_rate(vj["a_rps"]), fmt_rate(vj["b_rps"]) + " (opaque)", x(vj["ratio"]), *cpu(vj), "", ""))
if vm["pairs"]:
    rows.append(("… both with the token cache off (every request verified afresh: JWT signature + row, opaque row), 32 conns — req/s",
                 fmt_rate(vm["a_rps"]), fmt_rate(vm["b_rps"]) + " (opaque, no cache)", x(vm["ratio"]), *cpu(vm), "", ""))
if vj["pairs"] and vm["pairs"]:
    rows.append(("JWT validation (cache on, as configured) vs the opaque path's cache miss — req/s",
                 fmt_rate(vj["a_rps"]), fmt_rate(vm["b_rps"]) + " (opaque miss)",
                 x(vj["a_rps"] / vm["b_rps"] if vj["a_rps"] and vm["b_rps"] else None), *NO_CPU,
                 "not slower (≥ 1×)", status(bool(vj["a_rps"] and vm["b_rps"]) and vj["a_rps"] >= vm["b_rps"])))
# 5b. PostgreSQL (--postgres): two instances on one database vs one
for scen, label in (("validate", "token validation, 32 conns — req/s"),
                    ("authorize", "minting codes (GET authorize), 16 conc — codes/s"),
                    ("exchange", "code → token exchange, 16 conc — tokens/s"),
                    ("dcr", "registration, 16 conns — registrations/s"),
                    ("refresh", "refresh grants, 16 chains — grants/s")):
    s = paired("pg_" + scen, "two", "one")
    if s["pairs"]:
        rows.append((f"PostgreSQL, {label}: two instances (load split) vs one",
                     fmt_rate(s["a_rps"]) + " (two)", fmt_rate(s["b_rps"]) + " (one)", x(s["ratio"]), *cpu(s),
                     "", ""))
        rows.append(("… latency p50 / p99 (ms)", f"{fmt_ms(s['a_p50'])} / {fmt_ms(s['a_p99'])}",
                     f"{fmt_ms(s['b_p50'])} / {fmt_ms(s['b_p99'])}", "", *NO_CPU, "", ""))
# 6. memory
mm, pm = memory.get("mcpauth", {}), memory.get("peer", {})
if mm and pm:
    ri = mib(mm["rss_idle_kb"]) / mib(pm["rss_idle_kb"])
    ra = mib(mm["rss_after_load_kb"]) / mib(pm["rss_after_load_kb"])
    rows.append(("RSS idle (after start) — MiB", f"{mib(mm['rss_idle_kb']):.1f}", f"{mib(pm['rss_idle_kb']):.1f}",
                 x(ri), *NO_CPU, "", ""))
    rows.append(("RSS after load (peak VmHWM) — MiB",
                 f"{mib(mm['rss_after_load_kb']):.1f} ({mib(mm['hwm_kb']):.1f})",
                 f"{mib(pm['rss_after_load_kb']):.1f} ({mib(pm['hwm_kb']):.1f})", x(ra), *NO_CPU, "≤ 0.25×",
                 status(ra <= 0.25)))
# 7. scale
sc = memory.get("scale", {})
big = sc.get("tokens_big", meta.get("scale_tokens"))
small = sc.get("tokens_small", 1000)
spread_label = "a random one of ~1 000 seeded bearers per request"
if "every scenario" in meta.get("load_generator", ""):
    spread_label = "one seeded bearer (no wrk: loadgen cannot vary the bearer)"
for scen, label in (("scale_one", "one bearer as above"), ("scale_spread", spread_label)):
    s = paired(scen, "tokens_big", "tokens_1k")
    if s["pairs"]:
        rows.append((f"Scale: validation with {fmt_rate(big)} live tokens vs {fmt_rate(small)}, {label} — req/s",
                     fmt_rate(s["a_rps"]), fmt_rate(s["b_rps"]) + f" ({fmt_rate(small)} tokens)",
                     x(s["ratio"]), *cpu(s), "≥ 0.90×", status(s["ratio"] is not None and s["ratio"] >= 0.9)))
        rows.append(("… latency p50 / p99 (ms)", f"{fmt_ms(s['a_p50'])} / {fmt_ms(s['a_p99'])}",
                     f"{fmt_ms(s['b_p50'])} / {fmt_ms(s['b_p99'])}", "", *NO_CPU, "", ""))

# functional problems
problems, warnings = [], []
for rr in runs:
    name = f"{rr['scenario']}/{rr['target']}/pair {rr['pair']}"
    if not rr["completed"]:
        problems.append(f"{name}: no successful request")
    if rr["errors"]:
        detail = rr.get("first_errors") or ""
        problems.append(f"{name}: {rr['errors']} errors / non-2xx of {rr['requests']} {detail}")
    if rr.get("timeouts"):
        warnings.append(f"{name}: {rr['timeouts']} wrk socket timeouts (10 s)")
    if rr["scenario"] == "exchange" and rr.get("elapsed_s") is not None and rr["elapsed_s"] < 0.5 * meta["duration_s"]:
        warnings.append(f"{name}: the minted codes lasted only {rr['elapsed_s']} s")

lines = []
title = "mcpauth vs Better Auth MCP peer" + (" — QUICK smoke run: numbers are not meaningful" if quick else "")
lines.append(f"## {title}")
lines.append("")
vv = meta["versions"]
lines.append(
    f"{meta['stamp']} · `{meta['command']}` · {meta['profile']} build · {meta['pairs']} pair(s) × {meta['duration_s']} s "
    f"(+{meta['warmup_s']} s warm-up) · load: {meta['load_generator']} · {meta['machine']['nproc']} cores "
    f"({meta['machine']['cpu']}) · load average {meta['machine']['loadavg_start']} → {meta['machine'].get('loadavg_end', '?')}"
)
lines.append(
    f"{vv['mcpauth']} ({vv['git']}), {vv['rustc']} · peer: better-auth {vv['better_auth']}, "
    f"better-sqlite3 {vv['better_sqlite3']} (SQLITE_WAL=1), node {vv['node']} · wrk {vv['wrk']}"
)
if meta.get("server_env"):
    lines.append(f"mcpauth server environment: `{meta['server_env']}`")
lines.append("")
lines.append("| scenario | mcpauth | peer (or reference) | ratio (median of pairs) "
             "| server CPU µs per request (mcpauth / reference) | CPU, mcpauth | target | |")
lines.append("|---|---:|---:|---:|---:|---:|---|---|")
for row in rows:
    lines.append("| " + " | ".join(row) + " |")
lines.append("")
lines.append("Server CPU per request: user+sys of the server process (`/proc/PID/stat` before and after each "
             "measured round) ÷ its successful requests, median of pairs; it does not depend on how the cores are "
             "shared with the load generator. Per pair:")
lines.append("")
lines.append("| scenario | mcpauth µs | reference µs | per-pair req/s (mcpauth / reference) | per-pair CPU µs (mcpauth / reference) |")
lines.append("|---|---:|---:|---|---|")
for scen, s in summary["scenarios"].items():
    if not s["pairs"]:
        continue
    cpu_a = "—" if s["a_cpu_us"] is None else f"{s['a_cpu_us']:.0f}"
    cpu_b = "—" if s["b_cpu_us"] is None else f"{s['b_cpu_us']:.0f}"
    per = ", ".join(f"{fmt_rate(p)} / {fmt_rate(q)}" for p, q in zip(s["a_rps_all"], s["b_rps_all"]))
    per_cpu = ", ".join(f"{fmt_us(p)} / {fmt_us(q)}" for p, q in zip(s["a_cpu_all"], s["b_cpu_all"]))
    lines.append(f"| {scen} ({s['a']} vs {s['b']}) | {cpu_a} | {cpu_b} | {per} | {per_cpu} |")
if mm.get("wal_bytes") is not None and pm.get("wal_bytes") is not None:
    lines.append("")
    lines.append(
        f"Database files after the load above: mcpauth {mm['db_bytes'] / 2**20:.1f} MiB + WAL {mm['wal_bytes'] / 2**20:.1f} MiB; "
        f"peer {pm['db_bytes'] / 2**20:.1f} MiB + WAL {pm['wal_bytes'] / 2**20:.1f} MiB."
    )
if sc:
    lines.append("")
    lines.append(
        f"Scale databases: {fmt_rate(sc['tokens_big'])} tokens → {sc['db_big_bytes'] / 2**20:.0f} MiB; "
        f"{fmt_rate(sc['tokens_small'])} tokens → {sc['db_small_bytes'] / 2**20:.1f} MiB. "
        f"RSS after the scale runs: {sc['rss_big_kb'] / 1024:.1f} MiB vs {sc['rss_small_kb'] / 1024:.1f} MiB."
    )
if warnings:
    lines.append("")
    lines.append("Warnings: " + "; ".join(warnings))
if problems:
    lines.append("")
    lines.append("**FAILED runs:** " + "; ".join(problems))
text = "\n".join(lines) + "\n"
print(text)
open(os.path.join(out, "summary.md"), "w").write(text)
summary["problems"] = problems
summary["warnings"] = warnings
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=1)
sys.exit(1 if problems else 0)

// A recording reverse proxy in front of mcpauth, so that a failed conformance check can be reported
// with the exact requests and responses that led to it. mcpauth runs with `--issuer` set to the
// proxy's origin; the proxy keeps the Host header (like a reverse proxy with "preserve host"), so
// the server sees exactly what the conformance suite sent. Bodies are buffered (they are small).
import http from "node:http";

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "te",
  "trailer",
  "content-length",
]);

function readAll(stream) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    stream.on("data", (c) => chunks.push(c));
    stream.on("end", () => resolve(Buffer.concat(chunks)));
    stream.on("error", reject);
  });
}

function pairs(raw) {
  const out = [];
  for (let i = 0; i < raw.length; i += 2) out.push([raw[i], raw[i + 1]]);
  return out;
}

/**
 * Listens on 127.0.0.1:0. Returns { port, origin, setTarget("127.0.0.1:PORT"), exchanges, close() }.
 * Each exchange: { seq, at, method, path, request: {headers: [[k,v]...], body}, status,
 * response: {headers: [[k,v]...], body} } (bodies as UTF-8 text).
 */
export async function startRecordingProxy() {
  let target;
  const exchanges = [];
  let seq = 0;
  const server = http.createServer(async (req, res) => {
    const exchange = {
      seq: ++seq,
      at: new Date().toISOString(),
      method: req.method,
      path: req.url,
      request: { headers: pairs(req.rawHeaders) },
    };
    exchanges.push(exchange);
    try {
      const body = await readAll(req);
      exchange.request.body = body.toString("utf8");
      if (!target) throw new Error("proxy has no target yet");
      const [host, port] = [target.slice(0, target.lastIndexOf(":")), Number(target.slice(target.lastIndexOf(":") + 1))];
      const headers = pairs(req.rawHeaders).filter(([k]) => !HOP_BY_HOP.has(k.toLowerCase()));
      if (body.length > 0 || !["GET", "HEAD"].includes(req.method)) headers.push(["Content-Length", String(body.length)]);
      const upstream = await new Promise((resolve, reject) => {
        const r = http.request({ host, port, method: req.method, path: req.url, headers: headers.flat(), agent: false }, resolve);
        r.on("error", reject);
        r.end(body);
      });
      const resBody = await readAll(upstream);
      exchange.status = upstream.statusCode;
      exchange.response = { headers: pairs(upstream.rawHeaders), body: resBody.toString("utf8") };
      const outHeaders = pairs(upstream.rawHeaders).filter(([k]) => !HOP_BY_HOP.has(k.toLowerCase()));
      outHeaders.push(["Content-Length", String(resBody.length)]);
      res.writeHead(upstream.statusCode, upstream.statusMessage, outHeaders.flat());
      res.end(resBody);
    } catch (e) {
      exchange.error = String(e);
      if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" });
      res.end(`recording proxy: ${e}`);
    }
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const { port } = server.address();
  return {
    port,
    origin: `http://localhost:${port}`,
    setTarget: (hostPort) => {
      target = hostPort;
    },
    exchanges,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

/** Prints one exchange as raw-ish HTTP, bodies cut at `max` characters. */
export function formatExchange(x, max = 3000) {
  const cut = (s) => (s && s.length > max ? `${s.slice(0, max)}… [${s.length - max} more characters]` : s ?? "");
  const lines = [`--> ${x.method} ${x.path} HTTP/1.1`];
  for (const [k, v] of x.request.headers) lines.push(`    ${k}: ${v}`);
  if (x.request.body) lines.push("", ...cut(x.request.body).split("\n").map((l) => `    ${l}`));
  if (x.error) {
    lines.push(`<-- (no response: ${x.error})`);
  } else {
    lines.push(`<-- HTTP/1.1 ${x.status}`);
    for (const [k, v] of x.response?.headers ?? []) lines.push(`    ${k}: ${v}`);
    if (x.response?.body) lines.push("", ...cut(x.response.body).split("\n").map((l) => `    ${l}`));
  }
  return lines.join("\n");
}

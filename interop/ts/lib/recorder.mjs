// A fetch that records what a client sends and receives, so that a test can assert the order of
// the flow (401 -> discovery -> registration -> token -> MCP) and print the exchange when it fails.
// Secrets (tokens, codes, verifiers, client secrets) are shortened in the record.

const SECRET_KEYS = /^(access_token|refresh_token|id_token|code|code_verifier|client_secret|authorization)$/i;

export function redact(value) {
  if (typeof value !== "string") return value;
  return value.length <= 12 ? "[redacted]" : `${value.slice(0, 4)}…${value.slice(-4)}`;
}

function redactParams(text) {
  const p = new URLSearchParams(text);
  for (const [k, v] of [...p]) if (SECRET_KEYS.test(k)) p.set(k, redact(v));
  return Object.fromEntries(p);
}

function redactJson(obj) {
  if (!obj || typeof obj !== "object") return obj;
  const out = Array.isArray(obj) ? [] : {};
  for (const [k, v] of Object.entries(obj)) out[k] = SECRET_KEYS.test(k) ? redact(String(v)) : redactJson(v);
  return out;
}

function describeBody(body, contentType) {
  if (body === undefined || body === null) return undefined;
  const text = typeof body === "string" ? body : body instanceof URLSearchParams ? body.toString() : undefined;
  if (text === undefined) return "[stream]";
  if (/json/i.test(contentType ?? "") || /^\s*[[{]/.test(text)) {
    try {
      return redactJson(JSON.parse(text));
    } catch {
      /* not JSON after all */
    }
  }
  if (/x-www-form-urlencoded/i.test(contentType ?? "") || /^[\w.-]+=/.test(text)) return redactParams(text);
  return text.slice(0, 500);
}

/**
 * Returns { fetch, entries, summary() }. Each entry: { method, url, status, request: {headers,
 * body}, response: {headers, body} } — response bodies of OAuth endpoints and of MCP error answers
 * are kept (JSON, redacted); MCP success bodies are summarised.
 */
export function createRecorder(baseFetch = fetch) {
  const entries = [];
  const recordingFetch = async (input, init = {}) => {
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    const method = (init.method ?? (typeof input === "object" && "method" in input ? input.method : "GET")).toUpperCase();
    const reqHeaders = Object.fromEntries(new Headers(init.headers ?? {}));
    if (reqHeaders.authorization) reqHeaders.authorization = reqHeaders.authorization.replace(/ (.+)$/, (m, t) => ` ${redact(t)}`);
    const entry = {
      method,
      url,
      request: { headers: reqHeaders, body: describeBody(init.body, reqHeaders["content-type"]) },
    };
    entries.push(entry);
    let res;
    try {
      res = await baseFetch(input, init);
    } catch (e) {
      entry.error = String(e);
      throw e;
    }
    entry.status = res.status;
    const headers = Object.fromEntries(res.headers);
    entry.response = { headers };
    const ct = headers["content-type"] ?? "";
    if (/json/i.test(ct)) {
      try {
        entry.response.body = redactJson(await res.clone().json());
      } catch {
        entry.response.body = "[unparsable JSON]";
      }
    }
    return res;
  };
  const summary = () =>
    entries
      .map((e) => {
        const u = new URL(e.url);
        const www = e.response?.headers?.["www-authenticate"];
        const rpc = e.request.body && typeof e.request.body === "object" && e.request.body.method;
        return `${e.method} ${u.pathname}${rpc ? ` (${rpc})` : ""} -> ${e.status ?? e.error}${www ? `  WWW-Authenticate: ${www}` : ""}`;
      })
      .join("\n");
  return { fetch: recordingFetch, entries, summary };
}

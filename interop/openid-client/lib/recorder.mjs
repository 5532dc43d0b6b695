// A fetch that records what a client sends and receives, so that a test can assert what the
// library did (which endpoints, with what) and print the exchanges when a step fails.
// Secrets (tokens, codes, verifiers, client secrets) are shortened in the record.
// Adapted from interop/ts/lib/recorder.mjs: also keeps non-JSON bodies and redacts `token`.

const SECRET_KEYS = /^(access_token|refresh_token|id_token|token|code|code_verifier|client_secret|authorization)$/i;

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
 * Returns { fetch, entries, summary(), details(n) }. Each entry: { method, url, status, request:
 * {headers, body}, response: {headers, body} }: JSON bodies are kept (redacted), other bodies as
 * their first 500 characters. `details(n)` prints the last n exchanges in full.
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
    const text = await res.clone().text();
    if (/json/i.test(ct)) {
      try {
        entry.response.body = redactJson(JSON.parse(text));
      } catch {
        entry.response.body = `[unparsable JSON] ${text.slice(0, 500)}`;
      }
    } else if (text) {
      entry.response.body = text.slice(0, 500);
    }
    return res;
  };
  const summary = () =>
    entries
      .map((e) => {
        const u = new URL(e.url);
        const www = e.response?.headers?.["www-authenticate"];
        return `${e.method} ${u.pathname} -> ${e.status ?? e.error}${www ? `  WWW-Authenticate: ${www}` : ""}`;
      })
      .join("\n");
  const details = (n = 3) => entries.slice(-n).map((e) => JSON.stringify(e, null, 2)).join("\n");
  return { fetch: recordingFetch, entries, summary, details };
}

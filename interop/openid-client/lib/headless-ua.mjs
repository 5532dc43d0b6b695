// The "browser" step of an OAuth authorization-code flow, without a browser: follows the
// authorization URL with a cookie jar, submits mcpauth's real sign-in form (email, password and the
// hidden csrf_token / authorize_query) and consent form (hidden consent_code / csrf_token, plus
// accept=true), and stops at the redirect to the client's redirect_uri. Nothing needs to listen
// there: the redirect is read from the Location header, never followed. Plain Node (no packages).
// A copy of interop/ts/lib/headless-ua.mjs, kept here so that this suite is self-contained.
//
//   const cb = await authorizeHeadlessly(authorizationUrl, { redirectUri, email, password });
//   cb.code, cb.state, cb.iss, cb.callbackUrl, cb.hops
//
// A form is found in any HTML page on the way; a second visit to the same form (a sign-in form
// shown again after a wrong password, say) is an error rather than a loop.

const ENTITIES = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", "#39": "'", "#x27": "'", "#x2F": "/" };

export function decodeEntities(s) {
  return s.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (m, e) => {
    if (ENTITIES[e] !== undefined) return ENTITIES[e];
    if (/^#x/i.test(e)) return String.fromCodePoint(parseInt(e.slice(2), 16));
    if (/^#/.test(e)) return String.fromCodePoint(parseInt(e.slice(1), 10));
    return m;
  });
}

function attr(tag, name) {
  const m = tag.match(new RegExp(`\\s${name}\\s*=\\s*("([^"]*)"|'([^']*)'|([^\\s>]+))`, "i"));
  if (!m) return undefined;
  return decodeEntities(m[2] ?? m[3] ?? m[4] ?? "");
}

/** Every <form> of a page: { method, action, inputs: [{name, value, type}], buttons: [{name, value}] }. */
export function parseForms(html) {
  const forms = [];
  for (const m of html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)) {
    const open = `<form${m[1]}>`;
    const body = m[2];
    const inputs = [];
    for (const t of body.matchAll(/<input\b[^>]*>/gi)) {
      const name = attr(t[0], "name");
      if (!name) continue;
      const type = (attr(t[0], "type") ?? "text").toLowerCase();
      if ((type === "checkbox" || type === "radio") && !/\schecked\b/i.test(t[0])) continue;
      if (type === "submit") continue; // a submit input counts only when it is the one pressed
      inputs.push({ name, value: attr(t[0], "value") ?? "", type });
    }
    const buttons = [];
    for (const t of body.matchAll(/<(?:button|input)\b[^>]*>/gi)) {
      const type = (attr(t[0], "type") ?? (/^<button/i.test(t[0]) ? "submit" : "text")).toLowerCase();
      if (type !== "submit") continue;
      buttons.push({ name: attr(t[0], "name"), value: attr(t[0], "value") ?? "" });
    }
    forms.push({ method: (attr(open, "method") ?? "get").toLowerCase(), action: attr(open, "action"), inputs, buttons });
  }
  return forms;
}

/** The visible text of an HTML page (or the start of any other body), for error messages. */
function pageText(body, max = 300) {
  const text = /<html|<body|<!doctype/i.test(body)
    ? decodeEntities(body.replace(/<head>[\s\S]*?<\/head>/i, " ").replace(/<[^>]+>/g, " "))
    : body;
  return text.replace(/\s+/g, " ").trim().slice(0, max);
}

class CookieJar {
  #cookies = new Map();
  store(res) {
    for (const sc of res.headers.getSetCookie()) {
      const [pair, ...attrs] = sc.split(";");
      const eq = pair.indexOf("=");
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const maxAge = attrs.map((a) => a.trim().match(/^max-age=(-?\d+)$/i)?.[1]).find((v) => v !== undefined);
      if (value === "" || (maxAge !== undefined && Number(maxAge) <= 0)) this.#cookies.delete(name);
      else this.#cookies.set(name, value);
    }
  }
  header() {
    return [...this.#cookies].map(([k, v]) => `${k}=${v}`).join("; ");
  }
  names() {
    return [...this.#cookies.keys()];
  }
}

/**
 * Drives `authorizationUrl` to the redirect to `redirectUri` and returns what the client would
 * receive there. Throws on an error redirect (`error=`), an HTML page without a form, an
 * unexpected status, a repeated form, or more than `maxHops` requests.
 *
 * `approve` (default true) chooses the consent button: the submit button named like `accept` with
 * value `true` (or allow/approve/yes), else the field `accept=true` is added.
 */
export async function authorizeHeadlessly(
  authorizationUrl,
  {
    redirectUri,
    email,
    password,
    approve = true,
    fetchFn = fetch,
    maxHops = 12,
    log = () => {},
    userAgent = "mcpauth-interop-headless-ua",
  } = {},
) {
  if (!redirectUri) throw new Error("authorizeHeadlessly: redirectUri is required");
  const start = new URL(authorizationUrl);
  const target = new URL(redirectUri);
  const jar = new CookieJar();
  const hops = [];
  const postedForms = new Set();
  let url = start;
  let method = "GET";
  let body;
  for (let hop = 0; hop < maxHops; hop++) {
    if (url.origin !== start.origin) {
      throw new Error(`UA: the authorization server sent the browser to another origin: ${url.href}`);
    }
    const headers = { accept: "text/html,application/xhtml+xml", "user-agent": userAgent };
    const cookie = jar.header();
    if (cookie) headers.cookie = cookie;
    if (body !== undefined) {
      headers["content-type"] = "application/x-www-form-urlencoded";
      headers.origin = start.origin; // as a browser submitting a same-origin form does
    }
    const res = await fetchFn(url.href, { method, headers, body, redirect: "manual" });
    jar.store(res);
    const location = res.headers.get("location");
    hops.push({ method, url: url.href, status: res.status, location: location ?? undefined });
    log(`UA ${method} ${url.pathname}${url.search ? "?…" : ""} -> ${res.status}${location ? ` (Location: ${location.split("?")[0]}…)` : ""}`);

    if (res.status >= 300 && res.status < 400) {
      await res.arrayBuffer();
      if (!location) throw new Error(`UA: ${res.status} without Location at ${url.href}`);
      const next = new URL(location, url);
      if (next.origin === target.origin && next.pathname === target.pathname) {
        const p = next.searchParams;
        if (p.has("error")) {
          const err = new Error(`authorization error: ${p.get("error")} ${p.get("error_description") ?? ""}`.trim());
          err.callbackUrl = next.href;
          throw err;
        }
        return {
          code: p.get("code"),
          state: p.get("state"),
          iss: p.get("iss"),
          callbackUrl: next.href,
          params: p,
          hops,
          cookies: jar.names(),
        };
      }
      url = next;
      method = "GET";
      body = undefined;
      continue;
    }

    const text = await res.text();
    if (res.status !== 200 || !/text\/html/i.test(res.headers.get("content-type") ?? "")) {
      throw new Error(`UA: unexpected ${res.status} at ${method} ${url.href}: ${pageText(text)}`);
    }
    const form = parseForms(text).find((f) => f.method === "post");
    if (!form) throw new Error(`UA: HTML page without a POST form at ${url.href}: ${pageText(text)}`);
    const action = new URL(form.action || url.pathname + url.search, url);
    const formKey = `${action.pathname} ${form.inputs.map((i) => i.name).sort().join(",")}`;
    if (postedForms.has(formKey)) {
      throw new Error(`UA: the form at ${action.pathname} came back after it was submitted: ${pageText(text)}`);
    }
    postedForms.add(formKey);

    const fields = new URLSearchParams();
    for (const input of form.inputs) {
      if (/^(email|username|login)$/i.test(input.name) && email !== undefined) fields.set(input.name, email);
      else if (input.type === "password" && password !== undefined) fields.set(input.name, password);
      else fields.append(input.name, input.value);
    }
    const named = form.buttons.filter((b) => b.name);
    if (named.length > 0) {
      const yes = /^(true|allow|approve|accept|yes|1)$/i;
      const pressed = named.find((b) => yes.test(b.value) === approve) ?? named[0];
      fields.set(pressed.name, pressed.value);
    } else if (form.inputs.some((i) => /consent/i.test(i.name)) && !fields.has("accept")) {
      fields.set("accept", approve ? "true" : "false");
    }
    url = action;
    method = "POST";
    body = fields.toString();
  }
  throw new Error(`UA: more than ${maxHops} requests without reaching ${redirectUri}`);
}

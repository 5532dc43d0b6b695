//! Scaling out (SPEC §1, §7): two `mcpauth serve` processes — the real binary — on one fresh
//! PostgreSQL schema, configured with the same public issuer as if behind one load balancer,
//! act as one server. The test talks to each by its own address, with one cookie-keeping
//! browser (cookies ignore ports, as they would behind the balancer):
//!
//! the sign-in started on B resumes on A (the signed pending-authorization cookie: one server
//! secret) → consent approved on B (the pending consent A stored) → code exchanged on A →
//! the id_token A signed verifies against B's JWKS → MCP `tools/call echo` with the access
//! token on both → refresh on B → the same refresh token sent to A and B at once rotates once
//! → a revocation on A holds on B within the revocation check interval of B's token cache →
//! a code exchanged on B and replayed on A revokes B's tokens → the per-account sign-in lock set off on A holds on B.
//!
//! PostgreSQL is `MCPAUTH_TEST_POSTGRES_URL` (see `common`); the test fails when it is down.

use std::collections::HashSet;
use std::process::Stdio;
use std::time::Duration;

use crate::common::{
    PASSWORD, PgSchema, REDIRECT_URI, after_revocation_check, browser, client, mcpauth, pkce,
    query_of, unique_name,
};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};
use tokio::time::timeout;

/// The public origin both instances are configured with: where a load balancer would be.
/// Nothing listens there; the test reaches each instance at its own address.
const ISSUER: &str = "http://localhost:39999";

/// A running `mcpauth serve` process.
struct Instance {
    name: &'static str,
    address: String,
    banner: Vec<String>,
    _child: Child,
    _stdout: Lines<BufReader<ChildStdout>>,
    _dir: tempfile::TempDir,
}

impl Instance {
    /// `mcpauth serve` on a free port of the loopback address, on `database_url`, with the
    /// shared issuer; waits for its banner (through the `Rate limits:` line).
    async fn start(name: &'static str, database_url: &str) -> Instance {
        // Its own working directory, so that no mcpauth.toml is read; no MCPAUTH_* variable of
        // the test's environment either.
        let dir = tempfile::tempdir().unwrap();
        let mut child = mcpauth(dir.path())
            .args(["serve", "--bind", "127.0.0.1:0", "--issuer", ISSUER])
            .args(["--database-url", database_url])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("mcpauth serve starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut banner = Vec::new();
        let mut address = None;
        loop {
            let line = timeout(Duration::from_secs(60), lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("{name} prints its banner: {banner:?}"))
                .unwrap()
                .unwrap_or_else(|| panic!("{name} exited early: {banner:?}"));
            banner.push(line.clone());
            let line = line.trim();
            if let Some(value) = line.strip_prefix("Listening on:") {
                address = Some(value.trim().to_owned());
            }
            if line.starts_with("Rate limits:") {
                break;
            }
        }
        Instance {
            name,
            address: address.unwrap_or_else(|| panic!("{name}: no address in {banner:?}")),
            banner,
            _child: child,
            _stdout: lines,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    /// A JSON post as a page of the issuer's origin would send it.
    async fn post_json(&self, http: &Client, path: &str, body: Value) -> Response {
        http.post(self.url(path))
            .header("origin", ISSUER)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn token(&self, form: &[(&str, &str)]) -> Response {
        client()
            .post(self.url("/api/auth/mcp/token"))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    async fn refresh(&self, client_id: &str, refresh_token: &str) -> Response {
        self.token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", client_id),
        ])
        .await
    }

    /// MCP `tools/call echo` with a bearer token; the status and, on 200, the echoed text.
    async fn echo(&self, access_token: &str, message: &str) -> (StatusCode, String) {
        let response = client()
            .post(self.url("/api/mcp"))
            .bearer_auth(access_token)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18")
            .body(
                json!({
                    "jsonrpc": "2.0", "id": 1, "method": "tools/call",
                    "params": { "name": "echo", "arguments": { "message": message } },
                })
                .to_string(),
            )
            .send()
            .await
            .unwrap();
        let status = response.status();
        if status != StatusCode::OK {
            return (status, String::new());
        }
        let body: Value = response.json().await.unwrap();
        let text = body["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: no echo in {body}", self.name))
            .to_owned();
        (status, text)
    }

    async fn session_status(&self, access_token: &str) -> StatusCode {
        client()
            .get(self.url("/api/auth/mcp/get-session"))
            .bearer_auth(access_token)
            .send()
            .await
            .unwrap()
            .status()
    }

    async fn jwks(&self) -> JwkSet {
        client()
            .get(self.url("/api/auth/mcp/jwks"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

fn text_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {value}"))
}

/// Approves a pending consent through the JSON API of `on`; the redirect back to the client.
async fn approve(on: &Instance, browser: &Client, consent_url: &str) -> String {
    let consent_code = query_of(consent_url)["consent_code"].clone();
    let response = on
        .post_json(
            browser,
            "/api/auth/oauth2/consent",
            json!({ "accept": true, "consent_code": consent_code }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK, "consent on {}", on.name);
    let body: Value = response.json().await.unwrap();
    text_of(&body, "redirectURI").to_owned()
}

/// `GET /authorize` on `on` for a public client; the response.
async fn authorize(on: &Instance, browser: &Client, client_id: &str, challenge: &str) -> Response {
    let url = reqwest::Url::parse_with_params(
        &on.url("/api/auth/mcp/authorize"),
        &[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", REDIRECT_URI),
            ("scope", "openid profile email mcp:tools"),
            ("state", "st"),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
            ("nonce", "n-0S6"),
        ],
    )
    .unwrap();
    browser.get(url).send().await.unwrap()
}

/// The code in a redirect back to the client, after checking `iss` and `state`.
fn code_in(redirect: &str) -> String {
    assert!(
        redirect.starts_with(REDIRECT_URI),
        "back at the client: {redirect}"
    );
    let query = query_of(redirect);
    assert_eq!(query["iss"], ISSUER, "the shared issuer (RFC 9207)");
    assert_eq!(query["state"], "st");
    query["code"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_database_act_as_one_server() {
    let schema = PgSchema::create().await;
    let database_url = schema.url();

    // Both start at once on the empty schema: one migrates while the other waits on the
    // advisory lock; both agree on the server secret.
    let (a, b) = tokio::join!(
        Instance::start("A", &database_url),
        Instance::start("B", &database_url)
    );
    for instance in [&a, &b] {
        let banner = instance.banner.join("\n");
        assert!(
            banner.contains(&format!("Issuer:        {ISSUER}")),
            "{banner}"
        );
        assert!(
            banner.contains("Rate limits:   database (shared"),
            "PostgreSQL shares rate limits by default: {banner}"
        );
        let health = client().get(instance.url("/healthz")).send().await.unwrap();
        assert_eq!(health.status(), StatusCode::OK);
        assert_eq!(health.text().await.unwrap(), "ok");
    }
    assert_ne!(a.address, b.address);

    // ---- a client registered on B; the browser's sign-in starts on B and resumes on A ----
    let registered = client()
        .post(b.url("/api/auth/mcp/register"))
        .json(&json!({
            "client_name": "Two-instance client",
            "redirect_uris": [REDIRECT_URI],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), StatusCode::CREATED);
    let registered: Value = registered.json().await.unwrap();
    let client_id = text_of(&registered, "client_id").to_owned();

    let browser = browser();
    let (verifier, challenge) = pkce();
    let to_sign_in = authorize(&b, &browser, &client_id, &challenge).await;
    assert_eq!(to_sign_in.status(), StatusCode::FOUND);
    let location = to_sign_in.headers()["location"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(location.contains("/sign-in"), "no session yet: {location}");

    let email = format!("{}@example.com", unique_name("two").to_lowercase());
    let signed_up = a
        .post_json(
            &browser,
            "/api/auth/sign-up/email",
            json!({ "email": email, "password": PASSWORD, "name": "Two Instances" }),
        )
        .await;
    assert_eq!(signed_up.status(), StatusCode::OK);
    let signed_up: Value = signed_up.json().await.unwrap();
    assert_eq!(
        signed_up["redirect"], true,
        "A resumed the authorization B remembered in its signed cookie: {signed_up}"
    );
    let consent_url = text_of(&signed_up, "url").to_owned();
    assert!(consent_url.contains("consent_code="), "{consent_url}");

    // ---- consent on B, exchange on A ----
    let code = code_in(&approve(&b, &browser, &consent_url).await);
    let exchanged = a
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", &client_id),
            ("code_verifier", &verifier),
        ])
        .await;
    assert_eq!(exchanged.status(), StatusCode::OK, "exchange on A");
    let tokens: Value = exchanged.json().await.unwrap();
    let access1 = text_of(&tokens, "access_token").to_owned();
    let refresh1 = text_of(&tokens, "refresh_token").to_owned();

    // ---- the id_token A signed verifies against B's published keys ----
    let id_token = text_of(&tokens, "id_token");
    let header = decode_header(id_token).unwrap();
    let kid = header.kid.clone().expect("the id_token names its key");
    let jwks = b.jwks().await;
    let jwk = jwks
        .find(&kid)
        .unwrap_or_else(|| panic!("B publishes A's key {kid}"));
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[client_id.as_str()]);
    validation.set_issuer(&[ISSUER]);
    let claims = decode::<Value>(id_token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
        .expect("A's id_token verifies with B's JWKS")
        .claims;
    assert_eq!(claims["email"], email);
    assert_eq!(claims["nonce"], "n-0S6");

    // ---- the access token works on both ----
    for instance in [&a, &b] {
        let (status, text) = instance.echo(&access1, "hello").await;
        assert_eq!(status, StatusCode::OK, "MCP on {}", instance.name);
        assert_eq!(text, "Tool echo: hello");
    }

    // ---- refresh on B; its tokens work on A ----
    let refreshed = b.refresh(&client_id, &refresh1).await;
    assert_eq!(refreshed.status(), StatusCode::OK, "refresh on B");
    let refreshed: Value = refreshed.json().await.unwrap();
    let access2 = text_of(&refreshed, "access_token").to_owned();
    let refresh2 = text_of(&refreshed, "refresh_token").to_owned();
    assert_ne!(refresh2, refresh1);
    assert_eq!(a.echo(&access2, "after refresh").await.0, StatusCode::OK);

    // ---- a refresh race across the instances: exactly one rotation ----
    let (on_a, on_b) = tokio::join!(
        a.refresh(&client_id, &refresh2),
        b.refresh(&client_id, &refresh2)
    );
    let mut answers = Vec::new();
    for (name, response) in [("A", on_a), ("B", on_b)] {
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        match status {
            StatusCode::OK => answers.push(body),
            StatusCode::BAD_REQUEST => assert_eq!(body["error"], "invalid_grant", "{name}: {body}"),
            other => panic!("{name} answered {other}: {body}"),
        }
    }
    assert!(!answers.is_empty(), "one of the two rotated");
    if let [first, second] = answers.as_slice() {
        assert_eq!(
            first, second,
            "the loser got the winner's response again (retry within the grace window)"
        );
    }
    let successors: HashSet<&str> = answers
        .iter()
        .map(|body| text_of(body, "refresh_token"))
        .collect();
    assert_eq!(
        successors.len(),
        1,
        "one rotation, one successor: {successors:?}"
    );
    let refresh3 = successors.into_iter().next().unwrap().to_owned();
    let access3 = text_of(&answers[0], "access_token").to_owned();
    assert_eq!(b.echo(&access3, "after the race").await.0, StatusCode::OK);
    // The successor works (on either), and the grant goes on.
    let next = a.refresh(&client_id, &refresh3).await;
    assert_eq!(next.status(), StatusCode::OK, "the one successor works");
    let next: Value = next.json().await.unwrap();
    let access4 = text_of(&next, "access_token").to_owned();
    let refresh4 = text_of(&next, "refresh_token").to_owned();

    // ---- revocation on A is effective on B within its revocation check interval ----
    assert_eq!(b.session_status(&access4).await, StatusCode::OK);
    let revoked = client()
        .post(a.url("/api/auth/mcp/revoke"))
        .form(&[
            ("token", access4.as_str()),
            ("token_type_hint", "access_token"),
            ("client_id", client_id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK, "revoke on A");
    after_revocation_check().await;
    assert_eq!(b.session_status(&access4).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        b.echo(&access4, "revoked").await.0,
        StatusCode::UNAUTHORIZED,
        "B's MCP endpoint refuses the revoked token"
    );
    let dead = b.refresh(&client_id, &refresh4).await;
    assert_eq!(
        dead.status(),
        StatusCode::BAD_REQUEST,
        "the whole grant ended, its refresh token too"
    );

    // ---- a code exchanged on B and replayed on A: the replay revokes B's tokens (S8) ----
    let (verifier, challenge) = pkce();
    let response = authorize(&a, &browser, &client_id, &challenge).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    // Consent was given once for this client: straight back to it.
    let code = code_in(&location);
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("client_id", client_id.as_str()),
        ("code_verifier", verifier.as_str()),
    ];
    let first = b.token(&form).await;
    assert_eq!(first.status(), StatusCode::OK, "exchange on B");
    let first: Value = first.json().await.unwrap();
    let access5 = text_of(&first, "access_token");
    assert_eq!(a.echo(access5, "fresh grant").await.0, StatusCode::OK);
    let replay = a.token(&form).await;
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST, "replay on A");
    let replay: Value = replay.json().await.unwrap();
    assert_eq!(replay["error"], "invalid_grant");
    after_revocation_check().await;
    assert_eq!(
        b.session_status(access5).await,
        StatusCode::UNAUTHORIZED,
        "the replay on A revoked what B issued"
    );

    // ---- rate limits are shared: the sign-in lock set off on A holds on B ----
    // (the default sign_in_per_account is 10 failures a window of 60 s of real time; start
    // early in a window so that all ten fall into it)
    let second_of_window = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 60;
    if second_of_window > 40 {
        tokio::time::sleep(Duration::from_secs(61 - second_of_window)).await;
    }
    let attacker = client();
    for attempt in 1..=10 {
        let response = a
            .post_json(
                &attacker,
                "/api/auth/sign-in/email",
                json!({ "email": email, "password": format!("guess {attempt}") }),
            )
            .await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "guess {attempt}"
        );
    }
    let locked = b
        .post_json(
            &client(),
            "/api/auth/sign-in/email",
            json!({ "email": email, "password": PASSWORD }),
        )
        .await;
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(locked.headers().contains_key("retry-after"));

    drop((a, b));
    drop(schema);
}

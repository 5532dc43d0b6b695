//! Running the server (issue 13): JSON logs without secrets (SECURITY O1), the metrics listener
//! (O2), request ids, `/readyz`.

use std::sync::Arc;

use mcpauth_core::ManualClock;
use mcpauth_server::Application;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;

/// The values of the `Set-Cookie` headers of a response (`name=value` without attributes).
fn cookie_pairs(response: &reqwest::Response) -> Vec<String> {
    set_cookies(response)
        .iter()
        .map(|c| c.split(';').next().unwrap_or_default().to_owned())
        .collect()
}

fn cookie_values(pairs: &[String]) -> Vec<String> {
    pairs
        .iter()
        .filter_map(|pair| pair.split_once('=').map(|(_, v)| v.to_owned()))
        .filter(|v| !v.is_empty())
        .collect()
}

/// A `mcpauth serve` on a new SQLite file in `dir`, its standard error written to a file.
struct LoggedServer {
    server: ServeChild,
    log_path: std::path::PathBuf,
    database_url: String,
}

/// Starts `mcpauth serve` in `dir` (`RUST_LOG` unset, standard error to `dir/server.log`);
/// `configure` adds arguments and environment.
async fn serve_logging_to_a_file(
    dir: &std::path::Path,
    configure: impl FnOnce(&mut tokio::process::Command) -> &mut tokio::process::Command,
) -> LoggedServer {
    let log_path = dir.join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let database_url = format!("sqlite://{}", dir.join("server.db").display());
    let mut command = mcpauth(dir);
    command
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--database-url",
            &database_url,
        ])
        .env_remove("RUST_LOG")
        .stderr(std::process::Stdio::from(log));
    let server = ServeChild::start(configure(&mut command)).await;
    LoggedServer {
        server,
        log_path,
        database_url,
    }
}

/// The whole life of a grant against a `mcpauth serve` with `log_format = "json"` and metrics
/// on: sign-up, a failed and a good sign-in, confidential registration, the login resume
/// cookie, consent, code exchange, an MCP call, userinfo, refresh, revocation. Then every log
/// line is one JSON object, requests are logged with id, route, status and latency, security
/// events with client and user ids — and no secret the flow used appears in the log or in the
/// metrics.
#[tokio::test]
async fn o1_json_logs_and_metrics_of_a_full_flow_hold_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let LoggedServer {
        mut server,
        log_path,
        ..
    } = serve_logging_to_a_file(dir.path(), |command| {
        command
            .env("MCPAUTH_LOG_FORMAT", "json")
            .env("MCPAUTH_METRICS_BIND", "127.0.0.1:0")
            .env("MCPAUTH_RATE_LIMITS__ENABLED", "false")
    })
    .await;
    let port = server.address.rsplit(':').next().unwrap().to_owned();
    let app = TestApp::external(&format!("http://localhost:{port}"));
    let http = client();
    let mut secrets: Vec<String> = vec![PASSWORD.to_owned()];

    // Sign-up (session cookie), a failed sign-in (its wrong password), a good sign-in.
    let email = unique_email();
    let signed_up = app.sign_up(&http, &email).await;
    assert_eq!(signed_up.status(), StatusCode::OK);
    let wrong_password = "not-the-password-9f3b2c1d";
    secrets.push(wrong_password.to_owned());
    let failed = http
        .post(app.url("/api/auth/sign-in/email"))
        .header("origin", &app.base)
        .json(&json!({ "email": email, "password": wrong_password }))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), StatusCode::UNAUTHORIZED);
    let signed_in = http
        .post(app.url("/api/auth/sign-in/email"))
        .header("origin", &app.base)
        .json(&json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), StatusCode::OK);
    let session = cookie_pairs(&signed_in);
    assert!(!session.is_empty(), "sign-in sets the session cookie");
    secrets.extend(cookie_values(&session));
    secrets.extend(cookie_values(&cookie_pairs(&signed_up)));
    let cookie_header = session.join("; ");

    // A confidential client: its secret.
    let client = app
        .register(json!({
            "client_name": "O1 client",
            "redirect_uris": [REDIRECT_URI],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "client_secret_post",
        }))
        .await;
    let client_id = client["client_id"].as_str().unwrap().to_owned();
    let client_secret = client["client_secret"].as_str().unwrap().to_owned();
    secrets.push(client_secret.clone());

    let (verifier, challenge) = pkce();
    secrets.push(verifier.clone());
    let state = "state-o1-7c2e";
    let params = TestApp::authorize_params(&client_id, &challenge, "openid mcp:tools", state);

    // Without a session: the signed resume cookie.
    let resumed = app.authorize(&http, &params).await;
    assert_eq!(resumed.status(), StatusCode::FOUND);
    secrets.extend(cookie_values(&cookie_pairs(&resumed)));

    // With the session: consent (its consent code), then the code.
    let url = reqwest::Url::parse_with_params(&app.url(AUTHORIZE), &params).unwrap();
    let to_consent = http
        .get(url)
        .header("cookie", &cookie_header)
        .send()
        .await
        .unwrap();
    assert_eq!(to_consent.status(), StatusCode::FOUND);
    let consent_location = location(&to_consent);
    let consent_code = query_of(&consent_location)["consent_code"].clone();
    secrets.push(consent_code.clone());
    let approved = http
        .post(app.url("/api/auth/oauth2/consent"))
        .header("origin", &app.base)
        .header("cookie", &cookie_header)
        .json(&json!({ "accept": true, "consent_code": consent_code }))
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), StatusCode::OK);
    let approved: Value = approved.json().await.unwrap();
    let code = query_of(approved["redirectURI"].as_str().unwrap())["code"].clone();
    secrets.push(code.clone());

    let tokens: Value = app
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", &client_id),
            ("client_secret", &client_secret),
            ("code_verifier", &verifier),
        ])
        .await
        .json()
        .await
        .unwrap();
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    secrets.push(access.clone());
    secrets.push(refresh.clone());
    secrets.push(tokens["id_token"].as_str().unwrap().to_owned());

    // Using the access token: an MCP tool call and userinfo.
    let called = http
        .post(app.resource())
        .bearer_auth(&access)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .body(
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                   "params": {"name": "echo", "arguments": {"message": "hi"}}})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(called.status(), StatusCode::OK);
    let userinfo = http
        .get(app.url("/api/auth/mcp/userinfo"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(userinfo.status(), StatusCode::OK);

    // Refresh, then revoke the new refresh token.
    let refreshed: Value = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &client_id),
            ("client_secret", &client_secret),
        ])
        .await
        .json()
        .await
        .unwrap();
    let new_refresh = refreshed["refresh_token"].as_str().unwrap().to_owned();
    secrets.push(refreshed["access_token"].as_str().unwrap().to_owned());
    secrets.push(new_refresh.clone());
    let revoked = http
        .post(app.url("/api/auth/mcp/revoke"))
        .form(&[
            ("token", new_refresh.as_str()),
            ("client_id", &client_id),
            ("client_secret", &client_secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);

    // A request id of the client's is echoed and logged.
    let traced = http
        .get(app.url("/healthz"))
        .header("x-request-id", "o1-trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(traced.headers()["x-request-id"], "o1-trace-42");

    let metrics = http
        .get(
            server
                .metrics
                .clone()
                .expect("the banner names the metrics listener"),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"mcpauth_security_events_total{kind="token.issue"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"mcpauth_mcp_calls_total{tool="echo"} 1"#));

    server.stop().await;
    let log = std::fs::read_to_string(&log_path).unwrap();

    let secrets: Vec<&String> = secrets.iter().filter(|s| s.len() >= 8).collect();
    assert!(
        secrets.len() >= 12,
        "the flow used its secrets: {secrets:?}"
    );
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "the log holds {secret}");
        assert!(
            !metrics.contains(secret.as_str()),
            "the metrics hold {secret}"
        );
    }

    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let requests: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "request" && l["status"].is_number())
        .collect();
    let token_request = requests
        .iter()
        .find(|l| l["span"]["route"] == "/api/auth/mcp/token" && l["status"] == 200)
        .unwrap_or_else(|| panic!("a token request line in {log}"));
    assert!(token_request["latency_ms"].is_number());
    assert!(token_request["span"]["request_id"].is_string());
    assert!(
        requests
            .iter()
            .any(|l| l["span"]["request_id"] == "o1-trace-42"),
        "the client's request id is logged"
    );
    let issued = lines
        .iter()
        .find(|l| l["event"] == "token.issue")
        .unwrap_or_else(|| panic!("a token.issue event in {log}"));
    assert_eq!(issued["client_id"], client_id.as_str());
    assert!(issued["user_id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(issued["span"]["request_id"].is_string());
}

/// Every line of `text` as a JSON object, failing with the line that is not one.
fn json_lines(text: &str, stream: &str) -> Vec<Value> {
    text.lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{stream}: not JSON ({e}): {line:?}"));
            assert!(value.is_object(), "{stream}: not an object: {line:?}");
            value
        })
        .collect()
}

/// With `log_format = "json"`, a log shipper reading standard output and standard error
/// together sees only JSON (issue 18 item 11): the start banner is one JSON event on standard
/// output with what it says in text (issuer, MCP endpoint, address, metrics, upstream, rate
/// limits); requests, the stop and a failure to start are JSON lines on standard error.
#[tokio::test]
async fn json_logs_are_all_json_on_stdout_and_stderr_banner_included() {
    let dir = tempfile::tempdir().unwrap();
    let LoggedServer {
        mut server,
        log_path,
        database_url: db,
    } = serve_logging_to_a_file(dir.path(), |command| {
        command
            .args(["--upstream", "http://127.0.0.1:9/mcp"])
            .env("MCPAUTH_LOG_FORMAT", "json")
            .env("MCPAUTH_METRICS_BIND", "127.0.0.1:0")
    })
    .await;
    assert_eq!(
        server.banner.len(),
        1,
        "one banner line: {:?}",
        server.banner
    );
    let banner = &json_lines(&server.banner[0], "stdout")[0];
    assert_eq!(banner["message"], "mcpauth is ready");
    assert_eq!(banner["level"], "INFO");
    assert!(banner["timestamp"].is_string(), "{banner}");
    let port = server.address.rsplit(':').next().unwrap().to_owned();
    let issuer = format!("http://localhost:{port}");
    assert_eq!(banner["issuer"], issuer.as_str());
    assert_eq!(
        banner["mcp_endpoints"],
        format!("{issuer}/api/mcp").as_str()
    );
    assert_eq!(banner["upstreams"], "http://127.0.0.1:9/mcp");
    assert_eq!(banner["sign_up"], format!("{issuer}/sign-up").as_str());
    assert!(banner["metrics"].as_str().unwrap().ends_with("/metrics"));
    assert!(banner["rate_limits"].is_string(), "{banner}");
    assert!(
        banner.get("redirect_uris").is_none(),
        "no providers: {banner}"
    );

    // Some requests for the log: a page, a sign-up, a 404.
    let app = TestApp::external(&issuer);
    let http = client();
    assert_eq!(
        app.sign_up(&http, &unique_email()).await.status(),
        StatusCode::OK
    );
    let missing = http.get(app.url("/nowhere")).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    // A second server on the same address fails to start: its error is JSON too.
    let failed = mcpauth(dir.path())
        .args(["serve", "--bind", &server.address, "--database-url", &db])
        .env("MCPAUTH_LOG_FORMAT", "json")
        .env_remove("RUST_LOG")
        .output()
        .await
        .unwrap();
    assert!(!failed.status.success());
    assert!(failed.stdout.is_empty(), "{failed:?}");
    let failure = json_lines(
        &String::from_utf8_lossy(&failed.stderr),
        "stderr of the failure",
    );
    assert!(
        failure.iter().any(|line| line["level"] == "ERROR"
            && line["error"]
                .as_str()
                .is_some_and(|e| e.contains("could not listen"))),
        "{failure:?}"
    );

    server.stop().await;
    let mut rest = String::new();
    while let Some(line) = server.stdout.next_line().await.unwrap() {
        rest.push_str(&line);
        rest.push('\n');
    }
    json_lines(&rest, "stdout");
    let lines = json_lines(&std::fs::read_to_string(&log_path).unwrap(), "stderr");
    assert!(lines.iter().any(|l| l["message"] == "request"));
    assert!(lines.iter().any(|l| l["message"] == "stopped"));
}

/// Builds a server with `configure`, returning it and its metrics address (if any).
async fn build(
    configure: impl FnOnce(&mut mcpauth_server::Settings),
) -> (TestApp, Option<std::net::SocketAddr>) {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings();
    settings.database_url = format!("sqlite://{}", dir.path().join("m.db").display());
    configure(&mut settings);
    let app = Application::build(&settings, Some(Arc::new(ManualClock::new())))
        .await
        .unwrap();
    let metrics = app.metrics_address();
    let base = app.issuer().to_owned();
    tokio::spawn(app.run_until(async move {
        // Keeps the directory (and its database) until the test's runtime ends.
        let _dir = dir;
        std::future::pending::<()>().await
    }));
    (TestApp::external(&base), metrics)
}

#[tokio::test]
async fn o2_metrics_are_never_served_on_the_public_listener() {
    // Off by default: no metrics anywhere.
    let (app, metrics) = build(|_| {}).await;
    assert_eq!(metrics, None);
    let public = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(public.status(), StatusCode::NOT_FOUND);

    // Configured: on its own listener only.
    let (app, metrics) = build(|s| s.metrics_bind = Some("127.0.0.1:0".into())).await;
    let metrics = metrics.expect("a metrics listener");
    assert_ne!(app.url("/"), format!("http://{metrics}/"));
    let public = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(public.status(), StatusCode::NOT_FOUND);
    app.full_flow("mcp:tools").await;
    let scraped = app
        .http
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(scraped.status(), StatusCode::OK);
    let text = scraped.text().await.unwrap();
    for expected in [
        r#"mcpauth_http_requests_total{method="POST",route="/api/auth/mcp/register",status="201"} 1"#,
        r#"mcpauth_http_requests_total{method="GET",route="unmatched",status="404"}"#,
        "mcpauth_http_request_duration_seconds_bucket{",
        r#"mcpauth_security_events_total{kind="token.issue"} 1"#,
        r#"mcpauth_security_events_total{kind="consent.granted"} 1"#,
        r#"mcpauth_db_connections_open{pool="write"}"#,
    ] {
        assert!(text.contains(expected), "{expected} in {text}");
    }
}

#[tokio::test]
async fn request_ids_are_accepted_or_generated_and_echoed() {
    let app = spawn_app().await;
    let kept = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(kept.headers()["x-request-id"], "abc-123");
    // Missing or unusable (it would break a log line): the server makes one.
    for sent in [None, Some("has space"), Some("{\"json\":true}")] {
        let mut request = app.http.get(app.url("/api/auth/mcp/jwks"));
        if let Some(sent) = sent {
            request = request.header("x-request-id", sent);
        }
        let response = request.send().await.unwrap();
        let id = response.headers()["x-request-id"].to_str().unwrap();
        assert!(id.len() >= 16 && Some(id) != sent, "{sent:?} → {id}");
    }
    // Errors carry it too.
    let missing = app.http.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(missing.headers().contains_key("x-request-id"));
}

#[tokio::test]
async fn readyz_checks_the_database_and_the_redis_rate_limits() {
    let app = spawn_app().await;
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(ready.text().await.unwrap(), "ready");

    // Redis holds the rate limits and does not answer: not ready, liveness unchanged.
    let (redis_app, _) = build(|s| {
        s.rate_limits.enabled = true;
        s.redis_url = Some("redis://127.0.0.1:1".into());
    })
    .await;
    let started = std::time::Instant::now();
    let ready = redis_app
        .http
        .get(redis_app.url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(ready.text().await.unwrap().contains("redis"));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let live = redis_app
        .http
        .get(redis_app.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), StatusCode::OK);
}

/// Log lines gather in memory and go to standard error together (a write per line was a tenth
/// of the token endpoint's CPU): they still arrive while the server runs, within a fraction of
/// a second, in order, and the last of them when it stops.
#[tokio::test]
async fn log_lines_arrive_while_the_server_runs_and_when_it_stops() {
    let dir = tempfile::tempdir().unwrap();
    let LoggedServer {
        mut server,
        log_path,
        ..
    } = serve_logging_to_a_file(dir.path(), |command| {
        command.env("MCPAUTH_RATE_LIMITS__ENABLED", "false")
    })
    .await;
    let port = server.address.rsplit(':').next().unwrap().to_owned();
    let http = client();
    let ids: Vec<String> = (0..20).map(|n| format!("log-order-{n:02}")).collect();
    for id in &ids {
        let answered = http
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .header("x-request-id", id)
            .send()
            .await
            .unwrap();
        assert_eq!(answered.status(), StatusCode::OK);
    }
    let last = ids.last().unwrap();
    let arrived = std::time::Instant::now();
    let log = loop {
        let log = std::fs::read_to_string(&log_path).unwrap();
        if log.contains(last.as_str()) {
            break log;
        }
        assert!(
            arrived.elapsed() < std::time::Duration::from_secs(5),
            "the request lines reach the log while the server runs:\n{log}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let at: Vec<usize> = ids
        .iter()
        .map(|id| log.find(id.as_str()).unwrap())
        .collect();
    assert!(
        at.windows(2).all(|pair| pair[0] < pair[1]),
        "in order: {at:?}"
    );

    // A line logged just before the stop is not lost with the process.
    let answered = http
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .header("x-request-id", "log-before-stop")
        .send()
        .await
        .unwrap();
    assert_eq!(answered.status(), StatusCode::OK);
    server.stop().await;
    let log = std::fs::read_to_string(&log_path).unwrap();
    let before_stop = log.find("log-before-stop").expect("the last request line");
    let stopped = log.rfind("stopped").expect("the stop line");
    assert!(before_stop < stopped, "{log}");
}

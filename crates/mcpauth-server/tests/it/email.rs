//! Password reset by link and email verification (SECURITY S30), against a real SMTP server:
//! `mailin-embedded` runs in the test process on a loopback port, the server under test sends
//! to it with lettre over SMTP, and each test reads the received message, takes the link out
//! of it and follows it like a user would. The outbox is tested the same way: SMTP servers
//! that refuse, are down, or present a certificate that must not be trusted, and a server
//! killed with `kill -9` before its mail went out.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use mailin_embedded::{Handler, Response, Server, SslConfig, response};
use mcpauth_server::Settings;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::common::{
    PASSWORD, TestApp, browser, client, get_page, input_value, location, spawn_app_with,
    unique_email,
};

/// One message as the SMTP server received it.
#[derive(Debug, Clone)]
struct Received {
    to: Vec<String>,
    /// The raw message: headers and body, CRLF line ends.
    data: String,
}

impl Received {
    fn subject(&self) -> &str {
        self.data
            .lines()
            .find_map(|line| line.strip_prefix("Subject: "))
            .unwrap_or_default()
    }

    /// The body as a mail client shows it: after the headers, quoted-printable decoded when the
    /// message says so.
    fn body(&self) -> String {
        let (headers, body) = self.data.split_once("\r\n\r\n").unwrap_or_default();
        let quoted_printable = headers
            .to_ascii_lowercase()
            .contains("content-transfer-encoding: quoted-printable");
        if quoted_printable {
            decode_quoted_printable(body)
        } else {
            body.to_owned()
        }
    }

    /// The one line of the body that is a link.
    fn link(&self) -> String {
        let body = self.body();
        let links: Vec<&str> = body
            .lines()
            .map(str::trim)
            .filter(|line| line.starts_with("http://") || line.starts_with("https://"))
            .collect();
        assert_eq!(links.len(), 1, "one link in the mail:\n{}", self.data);
        links[0].to_owned()
    }
}

/// RFC 2045 §6.7: `=` at a line end is a soft line break, `=XX` an encoded byte.
fn decode_quoted_printable(text: &str) -> String {
    let joined = text.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match (bytes[i], hex) {
            (b'=', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (other, _) => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The SMTP handler: collects each message and hands it to the test. While `refusals` is
/// above zero (counting down) or negative (for ever), it answers `MAIL FROM` with 451 and
/// reports the refusal on `refused`.
#[derive(Clone)]
struct Collect {
    sender: mpsc::UnboundedSender<Received>,
    refused: mpsc::UnboundedSender<()>,
    refusals: Arc<AtomicI64>,
    to: Vec<String>,
    data: Vec<u8>,
}

impl Handler for Collect {
    fn mail(&mut self, _ip: std::net::IpAddr, _domain: &str, _from: &str) -> Response {
        let refuse = self
            .refusals
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                (left != 0).then_some(if left > 0 { left - 1 } else { left })
            })
            .is_ok();
        if refuse {
            let _ = self.refused.send(());
            return response::INTERNAL_ERROR;
        }
        response::OK
    }

    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.to = to.to_vec();
        self.data.clear();
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let _ = self.sender.send(Received {
            to: std::mem::take(&mut self.to),
            data: String::from_utf8_lossy(&std::mem::take(&mut self.data)).into_owned(),
        });
        response::OK
    }
}

/// A real SMTP server on a loopback port; its thread ends with the test process.
struct Inbox {
    port: u16,
    received: mpsc::UnboundedReceiver<Received>,
    refused: mpsc::UnboundedReceiver<()>,
    /// Refusals left (negative: refuse every mail).
    refusals: Arc<AtomicI64>,
    tls: mcpauth::SmtpTls,
    ca_file: Option<std::path::PathBuf>,
}

impl Inbox {
    fn start() -> Self {
        Self::start_with(SslConfig::None)
    }

    /// With `ssl`, the server offers STARTTLS.
    fn start_with(ssl: SslConfig) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (sender, received) = mpsc::unbounded_channel();
        let (refused_sender, refused) = mpsc::unbounded_channel();
        let refusals = Arc::new(AtomicI64::new(0));
        let mut server = Server::new(Collect {
            sender,
            refused: refused_sender,
            refusals: refusals.clone(),
            to: Vec::new(),
            data: Vec::new(),
        });
        server
            .with_name("smtp.test")
            .with_ssl(ssl)
            .unwrap()
            .with_tcp_listener(listener);
        std::thread::spawn(move || {
            let _ = server.serve();
        });
        Self {
            port,
            received,
            refused,
            refusals,
            tls: mcpauth::SmtpTls::None,
            ca_file: None,
        }
    }

    /// Refuses the next `count` mails (a negative count: every mail) with 451.
    fn refuse(&self, count: i64) {
        self.refusals.store(count, Ordering::SeqCst);
    }

    /// Waits for the next refusal; fails after 10 s.
    async fn next_refusal(&mut self) {
        tokio::time::timeout(Duration::from_secs(10), self.refused.recv())
            .await
            .expect("a mail is offered (and refused) within 10 s")
            .unwrap();
    }

    /// Settings that send mail to this server.
    fn configure(&self, settings: &mut Settings) {
        settings.smtp = Some(mcpauth::SmtpOptions {
            host: "127.0.0.1".to_owned(),
            port: Some(self.port),
            tls: self.tls,
            username: None,
            password: None,
            from: "mcpauth <no-reply@mcpauth.test>".to_owned(),
            timeout: Duration::from_secs(5),
            ca_file: self.ca_file.clone(),
        });
    }

    /// The next message; fails after 10 s.
    async fn next(&mut self) -> Received {
        tokio::time::timeout(Duration::from_secs(10), self.received.recv())
            .await
            .expect("a mail arrives within 10 s")
            .unwrap()
    }

    /// Asserts that no message arrives within a second.
    async fn nothing_more(&mut self) {
        if let Ok(Some(mail)) =
            tokio::time::timeout(Duration::from_secs(1), self.received.recv()).await
        {
            panic!("no mail expected, got one to {:?}", mail.to);
        }
    }
}

/// A server that mails through a fresh [`Inbox`].
async fn app_with_inbox(configure: impl FnOnce(&mut Settings)) -> (TestApp, Inbox) {
    let inbox = Inbox::start();
    let app = spawn_app_with(|settings| {
        inbox.configure(settings);
        configure(settings);
    })
    .await;
    (app, inbox)
}

/// Signs `email` up through the sign-up page in `browser` (verification optional: signed in).
async fn sign_up_page(app: &TestApp, browser: &Client, email: &str) -> reqwest::Response {
    let (_, _, html) = get_page(browser, &app.url("/sign-up")).await;
    let csrf = input_value(&html, "csrf_token").unwrap();
    browser
        .post(app.url("/sign-up"))
        .header("origin", &app.base)
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("name", "Mail User"),
            ("email", email),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap()
}

/// Signs in through the JSON API in a fresh browser; the status.
async fn sign_in_status(app: &TestApp, email: &str, password: &str) -> StatusCode {
    browser()
        .post(app.url("/api/auth/sign-in/email"))
        .header("origin", &app.base)
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap()
        .status()
}

/// The browser's session from `/api/auth/get-session` (`null` when signed out).
async fn session_of(app: &TestApp, browser: &Client) -> Value {
    browser
        .get(app.url("/api/auth/get-session"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Posts a page form after GETting `page` for its CSRF token.
async fn post_form(
    app: &TestApp,
    browser: &Client,
    page: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let (_, _, html) = get_page(browser, &app.url(page)).await;
    let csrf = input_value(&html, "csrf_token").expect("the page has a form");
    let mut form = vec![("csrf_token", csrf.as_str())];
    form.extend_from_slice(fields);
    browser
        .post(app.url(action))
        .header("origin", &app.base)
        .form(&form)
        .send()
        .await
        .unwrap()
}

/// `POST /api/auth/request-password-reset`: status and body.
async fn request_reset_api(app: &TestApp, email: &str) -> (StatusCode, String) {
    let response = client()
        .post(app.url("/api/auth/request-password-reset"))
        .header("origin", &app.base)
        .json(&json!({ "email": email }))
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

/// The token of a reset link (`…/reset-password/{token}?callbackURL=…`).
fn reset_token(link: &str) -> String {
    let path = url::Url::parse(link).unwrap().path().to_owned();
    path.rsplit('/').next().unwrap().to_owned()
}

/// Opens a mailed verification link in `browser` (a page with one button, nothing used up)
/// and presses the button: the answer to the button's form.
async fn press_verify_button(app: &TestApp, browser: &Client, link: &str) -> reqwest::Response {
    let (status, _, html) = get_page(browser, link).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the link opens the button page: {html}"
    );
    assert!(html.contains("Verify my email"), "{html}");
    assert!(html.contains("action=\"/api/auth/verify-email\""), "{html}");
    let field = |name: &str| input_value(&html, name).unwrap();
    browser
        .post(app.url("/api/auth/verify-email"))
        .header("origin", &app.base)
        .form(&[
            ("csrf_token", field("csrf_token")),
            ("token", field("token")),
            ("callbackURL", field("callbackURL")),
        ])
        .send()
        .await
        .unwrap()
}

/// How many mails wait in the outbox (sent ones are deleted).
async fn outbox_rows(app: &TestApp) -> i64 {
    let db = app.db().await;
    sqlx::query_scalar(r#"SELECT COUNT(*) FROM "mcpauthMailOutbox""#)
        .fetch_one(&db)
        .await
        .unwrap()
}

async fn audit_kinds(app: &TestApp) -> Vec<String> {
    let db = app.db().await;
    sqlx::query_scalar(r#"SELECT kind FROM "auditLog" ORDER BY id"#)
        .fetch_all(&db)
        .await
        .unwrap()
}

async fn email_verified(app: &TestApp, email: &str) -> bool {
    let db = app.db().await;
    sqlx::query_scalar::<_, bool>(r#"SELECT email_verified FROM "user" WHERE email = $1"#)
        .bind(email)
        .fetch_one(&db)
        .await
        .unwrap()
}

#[tokio::test]
async fn s30_password_reset_by_mailed_link_ends_every_session() {
    let (app, mut inbox) = app_with_inbox(|_| {}).await;
    let email = unique_email();
    let first = browser();
    assert_eq!(
        sign_up_page(&app, &first, &email).await.status(),
        StatusCode::SEE_OTHER
    );
    let verification = inbox.next().await; // optional verification: mailed, not required
    assert_eq!(verification.subject(), "Verify your email address");
    let second = browser();
    assert_eq!(
        second
            .post(app.url("/api/auth/sign-in/email"))
            .header("origin", &app.base)
            .json(&json!({ "email": email, "password": PASSWORD }))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    // "Forgot password" is linked from the sign-in page; its form answers "check your email".
    let (_, _, sign_in) = get_page(&browser(), &app.url("/sign-in")).await;
    assert!(sign_in.contains("href=\"/forgot-password\""));
    let anonymous = browser();
    let response = post_form(
        &app,
        &anonymous,
        "/forgot-password",
        "/forgot-password",
        &[("email", &email.to_uppercase())],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("Check your email"));

    let mail = inbox.next().await;
    assert_eq!(mail.to, std::slice::from_ref(&email));
    assert_eq!(mail.subject(), "Reset your password");
    let link = mail.link();
    assert!(
        link.starts_with(&app.url("/api/auth/reset-password/")),
        "{link}"
    );
    let token = reset_token(&link);
    assert_eq!(token.len(), 43);

    // Only the token's hash is stored.
    let db = app.db().await;
    let stored: Vec<(String, String)> =
        sqlx::query_as(r#"SELECT identifier, value FROM "verification""#)
            .fetch_all(&db)
            .await
            .unwrap();
    assert!(
        stored
            .iter()
            .all(|(id, value)| !id.contains(&token) && !value.contains(&token))
    );

    // The link leads to the form (Better Auth's redirect with ?token=…).
    let response = anonymous.get(&link).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let form_page = location(&response);
    assert_eq!(form_page, format!("/reset-password?token={token}"));
    let (status, _, html) = get_page(&anonymous, &app.url(&form_page)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Choose a new password"));
    assert_eq!(input_value(&html, "token").as_deref(), Some(token.as_str()));

    // A password that breaks the rules: the form again, the link still works.
    let response = post_form(
        &app,
        &anonymous,
        &form_page,
        "/reset-password",
        &[("token", &token), ("new_password", "short")],
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.unwrap().contains("at least"));

    let new_password = "a brand new passphrase";
    let response = post_form(
        &app,
        &anonymous,
        &form_page,
        "/reset-password",
        &[("token", &token), ("new_password", new_password)],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/reset-password?done=1");
    let (_, _, done) = get_page(&anonymous, &app.url("/reset-password?done=1")).await;
    assert!(done.contains("Password changed"));

    // Every session ended; the new password works, the old one does not.
    assert_eq!(session_of(&app, &first).await, Value::Null);
    assert_eq!(session_of(&app, &second).await, Value::Null);
    assert_eq!(
        sign_in_status(&app, &email, PASSWORD).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        sign_in_status(&app, &email, new_password).await,
        StatusCode::OK
    );
    // The reset proved the address.
    assert!(email_verified(&app, &email).await);
    let kinds = audit_kinds(&app).await;
    assert!(kinds.contains(&"password_reset_requested".to_owned()));
    assert!(kinds.contains(&"password_reset_completed".to_owned()));
}

#[tokio::test]
async fn s30_reset_link_is_single_use() {
    let (app, mut inbox) = app_with_inbox(|settings| {
        settings.email_verification = mcpauth::EmailVerification::Off;
    })
    .await;
    let email = unique_email();
    app.sign_up(&client(), &email).await;
    request_reset_api(&app, &email).await;
    let token = reset_token(&inbox.next().await.link());

    let reset = |password: &'static str| {
        let token = token.clone();
        let app = &app;
        async move {
            client()
                .post(app.url("/api/auth/reset-password"))
                .header("origin", &app.base)
                .json(&json!({ "token": token, "newPassword": password }))
                .send()
                .await
                .unwrap()
        }
    };
    let first = reset("first new password").await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(
        first.json::<Value>().await.unwrap(),
        json!({ "status": true })
    );
    let again = reset("second new password").await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        again.json::<Value>().await.unwrap()["code"],
        "INVALID_TOKEN"
    );
    assert_eq!(
        sign_in_status(&app, &email, "first new password").await,
        StatusCode::OK
    );
    // The used link now opens the expired-link page.
    let (status, _, html) = get_page(
        &browser(),
        &app.url(&format!("/reset-password?token={token}")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("expired or was already used"));
}

#[tokio::test]
async fn s30_reset_link_expires_within_the_hour() {
    let (app, mut inbox) = app_with_inbox(|settings| {
        settings.email_verification = mcpauth::EmailVerification::Off;
    })
    .await;
    let email = unique_email();
    app.sign_up(&client(), &email).await;
    request_reset_api(&app, &email).await;
    let link = inbox.next().await.link();
    assert!(link.contains("callbackURL=%2Freset-password"), "{link}");
    let token = reset_token(&link);
    app.clock.advance(3600);
    let response = client().get(&link).send().await.unwrap();
    assert_eq!(
        location(&response),
        "/reset-password?error=INVALID_TOKEN",
        "expired after an hour"
    );
    let response = client()
        .post(app.url("/api/auth/reset-password"))
        .header("origin", &app.base)
        .json(&json!({ "token": token, "newPassword": "too late a password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(sign_in_status(&app, &email, PASSWORD).await, StatusCode::OK);
}

#[tokio::test]
async fn s30_wrong_token_is_refused() {
    let (app, _inbox) = app_with_inbox(|_| {}).await;
    let wrong = mcpauth_core::secret::random_token();
    for token in [wrong.as_str(), "short", ""] {
        let response = client()
            .post(app.url("/api/auth/reset-password"))
            .header("origin", &app.base)
            .json(&json!({ "token": token, "newPassword": "whatever password" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{token:?}");
        assert_eq!(
            response.json::<Value>().await.unwrap()["code"],
            "INVALID_TOKEN"
        );
    }
    let response = client()
        .get(app.url(&format!(
            "/api/auth/reset-password/{wrong}?callbackURL=/reset-password"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(location(&response), "/reset-password?error=INVALID_TOKEN");
    let (status, _, html) =
        get_page(&browser(), &app.url("/reset-password?error=INVALID_TOKEN")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("href=\"/forgot-password\""));
    // A wrong verification link: to the callback with the error, or 401.
    let response = client()
        .get(app.url(&format!(
            "/api/auth/verify-email?token={wrong}&callbackURL=/email-verified"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(location(&response), "/email-verified?error=invalid_token");
    let response = client()
        .get(app.url(&format!("/api/auth/verify-email?token={wrong}")))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // A browser without a callback: the expired-link page.
    let response = client()
        .get(app.url(&format!("/api/auth/verify-email?token={wrong}")))
        .send()
        .await
        .unwrap();
    assert_eq!(location(&response), "/email-verified?error=invalid_token");
}

#[tokio::test]
async fn s30_identical_answers_for_known_and_unknown_addresses() {
    let (app, mut inbox) = app_with_inbox(|settings| {
        settings.email_verification = mcpauth::EmailVerification::Off;
    })
    .await;
    let known = unique_email();
    app.sign_up(&client(), &known).await;
    let unknown = unique_email();

    let known_answer = request_reset_api(&app, &known).await;
    let unknown_answer = request_reset_api(&app, &unknown).await;
    assert_eq!(known_answer, unknown_answer);
    assert_eq!(known_answer.0, StatusCode::OK);
    assert_eq!(
        serde_json::from_str::<Value>(&known_answer.1).unwrap(),
        json!({
            "status": true,
            "message": "If this email exists in our system, check your email for the reset link"
        })
    );
    // The older alias answers the same.
    let alias = client()
        .post(app.url("/api/auth/forget-password"))
        .header("origin", &app.base)
        .json(&json!({ "email": unknown }))
        .send()
        .await
        .unwrap();
    assert_eq!(alias.status(), StatusCode::OK);
    assert_eq!(alias.text().await.unwrap(), unknown_answer.1);

    // The pages answer alike too.
    let page_for = |email: String| {
        let app = &app;
        async move {
            let response = post_form(
                app,
                &browser(),
                "/forgot-password",
                "/forgot-password",
                &[("email", &email)],
            )
            .await;
            (response.status(), response.text().await.unwrap())
        }
    };
    assert_eq!(
        page_for(known.clone()).await,
        page_for(unknown.clone()).await
    );

    let verification = |email: String| {
        let app = &app;
        async move {
            let response = client()
                .post(app.url("/api/auth/send-verification-email"))
                .header("origin", &app.base)
                .json(&json!({ "email": email }))
                .send()
                .await
                .unwrap();
            (response.status(), response.text().await.unwrap())
        }
    };
    // Verification is off here: the same refusal for both.
    assert_eq!(
        verification(known.clone()).await,
        verification(unknown.clone()).await
    );

    // Only the known address gets mail (API request, then page request).
    for _ in 0..2 {
        let mail = inbox.next().await;
        assert_eq!(mail.to, std::slice::from_ref(&known));
    }
    inbox.nothing_more().await;
}

#[tokio::test]
async fn s30_mail_requests_are_rate_limited_per_address_and_per_ip() {
    let (app, mut inbox) = app_with_inbox(|settings| {
        settings.rate_limits.enabled = true;
        settings.rate_limits.limits.email_per_address = 2;
        settings.rate_limits.limits.email_per_ip = 5;
        settings.email_verification = mcpauth::EmailVerification::Off;
    })
    .await;
    let known = unique_email();
    app.sign_up(&client(), &known).await;
    let unknown = unique_email();
    for email in [&known, &unknown] {
        assert_eq!(request_reset_api(&app, email).await.0, StatusCode::OK);
        assert_eq!(request_reset_api(&app, email).await.0, StatusCode::OK);
    }
    // The third request for either address: the same 429.
    let known_limited = request_reset_api(&app, &known).await;
    assert_eq!(known_limited.0, StatusCode::TOO_MANY_REQUESTS);
    // Per IP: five counted so far; any address now gets 429.
    let other = request_reset_api(&app, &unique_email()).await;
    assert_eq!(other.0, StatusCode::TOO_MANY_REQUESTS);
    // Two mails went out, both to the known address.
    assert_eq!(inbox.next().await.to, std::slice::from_ref(&known));
    assert_eq!(inbox.next().await.to, std::slice::from_ref(&known));
    inbox.nothing_more().await;
    // A new window: requests go through again.
    app.clock.advance(60);
    assert_eq!(request_reset_api(&app, &unknown).await.0, StatusCode::OK);
}

#[tokio::test]
async fn s30_reset_revokes_every_grant_with_the_option() {
    for revoke in [false, true] {
        let (app, mut inbox) = app_with_inbox(|settings| {
            settings.auth.revoke_grants_on_password_change = revoke;
            settings.email_verification = mcpauth::EmailVerification::Off;
        })
        .await;
        let flow = app.full_flow("openid mcp:tools").await;
        let access = flow.tokens["access_token"].as_str().unwrap().to_owned();
        assert_eq!(app.session_status(&access).await, StatusCode::OK);
        let session: Value = session_of(&app, &flow.browser).await;
        let email = session["user"]["email"].as_str().unwrap().to_owned();
        request_reset_api(&app, &email).await;
        let token = reset_token(&inbox.next().await.link());
        let response = client()
            .post(app.url("/api/auth/reset-password"))
            .header("origin", &app.base)
            .json(&json!({ "token": token, "newPassword": "after the reset" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(session_of(&app, &flow.browser).await, Value::Null);
        let expected = if revoke {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::OK
        };
        assert_eq!(
            app.session_status(&access).await,
            expected,
            "revoke_grants_on_password_change = {revoke}"
        );
    }
}

#[tokio::test]
async fn s30_required_verification_gates_sign_in_until_the_link_is_followed() {
    let (app, mut inbox) = app_with_inbox(|settings| {
        settings.email_verification = mcpauth::EmailVerification::Required;
    })
    .await;
    let email = unique_email();
    let user = browser();
    // Sign-up: no session, "check your email".
    let response = sign_up_page(&app, &user, &email).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("Check your email"));
    assert_eq!(session_of(&app, &user).await, Value::Null);
    let first = inbox.next().await;
    assert_eq!(first.subject(), "Verify your email address");

    // Sign-in is refused with a page offering to send the link again (and by the API).
    let response = post_form(
        &app,
        &user,
        "/sign-in",
        "/sign-in",
        &[("email", &email), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let html = response.text().await.unwrap();
    assert!(html.contains("Verify your email first"));
    assert!(html.contains("action=\"/verify-email/resend\""));
    assert_eq!(session_of(&app, &user).await, Value::Null);
    let api = client()
        .post(app.url("/api/auth/sign-in/email"))
        .header("origin", &app.base)
        .json(&json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        api.json::<Value>().await.unwrap()["code"],
        "EMAIL_NOT_VERIFIED"
    );
    // The log says why those sign-ins got no session.
    let refused = audit_kinds(&app)
        .await
        .iter()
        .filter(|kind| *kind == "sign_in.refused")
        .count();
    assert_eq!(refused, 2);

    // The resend button mails a new link.
    let csrf = input_value(&html, "csrf_token").unwrap();
    let response = user
        .post(app.url("/verify-email/resend"))
        .header("origin", &app.base)
        .form(&[("csrf_token", csrf.as_str()), ("email", email.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let second = inbox.next().await;

    // Following the link verifies the address (once); then sign-in works.
    let link = second.link();
    let response = press_verify_button(&app, &user, &link).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/email-verified");
    let (status, _, page) = get_page(&user, &app.url("/email-verified")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Email verified"));
    assert!(email_verified(&app, &email).await);
    let response = user.get(&link).send().await.unwrap();
    assert_eq!(location(&response), "/email-verified?error=invalid_token");
    assert_eq!(sign_in_status(&app, &email, PASSWORD).await, StatusCode::OK);
    assert!(
        audit_kinds(&app)
            .await
            .contains(&"email_verified".to_owned())
    );
}

#[tokio::test]
async fn s30_optional_verification_mails_a_link_and_the_account_page_shows_it() {
    let (app, mut inbox) = app_with_inbox(|_| {}).await;
    let email = unique_email();
    let user = browser();
    let (_, _, sign_up) = get_page(&user, &app.url("/sign-up")).await;
    assert!(sign_up.contains("link to verify this address"));
    assert_eq!(
        sign_up_page(&app, &user, &email).await.status(),
        StatusCode::SEE_OTHER
    );
    let (_, _, account) = get_page(&user, &app.url("/account")).await;
    assert!(account.contains("not verified"));
    assert!(account.contains("Send me a verification link"));
    let link = inbox.next().await.link();
    assert_eq!(
        press_verify_button(&app, &user, &link).await.status(),
        StatusCode::SEE_OTHER
    );
    let (_, _, account) = get_page(&user, &app.url("/account")).await;
    assert!(account.contains(">verified<"));
    assert!(!account.contains("Send me a verification link"));
}

#[tokio::test]
async fn s30_links_lead_only_to_this_origin() {
    let (app, mut inbox) = app_with_inbox(|_| {}).await;
    for (path, body) in [
        (
            "/api/auth/request-password-reset",
            json!({ "email": unique_email(), "redirectTo": "https://evil.test/steal" }),
        ),
        (
            "/api/auth/send-verification-email",
            json!({ "email": unique_email(), "callbackURL": "//evil.test" }),
        ),
    ] {
        let response = client()
            .post(app.url(path))
            .header("origin", &app.base)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
    }
    let response = client()
        .get(app.url("/api/auth/verify-email?token=x&callbackURL=https://evil.test/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    // An absolute URL on this origin is accepted, and the mailed link carries it.
    let email = unique_email();
    app.sign_up(&client(), &email).await;
    inbox.next().await; // the sign-up's verification mail
    let response = client()
        .post(app.url("/api/auth/request-password-reset"))
        .header("origin", &app.base)
        .json(&json!({ "email": email, "redirectTo": app.url("/my-reset-page") }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let link = inbox.next().await.link();
    let response = client().get(&link).send().await.unwrap();
    assert!(location(&response).starts_with("/my-reset-page?token="));
    // Requests from another site are refused before anything is looked up.
    let response = client()
        .post(app.url("/api/auth/request-password-reset"))
        .header("origin", "https://evil.test")
        .json(&json!({ "email": email }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn without_smtp_the_features_say_they_are_unavailable() {
    let app = spawn_app_with(|settings| settings.email.log_links = Some(false)).await;
    let (status, body) = request_reset_api(&app, &unique_email()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("EMAIL_NOT_AVAILABLE"), "{body}");
    let (_, _, page) = get_page(&browser(), &app.url("/forgot-password")).await;
    assert!(page.contains("be reset by email on this server"), "{page}");
    let (_, _, sign_up) = get_page(&browser(), &app.url("/sign-up")).await;
    assert!(!sign_up.contains("link to verify this address"));

    // Verification cannot be required without a way to send mail.
    let dir = tempfile::tempdir().unwrap();
    let mut settings = crate::common::test_settings();
    settings.database_url = format!("sqlite://{}", dir.path().join("db").display());
    settings.email.log_links = Some(false);
    settings.email_verification = mcpauth::EmailVerification::Required;
    let error = mcpauth_server::Application::build(&settings, None)
        .await
        .err()
        .expect("refused");
    assert!(error.to_string().contains("email_verification"), "{error}");

    // Links in the log: development (loopback issuer) only.
    let mut settings = crate::common::test_settings();
    settings.email.log_links = Some(true);
    assert!(settings.mailer("http://localhost:3000").unwrap().is_some());
    assert!(settings.mailer("http://127.0.0.1:3000").unwrap().is_some());
    assert!(settings.mailer("https://auth.example.com").is_err());
    settings.email.log_links = None;
    assert!(
        settings
            .mailer("https://auth.example.com")
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn s30_answers_do_not_wait_for_the_mail() {
    // An SMTP server that accepts connections and never says a word: a send would hang until
    // the SMTP timeout (5 s here). The answer comes at once all the same, because the lookup,
    // the token and the send happen after it, for known and unknown addresses alike.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming().flatten() {
            held.push(stream);
        }
    });
    let app = spawn_app_with(|settings| {
        settings.email_verification = mcpauth::EmailVerification::Off;
        settings.smtp = Some(mcpauth::SmtpOptions {
            host: "127.0.0.1".to_owned(),
            port: Some(port),
            tls: mcpauth::SmtpTls::None,
            username: None,
            password: None,
            from: "mcpauth <no-reply@mcpauth.test>".to_owned(),
            timeout: Duration::from_secs(5),
            ca_file: None,
        });
    })
    .await;
    let known = unique_email();
    app.sign_up(&client(), &known).await;
    for email in [known, unique_email()] {
        let started = std::time::Instant::now();
        let (status, _) = request_reset_api(&app, &email).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "answered in {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn admin_cli_resets_a_password_and_ends_the_sessions() {
    let app =
        spawn_app_with(|settings| settings.auth.revoke_grants_on_password_change = true).await;
    let flow = app.full_flow("openid mcp:tools").await;
    let access = flow.tokens["access_token"].as_str().unwrap().to_owned();
    let email = session_of(&app, &flow.browser).await["user"]["email"]
        .as_str()
        .unwrap()
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", app.db_path.display());
    let mut command = crate::common::mcpauth(dir.path());
    // The command reads the deployment's configuration, as the server does.
    command
        .env("MCPAUTH_REVOKE_GRANTS_ON_PASSWORD_CHANGE", "true")
        .args([
            "user",
            "reset-password",
            "--email",
            &email,
            "--password-stdin",
        ])
        .args(["--database-url", &database_url])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(b"set by the administrator\n")
            .await
            .unwrap();
    }
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("1 session(s) ended"), "{stdout}");
    assert_eq!(session_of(&app, &flow.browser).await, Value::Null);
    assert_eq!(
        sign_in_status(&app, &email, "set by the administrator").await,
        StatusCode::OK
    );
    assert_eq!(
        sign_in_status(&app, &email, PASSWORD).await,
        StatusCode::UNAUTHORIZED
    );
    crate::common::after_revocation_check().await;
    assert_eq!(app.session_status(&access).await, StatusCode::UNAUTHORIZED);
    assert!(
        audit_kinds(&app)
            .await
            .contains(&"admin.user.reset_password".to_owned())
    );

    // A password that breaks the rules is refused with a clear error, nothing changed.
    let output = crate::common::mcpauth(dir.path())
        .args([
            "user",
            "reset-password",
            "--email",
            &email,
            "--password",
            "short",
        ])
        .args(["--database-url", &database_url])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).starts_with("error: "));
}

#[tokio::test]
async fn s30_required_verification_resumes_the_authorization_after_the_link() {
    let (app, mut inbox) = app_with_inbox(|settings| {
        settings.email_verification = mcpauth::EmailVerification::Required;
    })
    .await;
    let client_id = app.register_public(crate::common::REDIRECT_URI).await;
    let (_verifier, challenge) = crate::common::pkce();
    let user = browser();
    let params = TestApp::authorize_params(&client_id, &challenge, "openid", "st-1");
    let response = app.authorize(&user, &params).await;
    let sign_in = location(&response);
    assert!(sign_in.starts_with("/sign-in?"), "{sign_in}");
    let sign_up = sign_in.replacen("/sign-in", "/sign-up", 1);

    // Sign up for the client: no session yet, the link is mailed.
    let (_, _, html) = get_page(&user, &app.url(&sign_up)).await;
    let csrf = input_value(&html, "csrf_token").unwrap();
    let sealed = input_value(&html, "authorize_query").expect("the request rides along");
    let email = unique_email();
    let response = user
        .post(app.url("/sign-up"))
        .header("origin", &app.base)
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("authorize_query", sealed.as_str()),
            ("name", "Pending User"),
            ("email", email.as_str()),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // The link verifies the address and leads back to the sign-in page of that request.
    let link = inbox.next().await.link();
    let response = press_verify_button(&app, &user, &link).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let back = location(&response);
    assert_eq!(
        back, sign_in,
        "back to the sign-in page of the same request"
    );
    let (_, _, html) = get_page(&user, &app.url(&back)).await;
    let csrf = input_value(&html, "csrf_token").unwrap();
    let sealed = input_value(&html, "authorize_query").unwrap();
    let response = user
        .post(app.url("/sign-in"))
        .header("origin", &app.base)
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("authorize_query", sealed.as_str()),
            ("email", email.as_str()),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let next = location(&response);
    assert!(
        next.starts_with("/consent") || next.starts_with(crate::common::REDIRECT_URI),
        "the authorization goes on: {next}"
    );
}

#[tokio::test]
async fn s30_verification_link_survives_link_scanners() {
    let (app, mut inbox) = app_with_inbox(|_| {}).await;
    let email = unique_email();
    let user = browser();
    sign_up_page(&app, &user, &email).await;
    let link = inbox.next().await.link();

    // A mail scanner opens the link twice, as a browser and as a plain client: a page with one
    // button each time, and the link still works.
    for accept in ["text/html,application/xhtml+xml,*/*;q=0.8", "*/*"] {
        let response = client()
            .get(&link)
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{accept}");
        let html = response.text().await.unwrap();
        assert!(html.contains("Verify my email"), "{html}");
        assert!(!email_verified(&app, &email).await);
    }

    // The user's click on the button verifies the address; the button does not work twice.
    let response = press_verify_button(&app, &user, &link).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/email-verified");
    assert!(email_verified(&app, &email).await);
    let response = client().get(&link).send().await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::FOUND,
        "a used link shows the expired page"
    );
    assert_eq!(location(&response), "/email-verified?error=invalid_token");

    // The button's form is a CSRF-protected post like every other (SECURITY S25).
    let token = url::Url::parse(&link)
        .unwrap()
        .query_pairs()
        .find(|(name, _)| name == "token")
        .unwrap()
        .1
        .into_owned();
    let forged = client()
        .post(app.url("/api/auth/verify-email"))
        .header("origin", "https://evil.test")
        .form(&[
            ("token", token.as_str()),
            ("callbackURL", "/email-verified"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn s30_verification_link_still_answers_json_clients_like_better_auth() {
    let (app, mut inbox) = app_with_inbox(|_| {}).await;
    let email = unique_email();
    sign_up_page(&app, &browser(), &email).await;
    let link = inbox.next().await.link();
    // Better Auth's client asks for JSON (or fetches from a page script): the GET uses the
    // link and goes on to the callback.
    let response = client()
        .get(&link)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(location(&response), "/email-verified");
    assert!(email_verified(&app, &email).await);
    let again = client()
        .get(&link)
        .header("sec-fetch-dest", "empty")
        .send()
        .await
        .unwrap();
    assert_eq!(location(&again), "/email-verified?error=invalid_token");
}

/// Requests a reset for a new account of `app`; the account's address.
async fn account_asking_for_a_reset(app: &TestApp) -> String {
    let email = unique_email();
    app.sign_up(&client(), &email).await;
    let (status, _) = request_reset_api(app, &email).await;
    assert_eq!(status, StatusCode::OK);
    email
}

/// Sets a new password with the mailed reset link on `app`; the status of signing in with it.
async fn reset_with(app: &TestApp, link: &str, email: &str) -> StatusCode {
    let response = client()
        .post(app.url("/api/auth/reset-password"))
        .header("origin", &app.base)
        .json(&json!({ "token": reset_token(link), "newPassword": "a brand new password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    sign_in_status(app, email, "a brand new password").await
}

#[tokio::test]
async fn s30_a_refusing_smtp_server_gets_the_mail_on_a_retry() {
    let (app, mut inbox) = app_with_inbox(|settings| {
        settings.email_verification = mcpauth::EmailVerification::Off;
    })
    .await;
    inbox.refuse(2);
    let email = account_asking_for_a_reset(&app).await;
    // Refused (451), then retried after 2 s and refused again, then after 4 s more: accepted.
    inbox.next_refusal().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(outbox_rows(&app).await, 1, "kept for the retry");
    app.clock.advance(2);
    inbox.next_refusal().await;
    // (The sender records the failure, reading the clock, just after the server answered.)
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.clock.advance(3);
    inbox.nothing_more().await;
    app.clock.advance(1);
    let mail = inbox.next().await;
    assert_eq!(mail.to, std::slice::from_ref(&email));
    // Deleted once the server's answer arrived (just after the message).
    let mut rows = outbox_rows(&app).await;
    for _ in 0..20 {
        if rows == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        rows = outbox_rows(&app).await;
    }
    assert_eq!(rows, 0, "deleted once sent");
    assert_eq!(reset_with(&app, &mail.link(), &email).await, StatusCode::OK);
    inbox.nothing_more().await;
}

#[tokio::test]
async fn s30_mail_is_given_up_after_ten_attempts_and_audited() {
    let (app, mut inbox) = app_with_inbox(|settings| {
        settings.email_verification = mcpauth::EmailVerification::Off;
    })
    .await;
    inbox.refuse(-1);
    account_asking_for_a_reset(&app).await;
    // Attempt n fails and waits 2^n seconds (at most 300) before the next.
    for attempt in 1..=10_u32 {
        inbox.next_refusal().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        app.clock.advance((1_i64 << attempt).min(300));
    }
    // Given up: offered no more, even once the server works again, and in the audit log.
    inbox.refuse(0);
    app.clock.advance(300);
    inbox.nothing_more().await;
    assert!(inbox.refused.try_recv().is_err(), "no eleventh attempt");
    assert!(audit_kinds(&app).await.contains(&"mail.failed".to_owned()));
    assert_eq!(
        outbox_rows(&app).await,
        1,
        "kept (given up) until the purge"
    );
}

#[tokio::test]
async fn s30_mail_whose_link_expired_is_not_sent_late() {
    let (app, mut inbox) = app_with_inbox(|settings| {
        settings.email_verification = mcpauth::EmailVerification::Off;
    })
    .await;
    inbox.refuse(-1);
    account_asking_for_a_reset(&app).await;
    inbox.next_refusal().await;
    // The mail server comes back only after the link expired: the mail is dropped.
    app.clock.advance(3600);
    inbox.refuse(0);
    inbox.nothing_more().await;
    inbox.nothing_more().await;
    assert_eq!(outbox_rows(&app).await, 0, "dropped");
}

/// A throw-away CA and a certificate it signs for `names`, as PEM files in a directory of
/// their own.
struct Pki {
    ca_file: std::path::PathBuf,
    cert_file: std::path::PathBuf,
    key_file: std::path::PathBuf,
    cert_der: Vec<u8>,
    key_der: Vec<u8>,
    _dir: tempfile::TempDir,
}

impl Pki {
    fn new(names: &[&str]) -> Self {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "mcpauth SMTP test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let leaf = rcgen::CertificateParams::new(names)
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let pki = Self {
            ca_file: dir.path().join("ca.pem"),
            cert_file: dir.path().join("cert.pem"),
            key_file: dir.path().join("key.pem"),
            cert_der: leaf.der().to_vec(),
            key_der: leaf_key.serialize_der(),
            _dir: dir,
        };
        std::fs::write(&pki.ca_file, ca_cert.pem()).unwrap();
        std::fs::write(&pki.cert_file, leaf.pem()).unwrap();
        std::fs::write(&pki.key_file, leaf_key.serialize_pem()).unwrap();
        pki
    }

    /// The server's TLS configuration (rustls, the aws-lc-rs provider).
    fn server_config(&self) -> Arc<tokio_rustls::rustls::ServerConfig> {
        use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs = vec![CertificateDer::from(self.cert_der.clone())];
        let key = PrivateKeyDer::Pkcs8(self.key_der.clone().into());
        let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
        Arc::new(
            tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .unwrap(),
        )
    }
}

/// `mailin-embedded` builds its rustls configuration with the process's default provider.
fn install_default_tls_provider() {
    let _ = tokio_rustls::rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// An SMTP server offering STARTTLS with `pki`'s certificate; the mailer trusts `ca_file`.
fn starttls_inbox(pki: &Pki, ca_file: &std::path::Path) -> Inbox {
    install_default_tls_provider();
    let mut inbox = Inbox::start_with(SslConfig::SelfSigned {
        cert_path: pki.cert_file.display().to_string(),
        key_path: pki.key_file.display().to_string(),
    });
    inbox.tls = mcpauth::SmtpTls::Starttls;
    inbox.ca_file = Some(ca_file.to_owned());
    inbox
}

/// An SMTP server spoken to over TLS from the first byte (port 465 style): a TLS listener
/// with `pki`'s certificate in front of a plain `mailin-embedded` server, so the whole SMTP
/// dialogue runs inside TLS. The mailer trusts `ca_file`.
async fn implicit_tls_inbox(pki: &Pki, ca_file: &std::path::Path) -> Inbox {
    let mut inbox = Inbox::start();
    let plain = inbox.port;
    let acceptor = tokio_rustls::TlsAcceptor::from(pki.server_config());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    inbox.port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let Ok(mut smtp) = tokio::net::TcpStream::connect(("127.0.0.1", plain)).await
                else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut smtp).await;
            });
        }
    });
    inbox.tls = mcpauth::SmtpTls::Tls;
    inbox.ca_file = Some(ca_file.to_owned());
    inbox
}

/// Mails a reset link through `inbox`'s settings; the app and the account's address.
async fn app_mailing_through(inbox: &Inbox) -> (TestApp, String) {
    let app = spawn_app_with(|settings| {
        inbox.configure(settings);
        settings.email_verification = mcpauth::EmailVerification::Off;
    })
    .await;
    let email = account_asking_for_a_reset(&app).await;
    (app, email)
}

/// The reason the outbox kept for its mail's last failed attempt (what the log said).
async fn last_error(app: &TestApp) -> String {
    let db = app.db().await;
    sqlx::query_scalar::<_, Option<String>>(r#"SELECT last_error FROM "mcpauthMailOutbox""#)
        .fetch_one(&db)
        .await
        .unwrap()
        .unwrap_or_default()
}

#[tokio::test]
async fn s30_mail_goes_out_over_starttls_trusting_a_private_ca() {
    let pki = Pki::new(&["localhost", "127.0.0.1"]);
    let mut inbox = starttls_inbox(&pki, &pki.ca_file);
    let (app, email) = app_mailing_through(&inbox).await;
    let mail = inbox.next().await;
    assert_eq!(mail.to, std::slice::from_ref(&email));
    assert_eq!(reset_with(&app, &mail.link(), &email).await, StatusCode::OK);
}

#[tokio::test]
async fn s30_mail_goes_out_over_implicit_tls_trusting_a_private_ca() {
    let pki = Pki::new(&["localhost", "127.0.0.1"]);
    let mut inbox = implicit_tls_inbox(&pki, &pki.ca_file).await;
    let (app, email) = app_mailing_through(&inbox).await;
    let mail = inbox.next().await;
    assert_eq!(mail.to, std::slice::from_ref(&email));
    assert_eq!(reset_with(&app, &mail.link(), &email).await, StatusCode::OK);
}

#[tokio::test]
async fn s30_smtp_server_with_an_untrusted_certificate_gets_no_mail() {
    let server = Pki::new(&["localhost", "127.0.0.1"]);
    let other_ca = Pki::new(&["localhost"]);
    let wrong_name = Pki::new(&["smtp.elsewhere.test"]);
    let cases = [
        (
            "starttls, unknown CA",
            starttls_inbox(&server, &other_ca.ca_file),
        ),
        (
            "starttls, wrong name",
            starttls_inbox(&wrong_name, &wrong_name.ca_file),
        ),
        (
            "tls, unknown CA",
            implicit_tls_inbox(&server, &other_ca.ca_file).await,
        ),
        (
            "tls, wrong name",
            implicit_tls_inbox(&wrong_name, &wrong_name.ca_file).await,
        ),
    ];
    for (case, mut inbox) in cases {
        let (app, _) = app_mailing_through(&inbox).await;
        inbox.nothing_more().await;
        // Refused before anything was said, and why: the certificate.
        let error = last_error(&app).await.to_ascii_lowercase();
        assert!(error.contains("certificate"), "{case}: {error}");
        assert_eq!(outbox_rows(&app).await, 1, "{case}: kept for a retry");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s24_s30_mail_survives_kill_9_while_the_smtp_server_refuses_and_stays_sealed() {
    use crate::common::{ServeChild, mcpauth};
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("outbox.db").display());
    let serve = |inbox: &Inbox| {
        let mut command = mcpauth(dir.path());
        command
            .args(["serve", "--bind", "127.0.0.1:0", "--database-url", &db])
            .env("MCPAUTH_EMAIL_VERIFICATION", "off")
            .env("MCPAUTH_SMTP__HOST", "127.0.0.1")
            .env("MCPAUTH_SMTP__PORT", inbox.port.to_string())
            .env("MCPAUTH_SMTP__TLS", "none")
            .env("MCPAUTH_SMTP__FROM", "mcpauth <no-reply@mcpauth.test>")
            .env("RUST_LOG", "warn");
        command
    };
    let external = |server: &ServeChild| {
        let port = server.address.rsplit(':').next().unwrap().to_owned();
        TestApp::external(&format!("http://localhost:{port}"))
    };

    // The first server's mail server refuses everything; a reset is asked for, offered once
    // (refused), and the server is killed before its retry.
    let mut refusing = Inbox::start();
    refusing.refuse(-1);
    let mut first = ServeChild::start(&mut serve(&refusing)).await;
    let email = account_asking_for_a_reset(&external(&first)).await;
    refusing.next_refusal().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.child.start_kill().unwrap();
    first.child.wait().await.unwrap();

    // The next server, with a working mail server, sends it.
    let mut inbox = Inbox::start();
    let second = ServeChild::start(&mut serve(&inbox)).await;
    let app = external(&second);
    let mail = inbox.next().await;
    assert_eq!(mail.to, std::slice::from_ref(&email));
    // The link was written by the first server (its port); its token works on this one.
    let link = url::Url::parse(&mail.link()).unwrap();
    let token = reset_token(link.as_str());
    // The mail waited in the outbox across the crash, yet the database files (the WAL and
    // freed pages included) never held its token in the clear (S24): the outbox keeps it sealed.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().contains("outbox.db") {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
                "the token is readable in {}",
                path.display()
            );
        }
    }
    let response = client()
        .post(app.url("/api/auth/reset-password"))
        .header("origin", &app.base)
        .json(&json!({ "token": token, "newPassword": "a brand new password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        sign_in_status(&app, &email, "a brand new password").await,
        StatusCode::OK
    );
    inbox.nothing_more().await;
    refusing.nothing_more().await;
}

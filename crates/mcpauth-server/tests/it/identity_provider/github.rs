//! The GitHub preset against a local stand-in: GitHub itself cannot be reached from the test
//! machines, so a small server plays it, with the shapes GitHub documents — `GET
//! /login/oauth/authorize` redirecting back with `code` and `state`, `POST
//! /login/oauth/access_token` answering JSON (errors with status 200, as GitHub does), `GET
//! /user` and `GET /user/emails` with a bearer token. The stand-in checks the client's secret
//! and the PKCE verifier.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcpauth_server::IdentityProviderSettings;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::*;

pub(super) const GH_CLIENT_ID: &str = "Iv1.standin";
pub(super) const GH_SECRET: &str = "github-stand-in-client-secret";

#[derive(Default)]
pub(super) struct Stand {
    /// `(user document, emails)` of whoever signs in next.
    pub(super) next: (Value, Value),
    codes: HashMap<String, (String, (Value, Value))>,
    tokens: HashMap<String, (Value, Value)>,
}

pub(super) type Shared = Arc<Mutex<Stand>>;

async fn authorize(State(s): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    if q.get("client_id").map(String::as_str) != Some(GH_CLIENT_ID)
        || q.get("code_challenge_method").map(String::as_str) != Some("S256")
    {
        return (StatusCode::BAD_REQUEST, "bad request").into_response();
    }
    let mut stand = s.lock().unwrap();
    let code = mcpauth_core::secret::random_token();
    let identity = stand.next.clone();
    stand
        .codes
        .insert(code.clone(), (q["code_challenge"].clone(), identity));
    let mut back = url::Url::parse(&q["redirect_uri"]).unwrap();
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &q["state"]);
    Redirect::to(back.as_str()).into_response()
}

async fn access_token(
    State(s): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{GH_CLIENT_ID}:{GH_SECRET}"))
    );
    let authenticated = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(basic.as_str())
        || (form.get("client_id").map(String::as_str) == Some(GH_CLIENT_ID)
            && form.get("client_secret").map(String::as_str) == Some(GH_SECRET));
    let mut stand = s.lock().unwrap();
    let found = form.get("code").and_then(|c| stand.codes.remove(c));
    let Some((challenge, identity)) = found.filter(|_| authenticated) else {
        // GitHub's way: 200 with an error document.
        return axum::Json(json!({ "error": "bad_verification_code" })).into_response();
    };
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != challenge {
        return axum::Json(json!({ "error": "bad_verification_code" })).into_response();
    }
    let token = format!("gho_{}", mcpauth_core::secret::random_id());
    stand.tokens.insert(token.clone(), identity);
    axum::Json(
        json!({ "access_token": token, "token_type": "bearer", "scope": "read:user,user:email" }),
    )
    .into_response()
}

fn bearer(s: &Shared, headers: &HeaderMap) -> Option<(Value, Value)> {
    let token = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?;
    s.lock().unwrap().tokens.get(token).cloned()
}

async fn user(State(s): State<Shared>, headers: HeaderMap) -> Response {
    match bearer(&s, &headers) {
        Some((user, _)) => axum::Json(user).into_response(),
        None => StatusCode::UNAUTHORIZED.into_response(),
    }
}

async fn emails(State(s): State<Shared>, headers: HeaderMap) -> Response {
    match bearer(&s, &headers) {
        Some((_, emails)) => axum::Json(emails).into_response(),
        None => StatusCode::UNAUTHORIZED.into_response(),
    }
}

pub(super) async fn stand_in() -> (String, Shared, tokio::sync::oneshot::Sender<()>) {
    let shared: Shared = Arc::default();
    let app = Router::new()
        .route("/login/oauth/authorize", get(authorize))
        .route("/login/oauth/access_token", post(access_token))
        .route("/api/user", get(user))
        .route("/api/user/emails", get(emails))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    (base, shared, tx)
}

fn github_settings(base: &str) -> IdentityProviderSettings {
    IdentityProviderSettings {
        id: "github".into(),
        kind: mcpauth_server::ProviderKind::Github,
        client_id: Some(GH_CLIENT_ID.into()),
        client_secret: Some(GH_SECRET.into()),
        web_url: Some(base.to_owned()),
        api_url: Some(format!("{base}/api")),
        ..IdentityProviderSettings::default()
    }
}

#[tokio::test]
async fn github_stand_in_signs_in_with_the_verified_primary_email() {
    let (base, stand, _stop) = stand_in().await;
    let app = spawn_app_with(|s| s.identity_providers = vec![github_settings(&base)]).await;
    stand.lock().unwrap().next = (
        json!({ "id": 583231, "login": "octocat", "name": "The Octocat",
                "avatar_url": "https://avatars.githubusercontent.com/u/583231" }),
        json!([
            { "email": "octo@old.test", "primary": false, "verified": true },
            { "email": "octocat@github.test", "primary": true, "verified": true },
        ]),
    );
    let browser = browser();
    let (_, _, html) = get_page(&browser, &app.url("/sign-in")).await;
    assert!(html.contains("Continue with GitHub"));
    let trip = sign_in_with(&app, &browser, "github").await;
    assert_eq!(trip.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        signed_in_as(&app, &browser).await.as_deref(),
        Some("octocat@github.test")
    );
    let (account_id, verified, name): (String, bool, String) = sqlx::query_as(
        r#"SELECT a.account_id, u.email_verified, u.name FROM "account" a
           JOIN "user" u ON u.id = a.user_id WHERE a.provider_id = 'github'"#,
    )
    .fetch_one(&app.db().await)
    .await
    .unwrap();
    assert_eq!(account_id, "583231", "the stable numeric id, not the login");
    assert!(verified);
    assert_eq!(name, "The Octocat");
}

#[tokio::test]
async fn github_stand_in_unverified_primary_email_is_not_verified_here() {
    let (base, stand, _stop) = stand_in().await;
    let app = spawn_app_with(|s| {
        s.identity_providers = vec![github_settings(&base)];
        s.auth.allowed_email_domains = vec!["github.test".into()];
    })
    .await;
    stand.lock().unwrap().next = (
        json!({ "id": 1, "login": "newbie" }),
        json!([{ "email": "newbie@github.test", "primary": true, "verified": false }]),
    );
    // Unverified: the allow-list does not accept it.
    let trip = sign_in_with(&app, &browser(), "github").await;
    assert_eq!(trip.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn github_stand_in_bad_code_is_refused() {
    let (base, _stand, _stop) = stand_in().await;
    let app = spawn_app_with(|s| s.identity_providers = vec![github_settings(&base)]).await;
    let browser = browser();
    let authorization_url = press_provider_button(&app, &browser, "/sign-in", "github").await;
    let response = browser.get(&authorization_url).send().await.unwrap();
    let callback = location(&response);
    // Swap the code for one GitHub never issued.
    let mut url = url::Url::parse(&callback).unwrap();
    let state = query_of(&callback)["state"].clone();
    url.query_pairs_mut()
        .clear()
        .append_pair("code", "forged")
        .append_pair("state", &state);
    let answer = browser.get(url.as_str()).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
    assert_eq!(signed_in_as(&app, &browser).await, None);
}

//! Machine and enterprise clients (issue 21): `client_credentials` (SECURITY E1),
//! `private_key_jwt` client authentication (E2) and ID-JAG redemption through the jwt-bearer
//! grant (E3), on SQLite and PostgreSQL. Every refusal is checked to write nothing: the token,
//! family, user and audit rows are counted before and after.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mcpauth::{ClientCredentialsOptions, SubjectMapping, TrustedClient, TrustedIssuer};
use mcpauth_core::model::GrantType;
use mcpauth_server::Settings;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;

const MACHINE: &str = "nightly-ci";
const MACHINE_SECRET: &str = "a-machine-secret-that-is-long-enough-1234";
const KEYED: &str = "keyed-agent";
const AGENT: &str = "enterprise-agent";
const AGENT_SECRET: &str = "an-enterprise-agent-secret-long-enough-99";
const ID_JAG_TYPE: &str = "oauth-id-jag+jwt";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A fresh ES256 key pair: the signing key and its public JWK with `kid`.
fn es256_key(kid: &str) -> (EncodingKey, Value) {
    let pair = rcgen::KeyPair::generate().unwrap();
    let key = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap();
    let raw = pair.public_key_raw();
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
        "x": URL_SAFE_NO_PAD.encode(&raw[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&raw[33..65]),
    });
    (key, jwk)
}

fn sign(claims: &Value, typ: Option<&str>, kid: &str, key: &EncodingKey) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.typ = typ.map(str::to_owned);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn machine_client() -> TrustedClient {
    TrustedClient {
        client_id: MACHINE.into(),
        client_secret: Some(MACHINE_SECRET.into()),
        name: "Nightly CI".into(),
        grant_types: vec![GrantType::ClientCredentials],
        scope: Some("mcp:tools".into()),
        ..Default::default()
    }
}

fn keyed_client(jwks: Option<Value>, jwks_uri: Option<String>) -> TrustedClient {
    TrustedClient {
        client_id: KEYED.into(),
        token_endpoint_auth_method: Some("private_key_jwt".into()),
        name: "Keyed agent".into(),
        grant_types: vec![GrantType::ClientCredentials],
        scope: Some("mcp:tools".into()),
        jwks,
        jwks_uri,
        ..Default::default()
    }
}

/// Where a test server keeps its data, to count rows in.
enum Db {
    Sqlite(String),
    Postgres(String),
}

impl Db {
    fn of(app: &TestApp, pg: Option<&PgSchema>) -> Db {
        match pg {
            Some(schema) => Db::Postgres(schema.url()),
            None => Db::Sqlite(format!("sqlite://{}", app.db_path.display())),
        }
    }

    /// Rows of every table a grant writes: token families, access and refresh tokens, users,
    /// linked accounts and `token.issue` audit entries.
    async fn counts(&self) -> Vec<i64> {
        const QUERIES: [&str; 6] = [
            r#"SELECT COUNT(*) FROM "oauthTokenFamily""#,
            r#"SELECT COUNT(*) FROM "oauthAccessToken""#,
            r#"SELECT COUNT(*) FROM "oauthRefreshToken""#,
            r#"SELECT COUNT(*) FROM "user""#,
            r#"SELECT COUNT(*) FROM "account""#,
            r#"SELECT COUNT(*) FROM "auditLog" WHERE kind = 'token.issue'"#,
        ];
        let mut out = Vec::new();
        match self {
            Db::Sqlite(url) => {
                let pool = sqlx::SqlitePool::connect(url).await.unwrap();
                for q in QUERIES {
                    out.push(
                        sqlx::query_scalar::<_, i64>(q)
                            .fetch_one(&pool)
                            .await
                            .unwrap(),
                    );
                }
            }
            Db::Postgres(url) => {
                let pool = sqlx::PgPool::connect(url).await.unwrap();
                for q in QUERIES {
                    out.push(
                        sqlx::query_scalar::<_, i64>(q)
                            .fetch_one(&pool)
                            .await
                            .unwrap(),
                    );
                }
            }
        }
        out
    }

    async fn last_token_issue(&self) -> Value {
        let q =
            r#"SELECT detail FROM "auditLog" WHERE kind = 'token.issue' ORDER BY id DESC LIMIT 1"#;
        let detail: String = match self {
            Db::Sqlite(url) => {
                let pool = sqlx::SqlitePool::connect(url).await.unwrap();
                sqlx::query_scalar(q).fetch_one(&pool).await.unwrap()
            }
            Db::Postgres(url) => {
                let pool = sqlx::PgPool::connect(url).await.unwrap();
                sqlx::query_scalar(q).fetch_one(&pool).await.unwrap()
            }
        };
        serde_json::from_str(&detail).unwrap()
    }
}

async fn token(
    app: &TestApp,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> (StatusCode, Value) {
    let mut request = app.http.post(app.url("/api/auth/mcp/token")).form(form);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn session(app: &TestApp, access_token: &str) -> (StatusCode, Value) {
    let response = app
        .http
        .get(app.url("/api/auth/mcp/get-session"))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn machine_settings(s: &mut Settings) {
    s.auth.client_credentials = ClientCredentialsOptions {
        enabled: true,
        allow_self_registered: false,
    };
    s.auth.trusted_clients = vec![machine_client()];
}

async fn e1_machine_token(app: &TestApp, db: &Db) {
    let before = db.counts().await;
    let (status, body) = token(
        app,
        &[("grant_type", "client_credentials")],
        Some((MACHINE, MACHINE_SECRET)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "mcp:tools");
    assert!(
        body.get("refresh_token").is_none(),
        "no refresh token: {body}"
    );
    let access = body["access_token"].as_str().unwrap().to_owned();
    let after = db.counts().await;
    // One family, one access token, no refresh token, no user, one audit entry.
    assert_eq!(after[0], before[0] + 1);
    assert_eq!(after[1], before[1] + 1);
    assert_eq!(after[2], before[2]);
    assert_eq!(after[3], before[3]);
    assert_eq!(after[5], before[5] + 1);
    let audit = db.last_token_issue().await;
    assert_eq!(audit["grant_type"], "client_credentials");

    // The session says it is a machine: no user, the client as the caller.
    let (status, me) = session(app, &access).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["userId"], Value::Null, "{me}");
    assert_eq!(me["clientId"], MACHINE);

    // Introspection: the client is the subject, there is no username.
    let response = app
        .http
        .post(app.url("/api/auth/mcp/introspect"))
        .basic_auth(MACHINE, Some(MACHINE_SECRET))
        .form(&[("token", access.as_str())])
        .send()
        .await
        .unwrap();
    let info: Value = response.json().await.unwrap();
    assert_eq!(info["active"], true);
    assert_eq!(info["sub"], MACHINE);
    assert!(info.get("username").is_none(), "{info}");

    // An over-asked scope is refused (documented: never narrowed for a machine), nothing written.
    let before = db.counts().await;
    let (status, body) = token(
        app,
        &[
            ("grant_type", "client_credentials"),
            ("scope", "mcp:tools mcp:admin"),
        ],
        Some((MACHINE, MACHINE_SECRET)),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_scope");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("mcp:admin")
    );
    // A user scope is not the machine's either.
    let (status, body) = token(
        app,
        &[("grant_type", "client_credentials"), ("scope", "openid")],
        Some((MACHINE, MACHINE_SECRET)),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope"))
    );
    // A resource the server does not serve.
    let (status, body) = token(
        app,
        &[
            ("grant_type", "client_credentials"),
            ("resource", "https://elsewhere.test/mcp"),
        ],
        Some((MACHINE, MACHINE_SECRET)),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_target"))
    );
    // A wrong secret.
    let (status, body) = token(
        app,
        &[("grant_type", "client_credentials")],
        Some((MACHINE, "not-the-secret-of-this-machine-client")),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    assert_eq!(
        db.counts().await,
        before,
        "a refused request writes nothing"
    );
}

#[tokio::test]
async fn e1_client_credentials_token_has_no_user_and_only_allowed_scopes() {
    let app = spawn_app_with(machine_settings).await;
    let db = Db::of(&app, None);
    e1_machine_token(&app, &db).await;
}

#[tokio::test]
async fn e1_client_credentials_token_has_no_user_and_only_allowed_scopes_postgres() {
    let schema = PgSchema::create().await;
    let app = spawn_app_with(|s| {
        machine_settings(s);
        s.database_url = schema.url();
    })
    .await;
    let db = Db::of(&app, Some(&schema));
    e1_machine_token(&app, &db).await;
}

#[tokio::test]
async fn e1_client_credentials_refused_to_dcr_clients_and_when_off() {
    let app = spawn_app_with(machine_settings).await;
    let db = Db::of(&app, None);
    // A dynamically registered confidential client asking: unauthorized_client.
    let registered = app
        .register(json!({
            "client_name": "Self-registered",
            "redirect_uris": [REDIRECT_URI],
            "grant_types": ["authorization_code"],
        }))
        .await;
    let id = registered["client_id"].as_str().unwrap();
    let secret = registered["client_secret"].as_str().unwrap();
    let before = db.counts().await;
    let (status, body) = token(
        &app,
        &[("grant_type", "client_credentials")],
        Some((id, secret)),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "unauthorized_client", "{body}");
    assert_eq!(db.counts().await, before);
    // Registering a machine by DCR is refused unless the operator allows it.
    let response = app
        .http
        .post(app.url("/api/auth/mcp/register"))
        .json(&json!({ "client_name": "Machine", "grant_types": ["client_credentials"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client_metadata");

    // The grant is off by default: unsupported, and not in the metadata.
    let off = spawn_app_with(|s| s.auth.trusted_clients = vec![machine_client()]).await;
    let (status, body) = token(
        &off,
        &[("grant_type", "client_credentials")],
        Some((MACHINE, MACHINE_SECRET)),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unsupported_grant_type"))
    );
    let metadata: Value = off
        .http
        .get(off.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        !metadata["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("client_credentials"))
    );
    let on: Value = app
        .http
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        on["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("client_credentials"))
    );
    assert!(
        on["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("private_key_jwt"))
    );
    assert!(
        on["token_endpoint_auth_signing_alg_values_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("ES256"))
    );
}

fn client_assertion(
    app: &TestApp,
    key: &EncodingKey,
    kid: &str,
    tweak: impl FnOnce(&mut Value),
) -> String {
    let mut claims = json!({
        "iss": KEYED, "sub": KEYED, "aud": app.url("/api/auth/mcp/token"),
        "jti": unique_name("jti"), "iat": now(), "exp": now() + 60,
    });
    tweak(&mut claims);
    sign(&claims, None, kid, key)
}

async fn with_assertion(app: &TestApp, assertion: &str) -> (StatusCode, Value) {
    token(
        app,
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion),
        ],
        None,
    )
    .await
}

#[tokio::test]
async fn e2_private_key_jwt_checks_signature_audience_expiry_and_replay() {
    let (key, jwk) = es256_key("k1");
    let (foreign, _) = es256_key("k1");
    let app = spawn_app_with(|s| {
        machine_settings(s);
        s.auth
            .trusted_clients
            .push(keyed_client(Some(json!({ "keys": [jwk] })), None));
    })
    .await;
    let db = Db::of(&app, None);
    let good = client_assertion(&app, &key, "k1", |_| {});
    let (status, body) = with_assertion(&app, &good).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The issuer itself is an accepted audience too.
    let by_issuer = client_assertion(&app, &key, "k1", |c| c["aud"] = json!(app.base));
    assert_eq!(with_assertion(&app, &by_issuer).await.0, StatusCode::OK);

    let before = db.counts().await;
    let refusals = [
        (good.clone(), "used before"),
        (
            client_assertion(&app, &key, "k1", |c| c["aud"] = json!("https://other.test")),
            "aud",
        ),
        (
            client_assertion(&app, &key, "k1", |c| c["exp"] = json!(now() - 120)),
            "expired",
        ),
        (
            client_assertion(&app, &key, "k1", |c| c["exp"] = json!(now() + 3600)),
            "too long",
        ),
        (client_assertion(&app, &foreign, "k1", |_| {}), "signature"),
        (
            client_assertion(&app, &key, "k1", |c| c["iss"] = json!("someone-else")),
            "iss",
        ),
        (client_assertion(&app, &key, "k2", |_| {}), "kid"),
    ];
    for (assertion, why) in refusals {
        let (status, body) = with_assertion(&app, &assertion).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{why}: {body}");
        assert_eq!(body["error"], "invalid_client", "{why}");
        let description = body["error_description"].as_str().unwrap();
        assert!(description.contains(why), "{why}: {description}");
    }
    // A symmetric (HS256) assertion is never accepted.
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({ "iss": KEYED, "sub": KEYED, "aud": app.base, "jti": "h", "exp": now() + 60 }),
        &EncodingKey::from_secret(b"guessable"),
    )
    .unwrap();
    let (status, body) = with_assertion(&app, &hs).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    // A keyed client cannot pass with a secret or as public.
    let (status, _) = token(
        &app,
        &[("grant_type", "client_credentials"), ("client_id", KEYED)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        db.counts().await,
        before,
        "a refused request writes nothing"
    );

    // The same assertion authenticates at introspection.
    let (_, issued) = with_assertion(&app, &client_assertion(&app, &key, "k1", |_| {})).await;
    let response = app
        .http
        .post(app.url("/api/auth/mcp/introspect"))
        .form(&[
            ("token", issued["access_token"].as_str().unwrap()),
            ("client_assertion_type", ASSERTION_TYPE),
            (
                "client_assertion",
                &client_assertion(&app, &key, "k1", |c| c["aud"] = json!(app.base)),
            ),
        ])
        .send()
        .await
        .unwrap();
    let info: Value = response.json().await.unwrap();
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["sub"], KEYED);
}

#[tokio::test]
async fn e2_jwks_uri_on_an_internal_address_is_refused_without_a_connection() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = connections.clone();
    tokio::spawn(async move {
        while let Ok((_socket, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
        }
    });
    let (key, _) = es256_key("k1");
    for uri in [
        format!("https://127.0.0.1:{port}/jwks"),
        format!("https://localhost:{port}/jwks"),
        "https://169.254.169.254/latest/jwks".to_owned(),
    ] {
        let app = spawn_app_with(|s| {
            machine_settings(s);
            s.auth
                .trusted_clients
                .push(keyed_client(None, Some(uri.clone())));
        })
        .await;
        let (status, body) =
            with_assertion(&app, &client_assertion(&app, &key, "k1", |_| {})).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}: {body}");
        assert_eq!(body["error"], "invalid_client");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("jwks_uri"),
            "{body}"
        );
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "no connection to an internal address"
    );
}

/// An enterprise identity provider: its own keys, its JWKS served over HTTP.
struct Enterprise {
    issuer: String,
    jwks_uri: String,
    key: EncodingKey,
    _server: tokio::task::JoinHandle<()>,
}

impl Enterprise {
    async fn start() -> Enterprise {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let (key, jwk) = es256_key("idp-1");
        let jwks = json!({ "keys": [jwk] });
        let router = Router::new().route("/jwks", get(move || async move { axum::Json(jwks) }));
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Enterprise {
            issuer: format!("{base}/oauth2/default"),
            jwks_uri: format!("{base}/jwks"),
            key,
            _server: server,
        }
    }

    fn trusted(&self) -> TrustedIssuer {
        TrustedIssuer {
            id: "acme-okta".into(),
            issuer: self.issuer.clone(),
            jwks_uri: Some(self.jwks_uri.clone()),
            jwks_file: None,
            client_ids: vec![AGENT.into()],
            subject: SubjectMapping::Email,
            identity_provider: None,
            create_users: true,
            trust_email: false,
            scopes: vec!["mcp:tools".into()],
            refresh_tokens: false,
        }
    }

    fn id_jag(
        &self,
        app: &TestApp,
        email: &str,
        tweak: impl FnOnce(&mut Value, &mut Option<&'static str>),
    ) -> String {
        let mut claims = json!({
            "iss": self.issuer, "sub": format!("00u-{email}"), "aud": app.base,
            "client_id": AGENT, "jti": unique_name("jag"), "iat": now(), "exp": now() + 120,
            "resource": app.resource(), "scope": "mcp:tools",
            "email": email, "email_verified": true,
        });
        let mut typ = Some(ID_JAG_TYPE);
        tweak(&mut claims, &mut typ);
        sign(&claims, typ, "idp-1", &self.key)
    }
}

fn agent_client() -> TrustedClient {
    TrustedClient {
        client_id: AGENT.into(),
        client_secret: Some(AGENT_SECRET.into()),
        name: "Enterprise agent".into(),
        redirect_uris: vec![REDIRECT_URI.into()],
        ..Default::default()
    }
}

async fn redeem(app: &TestApp, assertion: &str, extra: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut form = vec![("grant_type", JWT_BEARER), ("assertion", assertion)];
    form.extend_from_slice(extra);
    token(app, &form, Some((AGENT, AGENT_SECRET))).await
}

async fn e3_id_jag(app: &TestApp, db: &Db, idp: &Enterprise) {
    let email = unique_email();
    let before = db.counts().await;
    let good = idp.id_jag(app, &email, |_, _| {});
    let (status, body) = redeem(app, &good, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "mcp:tools");
    assert!(
        body.get("refresh_token").is_none(),
        "no refresh token by default"
    );
    let after = db.counts().await;
    assert_eq!(after[3], before[3] + 1, "the user was created");
    let (status, me) = session(app, body["access_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(me["userId"].is_string(), "a user's token: {me}");
    let audit = db.last_token_issue().await;
    assert_eq!(audit["consent"], "enterprise_admin");
    assert_eq!(audit["issuer"], json!(idp.issuer));
    assert!(audit["jti"].is_string());

    // The same person again: the same user, no second account.
    let (status, _) = redeem(app, &idp.id_jag(app, &email, |_, _| {}), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(db.counts().await[3], after[3]);

    // Over-asked scope: narrowed to what the issuer may grant (documented), not refused.
    let (status, body) = redeem(
        app,
        &idp.id_jag(app, &email, |c, _| {
            c["scope"] = json!("mcp:tools mcp:admin payroll")
        }),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "mcp:tools");

    let stranger = EncodingKey::from_ec_pem(
        rcgen::KeyPair::generate()
            .unwrap()
            .serialize_pem()
            .as_bytes(),
    )
    .unwrap();
    let before = db.counts().await;
    let refusals: Vec<(String, &str)> = vec![
        (good.clone(), "used before"),
        (
            idp.id_jag(app, &email, |c, _| {
                c["aud"] = json!("https://other-as.test")
            }),
            "aud",
        ),
        (idp.id_jag(app, &email, |_, typ| *typ = Some("JWT")), "typ"),
        (idp.id_jag(app, &email, |_, typ| *typ = None), "typ"),
        (
            idp.id_jag(app, &email, |c, _| c["exp"] = json!(now() - 120)),
            "expired",
        ),
        (
            idp.id_jag(app, &email, |c, _| {
                c["client_id"] = json!("some-other-client")
            }),
            "client_id",
        ),
        (
            idp.id_jag(app, &email, |c, _| {
                c["iss"] = json!("https://unknown-idp.test")
            }),
            "not trusted",
        ),
        (
            idp.id_jag(app, &email, |c, _| {
                c["resource"] = json!("https://elsewhere.test/mcp")
            }),
            "resource",
        ),
        (
            idp.id_jag(app, &email, |c, _| c["scope"] = json!("payroll")),
            "scope",
        ),
        (
            idp.id_jag(app, &email, |c, _| {
                c.as_object_mut().unwrap().remove("jti");
            }),
            "jti",
        ),
        (
            sign(
                &json!({
                    "iss": idp.issuer, "sub": "x", "aud": app.base, "client_id": AGENT, "jti": "j",
                    "iat": now(), "exp": now() + 60,
                }),
                Some(ID_JAG_TYPE),
                "idp-1",
                &stranger,
            ),
            "signature",
        ),
    ];
    for (assertion, why) in refusals {
        let (status, body) = redeem(app, &assertion, &[]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}: {body}");
        assert_eq!(body["error"], "invalid_grant", "{why}: {body}");
        let description = body["error_description"].as_str().unwrap();
        assert!(description.contains(why), "{why}: {description}");
    }
    assert_eq!(db.counts().await, before, "each wrong claim writes nothing");

    // Another client may not redeem an assertion made out to the agent.
    let (status, body) = token(
        app,
        &[
            ("grant_type", JWT_BEARER),
            ("assertion", &idp.id_jag(app, &email, |_, _| {})),
        ],
        Some((MACHINE, MACHINE_SECRET)),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert_eq!(db.counts().await, before);
}

fn enterprise_settings(s: &mut Settings, idp: &Enterprise) {
    machine_settings(s);
    s.auth.trusted_clients.push(agent_client());
    s.auth.trusted_issuers = vec![idp.trusted()];
}

#[tokio::test]
async fn e3_id_jag_redemption_checks_every_claim_and_writes_nothing_when_refused() {
    let idp = Enterprise::start().await;
    let app = spawn_app_with(|s| enterprise_settings(s, &idp)).await;
    let db = Db::of(&app, None);
    e3_id_jag(&app, &db, &idp).await;
}

#[tokio::test]
async fn e3_id_jag_redemption_checks_every_claim_and_writes_nothing_when_refused_postgres() {
    let idp = Enterprise::start().await;
    let schema = PgSchema::create().await;
    let app = spawn_app_with(|s| {
        enterprise_settings(s, &idp);
        s.database_url = schema.url();
    })
    .await;
    let db = Db::of(&app, Some(&schema));
    e3_id_jag(&app, &db, &idp).await;
}

#[tokio::test]
async fn e3_id_jag_never_joins_an_unverified_identity_to_an_existing_account() {
    let idp = Enterprise::start().await;
    let app = spawn_app_with(|s| enterprise_settings(s, &idp)).await;
    let db = Db::of(&app, None);
    // A password account whose owner never verified the address.
    let email = existing_user(&app).await;
    let before = db.counts().await;
    // The assertion's email is not verified: refused.
    let unverified = idp.id_jag(&app, &email, |c, _| c["email_verified"] = json!(false));
    let (status, body) = redeem(&app, &unverified, &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{body}"
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("not verified")
    );
    // Verified by the IdP, but the account's own address is unverified: never joined.
    let (status, body) = redeem(&app, &idp.id_jag(&app, &email, |_, _| {}), &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{body}"
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("never joined")
    );
    // A refresh token only when the issuer's policy says so.
    assert_eq!(db.counts().await, before);
    let idp2 = Enterprise::start().await;
    let app2 = spawn_app_with(|s| {
        enterprise_settings(s, &idp2);
        s.auth.trusted_issuers[0].refresh_tokens = true;
    })
    .await;
    let (status, body) = redeem(&app2, &idp2.id_jag(&app2, &unique_email(), |_, _| {}), &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let refresh = body["refresh_token"]
        .as_str()
        .expect("a refresh token by policy");
    let (status, body) = token(
        &app2,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        Some((AGENT, AGENT_SECRET)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// `mcpauth client create --grant client_credentials --scope …` prints the secret once; the
/// machine then gets a token with it (once the grant is on), and only its scopes.
#[tokio::test]
async fn e1_cli_created_machine_client_gets_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("cli.db");
    let output = mcpauth(dir.path())
        .args([
            "client",
            "create",
            "--name",
            "Backup job",
            "--grant",
            "client_credentials",
            "--scope",
            "mcp:tools",
            "--database-url",
            &format!("sqlite://{}", db_path.display()),
        ])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("shown only this once"), "{stderr}");
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|line| line.trim().strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("{name} in {stdout}"))
    };
    let (client_id, secret) = (field("client_id:"), field("client_secret:"));

    let app = spawn_app_on(&db_path, |s| {
        s.auth.client_credentials.enabled = true;
    })
    .await;
    let (status, body) = token(
        &app,
        &[("grant_type", "client_credentials")],
        Some((&client_id, &secret)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "mcp:tools");
    let (status, body) = token(
        &app,
        &[("grant_type", "client_credentials"), ("scope", "mcp:admin")],
        Some((&client_id, &secret)),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope"))
    );
}

//! Helpers the integration tests share: a PostgreSQL schema of its own for every test, and
//! fixtures that link a user and a client through every table that references them.
//!
//! The server is `MCPAUTH_TEST_POSTGRES_URL`, by default
//! `postgres://postgres@127.0.0.1:5432/test`. An unreachable server fails the test: CI starts
//! one, and a PostgreSQL test that passes without a database proves nothing.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use mcpauth_core::model::{
    AccessToken, AuditEvent, AuthorizationCode, Client, Consent, GrantType, RefreshToken, Session,
    TokenEndpointAuthMethod, TokenFamily, User,
};
use mcpauth_core::{RedirectUri, Scopes, Store};
use mcpauth_store::{PgStore, PgStoreOptions};
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};

/// The server the PostgreSQL tests use unless `MCPAUTH_TEST_POSTGRES_URL` names another.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// `MCPAUTH_TEST_POSTGRES_URL`, or [`DEFAULT_POSTGRES_URL`].
pub fn postgres_url() -> String {
    std::env::var("MCPAUTH_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

/// A plain connection to the test server, failing the test with a hint when it is down.
pub async fn connect() -> PgConnection {
    let url = postgres_url();
    PgConnection::connect(&url).await.unwrap_or_else(|err| {
        panic!(
            "PostgreSQL at {url} is unreachable ({err}): start it, or point \
             MCPAUTH_TEST_POSTGRES_URL at a server the tests may create schemas in"
        )
    })
}

/// A schema made for one test (`test_<pid>_<time>_<n>`), dropped with everything in it when
/// this value is dropped, even when the test panics.
pub struct PgSchema {
    name: String,
}

impl PgSchema {
    pub async fn create() -> PgSchema {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let name = format!(
            "test_{}_{nanos}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = connect().await;
        conn.execute(AssertSqlSafe(format!(r#"CREATE SCHEMA "{name}""#)))
            .await
            .unwrap();
        conn.close().await.unwrap();
        PgSchema { name }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Store options whose connections work in this schema.
    pub fn options(&self) -> PgStoreOptions {
        PgStoreOptions {
            search_path: Some(self.name.clone()),
            ..PgStoreOptions::default()
        }
    }

    /// A store on this schema, not yet migrated.
    pub async fn store(&self) -> PgStore {
        PgStore::connect_with(&postgres_url(), self.options())
            .await
            .unwrap()
    }

    /// A migrated store on this schema.
    pub async fn migrated_store(&self) -> PgStore {
        let store = self.store().await;
        store.migrate().await.unwrap();
        store
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        // Drop cannot await: drop the schema from a thread with a runtime of its own.
        let sql = format!(r#"DROP SCHEMA IF EXISTS "{}" CASCADE"#, self.name);
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let mut conn = PgConnection::connect(&postgres_url()).await?;
                // A connection of the test's pool may still be rolling back; wait for it, but
                // not forever.
                conn.execute("SET lock_timeout = '30s'").await?;
                conn.execute(AssertSqlSafe(sql)).await?;
                conn.close().await
            })?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test schema {}: {dropped:?}", self.name);
        }
    }
}

pub const NOW: i64 = 1_700_000_000;

/// `raw` as scopes (test data is always valid).
pub fn scopes(raw: &str) -> Scopes {
    Scopes::parse(raw).unwrap()
}

/// `raw` as a redirect URI (test data is always valid).
pub fn uri(raw: &str) -> RedirectUri {
    RedirectUri::parse(raw).unwrap()
}

pub fn user(id: &str) -> User {
    User {
        id: id.to_owned(),
        name: id.to_owned(),
        email: format!("{id}@example.com"),
        email_verified: false,
        image: None,
        created_at: NOW,
        updated_at: NOW,
        disabled: false,
    }
}

pub fn client(client_id: &str) -> Client {
    Client {
        client_id: client_id.to_owned(),
        client_secret_hash: None,
        name: None,
        redirect_uris: vec![uri("http://127.0.0.1/cb")],
        token_endpoint_auth_method: TokenEndpointAuthMethod::None,
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        logo_uri: None,
        metadata: serde_json::json!({}),
        disabled: false,
        skip_consent: false,
        registered_dynamically: false,
        created_at: NOW,
    }
}

/// The tables whose rows belong to a user (every one of them is in [`seed`]).
pub const OWNED_TABLES: [&str; 7] = [
    "session",
    "account",
    "oauthConsent",
    "oauthTokenFamily",
    "oauthAuthorizationCode",
    "oauthAccessToken",
    "oauthRefreshToken",
];

/// The tables whose rows belong to a client (every one of them is in [`seed`]).
pub const CLIENT_TABLES: [&str; 5] = [
    "oauthConsent",
    "oauthTokenFamily",
    "oauthAuthorizationCode",
    "oauthAccessToken",
    "oauthRefreshToken",
];

/// A user, a client, and a session, consent, code, family, access and refresh token linking
/// them; the tokens are stored by redeeming the code ([`Store::redeem_code`], which also logs
/// a `token.issue` audit entry). The access token's hash is `ah-<user_id>`.
pub async fn seed(store: &dyn Store, user_id: &str, client_id: &str) {
    store.create_user(&user(user_id), "hash").await.unwrap();
    store.create_client(&client(client_id)).await.unwrap();
    store
        .create_session(&Session {
            id: format!("s-{user_id}"),
            token_hash: format!("sh-{user_id}"),
            user_id: user_id.to_owned(),
            expires_at: NOW + 60,
            created_at: NOW,
            auth_time: NOW,
            ip_address: None,
            user_agent: None,
        })
        .await
        .unwrap();
    store
        .save_consent(&Consent {
            user_id: user_id.to_owned(),
            client_id: client_id.to_owned(),
            scopes: scopes("openid"),
            created_at: NOW,
            updated_at: NOW,
        })
        .await
        .unwrap();
    let family = TokenFamily {
        id: format!("f-{user_id}"),
        client_id: client_id.to_owned(),
        user_id: user_id.to_owned(),
        scopes: scopes("openid"),
        resource: "https://mcp.example/".to_owned(),
        created_at: NOW,
        expires_at: NOW + 1000,
        revoked_at: None,
    };
    let code = AuthorizationCode {
        code_hash: format!("ch-{user_id}"),
        client_id: client_id.to_owned(),
        user_id: user_id.to_owned(),
        session_id: format!("s-{user_id}"),
        redirect_uri: uri("http://127.0.0.1/cb"),
        scopes: scopes("openid"),
        code_challenge: None,
        resource: "https://mcp.example/".to_owned(),
        nonce: None,
        auth_time: NOW,
        family_id: family.id.clone(),
        expires_at: NOW + 60,
        created_at: NOW,
    };
    store.create_code(&code, &family).await.unwrap();
    let access = AccessToken {
        id: format!("a-{user_id}"),
        token_hash: format!("ah-{user_id}"),
        family_id: family.id.clone(),
        client_id: client_id.to_owned(),
        user_id: Some(user_id.to_owned()),
        scopes: scopes("openid"),
        audience: "https://mcp.example/".to_owned(),
        expires_at: NOW + 60,
        created_at: NOW,
        dpop_jkt: None,
    };
    let refresh = RefreshToken {
        id: format!("r-{user_id}"),
        token_hash: format!("rh-{user_id}"),
        family_id: family.id.clone(),
        client_id: client_id.to_owned(),
        user_id: user_id.to_owned(),
        scopes: scopes("openid"),
        resource: "https://mcp.example/".to_owned(),
        expires_at: NOW + 600,
        created_at: NOW,
        rotated_at: None,
        retry_response: None,
        dpop_jkt: None,
    };
    let audit = AuditEvent {
        at: NOW,
        kind: "token.issue".to_owned(),
        user_id: Some(user_id.to_owned()),
        client_id: Some(client_id.to_owned()),
        ip: None,
        detail: "{}".to_owned(),
    };
    assert!(
        store
            .redeem_code(&code.code_hash, NOW, &access, Some(&refresh), &audit)
            .await
            .unwrap()
    );
}

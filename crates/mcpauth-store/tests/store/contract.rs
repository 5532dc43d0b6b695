//! The behaviour every [`Store`] backend must have, written against `dyn Store` so every
//! backend runs the same functions: each public function here checks one behaviour on a
//! freshly migrated, empty store. The modules at the bottom run them against a new SQLite file
//! per test (`sqlite`), an in-memory SQLite database (`sqlite_memory`), and a new PostgreSQL
//! schema per test (`postgres`, on `MCPAUTH_TEST_POSTGRES_URL`; these fail when the server is
//! unreachable).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use mcpauth_core::model::{
    AccessToken, AuthorizationCode, Client, CodeRedemption, Consent, GrantType, RefreshToken,
    Reissue, Rotation, Session, TokenEndpointAuthMethod, TokenFamily, User,
};
use mcpauth_core::model::{AuditEvent, ClientDocument, SigningKey};
use mcpauth_core::{Store, StoreError};

use crate::support::{scopes, uri};

pub use crate::contract_accounts::{concurrent_unlink_keeps_a_way_in, linked_accounts};
pub use crate::contract_connections::{
    concurrent_refresh_claims_succeed_once, connections_follow_their_user, connections_lifecycle,
};
pub use crate::contract_console::{
    a1_audit_search_and_histogram, a1_counts_and_client_usage, a1_stored_admins, a1_user_search,
};
pub use crate::contract_outbox::{
    concurrent_claims_send_each_mail_once, outbox_claims_in_due_order_up_to_the_limit,
    outbox_lifecycle, outbox_mail_and_token_are_one_transaction,
    outbox_never_sends_an_expired_token,
};

pub const NOW: i64 = 1_700_000_000;

/// Counts the rows of a table, looking past the trait (for promises such as "exactly one
/// row" that the trait cannot show).
pub type Rows =
    Box<dyn Fn(&'static str) -> Pin<Box<dyn Future<Output = i64> + Send>> + Send + Sync>;

// ----- fixtures -------------------------------------------------------------------------

pub fn user(id: &str, email: &str) -> User {
    User {
        id: id.to_owned(),
        name: format!("User {id}"),
        email: email.to_owned(),
        email_verified: true,
        image: Some(format!("https://img.example/{id}.png")),
        created_at: NOW,
        updated_at: NOW + 1,
        disabled: false,
    }
}

pub fn client(client_id: &str) -> Client {
    Client {
        client_id: client_id.to_owned(),
        client_secret_hash: None,
        name: Some("Test client".to_owned()),
        redirect_uris: vec![
            uri("http://127.0.0.1/callback"),
            uri("https://app.example/cb"),
        ],
        token_endpoint_auth_method: TokenEndpointAuthMethod::None,
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        logo_uri: None,
        metadata: serde_json::json!({
            "client_name": "Test client",
            "redirect_uris": ["http://127.0.0.1/callback", "https://app.example/cb"],
            "nested": {"n": 1, "ok": true},
        }),
        disabled: false,
        skip_consent: false,
        registered_dynamically: false,
        created_at: NOW,
    }
}

pub fn session(id: &str, user_id: &str, expires_at: i64) -> Session {
    Session {
        id: id.to_owned(),
        token_hash: format!("session-hash-{id}"),
        user_id: user_id.to_owned(),
        expires_at,
        created_at: NOW,
        auth_time: NOW - 5,
        ip_address: Some("192.0.2.1".to_owned()),
        user_agent: None,
    }
}

pub fn family(id: &str, user_id: &str, client_id: &str) -> TokenFamily {
    TokenFamily {
        id: id.to_owned(),
        client_id: client_id.to_owned(),
        user_id: user_id.to_owned(),
        scopes: scopes("openid profile"),
        resource: "https://mcp.example/".to_owned(),
        created_at: NOW,
        expires_at: NOW + 30 * 86_400,
        revoked_at: None,
    }
}

pub fn family_with(id: &str, user_id: &str, client_id: &str) -> TokenFamily {
    family(id, user_id, client_id)
}

pub fn code(code_hash: &str, family: &TokenFamily, session_id: &str) -> AuthorizationCode {
    AuthorizationCode {
        code_hash: code_hash.to_owned(),
        client_id: family.client_id.clone(),
        user_id: family.user_id.clone(),
        session_id: session_id.to_owned(),
        redirect_uri: uri("http://127.0.0.1/callback"),
        scopes: family.scopes.clone(),
        code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".to_owned()),
        resource: family.resource.clone(),
        nonce: Some("n-0S6_WzA2Mj".to_owned()),
        auth_time: NOW - 5,
        family_id: family.id.clone(),
        expires_at: NOW + 60,
        created_at: NOW,
    }
}

pub fn access(id: &str, family: &TokenFamily) -> AccessToken {
    AccessToken {
        id: id.to_owned(),
        token_hash: format!("access-hash-{id}"),
        family_id: family.id.clone(),
        client_id: family.client_id.clone(),
        user_id: Some(family.user_id.clone()),
        scopes: family.scopes.clone(),
        audience: family.resource.clone(),
        expires_at: NOW + 3600,
        created_at: NOW,
        dpop_jkt: None,
    }
}

pub fn refresh(id: &str, family: &TokenFamily) -> RefreshToken {
    RefreshToken {
        id: id.to_owned(),
        token_hash: format!("refresh-hash-{id}"),
        family_id: family.id.clone(),
        client_id: family.client_id.clone(),
        user_id: family.user_id.clone(),
        scopes: family.scopes.clone(),
        resource: family.resource.clone(),
        expires_at: NOW + 86_400,
        created_at: NOW,
        rotated_at: None,
        retry_response: None,
        dpop_jkt: None,
    }
}

/// A user `u1`, a client `c1`, a live session `s1`, and a code `code-1` starting family
/// `fam-1`.
pub async fn seed_grant(store: &dyn Store) -> (AuthorizationCode, TokenFamily) {
    store
        .create_user(&user("u1", "u1@example.com"), "$argon2id$v=19$hash")
        .await
        .unwrap();
    store.create_client(&client("c1")).await.unwrap();
    store
        .create_session(&session("s1", "u1", NOW + 3600))
        .await
        .unwrap();
    let family = family("fam-1", "u1", "c1");
    let code = code("code-1", &family, "s1");
    store.create_code(&code, &family).await.unwrap();
    (code, family)
}

/// A security-log entry of `kind` about `u1` and `c1`.
pub fn audit(kind: &str) -> AuditEvent {
    AuditEvent {
        at: NOW,
        kind: kind.to_owned(),
        user_id: Some("u1".to_owned()),
        client_id: Some("c1".to_owned()),
        ip: None,
        detail: "{}".to_owned(),
    }
}

/// Redeems the code `code_hash` at [`NOW`] for `access` and `refresh`, as the code exchange
/// does ([`Store::redeem_code`], logged as `token.issue`); the code must be unused.
pub async fn exchange(
    store: &dyn Store,
    code_hash: &str,
    access: &AccessToken,
    refresh: Option<&RefreshToken>,
) {
    let event = audit("token.issue");
    let redeemed = store.redeem_code(code_hash, NOW, access, refresh, &event);
    assert!(redeemed.await.unwrap(), "{code_hash} was not redeemed");
}

/// [`seed_grant`] plus the code's exchange: access token `a1` and refresh token `r1`.
pub async fn seed_tokens(store: &dyn Store) -> (TokenFamily, AccessToken, RefreshToken) {
    let (code, family) = seed_grant(store).await;
    let access = access("a1", &family);
    let refresh = refresh("r1", &family);
    exchange(store, &code.code_hash, &access, Some(&refresh)).await;
    (family, access, refresh)
}

/// `what` is exactly `reason` followed by the database's code for a unique violation
/// (PostgreSQL's SQLSTATE 23505, SQLite's extended result code 2067).
pub fn assert_unique_conflict(what: &str, reason: &str) {
    assert!(
        [
            format!("{reason} (code 23505)"),
            format!("{reason} (code 2067)")
        ]
        .iter()
        .any(|expected| expected == what),
        "{what:?}"
    );
}

// ----- behaviours -----------------------------------------------------------------------

pub async fn migrate_is_idempotent(store: &dyn Store) {
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    store
        .create_user(&user("u1", "u1@example.com"), "h")
        .await
        .unwrap();
    store.migrate().await.unwrap();
    assert!(store.user_by_id("u1").await.unwrap().is_some());
}

pub async fn server_secret_first_writer_wins(store: &dyn Store) {
    assert_eq!(store.server_secret("first").await.unwrap(), "first");
    assert_eq!(store.server_secret("second").await.unwrap(), "first");
}

pub async fn users(store: &dyn Store) {
    let alice = user("u1", "alice@example.com");
    store.create_user(&alice, "$argon2id$alice").await.unwrap();

    let (found, password) = store
        .user_by_email("alice@example.com")
        .await
        .unwrap()
        .expect("user by email");
    assert_eq!(found, alice);
    assert_eq!(password.as_deref(), Some("$argon2id$alice"));
    assert_eq!(store.user_by_id("u1").await.unwrap(), Some(alice.clone()));

    let clash = user("u2", "alice@example.com");
    match store.create_user(&clash, "other").await {
        Err(StoreError::Conflict(what)) => {
            assert_unique_conflict(&what, "email already registered")
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // The failed registration left nothing behind.
    assert_eq!(store.user_by_id("u2").await.unwrap(), None);

    assert_eq!(store.user_by_email("bob@example.com").await.unwrap(), None);
    assert_eq!(store.user_by_id("nobody").await.unwrap(), None);

    let mut bob = user("u3", "bob@example.com");
    bob.image = None;
    bob.email_verified = false;
    bob.disabled = true;
    store.create_user(&bob, "$argon2id$bob").await.unwrap();
    assert_eq!(store.user_by_id("u3").await.unwrap(), Some(bob));
}

pub async fn sessions(store: &dyn Store) {
    store
        .create_user(&user("u1", "u1@example.com"), "h")
        .await
        .unwrap();
    let live = session("s1", "u1", NOW + 100);
    store.create_session(&live).await.unwrap();

    let (found, owner) = store
        .session_by_token(&live.token_hash, NOW)
        .await
        .unwrap()
        .expect("live session");
    assert_eq!(found, live);
    assert_eq!(owner.id, "u1");

    // Expired at and after expires_at.
    assert_eq!(
        store
            .session_by_token(&live.token_hash, NOW + 100)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .session_by_token(&live.token_hash, NOW + 101)
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.session_by_token("nope", NOW).await.unwrap(), None);

    // A disabled user's sessions do not work.
    let mut blocked = user("u2", "u2@example.com");
    blocked.disabled = true;
    store.create_user(&blocked, "h").await.unwrap();
    let theirs = session("s2", "u2", NOW + 100);
    store.create_session(&theirs).await.unwrap();
    assert_eq!(
        store
            .session_by_token(&theirs.token_hash, NOW)
            .await
            .unwrap(),
        None
    );

    store.delete_session(&live.token_hash).await.unwrap();
    assert_eq!(
        store.session_by_token(&live.token_hash, NOW).await.unwrap(),
        None
    );
    // Deleting what is not there is fine.
    store.delete_session(&live.token_hash).await.unwrap();
}

pub async fn clients(store: &dyn Store) {
    let public = client("c1");
    store.create_client(&public).await.unwrap();
    assert_eq!(store.client_by_id("c1").await.unwrap(), Some(public));

    let mut confidential = client("c2");
    confidential.client_secret_hash = Some("secret-hash".to_owned());
    confidential.token_endpoint_auth_method = TokenEndpointAuthMethod::ClientSecretBasic;
    confidential.name = None;
    confidential.logo_uri = Some("https://app.example/logo.png".to_owned());
    confidential.grant_types = vec![GrantType::AuthorizationCode];
    confidential.disabled = true;
    confidential.skip_consent = true;
    store.create_client(&confidential).await.unwrap();
    assert_eq!(store.client_by_id("c2").await.unwrap(), Some(confidential));

    match store.create_client(&client("c1")).await {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(store.client_by_id("c3").await.unwrap(), None);

    // save_client creates, then replaces everything but the creation time.
    let mut trusted = client("c3");
    store.save_client(&trusted).await.unwrap();
    assert_eq!(
        store.client_by_id("c3").await.unwrap(),
        Some(trusted.clone())
    );
    let first_created = trusted.created_at;
    trusted.name = Some("Renamed".to_owned());
    trusted.redirect_uris = vec![uri("https://new.example/cb")];
    trusted.skip_consent = true;
    trusted.created_at = first_created + 100;
    store.save_client(&trusted).await.unwrap();
    let stored = store.client_by_id("c3").await.unwrap().expect("client");
    assert_eq!(stored.name.as_deref(), Some("Renamed"));
    assert_eq!(stored.redirect_uris, [uri("https://new.example/cb")]);
    assert!(stored.skip_consent);
    assert_eq!(stored.created_at, first_created);
}

pub async fn client_documents(store: &dyn Store) {
    const URL: &str = "https://app.example/client.json";
    assert_eq!(store.client_document(URL).await.unwrap(), None);
    store
        .create_user(&user("u1", "u1@example.com"), "h")
        .await
        .unwrap();
    let first = client(URL);
    let entry = ClientDocument {
        client_id: URL.to_owned(),
        etag: Some("\"v1\"".to_owned()),
        fetched_at: NOW,
        expires_at: NOW + 300,
    };
    assert!(!store.save_client_document(&first, &entry).await.unwrap());
    assert_eq!(
        store.client_document(URL).await.unwrap(),
        Some((first.clone(), entry.clone()))
    );
    // A client registered the ordinary way has no document.
    store.create_client(&client("plain")).await.unwrap();
    assert_eq!(store.client_document("plain").await.unwrap(), None);

    store
        .save_consent(&Consent {
            user_id: "u1".to_owned(),
            client_id: URL.to_owned(),
            scopes: scopes("openid"),
            created_at: NOW,
            updated_at: NOW,
        })
        .await
        .unwrap();
    // Revalidated, same redirects: consents stay, the operator's disabling stays, the
    // creation time stays.
    assert!(store.set_client_disabled(URL, true, NOW).await.unwrap());
    let mut renamed = first.clone();
    renamed.name = Some("Renamed".to_owned());
    renamed.created_at = NOW + 10;
    let later = ClientDocument {
        etag: None,
        fetched_at: NOW + 10,
        expires_at: NOW + 3600,
        ..entry.clone()
    };
    let epoch = store.revocation_epoch().await.unwrap();
    assert!(!store.save_client_document(&renamed, &later).await.unwrap());
    let (stored, stored_entry) = store.client_document(URL).await.unwrap().expect("document");
    assert_eq!(stored.name.as_deref(), Some("Renamed"));
    assert!(stored.disabled);
    assert_eq!(stored.created_at, NOW);
    assert_eq!(stored_entry, later);
    assert!(store.consent("u1", URL).await.unwrap().is_some());
    assert_eq!(store.revocation_epoch().await.unwrap(), epoch);

    // New redirects: the consents given before no longer hold.
    let mut moved = renamed.clone();
    moved.redirect_uris = vec![uri("https://elsewhere.example/cb")];
    assert!(store.save_client_document(&moved, &later).await.unwrap());
    assert_eq!(store.consent("u1", URL).await.unwrap(), None);
    assert!(store.revocation_epoch().await.unwrap() > epoch);

    // Deleting the client deletes its document.
    assert!(store.delete_client(URL).await.unwrap());
    assert_eq!(store.client_document(URL).await.unwrap(), None);
}

pub async fn consent_upsert(store: &dyn Store) {
    store
        .create_user(&user("u1", "u1@example.com"), "h")
        .await
        .unwrap();
    store.create_client(&client("c1")).await.unwrap();
    store.create_client(&client("c2")).await.unwrap();
    assert_eq!(store.consent("u1", "c1").await.unwrap(), None);

    let first = Consent {
        user_id: "u1".to_owned(),
        client_id: "c1".to_owned(),
        scopes: scopes("openid"),
        created_at: NOW,
        updated_at: NOW,
    };
    store.save_consent(&first).await.unwrap();
    assert_eq!(
        store.consent("u1", "c1").await.unwrap(),
        Some(first.clone())
    );

    let wider = Consent {
        scopes: scopes("openid profile email"),
        created_at: NOW + 50,
        updated_at: NOW + 50,
        ..first.clone()
    };
    store.save_consent(&wider).await.unwrap();
    let stored = store.consent("u1", "c1").await.unwrap().expect("consent");
    assert_eq!(stored.scopes.to_string(), "openid profile email");
    assert_eq!(stored.updated_at, NOW + 50);
    // Still one consent per (user, client), dated from the first approval.
    assert_eq!(stored.created_at, NOW);

    // Consents are per client.
    assert_eq!(store.consent("u1", "c2").await.unwrap(), None);
}

pub async fn verifications(store: &dyn Store) {
    store
        .put_verification("pending:1", "v1", NOW + 60, NOW)
        .await
        .unwrap();
    assert_eq!(
        store.peek_verification("pending:1", NOW).await.unwrap(),
        Some("v1".to_owned())
    );
    // Peeking does not consume.
    assert_eq!(
        store.peek_verification("pending:1", NOW).await.unwrap(),
        Some("v1".to_owned())
    );
    // Putting again replaces.
    store
        .put_verification("pending:1", "v2", NOW + 60, NOW + 1)
        .await
        .unwrap();
    assert_eq!(
        store.take_verification("pending:1", NOW).await.unwrap(),
        Some("v2".to_owned())
    );
    assert_eq!(
        store.take_verification("pending:1", NOW).await.unwrap(),
        None
    );
    assert_eq!(
        store.peek_verification("pending:1", NOW).await.unwrap(),
        None
    );

    // Expired values are neither peeked nor taken.
    store
        .put_verification("pending:2", "old", NOW + 10, NOW)
        .await
        .unwrap();
    assert_eq!(
        store
            .peek_verification("pending:2", NOW + 10)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .take_verification("pending:2", NOW + 11)
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.peek_verification("missing", NOW).await.unwrap(), None);
    assert_eq!(store.take_verification("missing", NOW).await.unwrap(), None);
}

pub async fn concurrent_take_verification_once(store: Arc<dyn Store>) {
    store
        .put_verification("pending:x", "value", NOW + 60, NOW)
        .await
        .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let store = Arc::clone(&store);
        tasks.spawn(async move { store.take_verification("pending:x", NOW).await });
    }
    let mut taken = 0;
    while let Some(result) = tasks.join_next().await {
        if result.unwrap().unwrap().is_some() {
            taken += 1;
        }
    }
    assert_eq!(taken, 1);
}

pub async fn code_lifecycle(store: &dyn Store) {
    let (code, family) = seed_grant(store).await;
    // Tokens of the code's family, stored while the code stays unused: as what another
    // code, of a family of its own, was exchanged for (the trait stores issued tokens only
    // with a redemption or a rotation).
    let carrier_family = self::family("fam-carrier", "u1", "c1");
    let carrier = self::code("code-carrier", &carrier_family, "s1");
    store.create_code(&carrier, &carrier_family).await.unwrap();
    let access = access("a1", &family);
    let refresh = refresh("r1", &family);
    exchange(store, &carrier.code_hash, &access, Some(&refresh)).await;

    match store.consume_code(&code.code_hash, NOW + 1).await.unwrap() {
        CodeRedemption::Redeemed(redeemed) => assert_eq!(*redeemed, code),
        other => panic!("expected Redeemed, got {other:?}"),
    }
    let grant = store
        .access_token(&access.token_hash)
        .await
        .unwrap()
        .expect("grant");
    assert!(!grant.family_revoked);

    // A replay is refused and kills what the first exchange issued.
    assert_eq!(
        store.consume_code(&code.code_hash, NOW + 2).await.unwrap(),
        CodeRedemption::Replayed
    );
    let grant = store
        .access_token(&access.token_hash)
        .await
        .unwrap()
        .expect("grant");
    assert!(grant.family_revoked);
    let (_, fam) = store
        .refresh_token(&refresh.token_hash)
        .await
        .unwrap()
        .expect("refresh token");
    assert_eq!(fam.revoked_at, Some(NOW + 2));

    // A third use is still a replay; the revocation keeps its first time.
    assert_eq!(
        store.consume_code(&code.code_hash, NOW + 3).await.unwrap(),
        CodeRedemption::Replayed
    );
    let (_, fam) = store
        .refresh_token(&refresh.token_hash)
        .await
        .unwrap()
        .expect("refresh token");
    assert_eq!(fam.revoked_at, Some(NOW + 2));

    assert_eq!(
        store.consume_code("no-such-code", NOW).await.unwrap(),
        CodeRedemption::Unknown
    );
}

pub async fn concurrent_consume_code_once(store: Arc<dyn Store>) {
    let (code, _) = seed_grant(store.as_ref()).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let store = Arc::clone(&store);
        let hash = code.code_hash.clone();
        tasks.spawn(async move { store.consume_code(&hash, NOW + i).await });
    }
    let (mut redeemed, mut replayed) = (0, 0);
    while let Some(result) = tasks.join_next().await {
        match result.unwrap().unwrap() {
            CodeRedemption::Redeemed(_) => redeemed += 1,
            CodeRedemption::Replayed => replayed += 1,
            CodeRedemption::Unknown => panic!("the code vanished"),
        }
    }
    assert_eq!((redeemed, replayed), (1, 49));
}

/// Read first, redeem last: the code exchange's single write transaction.
pub async fn redeem_code_lifecycle(store: &dyn Store) {
    let (code, family) = seed_grant(store).await;
    assert_eq!(
        store.unused_code(&code.code_hash).await.unwrap().as_ref(),
        Some(&code)
    );
    assert_eq!(store.unused_code("no-such-code").await.unwrap(), None);

    let access = access("a1", &family);
    let refresh = refresh("r1", &family);
    let event = audit("token.issue");
    assert!(
        store
            .redeem_code(&code.code_hash, NOW + 1, &access, Some(&refresh), &event)
            .await
            .unwrap()
    );
    let grant = store.access_token(&access.token_hash).await.unwrap();
    assert_eq!(grant.expect("the access token is stored").token, access);
    assert!(
        store
            .refresh_token(&refresh.token_hash)
            .await
            .unwrap()
            .is_some()
    );
    let logged = store.audit_events(10).await.unwrap();
    assert_eq!(logged.iter().filter(|e| e.kind == "token.issue").count(), 1);
    assert_eq!(store.unused_code(&code.code_hash).await.unwrap(), None);

    // A second redemption writes nothing at all...
    let again = self::access("a2", &family);
    assert!(
        !store
            .redeem_code(&code.code_hash, NOW + 2, &again, None, &event)
            .await
            .unwrap()
    );
    assert_eq!(store.access_token(&again.token_hash).await.unwrap(), None);
    let logged = store.audit_events(10).await.unwrap();
    assert_eq!(logged.iter().filter(|e| e.kind == "token.issue").count(), 1);
    assert!(
        !store
            .redeem_code("no-such-code", NOW, &again, None, &event)
            .await
            .unwrap()
    );
    // ...and consume_code then says it was a replay, and revokes the grant.
    assert!(matches!(
        store.consume_code(&code.code_hash, NOW + 3).await.unwrap(),
        CodeRedemption::Replayed
    ));
    let grant = store.access_token(&access.token_hash).await.unwrap();
    assert!(grant.expect("still stored").family_revoked);
}

/// The joined reads of the code exchange and the refresh grant: the same code, token and
/// family as the plain lookups, with the user, in one read.
pub async fn lookups_with_user(store: &dyn Store) {
    let (code, family) = seed_grant(store).await;
    let expected_user = store.user_by_id("u1").await.unwrap().expect("user");
    let (found, user) = store
        .unused_code_with_user(&code.code_hash)
        .await
        .unwrap()
        .expect("the unused code");
    assert_eq!((found, user), (code.clone(), expected_user.clone()));
    assert_eq!(
        store.unused_code_with_user("no-such-code").await.unwrap(),
        None
    );

    let access = access("a1", &family);
    let refresh = refresh("r1", &family);
    exchange(store, &code.code_hash, &access, Some(&refresh)).await;
    assert_eq!(
        store.unused_code_with_user(&code.code_hash).await.unwrap(),
        None
    );

    let (token, fam) = store
        .refresh_token(&refresh.token_hash)
        .await
        .unwrap()
        .expect("refresh token");
    let joined = store
        .refresh_token_with_user(&refresh.token_hash)
        .await
        .unwrap()
        .expect("refresh token with its user");
    assert_eq!(joined, (token, fam, expected_user));
    assert_eq!(
        store
            .refresh_token_with_user("no-such-token")
            .await
            .unwrap(),
        None
    );

    // A disabled user is still returned (the caller refuses it), a deleted one takes its
    // tokens with it.
    assert!(store.set_user_disabled("u1", true, NOW + 1).await.unwrap());
    let (_, _, user) = store
        .refresh_token_with_user(&refresh.token_hash)
        .await
        .unwrap()
        .expect("still there");
    assert!(user.disabled);
    assert!(store.delete_user("u1").await.unwrap());
    assert_eq!(
        store
            .refresh_token_with_user(&refresh.token_hash)
            .await
            .unwrap(),
        None
    );
}

pub async fn concurrent_redeem_code_once(store: Arc<dyn Store>) {
    let (code, family) = seed_grant(store.as_ref()).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..30 {
        let store = Arc::clone(&store);
        let hash = code.code_hash.clone();
        let access = access(&format!("a{i}"), &family);
        tasks.spawn(async move {
            let event = audit("token.issue");
            let won = store
                .redeem_code(&hash, NOW + 1, &access, None, &event)
                .await
                .unwrap();
            (won, access.token_hash)
        });
    }
    let mut winners = Vec::new();
    let mut losers = Vec::new();
    while let Some(result) = tasks.join_next().await {
        let (won, hash) = result.unwrap();
        if won {
            winners.push(hash)
        } else {
            losers.push(hash)
        }
    }
    assert_eq!(winners.len(), 1, "exactly one redemption wins");
    assert!(store.access_token(&winners[0]).await.unwrap().is_some());
    for hash in losers {
        assert_eq!(
            store.access_token(&hash).await.unwrap(),
            None,
            "a loser wrote"
        );
    }
}

pub async fn tokens_and_lookup(store: &dyn Store) {
    let (family, access, refresh) = seed_tokens(store).await;

    let grant = store
        .access_token(&access.token_hash)
        .await
        .unwrap()
        .expect("grant");
    assert_eq!(grant.token, access);
    assert_eq!(grant.user, Some(user("u1", "u1@example.com")));
    assert!(!grant.family_revoked);
    assert!(!grant.client_disabled);

    let (found, fam) = store
        .refresh_token(&refresh.token_hash)
        .await
        .unwrap()
        .expect("refresh token");
    assert_eq!(found, refresh);
    assert_eq!(fam, family);

    assert_eq!(store.access_token("nope").await.unwrap(), None);
    assert_eq!(store.refresh_token("nope").await.unwrap(), None);

    // An access token without a refresh token, for a disabled client.
    let mut off = client("c-off");
    off.disabled = true;
    store.create_client(&off).await.unwrap();
    let fam2 = self::family("fam-2", "u1", "c-off");
    store
        .create_code(&code("code-2", &fam2, "s1"), &fam2)
        .await
        .unwrap();
    let lone = self::access("a2", &fam2);
    exchange(store, "code-2", &lone, None).await;
    let grant = store
        .access_token(&lone.token_hash)
        .await
        .unwrap()
        .expect("grant");
    assert!(grant.client_disabled);
    assert!(!grant.family_revoked);
}

pub async fn revoke_family_kills_tokens(store: &dyn Store) {
    let (family, access, refresh) = seed_tokens(store).await;
    store.revoke_family(&family.id, NOW + 10).await.unwrap();

    let grant = store
        .access_token(&access.token_hash)
        .await
        .unwrap()
        .expect("grant");
    assert!(grant.family_revoked);
    let (_, fam) = store
        .refresh_token(&refresh.token_hash)
        .await
        .unwrap()
        .expect("refresh token");
    assert_eq!(fam.revoked_at, Some(NOW + 10));

    // Revoking again keeps the first time; unknown families are no error.
    store.revoke_family(&family.id, NOW + 20).await.unwrap();
    let (_, fam) = store
        .refresh_token(&refresh.token_hash)
        .await
        .unwrap()
        .expect("refresh token");
    assert_eq!(fam.revoked_at, Some(NOW + 10));
    store.revoke_family("no-such-family", NOW).await.unwrap();
}

/// The revocation epoch moves with every change that can end a token early, and only then.
pub async fn revocation_epoch_moves_with_revocations(store: &dyn Store) {
    let start = store.revocation_epoch().await.unwrap();
    let (family, _, refresh) = seed_tokens(store).await;
    assert_eq!(
        store.revocation_epoch().await.unwrap(),
        start,
        "issuing tokens revokes nothing"
    );
    let successor = self::refresh("r2", &family);
    store
        .rotate_refresh_token(
            &refresh.token_hash,
            NOW + 1,
            "{}",
            &self::access("a2", &family),
            &successor,
            &audit("token.refresh"),
        )
        .await
        .unwrap();
    assert_eq!(store.revocation_epoch().await.unwrap(), start, "rotation");

    let mut last = start;
    let mut moved = |what: &str, epoch: i64| {
        assert!(epoch > last, "{what} moves the epoch ({last} -> {epoch})");
        last = epoch;
    };
    store.revoke_family(&family.id, NOW + 2).await.unwrap();
    moved("revoke_family", store.revocation_epoch().await.unwrap());
    store.set_client_disabled("c1", true, NOW).await.unwrap();
    moved(
        "disabling a client",
        store.revocation_epoch().await.unwrap(),
    );
    store.set_user_disabled("u1", true, NOW).await.unwrap();
    moved("disabling a user", store.revocation_epoch().await.unwrap());
    store.revoke_grants("u1", None, NOW + 3).await.unwrap();
    moved("revoke_grants", store.revocation_epoch().await.unwrap());
    store.purge_expired(NOW).await.unwrap();
    moved("purge_expired", store.revocation_epoch().await.unwrap());
    store.delete_client("c1").await.unwrap();
    moved("deleting a client", store.revocation_epoch().await.unwrap());
    store.delete_user("u1").await.unwrap();
    moved("deleting a user", store.revocation_epoch().await.unwrap());
    store.save_client(&client("c9")).await.unwrap();
    moved("saving a client", store.revocation_epoch().await.unwrap());

    // Re-enabling cannot end a token: no move.
    store
        .create_user(&user("u2", "u2@example.com"), "h")
        .await
        .unwrap();
    store.set_user_disabled("u2", false, NOW).await.unwrap();
    assert_eq!(store.revocation_epoch().await.unwrap(), last, "enabling");
}

pub async fn purge_expired_keeps_what_still_works(store: &dyn Store) {
    let (family, access_token, refresh_token) = seed_tokens(store).await;
    // Nothing has expired yet.
    assert_eq!(store.purge_expired(NOW).await.unwrap(), 0);

    // An hour later: the access token and the session are gone, the grant remains.
    let removed = store.purge_expired(NOW + 3600).await.unwrap();
    assert_eq!(removed, 2, "the session and the access token");
    assert!(
        store
            .access_token(&access_token.token_hash)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .refresh_token(&refresh_token.token_hash)
            .await
            .unwrap()
            .is_some()
    );

    // The used code is kept a day past its expiry so a late replay still revokes.
    assert_eq!(store.purge_expired(NOW + 60 + 86_000).await.unwrap(), 0);
    assert_eq!(
        store
            .consume_code("code-1", NOW + 60 + 86_000)
            .await
            .unwrap(),
        CodeRedemption::Replayed
    );

    // Past the family's absolute end everything of the grant goes.
    store.purge_expired(family.expires_at).await.unwrap();
    assert!(
        store
            .refresh_token(&refresh_token.token_hash)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .consume_code("code-1", family.expires_at)
            .await
            .unwrap(),
        CodeRedemption::Unknown
    );
    // Users and clients are never purged.
    assert!(store.user_by_id("u1").await.unwrap().is_some());
    assert!(store.client_by_id("c1").await.unwrap().is_some());
}

pub async fn user_administration(store: &dyn Store) {
    let (family, access_token, _) = seed_tokens(store).await;
    assert_eq!(store.list_users().await.unwrap().len(), 1);

    assert!(store.set_user_disabled("u1", true, NOW + 1).await.unwrap());
    let grant = store
        .access_token(&access_token.token_hash)
        .await
        .unwrap()
        .unwrap();
    assert!(
        grant.user.is_some_and(|u| u.disabled),
        "a disabled user's tokens carry the flag"
    );
    assert!(!store.set_user_disabled("nobody", true, NOW).await.unwrap());
    store.set_user_disabled("u1", false, NOW + 2).await.unwrap();

    store
        .set_password("u1", "$argon2id$new", NOW + 3)
        .await
        .unwrap();
    let (_, hash) = store
        .user_by_email("u1@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hash.as_deref(), Some("$argon2id$new"));

    store
        .create_session(&session("s2", "u1", NOW + 3600))
        .await
        .unwrap();
    assert_eq!(store.user_sessions("u1", NOW).await.unwrap().len(), 2);
    assert_eq!(
        store.delete_user_sessions("u1", Some("s2")).await.unwrap(),
        1
    );
    let left = store.user_sessions("u1", NOW).await.unwrap();
    assert_eq!(
        left.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        ["s2"]
    );
    assert_eq!(store.delete_user_sessions("u1", None).await.unwrap(), 1);

    assert!(store.delete_user("u1").await.unwrap());
    assert!(store.user_by_id("u1").await.unwrap().is_none());
    assert!(
        store
            .access_token(&access_token.token_hash)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .refresh_token(&refresh("r1", &family).token_hash)
            .await
            .unwrap()
            .is_none()
    );
    assert!(!store.delete_user("u1").await.unwrap());
}

/// A password reset (SECURITY S30): the link's value is taken once, in the transaction that
/// sets the password, marks the email verified, ends every session, optionally revokes every
/// grant, and writes the audit entry with the user's id.
pub async fn password_reset_in_one_transaction(store: &dyn Store) {
    let (_, access_token, _) = seed_tokens(store).await;
    store
        .create_session(&session("s2", "u1", NOW + 3600))
        .await
        .unwrap();
    // Unknown and expired links change nothing; an expired one is gone afterwards.
    let audit_event = audit("password_reset_completed");
    assert_eq!(
        store
            .reset_password("reset:none", "$argon2id$x", NOW, true, &audit_event)
            .await
            .unwrap(),
        None
    );
    store
        .put_verification("reset:old", "u1", NOW + 10, NOW)
        .await
        .unwrap();
    assert_eq!(
        store
            .reset_password("reset:old", "$argon2id$x", NOW + 10, true, &audit_event)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.take_verification("reset:old", NOW).await.unwrap(),
        None
    );
    assert_eq!(store.user_sessions("u1", NOW).await.unwrap().len(), 2);

    // Without revoking grants: password, verified flag, sessions, audit; tokens still work.
    store
        .put_verification("reset:a", "u1", NOW + 600, NOW)
        .await
        .unwrap();
    assert_eq!(
        store
            .reset_password("reset:a", "$argon2id$new", NOW + 1, false, &audit_event)
            .await
            .unwrap()
            .as_deref(),
        Some("u1")
    );
    let (_, hash) = store
        .user_by_email("u1@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hash.as_deref(), Some("$argon2id$new"));
    assert!(store.user_sessions("u1", NOW).await.unwrap().is_empty());
    let logged = store.audit_events(1).await.unwrap();
    assert_eq!(logged[0].kind, "password_reset_completed");
    assert_eq!(logged[0].user_id.as_deref(), Some("u1"));
    let grant = store
        .access_token(&access_token.token_hash)
        .await
        .unwrap()
        .unwrap();
    assert!(!grant.family_revoked);
    // Used once: the same link again does nothing.
    assert_eq!(
        store
            .reset_password("reset:a", "$argon2id$again", NOW + 2, true, &audit_event)
            .await
            .unwrap(),
        None
    );
    let (_, hash) = store
        .user_by_email("u1@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hash.as_deref(), Some("$argon2id$new"));

    // With grants revoked: the tokens die and the epoch moves.
    let epoch = store.revocation_epoch().await.unwrap();
    store
        .put_verification("reset:b", "u1", NOW + 600, NOW)
        .await
        .unwrap();
    store
        .reset_password("reset:b", "$argon2id$newer", NOW + 3, true, &audit_event)
        .await
        .unwrap();
    let grant = store
        .access_token(&access_token.token_hash)
        .await
        .unwrap()
        .unwrap();
    assert!(grant.family_revoked);
    assert!(store.revocation_epoch().await.unwrap() > epoch);

    // The reset proves the address: an unverified user comes out verified.
    let mut unverified = user("u2", "u2@example.com");
    unverified.email_verified = false;
    store.create_user(&unverified, "$argon2id$h").await.unwrap();
    store
        .put_verification("reset:u2", "u2", NOW + 600, NOW)
        .await
        .unwrap();
    store
        .reset_password("reset:u2", "$argon2id$u2", NOW + 3, false, &audit_event)
        .await
        .unwrap();
    assert!(
        store
            .user_by_id("u2")
            .await
            .unwrap()
            .unwrap()
            .email_verified
    );

    // A link whose user is gone does nothing.
    store
        .put_verification("reset:c", "nobody", NOW + 600, NOW)
        .await
        .unwrap();
    assert_eq!(
        store
            .reset_password("reset:c", "$argon2id$x", NOW + 4, false, &audit_event)
            .await
            .unwrap(),
        None
    );
}

pub async fn email_verified_flag(store: &dyn Store) {
    let mut unverified = user("u1", "u1@example.com");
    unverified.email_verified = false;
    store.create_user(&unverified, "$argon2id$h").await.unwrap();
    assert!(store.set_email_verified("u1", NOW + 1).await.unwrap());
    let user = store.user_by_id("u1").await.unwrap().unwrap();
    assert!(user.email_verified);
    assert_eq!(user.updated_at, NOW + 1);
    assert!(!store.set_email_verified("nobody", NOW).await.unwrap());
}

pub async fn client_administration(store: &dyn Store) {
    let (_, access_token, _) = seed_tokens(store).await;
    store.create_client(&client("c2")).await.unwrap();
    let ids: Vec<String> = store
        .list_clients()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.client_id)
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(store.set_client_disabled("c1", true, NOW).await.unwrap());
    let grant = store
        .access_token(&access_token.token_hash)
        .await
        .unwrap()
        .unwrap();
    assert!(grant.client_disabled);
    assert!(!store.set_client_disabled("nope", true, NOW).await.unwrap());
    assert!(store.delete_client("c1").await.unwrap());
    assert!(
        store
            .access_token(&access_token.token_hash)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store.user_by_id("u1").await.unwrap().is_some(),
        "users stay"
    );
}

pub async fn grants_and_their_revocation(store: &dyn Store) {
    let (family, access_token, _) = seed_tokens(store).await;
    store
        .save_consent(&Consent {
            user_id: "u1".to_owned(),
            client_id: "c1".to_owned(),
            scopes: scopes("openid"),
            created_at: NOW,
            updated_at: NOW,
        })
        .await
        .unwrap();
    // A family whose code was never exchanged is not a connected app.
    let unused = family_with("fam-2", "u1", "c1");
    store
        .create_code(&code("code-2", &unused, "s1"), &unused)
        .await
        .unwrap();

    let grants = store.grants(Some("u1"), None, NOW).await.unwrap();
    assert_eq!(grants.len(), 1);
    let grant = &grants[0];
    assert_eq!(grant.family_id, family.id);
    assert_eq!(grant.client_id, "c1");
    assert_eq!(grant.user_email, "u1@example.com");
    assert_eq!(grant.last_used_at, access_token.created_at);
    assert_eq!(store.grants(None, Some("c1"), NOW).await.unwrap().len(), 1);
    assert!(
        store
            .grants(Some("u2"), None, NOW)
            .await
            .unwrap()
            .is_empty()
    );

    assert_eq!(
        store
            .revoke_grants("u1", Some("c1"), NOW + 5)
            .await
            .unwrap(),
        1
    );
    let after = store
        .access_token(&access_token.token_hash)
        .await
        .unwrap()
        .unwrap();
    assert!(after.family_revoked);
    assert!(
        store.consent("u1", "c1").await.unwrap().is_none(),
        "consent forgotten"
    );
    assert!(
        store
            .grants(Some("u1"), None, NOW)
            .await
            .unwrap()
            .is_empty()
    );
    // The unexchanged code's family died too: its code's tokens would be born dead.
    assert_eq!(store.revoke_grants("u1", None, NOW + 6).await.unwrap(), 0);
}

pub async fn signing_keys_rotate(store: &dyn Store) {
    let key = |kid: &str, at: i64| SigningKey {
        kid: kid.to_owned(),
        algorithm: "ES256".to_owned(),
        private_key_sealed: format!("sealed-{kid}"),
        public_jwk: format!("{{\"kid\":\"{kid}\"}}"),
        created_at: at,
        retired_at: None,
    };
    assert!(store.signing_keys().await.unwrap().is_empty());
    let epoch = store.revocation_epoch().await.unwrap();
    store
        .rotate_signing_key(&key("k1", NOW), NOW)
        .await
        .unwrap();
    assert!(
        store.revocation_epoch().await.unwrap() > epoch,
        "a rotation moves the revocation epoch (copies of the current key go stale)"
    );
    store
        .rotate_signing_key(&key("k2", NOW + 10), NOW + 10)
        .await
        .unwrap();
    let keys = store.signing_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0].kid, "k2");
    assert_eq!(keys[0].retired_at, None);
    assert_eq!(keys[1].retired_at, Some(NOW + 10));
    assert!(matches!(
        store
            .rotate_signing_key(&key("k2", NOW + 20), NOW + 20)
            .await,
        Err(StoreError::Conflict(_))
    ));
    // The failed rotation changed nothing.
    assert_eq!(store.signing_keys().await.unwrap()[0].retired_at, None);
    assert_eq!(store.prune_signing_keys(NOW + 10).await.unwrap(), 0);
    assert_eq!(store.prune_signing_keys(NOW + 11).await.unwrap(), 1);
    assert_eq!(store.signing_keys().await.unwrap().len(), 1);
}

pub async fn audit_log_appends(store: &dyn Store) {
    for i in 0..3 {
        store
            .append_audit(&AuditEvent {
                at: NOW + i,
                kind: format!("event.{i}"),
                user_id: Some("u1".to_owned()),
                client_id: None,
                ip: Some("192.0.2.1".to_owned()),
                detail: "{}".to_owned(),
            })
            .await
            .unwrap();
    }
    let events = store.audit_events(2).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        ["event.2", "event.1"]
    );
}

pub async fn refresh_rotation(store: &dyn Store) {
    let (family, _, old) = seed_tokens(store).await;
    let next_access = access("a2", &family);
    let next_refresh = refresh("r2", &family);

    let rotation = store
        .rotate_refresh_token(
            &old.token_hash,
            NOW + 100,
            "sealed-response-1",
            &next_access,
            &next_refresh,
            &audit("token.refresh"),
        )
        .await
        .unwrap();
    assert_eq!(rotation, Rotation::Rotated);

    let (rotated, _) = store
        .refresh_token(&old.token_hash)
        .await
        .unwrap()
        .expect("old refresh token");
    assert_eq!(rotated.rotated_at, Some(NOW + 100));
    assert_eq!(rotated.retry_response.as_deref(), Some("sealed-response-1"));
    let (successor, _) = store
        .refresh_token(&next_refresh.token_hash)
        .await
        .unwrap()
        .expect("successor refresh token");
    assert_eq!(successor, next_refresh);
    assert_eq!(
        store
            .access_token(&next_access.token_hash)
            .await
            .unwrap()
            .expect("successor access token")
            .token,
        next_access
    );

    // A second rotation of the same token reports the first and stores nothing.
    let late_access = access("a3", &family);
    let late_refresh = refresh("r3", &family);
    let rotation = store
        .rotate_refresh_token(
            &old.token_hash,
            NOW + 200,
            "sealed-response-2",
            &late_access,
            &late_refresh,
            &audit("token.refresh"),
        )
        .await
        .unwrap();
    assert_eq!(
        rotation,
        Rotation::AlreadyRotated {
            rotated_at: NOW + 100,
            retry_response: Some("sealed-response-1".to_owned()),
        }
    );
    assert_eq!(
        store.refresh_token(&late_refresh.token_hash).await.unwrap(),
        None
    );
    assert_eq!(
        store.access_token(&late_access.token_hash).await.unwrap(),
        None
    );
    let (still, _) = store
        .refresh_token(&old.token_hash)
        .await
        .unwrap()
        .expect("old refresh token");
    assert_eq!(still.rotated_at, Some(NOW + 100));
    assert_eq!(still.retry_response.as_deref(), Some("sealed-response-1"));

    // The successor rotates in turn.
    let rotation = store
        .rotate_refresh_token(
            &next_refresh.token_hash,
            NOW + 300,
            "sealed-response-3",
            &late_access,
            &late_refresh,
            &audit("token.refresh"),
        )
        .await
        .unwrap();
    assert_eq!(rotation, Rotation::Rotated);
}

/// Concurrent consents for one (user, client) are upserts, never a unique violation, and
/// leave one row whose scopes and update time come from the same writer.
pub async fn concurrent_save_consent_one_row(store: Arc<dyn Store>, rows: Rows) {
    store
        .create_user(&user("u1", "u1@example.com"), "h")
        .await
        .unwrap();
    store.create_client(&client("c1")).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            store
                .save_consent(&Consent {
                    user_id: "u1".to_owned(),
                    client_id: "c1".to_owned(),
                    scopes: scopes(&format!("openid s{i}")),
                    created_at: NOW + i,
                    updated_at: NOW + i,
                })
                .await
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap().unwrap();
    }
    assert_eq!(rows("oauthConsent").await, 1);
    let stored = store.consent("u1", "c1").await.unwrap().expect("consent");
    let writer = stored.updated_at - NOW;
    assert!((0..20).contains(&writer), "{stored:?}");
    assert_eq!(stored.scopes.to_string(), format!("openid s{writer}"));
    assert!((NOW..NOW + 20).contains(&stored.created_at), "{stored:?}");
}

/// Concurrent registrations with distinct client ids all succeed.
pub async fn concurrent_create_client_distinct_ids(store: Arc<dyn Store>, rows: Rows) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let store = Arc::clone(&store);
        tasks.spawn(async move { store.create_client(&client(&format!("c-{i}"))).await });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap().unwrap();
    }
    assert_eq!(rows("oauthApplication").await, 20);
    assert_eq!(store.list_clients().await.unwrap().len(), 20);
    for i in 0..20 {
        assert!(
            store
                .client_by_id(&format!("c-{i}"))
                .await
                .unwrap()
                .is_some()
        );
    }
}

/// Of concurrent registrations of one client id exactly one succeeds; the rest conflict.
pub async fn concurrent_create_client_same_id(store: Arc<dyn Store>, rows: Rows) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            let mut mine = client("dup");
            mine.name = Some(format!("writer {i}"));
            (i, store.create_client(&mine).await)
        });
    }
    let mut winners = Vec::new();
    let mut conflicts = 0;
    while let Some(result) = tasks.join_next().await {
        match result.unwrap() {
            (i, Ok(())) => winners.push(i),
            (_, Err(StoreError::Conflict(_))) => conflicts += 1,
            (i, Err(err)) => panic!("writer {i}: {err:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    assert_eq!(conflicts, 19);
    assert_eq!(rows("oauthApplication").await, 1);
    let stored = store.client_by_id("dup").await.unwrap().expect("client");
    assert_eq!(stored.name, Some(format!("writer {}", winners[0])));
}

/// Of concurrent sign-ups with one email exactly one succeeds, and the losers leave no
/// credential behind.
pub async fn concurrent_create_user_same_email(store: Arc<dyn Store>, rows: Rows) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            let result = store
                .create_user(
                    &user(&format!("u-{i}"), "same@example.com"),
                    &format!("hash-{i}"),
                )
                .await;
            (i, result)
        });
    }
    let mut winners = Vec::new();
    let mut conflicts = 0;
    while let Some(result) = tasks.join_next().await {
        match result.unwrap() {
            (i, Ok(())) => winners.push(i),
            (_, Err(StoreError::Conflict(what))) => {
                assert_unique_conflict(&what, "email already registered");
                conflicts += 1;
            }
            (i, Err(err)) => panic!("writer {i}: {err:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    assert_eq!(conflicts, 19);
    assert_eq!(rows("user").await, 1);
    assert_eq!(rows("account").await, 1);
    let winner = winners[0];
    let (found, hash) = store
        .user_by_email("same@example.com")
        .await
        .unwrap()
        .expect("user");
    assert_eq!(found.id, format!("u-{winner}"));
    assert_eq!(hash, Some(format!("hash-{winner}")));
}

pub async fn concurrent_rotation_once(store: Arc<dyn Store>) {
    let (family, _, old) = seed_tokens(store.as_ref()).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let store = Arc::clone(&store);
        let family = family.clone();
        let old_hash = old.token_hash.clone();
        tasks.spawn(async move {
            let access = access(&format!("a-{i}"), &family);
            let refresh = refresh(&format!("r-{i}"), &family);
            let rotation = store
                .rotate_refresh_token(
                    &old_hash,
                    NOW + 100 + i,
                    &format!("sealed-{i}"),
                    &access,
                    &refresh,
                    &audit("token.refresh"),
                )
                .await;
            (i, rotation)
        });
    }
    let mut winners = Vec::new();
    let mut losers = Vec::new();
    while let Some(result) = tasks.join_next().await {
        let (i, rotation) = result.unwrap();
        match rotation.unwrap() {
            Rotation::Rotated => winners.push(i),
            Rotation::AlreadyRotated {
                rotated_at,
                retry_response,
            } => losers.push((i, rotated_at, retry_response)),
            Rotation::Superseded => panic!("a head token is never superseded"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    assert_eq!(losers.len(), 19);
    let winner = winners[0];

    // Every loser saw the winner's complete rotation.
    for (_, rotated_at, retry_response) in &losers {
        assert_eq!(*rotated_at, NOW + 100 + winner);
        assert_eq!(
            retry_response.as_deref(),
            Some(&*format!("sealed-{winner}"))
        );
    }
    // Only the winner's successors exist.
    for i in 0..20 {
        let refresh_hash = refresh(&format!("r-{i}"), &family).token_hash;
        let access_hash = access(&format!("a-{i}"), &family).token_hash;
        let refresh_found = store.refresh_token(&refresh_hash).await.unwrap().is_some();
        let access_found = store.access_token(&access_hash).await.unwrap().is_some();
        assert_eq!(refresh_found, i == winner, "refresh successor r-{i}");
        assert_eq!(access_found, i == winner, "access successor a-{i}");
    }
}

/// Rotates `old` to access `a-{id}` and refresh `r-{id}` at `at`; the outcome.
async fn rotate(store: &dyn Store, family: &TokenFamily, old: &str, id: &str, at: i64) -> Rotation {
    store
        .rotate_refresh_token(
            &format!("refresh-hash-{old}"),
            at,
            &format!("sealed-{id}"),
            &access(&format!("a-{id}"), family),
            &refresh(id, family),
            &audit("token.refresh"),
        )
        .await
        .unwrap()
}

/// A tolerated reissue of `old` to access `a-{id}` and refresh `id` at `at` within a 600 s
/// window, spending `old` with `spend` when given; the outcome.
async fn reissue(
    store: &dyn Store,
    family: &TokenFamily,
    old: &str,
    id: &str,
    at: i64,
    spend: Option<&str>,
) -> Reissue {
    store
        .reissue_refresh_token(
            &format!("refresh-hash-{old}"),
            at,
            600,
            spend,
            &access(&format!("a-{id}"), family),
            &refresh(id, family),
            &audit("refresh.reuse_tolerated"),
        )
        .await
        .unwrap()
}

async fn exists(store: &dyn Store, id: &str) -> bool {
    store
        .refresh_token(&format!("refresh-hash-{id}"))
        .await
        .unwrap()
        .is_some()
}

/// The generations behind the tolerated reuse (SECURITY S12): the immediately previous token is
/// reissued within the window counted from the grant's last advance (both sides of it); older
/// tokens, late reuse, and revoked grants are refused, writing nothing; a reissued sibling of
/// the head is superseded when the head rotates first, and is then spent once.
pub async fn refresh_reissue_generations(store: &dyn Store) {
    let (family, _, _) = seed_tokens(store).await;
    assert_eq!(
        rotate(store, &family, "r1", "r2", NOW + 100).await,
        Rotation::Rotated
    );
    // r1 is one behind the head; the grant advanced at NOW + 100.
    assert_eq!(
        reissue(store, &family, "r1", "r2a", NOW + 700, None).await,
        Reissue::Reissued
    );
    assert!(exists(store, "r2a").await);
    assert_eq!(
        reissue(store, &family, "r1", "r2b", NOW + 701, None).await,
        Reissue::Refused
    );
    assert!(!exists(store, "r2b").await, "a refusal writes nothing");
    // The head is of the same generation as the reissued sibling: either may rotate.
    assert_eq!(
        rotate(store, &family, "r2", "r3", NOW + 800).await,
        Rotation::Rotated
    );
    assert_eq!(
        reissue(store, &family, "r1", "r3x", NOW + 800, None).await,
        Reissue::Refused
    );
    // The sibling r2a is now one behind: it cannot rotate, only be reissued, and spent once.
    assert_eq!(
        rotate(store, &family, "r2a", "r3y", NOW + 810).await,
        Rotation::Superseded
    );
    assert!(!exists(store, "r3y").await);
    let (unrotated, _) = store
        .refresh_token("refresh-hash-r2a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        unrotated.rotated_at, None,
        "a superseded rotation writes nothing"
    );
    assert_eq!(
        reissue(store, &family, "r2a", "r3a", NOW + 810, Some("sealed-r3a")).await,
        Reissue::Reissued
    );
    assert_eq!(
        reissue(store, &family, "r2a", "r3b", NOW + 811, Some("sealed-r3b")).await,
        Reissue::AlreadyRotated {
            rotated_at: NOW + 810,
            retry_response: Some("sealed-r3a".to_owned())
        }
    );
    assert!(!exists(store, "r3b").await);
    // The reissued token rotates like the head.
    assert_eq!(
        rotate(store, &family, "r3a", "r4", NOW + 900).await,
        Rotation::Rotated
    );
    assert_eq!(
        rotate(store, &family, "r3", "r4x", NOW + 900).await,
        Rotation::Superseded
    );
    // A revoked grant reissues nothing.
    store.revoke_family(&family.id, NOW + 901).await.unwrap();
    assert_eq!(
        reissue(store, &family, "r3", "r4z", NOW + 901, Some("sealed")).await,
        Reissue::Refused
    );
    assert!(!exists(store, "r4z").await);
}

/// Concurrent reissues of one superseded token: exactly one spends it and stores tokens; the
/// others see its rotation and write nothing.
pub async fn concurrent_reissue_spends_once(store: Arc<dyn Store>) {
    let (family, _, _) = seed_tokens(store.as_ref()).await;
    assert_eq!(
        rotate(store.as_ref(), &family, "r1", "r2", NOW + 100).await,
        Rotation::Rotated
    );
    assert_eq!(
        reissue(store.as_ref(), &family, "r1", "s2", NOW + 110, None).await,
        Reissue::Reissued
    );
    assert_eq!(
        rotate(store.as_ref(), &family, "r2", "r3", NOW + 120).await,
        Rotation::Rotated
    );
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let store = Arc::clone(&store);
        let family = family.clone();
        tasks.spawn(async move {
            let id = format!("t-{i}");
            let seal = format!("sealed-{id}");
            (
                i,
                reissue(store.as_ref(), &family, "s2", &id, NOW + 130, Some(&seal)).await,
            )
        });
    }
    let mut winners = Vec::new();
    let mut seen = Vec::new();
    while let Some(result) = tasks.join_next().await {
        match result.unwrap() {
            (i, Reissue::Reissued) => winners.push(i),
            (_, Reissue::AlreadyRotated { retry_response, .. }) => seen.push(retry_response),
            (i, Reissue::Refused) => panic!("reissue {i} refused"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let winner = winners[0];
    assert!(
        seen.iter()
            .all(|r| r.as_deref() == Some(&*format!("sealed-t-{winner}")))
    );
    for i in 0..20 {
        assert_eq!(exists(store.as_ref(), &format!("t-{i}")).await, i == winner);
    }
}

/// Self-registered clients that never completed an authorization go a day after they
/// registered (SECURITY M5); one with a grant stays, and so do operators' clients.
pub async fn purge_forgets_unused_registered_clients(store: &dyn Store) {
    let dynamic = |id: &str| Client {
        registered_dynamically: true,
        ..client(id)
    };
    // c1 (an operator's) with a grant; d1 registered and never used; d2 with a grant; d3 with
    // an authorization that never reached the token endpoint.
    seed_tokens(store).await;
    store.create_client(&dynamic("d1")).await.unwrap();
    store.create_client(&dynamic("d2")).await.unwrap();
    let used = family("fam-d2", "u1", "d2");
    store
        .create_code(&code("code-d2", &used, "s1"), &used)
        .await
        .unwrap();
    exchange(
        store,
        "code-d2",
        &access("a-d2", &used),
        Some(&refresh("r-d2", &used)),
    )
    .await;
    store.create_client(&dynamic("d3")).await.unwrap();
    let pending = family("fam-d3", "u1", "d3");
    store
        .create_code(&code("code-d3", &pending, "s1"), &pending)
        .await
        .unwrap();
    store.create_client(&client("c2")).await.unwrap();

    store.purge_expired(NOW + 86_399).await.unwrap();
    for id in ["c1", "c2", "d1", "d2", "d3"] {
        assert!(
            store.client_by_id(id).await.unwrap().is_some(),
            "{id} is kept for a day"
        );
    }
    store.purge_expired(NOW + 86_400).await.unwrap();
    for (id, kept) in [
        ("c1", true),
        ("c2", true),
        ("d1", false),
        ("d2", true),
        ("d3", false),
    ] {
        assert_eq!(
            store.client_by_id(id).await.unwrap().is_some(),
            kept,
            "{id}"
        );
    }
    assert!(
        exists(store, "r-d2").await,
        "the grant of a kept client is untouched"
    );
}

/// Counters per key and window: each hit returns the window's count with it, a new window
/// starts at zero, keys are compared exactly, and purging forgets only windows whose
/// `expires_at` has passed.
pub async fn rate_limit_windows(store: &dyn Store) {
    const KEY: &str = "register:192.0.2.1";
    assert_eq!(store.rate_limit_count(KEY, NOW).await.unwrap(), 0);
    for expected in 1..=3 {
        assert_eq!(
            store.rate_limit_hit(KEY, NOW, NOW + 60).await.unwrap(),
            expected
        );
    }
    assert_eq!(store.rate_limit_count(KEY, NOW).await.unwrap(), 3);
    assert_eq!(
        store.rate_limit_count(KEY, NOW).await.unwrap(),
        3,
        "reading does not count"
    );
    assert_eq!(
        store
            .rate_limit_hit("register:192.0.2.2", NOW, NOW + 60)
            .await
            .unwrap(),
        1,
        "another key has its own counter"
    );
    assert_eq!(
        store
            .rate_limit_count("REGISTER:192.0.2.1", NOW)
            .await
            .unwrap(),
        0,
        "keys are compared byte-wise"
    );
    assert_eq!(
        store
            .rate_limit_hit(KEY, NOW + 60, NOW + 120)
            .await
            .unwrap(),
        1,
        "the next window starts at zero"
    );
    assert_eq!(store.rate_limit_count(KEY, NOW).await.unwrap(), 3);

    assert_eq!(store.purge_expired(NOW + 59).await.unwrap(), 0);
    assert_eq!(store.purge_expired(NOW + 60).await.unwrap(), 2);
    assert_eq!(store.rate_limit_count(KEY, NOW).await.unwrap(), 0);
    assert_eq!(store.rate_limit_count(KEY, NOW + 60).await.unwrap(), 1);
}

/// Concurrent hits on one window each get a distinct count: none is lost.
pub async fn concurrent_rate_limit_hits_all_count(store: Arc<dyn Store>) {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            store
                .rate_limit_hit("sign-in:192.0.2.9", NOW, NOW + 60)
                .await
        });
    }
    let mut counts = Vec::new();
    while let Some(result) = tasks.join_next().await {
        counts.push(result.unwrap().unwrap());
    }
    counts.sort_unstable();
    assert_eq!(counts, (1..=50).collect::<Vec<u32>>());
    assert_eq!(
        store
            .rate_limit_count("sign-in:192.0.2.9", NOW)
            .await
            .unwrap(),
        50
    );
}

/// An identifier is used once; other keys are independent; the record goes with its expiry,
/// not before.
pub async fn one_time_ids(store: &dyn Store) {
    const KEY: &str = "dpop:thumbprint:jti-1";
    assert!(store.use_once(KEY, NOW + 60).await.unwrap());
    assert!(!store.use_once(KEY, NOW + 60).await.unwrap());
    assert!(!store.use_once(KEY, NOW + 600).await.unwrap());
    assert!(
        store
            .use_once("dpop:thumbprint:jti-2", NOW + 60)
            .await
            .unwrap()
    );
    assert!(
        store
            .use_once("client-assertion:c1:jti-1", NOW + 60)
            .await
            .unwrap()
    );

    store.purge_expired(NOW + 59).await.unwrap();
    assert!(!store.use_once(KEY, NOW + 60).await.unwrap());
    store.purge_expired(NOW + 60).await.unwrap();
    assert!(store.use_once(KEY, NOW + 120).await.unwrap());
}

/// Of fifty concurrent uses of one identifier, exactly one succeeds.
pub async fn concurrent_use_once_succeeds_once(store: Arc<dyn Store>) {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let store = Arc::clone(&store);
        tasks.spawn(async move { store.use_once("id-jag:issuer:jti-9", NOW + 60).await });
    }
    let mut firsts = 0;
    while let Some(result) = tasks.join_next().await {
        firsts += usize::from(result.unwrap().unwrap());
    }
    assert_eq!(firsts, 1);
}

// ----- DPoP bindings (RFC 9449; SECURITY T2, T3) ---------------------------------------------

/// A token's DPoP binding is kept with it: the access token's through the resource server's
/// lookup, the refresh token's through the refresh lookups and a rotation.
pub async fn dpop_bindings_round_trip(store: &dyn Store) {
    let (code, family) = seed_grant(store).await;
    let mut access = access("a1", &family);
    access.dpop_jkt = Some("jkt-of-the-clients-key".to_owned());
    let mut refresh = refresh("r1", &family);
    refresh.dpop_jkt = Some("jkt-of-the-clients-key".to_owned());
    exchange(store, &code.code_hash, &access, Some(&refresh)).await;
    let grant = store
        .access_token(&access.token_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        grant.token.dpop_jkt.as_deref(),
        Some("jkt-of-the-clients-key")
    );
    let (found, _) = store
        .refresh_token(&refresh.token_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.dpop_jkt, refresh.dpop_jkt);
    let (found, _, _) = store
        .refresh_token_with_user(&refresh.token_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.dpop_jkt, refresh.dpop_jkt);

    let mut successor = self::refresh("r2", &family);
    successor.dpop_jkt = refresh.dpop_jkt.clone();
    let bearer = self::access("a2", &family);
    store
        .rotate_refresh_token(
            &refresh.token_hash,
            NOW + 1,
            "{}",
            &bearer,
            &successor,
            &audit("token.refresh"),
        )
        .await
        .unwrap();
    let (found, _) = store
        .refresh_token(&successor.token_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.dpop_jkt, refresh.dpop_jkt);
    let grant = store
        .access_token(&bearer.token_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(grant.token.dpop_jkt, None, "an unbound token stays unbound");
}

// --- Machine and enterprise clients (issue 21: client_credentials, ID-JAG) ---

/// A grant made without a code: a machine's (no user) and a user's with a refresh token, each
/// stored in one transaction with its family and audit entry; the machine's token reads back
/// with no user, and revoking its family ends it.
pub async fn direct_grants_with_and_without_a_user(store: &dyn Store) {
    store.create_client(&client("c1")).await.unwrap();
    store
        .create_user(&user("u1", "u1@example.com"), "$argon2id$v=19$hash")
        .await
        .unwrap();
    let machine = AccessToken {
        id: "m1".to_owned(),
        token_hash: "access-hash-m1".to_owned(),
        family_id: "fam-m".to_owned(),
        client_id: "c1".to_owned(),
        user_id: None,
        scopes: scopes("mcp:tools"),
        audience: "https://rs.example/mcp".to_owned(),
        expires_at: NOW + 3600,
        created_at: NOW,
        dpop_jkt: None,
    };
    let mut event = audit("token.issue");
    event.user_id = None;
    store
        .issue_direct_grant(&machine, None, NOW + 3600, &event)
        .await
        .unwrap();
    let grant = store
        .access_token("access-hash-m1")
        .await
        .unwrap()
        .expect("the machine's token");
    assert_eq!(grant.token, machine);
    assert_eq!(grant.user, None);
    assert!(!grant.family_revoked);

    // A user's grant with a refresh token that rotates as any other.
    let fam = self::family("fam-u", "u1", "c1");
    let mut access = self::access("a-u", &fam);
    access.scopes = fam.scopes.clone();
    let refresh = self::refresh("r-u", &fam);
    store
        .issue_direct_grant(&access, Some(&refresh), NOW + 86_400, &audit("token.issue"))
        .await
        .unwrap();
    let grant = store
        .access_token(&access.token_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(grant.user.map(|u| u.id), Some("u1".to_owned()));
    let (found, family) = store
        .refresh_token(&refresh.token_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, refresh);
    assert_eq!(family.user_id, "u1");
    assert_eq!(family.expires_at, NOW + 86_400);

    // The same family twice is a failure that writes nothing.
    let mut again = machine.clone();
    again.token_hash = "access-hash-m2".to_owned();
    assert!(
        store
            .issue_direct_grant(&again, None, NOW + 3600, &event)
            .await
            .is_err()
    );
    assert_eq!(store.access_token("access-hash-m2").await.unwrap(), None);

    store.revoke_family("fam-m", NOW + 1).await.unwrap();
    let grant = store.access_token("access-hash-m1").await.unwrap().unwrap();
    assert!(grant.family_revoked);
}

/// Runs every contract function as a test, each on a store made by `$fresh` (returning the
/// store and a guard that lives as long as the test); `$rows` makes a [`contract::Rows`] for a
/// store.
macro_rules! contract_tests {
    ($fresh:path, $rows:path) => {
        contract_tests!(@borrowed $fresh:
            migrate_is_idempotent,
            server_secret_first_writer_wins,
            users,
            sessions,
            clients,
            client_documents,
            consent_upsert,
            verifications,
            code_lifecycle,
            redeem_code_lifecycle,
            lookups_with_user,
            tokens_and_lookup,
            revoke_family_kills_tokens,
            revocation_epoch_moves_with_revocations,
            purge_expired_keeps_what_still_works,
            user_administration,
            password_reset_in_one_transaction,
            email_verified_flag,
            client_administration,
            grants_and_their_revocation,
            signing_keys_rotate,
            audit_log_appends,
            refresh_rotation,
            refresh_reissue_generations,
            purge_forgets_unused_registered_clients,
            rate_limit_windows,
            linked_accounts,
            outbox_lifecycle,
            outbox_claims_in_due_order_up_to_the_limit,
            outbox_never_sends_an_expired_token,
            outbox_mail_and_token_are_one_transaction,
            one_time_ids,
            // DPoP bindings
            dpop_bindings_round_trip,
            // Connected accounts (issue 19).
            connections_lifecycle,
            connections_follow_their_user,
            // The console (SECURITY A1).
            a1_stored_admins,
            a1_user_search,
            a1_audit_search_and_histogram,
            a1_counts_and_client_usage,
            // Machine and enterprise clients (issue 21).
            direct_grants_with_and_without_a_user,
        );
        contract_tests!(@shared $fresh:
            concurrent_take_verification_once,
            concurrent_consume_code_once,
            concurrent_redeem_code_once,
            concurrent_rotation_once,
            concurrent_reissue_spends_once,
            concurrent_rate_limit_hits_all_count,
            concurrent_unlink_keeps_a_way_in,
            concurrent_claims_send_each_mail_once,
            concurrent_use_once_succeeds_once,
            // Connected accounts (issue 19).
            concurrent_refresh_claims_succeed_once,
        );
        contract_tests!(@counted $fresh, $rows:
            concurrent_save_consent_one_row,
            concurrent_create_client_distinct_ids,
            concurrent_create_client_same_id,
            concurrent_create_user_same_email,
        );
    };
    (@borrowed $fresh:path: $($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $name() {
            let (store, _guard) = $fresh().await;
            crate::contract::$name(&store).await;
        }
    )*};
    (@shared $fresh:path: $($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $name() {
            let (store, _guard) = $fresh().await;
            crate::contract::$name(std::sync::Arc::new(store)).await;
        }
    )*};
    (@counted $fresh:path, $rows:path: $($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $name() {
            let (store, _guard) = $fresh().await;
            let rows = $rows(&store);
            crate::contract::$name(std::sync::Arc::new(store), rows).await;
        }
    )*};
}

/// The contract against SQLite: a fresh database file per test.
mod sqlite {
    use mcpauth_core::Store;
    use mcpauth_store::SqliteStore;
    use tempfile::TempDir;

    async fn fresh() -> (SqliteStore, TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("mcpauth.db").display());
        let store = SqliteStore::connect(&url).await.unwrap();
        Store::migrate(&store).await.unwrap();
        (store, dir)
    }

    pub fn rows(store: &SqliteStore) -> crate::contract::Rows {
        let store = store.clone();
        Box::new(move |table| {
            let store = store.clone();
            Box::pin(async move {
                let sql = format!(r#"SELECT COUNT(*) FROM "{table}""#);
                store
                    .with_connection(move |conn| conn.query_row(&sql, [], |row| row.get(0)))
                    .await
                    .unwrap()
            })
        })
    }

    contract_tests!(fresh, rows);
}

/// The contract against an in-memory SQLite database (one connection, however many are asked
/// for).
mod sqlite_memory {
    use mcpauth_core::Store;
    use mcpauth_store::SqliteStore;

    async fn fresh() -> (SqliteStore, ()) {
        let store = SqliteStore::connect_with("sqlite::memory:", 8)
            .await
            .unwrap();
        Store::migrate(&store).await.unwrap();
        (store, ())
    }

    use super::sqlite::rows;

    contract_tests!(fresh, rows);
}

/// The contract against PostgreSQL: a fresh schema per test (dropped afterwards), with the
/// default pool of 10 connections, so the concurrency tests race on separate connections.
mod postgres {
    use mcpauth_core::Store;
    use mcpauth_store::PgStore;

    use crate::support::PgSchema;

    async fn fresh() -> (PgStore, PgSchema) {
        let schema = PgSchema::create().await;
        let store = schema.store().await;
        assert!(store.pool().options().get_max_connections() >= 10);
        Store::migrate(&store).await.unwrap();
        (store, schema)
    }

    fn rows(store: &PgStore) -> crate::contract::Rows {
        let pool = store.pool().clone();
        Box::new(move |table| {
            let pool = pool.clone();
            Box::pin(async move {
                let sql = format!(r#"SELECT COUNT(*) FROM "{table}""#);
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .fetch_one(&pool)
                    .await
                    .unwrap()
            })
        })
    }

    contract_tests!(fresh, rows);
}

//! The contract for connected accounts (issue 19; SECURITY V1, V4): a connection is saved
//! with its audit entry in one transaction, a refresh is claimed by one caller of a
//! generation at a time and finished or given up against that generation, key ids are
//! listed for the vault's start check, and deleting a user deletes their connections. Run by
//! `contract_tests!` on every backend with the rest of the contract.

use std::sync::Arc;

use mcpauth_core::Store;
use mcpauth_core::model::{AuditEvent, ConnectionStatus, SealedTokens};

use crate::contract::{NOW, user};

fn tokens(key_id: &str, access: &str, expires_at: Option<i64>) -> SealedTokens {
    SealedTokens {
        key_id: key_id.to_owned(),
        access_token_sealed: format!("sealed-{access}"),
        refresh_token_sealed: Some(format!("sealed-refresh-{access}")),
        token_type: "Bearer".to_owned(),
        expires_at,
        scopes: "repo read:org".to_owned(),
    }
}

fn audit(kind: &str, user_id: &str) -> AuditEvent {
    AuditEvent {
        at: NOW,
        kind: kind.to_owned(),
        user_id: Some(user_id.to_owned()),
        client_id: None,
        ip: None,
        detail: r#"{"connection":"github"}"#.to_owned(),
    }
}

async fn kinds(store: &dyn Store) -> Vec<String> {
    store
        .audit_events(50)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

/// Save, read, list, touch, re-seal, finish a refresh (new tokens, then a refusal), delete.
pub async fn connections_lifecycle(store: &dyn Store) {
    store
        .create_user(&user("u1", "a@example.com"), "h")
        .await
        .unwrap();
    store
        .create_user(&user("u2", "b@example.com"), "h")
        .await
        .unwrap();
    assert!(store.connection("u1", "github").await.unwrap().is_none());
    assert!(store.connection_key_ids().await.unwrap().is_empty());

    store
        .save_connection(
            "u1",
            "github",
            &tokens("k1", "a1", Some(NOW + 3600)),
            NOW,
            &audit("connection.connected", "u1"),
        )
        .await
        .unwrap();
    store
        .save_connection(
            "u1",
            "google",
            &tokens("k1", "g1", None),
            NOW,
            &audit("connection.connected", "u1"),
        )
        .await
        .unwrap();
    let (first, disabled) = store.connection("u1", "github").await.unwrap().unwrap();
    assert!(!disabled);
    assert_eq!(first.tokens, tokens("k1", "a1", Some(NOW + 3600)));
    assert_eq!(first.status, ConnectionStatus::Active);
    assert_eq!((first.created_at, first.updated_at), (NOW, NOW));
    assert_eq!(first.last_used_at, None);
    assert_eq!(first.refresh_claimed_until, None);
    assert!(store.connection("u2", "github").await.unwrap().is_none());
    let listed: Vec<String> = store
        .user_connections("u1")
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.connection_id)
        .collect();
    assert_eq!(listed, ["github", "google"]);
    assert_eq!(store.all_connections().await.unwrap().len(), 2);
    assert_eq!(store.connection_key_ids().await.unwrap(), ["k1"]);

    // Connecting again replaces the tokens, keeps the creation time, moves the generation.
    store
        .save_connection(
            "u1",
            "github",
            &tokens("k1", "a2", Some(NOW + 7200)),
            NOW + 5,
            &audit("connection.connected", "u1"),
        )
        .await
        .unwrap();
    let (second, _) = store.connection("u1", "github").await.unwrap().unwrap();
    assert_eq!(second.tokens.access_token_sealed, "sealed-a2");
    assert_eq!((second.created_at, second.updated_at), (NOW, NOW + 5));
    assert!(second.generation > first.generation);

    store
        .touch_connection("u1", "github", NOW + 9)
        .await
        .unwrap();
    let (touched, _) = store.connection("u1", "github").await.unwrap().unwrap();
    assert_eq!(touched.last_used_at, Some(NOW + 9));
    assert_eq!(touched.generation, second.generation, "a use is no change");

    // Re-sealing under another key keeps the generation; a stale generation changes nothing.
    assert!(
        !store
            .reseal_connection("u1", "github", first.generation, &tokens("k2", "x", None))
            .await
            .unwrap()
    );
    let mut resealed = touched.tokens.clone();
    resealed.key_id = "k2".to_owned();
    resealed.access_token_sealed = "sealed-a2-under-k2".to_owned();
    assert!(
        store
            .reseal_connection("u1", "github", second.generation, &resealed)
            .await
            .unwrap()
    );
    let (after, _) = store.connection("u1", "github").await.unwrap().unwrap();
    assert_eq!(after.tokens, resealed);
    assert_eq!(after.generation, second.generation);
    assert_eq!(store.connection_key_ids().await.unwrap(), ["k1", "k2"]);

    // A refresh: claimed, finished with new tokens (audited), the claim gone.
    let g = after.generation;
    assert!(
        store
            .claim_connection_refresh("u1", "github", g, NOW + 10, NOW + 40)
            .await
            .unwrap()
    );
    let (claimed, _) = store.connection("u1", "github").await.unwrap().unwrap();
    assert_eq!(claimed.refresh_claimed_until, Some(NOW + 40));
    assert!(
        !store
            .finish_connection_refresh(
                "u1",
                "github",
                g - 1,
                Some(&tokens("k2", "stale", None)),
                NOW + 11,
                &audit("connection.refreshed", "u1"),
            )
            .await
            .unwrap(),
        "another generation finishes nothing"
    );
    assert!(
        store
            .finish_connection_refresh(
                "u1",
                "github",
                g,
                Some(&tokens("k2", "a3", Some(NOW + 3611))),
                NOW + 11,
                &audit("connection.refreshed", "u1"),
            )
            .await
            .unwrap()
    );
    let (refreshed, _) = store.connection("u1", "github").await.unwrap().unwrap();
    assert_eq!(refreshed.tokens.access_token_sealed, "sealed-a3");
    assert_eq!(refreshed.generation, g + 1);
    assert_eq!(refreshed.refresh_claimed_until, None);
    assert_eq!(refreshed.status, ConnectionStatus::Active);

    // Released claims free the connection; a refusal marks it for reconnect.
    let g = refreshed.generation;
    assert!(
        store
            .claim_connection_refresh("u1", "github", g, NOW + 12, NOW + 42)
            .await
            .unwrap()
    );
    store
        .release_connection_refresh("u1", "github", g)
        .await
        .unwrap();
    assert!(
        store
            .claim_connection_refresh("u1", "github", g, NOW + 13, NOW + 43)
            .await
            .unwrap()
    );
    assert!(
        store
            .finish_connection_refresh(
                "u1",
                "github",
                g,
                None,
                NOW + 14,
                &audit("connection.refresh_failed", "u1"),
            )
            .await
            .unwrap()
    );
    let (refused, _) = store.connection("u1", "github").await.unwrap().unwrap();
    assert_eq!(refused.status, ConnectionStatus::ReconnectNeeded);
    assert_eq!(refused.tokens.access_token_sealed, "sealed-a3", "kept");
    assert!(
        !store
            .claim_connection_refresh("u1", "github", refused.generation, NOW + 15, NOW + 45)
            .await
            .unwrap(),
        "a connection waiting for reconnect is not refreshed"
    );
    // The console counts them all, and those waiting for their user.
    let counts = store.console_counts(NOW + 15).await.unwrap();
    let all = store.all_connections().await.unwrap().len() as u64;
    assert!(all >= 2);
    assert_eq!(counts.connections, all);
    assert_eq!(counts.connections_reconnect, 1);

    // Delete: audited; a second delete finds nothing and writes nothing.
    assert!(
        store
            .delete_connection("u1", "google", &audit("connection.disconnected", "u1"))
            .await
            .unwrap()
    );
    let before = kinds(store).await.len();
    assert!(
        !store
            .delete_connection("u1", "google", &audit("connection.disconnected", "u1"))
            .await
            .unwrap()
    );
    assert_eq!(kinds(store).await.len(), before);
    let kinds = kinds(store).await;
    for kind in [
        "connection.connected",
        "connection.refreshed",
        "connection.refresh_failed",
        "connection.disconnected",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
    assert_eq!(
        kinds
            .iter()
            .filter(|k| *k == "connection.refreshed")
            .count(),
        1,
        "the stale finish wrote no audit entry"
    );
}

/// A disabled user's connections read as locked; deleting the user deletes them.
pub async fn connections_follow_their_user(store: &dyn Store) {
    store
        .create_user(&user("u1", "a@example.com"), "h")
        .await
        .unwrap();
    store
        .save_connection(
            "u1",
            "github",
            &tokens("k1", "a1", None),
            NOW,
            &audit("connection.connected", "u1"),
        )
        .await
        .unwrap();
    store.set_user_disabled("u1", true, NOW).await.unwrap();
    let (_, disabled) = store.connection("u1", "github").await.unwrap().unwrap();
    assert!(disabled);
    store.set_user_disabled("u1", false, NOW).await.unwrap();
    assert!(store.delete_user("u1").await.unwrap());
    assert!(store.connection("u1", "github").await.unwrap().is_none());
    assert!(store.all_connections().await.unwrap().is_empty());
}

/// Of twenty concurrent claims of one connection's generation, exactly one succeeds
/// (SECURITY V4); a claim that ran out may be taken again.
pub async fn concurrent_refresh_claims_succeed_once(store: Arc<dyn Store>) {
    store
        .create_user(&user("u1", "a@example.com"), "h")
        .await
        .unwrap();
    store
        .save_connection(
            "u1",
            "github",
            &tokens("k1", "a1", Some(NOW + 30)),
            NOW,
            &audit("connection.connected", "u1"),
        )
        .await
        .unwrap();
    let (record, _) = store.connection("u1", "github").await.unwrap().unwrap();
    assert_eq!(
        claims_won(&store, record.generation, NOW + 1).await,
        1,
        "one claim of twenty"
    );
    assert_eq!(
        claims_won(&store, record.generation, NOW + 2).await,
        0,
        "claimed until NOW + 31"
    );
    assert_eq!(
        claims_won(&store, record.generation, NOW + 31).await,
        1,
        "the claim ran out"
    );
}

/// How many of twenty concurrent claims at `now` (each for 30 s) succeed.
pub async fn claims_won(store: &Arc<dyn Store>, generation: i64, now: i64) -> usize {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let store = Arc::clone(store);
        tasks.spawn(async move {
            store
                .claim_connection_refresh("u1", "github", generation, now, now + 30)
                .await
        });
    }
    let mut won = 0;
    while let Some(result) = tasks.join_next().await {
        won += usize::from(result.unwrap().unwrap());
    }
    won
}

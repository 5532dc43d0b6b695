//! The contract for the console's reads and the stored admins (SECURITY A1): who is an admin,
//! user search (the query is a parameter: LIKE's wildcards in it match themselves), the audit
//! log filtered and paged, its histogram, the overview's counts and clients' usage. Run by
//! `contract_tests!` on every backend with the rest of the contract.

use mcpauth_core::Store;
use mcpauth_core::model::{AuditEvent, AuditFilter};

use crate::contract::{NOW, seed_tokens, user};

fn event(
    at: i64,
    kind: &str,
    user_id: Option<&str>,
    client_id: Option<&str>,
    ip: &str,
) -> AuditEvent {
    AuditEvent {
        at,
        kind: kind.to_owned(),
        user_id: user_id.map(str::to_owned),
        client_id: client_id.map(str::to_owned),
        ip: Some(ip.to_owned()),
        detail: "{}".to_owned(),
    }
}

/// An admin is stored and taken back; only existing users can be; the row goes with the user.
pub async fn a1_stored_admins(store: &dyn Store) {
    store
        .create_user(&user("u1", "ops@example.com"), "$argon2id$v=19$hash")
        .await
        .unwrap();
    assert!(!store.is_admin("u1").await.unwrap());
    assert!(store.set_admin("u1", true, NOW).await.unwrap());
    assert!(
        store.set_admin("u1", true, NOW + 1).await.unwrap(),
        "idempotent"
    );
    assert!(store.is_admin("u1").await.unwrap());
    assert_eq!(store.console_counts(NOW).await.unwrap().stored_admins, 1);
    assert!(store.set_admin("u1", false, NOW).await.unwrap());
    assert!(!store.is_admin("u1").await.unwrap());
    assert!(!store.set_admin("nobody", true, NOW).await.unwrap());
    assert!(!store.is_admin("nobody").await.unwrap());

    store.set_admin("u1", true, NOW).await.unwrap();
    assert!(store.delete_user("u1").await.unwrap());
    assert!(!store.is_admin("u1").await.unwrap());
    assert_eq!(store.console_counts(NOW).await.unwrap().stored_admins, 0);
}

/// Search by email or name, case-insensitively, paged, with the total; `%` and `_` in the query
/// are literal characters, not wildcards.
pub async fn a1_user_search(store: &dyn Store) {
    for (i, (id, email, name)) in [
        ("u1", "alice@example.com", "Alice Liddell"),
        ("u2", "bob@example.com", "Bob"),
        ("u3", "carol_100%@example.com", "Carol"),
        ("u4", "dave@other.test", "ALICE's friend"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut u = user(id, email);
        u.name = name.to_owned();
        u.created_at = NOW + i64::try_from(i).unwrap();
        store.create_user(&u, "$argon2id$v=19$hash").await.unwrap();
    }
    let ids = |found: &[mcpauth_core::model::User]| {
        found.iter().map(|u| u.id.clone()).collect::<Vec<_>>()
    };
    let (all, total) = store.search_users("", 0, 10).await.unwrap();
    assert_eq!(
        (ids(&all), total),
        (vec!["u1".into(), "u2".into(), "u3".into(), "u4".into()], 4)
    );
    let (found, total) = store.search_users("Alice", 0, 10).await.unwrap();
    assert_eq!((ids(&found), total), (vec!["u1".into(), "u4".into()], 2));
    let (found, total) = store.search_users("EXAMPLE.COM", 1, 1).await.unwrap();
    assert_eq!((ids(&found), total), (vec!["u2".into()], 3));
    // Wildcards are literal: `%` and `_` match only themselves.
    assert_eq!(store.search_users("%", 0, 10).await.unwrap().1, 1);
    assert_eq!(store.search_users("_1", 0, 10).await.unwrap().1, 1);
    assert_eq!(store.search_users("o_", 0, 10).await.unwrap().1, 0);
    assert_eq!(store.search_users("\\", 0, 10).await.unwrap().1, 0);
    // SQL in the query is text like any other.
    assert_eq!(store.search_users("' OR 1=1 --", 0, 10).await.unwrap().1, 0);
}

/// The audit log filtered by kind (exact or family), user, client, address and time, newest
/// first, paged; the histogram counts kinds per bucket.
pub async fn a1_audit_search_and_histogram(store: &dyn Store) {
    let events = [
        event(NOW, "sign_in.success", Some("u1"), None, "192.0.2.1"),
        event(NOW + 10, "sign_in.failure", Some("u2"), None, "192.0.2.2"),
        event(NOW + 20, "token.issue", Some("u1"), Some("c1"), "192.0.2.1"),
        event(NOW + 3600, "sign_in.success", Some("u2"), None, "192.0.2.2"),
        event(NOW + 3700, "sign_in_other", Some("u2"), None, "192.0.2.2"),
        event(
            NOW + 7200,
            "refresh.reuse_detected",
            Some("u1"),
            Some("c1"),
            "192.0.2.3",
        ),
    ];
    for e in &events {
        store.append_audit(e).await.unwrap();
    }
    let kinds = |found: Vec<AuditEvent>| found.into_iter().map(|e| e.kind).collect::<Vec<_>>();
    let all = store
        .search_audit(&AuditFilter::default(), 0, 100)
        .await
        .unwrap();
    assert_eq!(all.len(), 6);
    assert_eq!(all[0].kind, "refresh.reuse_detected", "newest first");
    let family = AuditFilter {
        kind: Some("sign_in".into()),
        ..AuditFilter::default()
    };
    assert_eq!(
        kinds(store.search_audit(&family, 0, 100).await.unwrap()),
        ["sign_in.success", "sign_in.failure", "sign_in.success"],
        "a family is the kinds before a dot, not every kind that starts alike"
    );
    let exact = AuditFilter {
        kind: Some("sign_in.failure".into()),
        ..AuditFilter::default()
    };
    assert_eq!(store.search_audit(&exact, 0, 100).await.unwrap().len(), 1);
    let wildcard = AuditFilter {
        kind: Some("%".into()),
        ..AuditFilter::default()
    };
    assert!(
        store
            .search_audit(&wildcard, 0, 100)
            .await
            .unwrap()
            .is_empty()
    );
    let narrow = AuditFilter {
        user_id: Some("u1".into()),
        client_id: Some("c1".into()),
        ip: Some("192.0.2.1".into()),
        ..AuditFilter::default()
    };
    assert_eq!(
        kinds(store.search_audit(&narrow, 0, 100).await.unwrap()),
        ["token.issue"]
    );
    let window = AuditFilter {
        since: Some(NOW + 10),
        until: Some(NOW + 3600),
        ..AuditFilter::default()
    };
    assert_eq!(
        kinds(store.search_audit(&window, 0, 100).await.unwrap()),
        ["token.issue", "sign_in.failure"],
        "since is inclusive, until exclusive"
    );
    let page = store
        .search_audit(&AuditFilter::default(), 2, 2)
        .await
        .unwrap();
    assert_eq!(kinds(page), ["sign_in.success", "token.issue"]);

    let counts = store.audit_histogram(NOW, 3600, 2).await.unwrap();
    let mut seen: Vec<(i64, String, u64)> = counts
        .into_iter()
        .map(|c| (c.bucket, c.kind, c.count))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            (0, "sign_in.failure".to_owned(), 1),
            (0, "sign_in.success".to_owned(), 1),
            (0, "token.issue".to_owned(), 1),
            (1, "sign_in.success".to_owned(), 1),
            (1, "sign_in_other".to_owned(), 1),
        ],
        "the entry at NOW + 7200 is past the two buckets"
    );
}

/// The overview's counts and a client's usage follow grants as they are issued and revoked.
pub async fn a1_counts_and_client_usage(store: &dyn Store) {
    assert_eq!(store.console_counts(NOW).await.unwrap().users, 0);
    assert!(store.client_usage().await.unwrap().is_empty());
    let (_, access, _) = seed_tokens(store).await;
    store
        .create_user(&user("u2", "u2@example.com"), "$argon2id$v=19$hash")
        .await
        .unwrap();
    store.set_user_disabled("u2", true, NOW).await.unwrap();
    let counts = store.console_counts(NOW).await.unwrap();
    assert_eq!(
        (counts.users, counts.disabled_users, counts.live_grants),
        (2, 1, 1)
    );
    let usage = store.client_usage().await.unwrap();
    assert_eq!(usage.len(), 1);
    assert_eq!(
        (
            usage[0].client_id.as_str(),
            usage[0].last_used_at,
            usage[0].users
        ),
        ("c1", access.created_at, 1)
    );
    store.revoke_grants("u1", None, NOW + 1).await.unwrap();
    assert_eq!(store.console_counts(NOW + 1).await.unwrap().live_grants, 0);
}

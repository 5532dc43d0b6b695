//! The contract for the mail outbox (SECURITY S30: no mail lost, none sent late, none sent
//! twice): a mail is stored with its token in one transaction, claimed under a lease by one
//! sender at a time, retried or given up, dropped once its token expired, and purged. Run by
//! `contract_tests!` on every backend with the rest of the contract.

use std::collections::HashSet;
use std::sync::Arc;

use mcpauth_core::Store;
use mcpauth_core::model::OutboxMail;

use crate::contract::NOW;

pub fn mail(id: &str, expires_at: i64) -> OutboxMail {
    OutboxMail {
        id: id.to_owned(),
        to: format!("{id}@example.com"),
        subject: "Reset your password".to_owned(),
        text: format!("Open this link:\n\nhttps://auth.example/r/{id}\n"),
        link: format!("https://auth.example/r/{id}"),
        expires_at,
        created_at: NOW,
        attempts: 0,
    }
}

async fn queue(store: &dyn Store, id: &str, expires_at: i64) {
    store
        .put_verification_with_mail(
            &format!("token:{id}"),
            "value",
            expires_at,
            NOW,
            &mail(id, expires_at),
        )
        .await
        .unwrap();
}

fn ids(mails: &[OutboxMail]) -> Vec<&str> {
    mails.iter().map(|m| m.id.as_str()).collect()
}

pub async fn outbox_lifecycle(store: &dyn Store) {
    // The token and its mail are stored together; the mail comes back whole, due at once.
    queue(store, "m1", NOW + 600).await;
    assert_eq!(
        store
            .peek_verification("token:m1", NOW)
            .await
            .unwrap()
            .as_deref(),
        Some("value")
    );
    let claimed = store.claim_mail(NOW, NOW + 60, 10).await.unwrap();
    assert_eq!(
        claimed,
        vec![OutboxMail {
            attempts: 1,
            ..mail("m1", NOW + 600)
        }]
    );

    // Leased: nobody else gets it until the lease ends, then the next claim does.
    assert!(
        store
            .claim_mail(NOW + 59, NOW + 120, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let again = store.claim_mail(NOW + 60, NOW + 120, 10).await.unwrap();
    assert_eq!(ids(&again), ["m1"]);
    assert_eq!(
        again[0].attempts, 2,
        "a claim that died counts as an attempt"
    );

    // A failure with a retry time releases it until then.
    store
        .mail_failed("m1", NOW + 61, Some(NOW + 100), "SMTP: 451 try later")
        .await
        .unwrap();
    assert!(
        store
            .claim_mail(NOW + 99, NOW + 200, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        ids(&store.claim_mail(NOW + 100, NOW + 200, 10).await.unwrap()),
        ["m1"]
    );

    // Sent: gone for good.
    store.mail_sent("m1").await.unwrap();
    assert!(
        store
            .claim_mail(NOW + 500, NOW + 560, 10)
            .await
            .unwrap()
            .is_empty()
    );
    store.mail_sent("m1").await.unwrap();

    // Given up: never claimed again, even once its lease would have ended.
    queue(store, "m2", NOW + 600).await;
    assert_eq!(
        ids(&store.claim_mail(NOW, NOW + 60, 10).await.unwrap()),
        ["m2"]
    );
    store
        .mail_failed("m2", NOW + 1, None, "SMTP: 550 no such user")
        .await
        .unwrap();
    assert!(
        store
            .claim_mail(NOW + 100, NOW + 160, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // ... and not counted as dropped: it was not dropped for its expiry.
    assert_eq!(store.drop_expired_mail(NOW + 600).await.unwrap(), 0);
    // The purge takes it once its token expired.
    assert!(store.purge_expired(NOW + 600).await.unwrap() >= 1);
    assert_eq!(store.drop_expired_mail(NOW + 600).await.unwrap(), 0);
}

pub async fn outbox_claims_in_due_order_up_to_the_limit(store: &dyn Store) {
    for id in ["a", "b", "c"] {
        queue(store, id, NOW + 600).await;
    }
    store.claim_mail(NOW, NOW + 10, 1).await.unwrap();
    let first = store.claim_mail(NOW, NOW + 10, 2).await.unwrap();
    assert_eq!(first.len(), 2);
    assert!(store.claim_mail(NOW, NOW + 10, 5).await.unwrap().is_empty());
    // Retried later than the others are due: claimed after them.
    for mail in &first {
        store
            .mail_failed(&mail.id, NOW, Some(NOW + 50), "x")
            .await
            .unwrap();
    }
    let all: Vec<String> = store
        .claim_mail(NOW + 50, NOW + 60, 5)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(all.len(), 3);
    let later: HashSet<&str> = ids(&first).into_iter().collect();
    assert!(
        !later.contains(all[0].as_str()),
        "the one due first comes first: {all:?}"
    );
}

pub async fn outbox_never_sends_an_expired_token(store: &dyn Store) {
    queue(store, "old", NOW + 10).await;
    queue(store, "new", NOW + 600).await;
    // Not claimed once expired ...
    assert_eq!(
        ids(&store.claim_mail(NOW + 10, NOW + 20, 10).await.unwrap()),
        ["new"]
    );
    // ... dropped and counted (the leased one stays until its lease ends) ...
    assert_eq!(store.drop_expired_mail(NOW + 10).await.unwrap(), 1);
    assert_eq!(store.drop_expired_mail(NOW + 10).await.unwrap(), 0);
    // ... and a mail whose token expired while it was leased is not handed out again.
    store
        .mail_failed("new", NOW + 11, Some(NOW + 12), "x")
        .await
        .unwrap();
    assert!(
        store
            .claim_mail(NOW + 600, NOW + 700, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.drop_expired_mail(NOW + 600).await.unwrap(), 1);
}

pub async fn outbox_mail_and_token_are_one_transaction(store: &dyn Store) {
    queue(store, "dup", NOW + 600).await;
    // A second mail with the same id fails: its token must not be stored either.
    let failed = store
        .put_verification_with_mail(
            "token:other",
            "value",
            NOW + 600,
            NOW,
            &mail("dup", NOW + 600),
        )
        .await;
    assert!(failed.is_err());
    assert_eq!(
        store.peek_verification("token:other", NOW).await.unwrap(),
        None
    );
    assert_eq!(
        ids(&store.claim_mail(NOW, NOW + 60, 10).await.unwrap()),
        ["dup"]
    );
}

/// Several senders (as several instances on one database) claiming at once, in rounds that
/// start together: each mail goes to exactly one of them.
pub async fn concurrent_claims_send_each_mail_once(store: Arc<dyn Store>) {
    const MAILS: usize = 64;
    const SENDERS: usize = 16;
    for i in 0..MAILS {
        queue(&*store, &format!("m{i:02}"), NOW + 600).await;
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(SENDERS));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..SENDERS {
        let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
        tasks.spawn(async move {
            let mut mine = Vec::new();
            for _ in 0..MAILS {
                barrier.wait().await;
                let claimed = store.claim_mail(NOW, NOW + 60, 1).await.unwrap();
                mine.extend(claimed.into_iter().map(|m| m.id));
            }
            mine
        });
    }
    let mut seen = Vec::new();
    while let Some(result) = tasks.join_next().await {
        seen.extend(result.unwrap());
    }
    let distinct: HashSet<&String> = seen.iter().collect();
    assert_eq!(distinct.len(), MAILS, "every mail claimed");
    assert_eq!(seen.len(), MAILS, "each mail claimed once");
}

//! The contract for linked accounts (identity providers, SECURITY S29): users created
//! from an account, linking, listing and unlinking — never the last way in. Run by
//! `contract_tests!` on every backend with the rest of the contract.

use std::sync::Arc;

use mcpauth_core::model::Unlink;
use mcpauth_core::{Store, StoreError};

use crate::contract::{NOW, user};

pub async fn linked_accounts(store: &dyn Store) {
    // A user from an provider has no password, only the linked account.
    let ada = user("u1", "ada@example.com");
    store
        .create_user_with_account(&ada, "oidc", "sub-ada")
        .await
        .unwrap();
    assert_eq!(
        store.user_by_account("oidc", "sub-ada").await.unwrap(),
        Some(ada.clone())
    );
    assert_eq!(
        store.user_by_account("oidc", "sub-other").await.unwrap(),
        None
    );
    assert_eq!(
        store.user_by_account("github", "sub-ada").await.unwrap(),
        None
    );
    let (_, password) = store
        .user_by_email("ada@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(password, None, "an user has no password");
    let accounts = store.user_accounts("u1").await.unwrap();
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0].provider_id, "oidc");
    assert_eq!(accounts[0].account_id, "sub-ada");
    assert_eq!(accounts[0].created_at, NOW);

    // The same email from another provider's first sign-in is a conflict, and leaves nothing.
    let twin = user("u2", "ada@example.com");
    assert!(matches!(
        store.create_user_with_account(&twin, "github", "42").await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.user_by_id("u2").await.unwrap(), None);
    assert_eq!(store.user_by_account("github", "42").await.unwrap(), None);

    // The same account cannot be created or linked twice.
    let other = user("u3", "other@example.com");
    assert!(matches!(
        store
            .create_user_with_account(&other, "oidc", "sub-ada")
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.user_by_id("u3").await.unwrap(), None);
    store.create_user(&other, "$argon2id$other").await.unwrap();
    assert!(matches!(
        store.link_account("u3", "oidc", "sub-ada", NOW).await,
        Err(StoreError::Conflict(_))
    ));

    // Linking a second provider; both are listed, oldest first.
    store
        .link_account("u1", "github", "42", NOW + 5)
        .await
        .unwrap();
    let providers: Vec<String> = store
        .user_accounts("u1")
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.provider_id)
        .collect();
    assert_eq!(providers, ["oidc", "github"]);
    assert_eq!(
        store
            .user_by_account("github", "42")
            .await
            .unwrap()
            .unwrap()
            .id,
        "u1"
    );

    // Unlinking one of two is fine; the last one stays.
    assert_eq!(
        store.unlink_account("u1", "oidc", NOW + 6).await.unwrap(),
        Unlink::Unlinked
    );
    assert_eq!(
        store.user_by_account("oidc", "sub-ada").await.unwrap(),
        None
    );
    assert_eq!(
        store.unlink_account("u1", "github", NOW + 7).await.unwrap(),
        Unlink::LastWayIn
    );
    assert_eq!(store.user_accounts("u1").await.unwrap().len(), 1);
    assert_eq!(
        store.unlink_account("u1", "oidc", NOW + 8).await.unwrap(),
        Unlink::NotLinked
    );
    assert_eq!(
        store.unlink_account("nobody", "github", NOW).await.unwrap(),
        Unlink::NotLinked
    );

    // A password counts as a way in, and is listed; it is never unlinked here.
    store
        .link_account("u3", "github", "43", NOW + 1)
        .await
        .unwrap();
    let providers: Vec<String> = store
        .user_accounts("u3")
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.provider_id)
        .collect();
    assert_eq!(providers, ["credential", "github"]);
    assert_eq!(
        store.unlink_account("u3", "credential", NOW).await.unwrap(),
        Unlink::NotLinked
    );
    assert_eq!(
        store.unlink_account("u3", "github", NOW).await.unwrap(),
        Unlink::Unlinked
    );
    assert_eq!(store.user_accounts("u3").await.unwrap().len(), 1);

    // Deleting the user deletes the links.
    assert!(store.delete_user("u1").await.unwrap());
    assert_eq!(store.user_by_account("github", "42").await.unwrap(), None);
}

/// Two concurrent unlinks of a user's only two ways in: exactly one succeeds.
pub async fn concurrent_unlink_keeps_a_way_in(store: Arc<dyn Store>) {
    store
        .create_user_with_account(&user("u1", "ada@example.com"), "oidc", "sub-ada")
        .await
        .unwrap();
    store.link_account("u1", "github", "42", NOW).await.unwrap();
    let a = tokio::spawn({
        let store = store.clone();
        async move { store.unlink_account("u1", "oidc", NOW).await.unwrap() }
    });
    let b = tokio::spawn({
        let store = store.clone();
        async move { store.unlink_account("u1", "github", NOW).await.unwrap() }
    });
    let mut outcomes = vec![a.await.unwrap(), b.await.unwrap()];
    outcomes.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(outcomes, [Unlink::LastWayIn, Unlink::Unlinked]);
    assert_eq!(store.user_accounts("u1").await.unwrap().len(), 1);
}

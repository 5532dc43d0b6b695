//! The validated-token cache (`[token_cache]`): that it is used, that it never outlives a
//! token's expiry, that revocations made through the server take effect at once, and that
//! revocations made by another process on the database take effect within the configured
//! interval (at once with an interval of 0).

use std::time::Duration;

use crate::common::*;
use mcpauth_core::{Clock, Store};
use reqwest::StatusCode;

fn access_token(flow: &Flow) -> &str {
    flow.tokens["access_token"].as_str().unwrap()
}

/// Another handle on the server's database, as the admin CLI or another instance would have.
async fn other_process(app: &TestApp) -> std::sync::Arc<dyn Store> {
    mcpauth_server::open_store(&format!("sqlite://{}", app.db_path.display()))
        .await
        .unwrap()
}

async fn family_of(app: &TestApp, flow: &Flow) -> String {
    let hash = mcpauth_core::secret::hash_token(access_token(flow));
    sqlx::query_scalar(r#"SELECT family_id FROM "oauthAccessToken" WHERE token_hash = $1"#)
        .bind(hash)
        .fetch_one(&app.db().await)
        .await
        .unwrap()
}

/// Deletes the token's row behind the server's back (no revocation is announced): only a
/// server answering from memory still accepts the token afterwards.
async fn delete_row_silently(app: &TestApp, flow: &Flow) {
    let hash = mcpauth_core::secret::hash_token(access_token(flow));
    let deleted = sqlx::query(r#"DELETE FROM "oauthAccessToken" WHERE token_hash = $1"#)
        .bind(hash)
        .execute(&app.db().await)
        .await
        .unwrap();
    assert_eq!(deleted.rows_affected(), 1);
}

#[tokio::test]
async fn a_validated_token_is_answered_from_memory() {
    let app = spawn_app_with(|s| {
        s.auth.token_cache.revocation_check_interval = std::time::Duration::from_millis(60_000)
    })
    .await;
    let flow = app.full_flow("mcp:tools").await;
    assert_eq!(
        app.session_status(access_token(&flow)).await,
        StatusCode::OK
    );
    delete_row_silently(&app, &flow).await;
    assert_eq!(
        app.session_status(access_token(&flow)).await,
        StatusCode::OK,
        "served from the cache"
    );
}

#[tokio::test]
async fn with_capacity_zero_every_request_asks_the_database() {
    let app = spawn_app_with(|s| s.auth.token_cache.capacity = 0).await;
    let flow = app.full_flow("mcp:tools").await;
    assert_eq!(
        app.session_status(access_token(&flow)).await,
        StatusCode::OK
    );
    delete_row_silently(&app, &flow).await;
    assert_eq!(
        app.session_status(access_token(&flow)).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_cached_token_still_expires() {
    let app = spawn_app_with(|s| {
        s.auth.token_cache.revocation_check_interval = std::time::Duration::from_millis(60_000)
    })
    .await;
    let flow = app.full_flow("mcp:tools").await;
    assert_eq!(
        app.session_status(access_token(&flow)).await,
        StatusCode::OK
    );
    let expires_in = flow.tokens["expires_in"].as_i64().unwrap();
    app.clock.advance(expires_in - 1);
    assert_eq!(
        app.session_status(access_token(&flow)).await,
        StatusCode::OK
    );
    app.clock.advance(1);
    assert_eq!(
        app.session_status(access_token(&flow)).await,
        StatusCode::UNAUTHORIZED
    );
}

/// With an interval far longer than the test, only the server's own invalidation can make
/// these pass.
#[tokio::test]
async fn revocations_through_the_server_take_effect_at_once() {
    let app = spawn_app_with(|s| {
        s.auth.token_cache.revocation_check_interval = std::time::Duration::from_millis(3_600_000);
        s.auth.refresh_reuse_policy = mcpauth::RefreshReusePolicy::Strict;
    })
    .await;

    // RFC 7009 revocation.
    let flow = app.full_flow("mcp:tools offline_access").await;
    assert_eq!(
        app.session_status(access_token(&flow)).await,
        StatusCode::OK
    );
    let response = app
        .http
        .post(app.url("/api/auth/mcp/revoke"))
        .form(&[
            ("token", flow.tokens["refresh_token"].as_str().unwrap()),
            ("client_id", flow.client_id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        app.session_status(access_token(&flow)).await,
        StatusCode::UNAUTHORIZED,
        "revoking the refresh token ends its access token"
    );

    // Refresh token reuse after the grace window (S12, strict policy).
    let flow = app.full_flow("mcp:tools offline_access").await;
    let old_refresh = flow.tokens["refresh_token"].as_str().unwrap();
    let refresh = |token: &str| {
        let form = [
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", token.to_owned()),
            ("client_id", flow.client_id.clone()),
        ];
        let app = &app;
        async move {
            app.http
                .post(app.url("/api/auth/mcp/token"))
                .form(&form)
                .send()
                .await
                .unwrap()
        }
    };
    let rotated = refresh(old_refresh).await;
    assert_eq!(rotated.status(), StatusCode::OK);
    let rotated: serde_json::Value = rotated.json().await.unwrap();
    let new_access = rotated["access_token"].as_str().unwrap();
    assert_eq!(app.session_status(new_access).await, StatusCode::OK);
    app.clock.advance(60);
    assert_eq!(refresh(old_refresh).await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        app.session_status(new_access).await,
        StatusCode::UNAUTHORIZED,
        "reuse detection ends the family at once"
    );
}

#[tokio::test]
async fn another_process_revoking_is_seen_within_the_interval() {
    let interval = Duration::from_millis(300);
    let app = spawn_app_with(|s| s.auth.token_cache.revocation_check_interval = interval).await;
    let flow = app.full_flow("mcp:tools").await;
    assert_eq!(
        app.session_status(access_token(&flow)).await,
        StatusCode::OK
    );
    let family = family_of(&app, &flow).await;
    other_process(&app)
        .await
        .revoke_family(&family, app.clock.now())
        .await
        .unwrap();
    tokio::time::sleep(interval + Duration::from_millis(5)).await;
    assert_eq!(
        app.session_status(access_token(&flow)).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn with_interval_zero_another_process_revoking_is_seen_at_once() {
    let app = spawn_app_with(|s| {
        s.auth.token_cache.revocation_check_interval = std::time::Duration::from_millis(0)
    })
    .await;
    let flow = app.full_flow("mcp:tools").await;
    for _ in 0..3 {
        assert_eq!(
            app.session_status(access_token(&flow)).await,
            StatusCode::OK
        );
    }
    let store = other_process(&app).await;
    assert!(
        store
            .set_client_disabled(&flow.client_id, true, app.clock.now())
            .await
            .unwrap()
    );
    assert_eq!(
        app.session_status(access_token(&flow)).await,
        StatusCode::UNAUTHORIZED
    );
    // Enabled again, the token works again (a refusal is never cached).
    store
        .set_client_disabled(&flow.client_id, false, app.clock.now())
        .await
        .unwrap();
    assert_eq!(
        app.session_status(access_token(&flow)).await,
        StatusCode::OK
    );
}

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::*;
use reqwest::StatusCode;

#[tokio::test]
async fn full_flow_reaches_the_session_endpoint() {
    let app = spawn_app().await;
    let flow = app.full_flow("openid mcp:tools").await;
    let access = flow.tokens["access_token"].as_str().unwrap();
    assert_eq!(app.session_status(access).await, StatusCode::OK);
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

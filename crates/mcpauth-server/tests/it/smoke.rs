//! The smoke test: one full authorization flow reaches the session endpoint, and the server
//! answers its health check.

use crate::common::*;
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

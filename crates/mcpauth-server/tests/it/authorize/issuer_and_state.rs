//! `iss` and `state` on every authorization response (SECURITY S10, S11; RFC 9207): the issuer
//! of the metadata on success and on error, `state` returned unchanged, and no `state` when the
//! client sent none.

use super::*;

async fn issuer_of(app: &TestApp) -> (String, Value) {
    let metadata: Value = app
        .http
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (metadata["issuer"].as_str().unwrap().to_owned(), metadata)
}

#[tokio::test]
async fn s10_iss_matches_the_metadata_issuer_on_success_and_error() {
    let app = spawn_app().await;
    let (issuer, metadata) = issuer_of(&app).await;
    assert_eq!(
        metadata["authorization_response_iss_parameter_supported"],
        json!(true)
    );
    let browser = app.signed_in_browser().await;
    let client_id = app.register_public(REDIRECT_URI).await;

    let response = authorize(&app, &browser, &params_for(&client_id, REDIRECT_URI)).await;
    let success = app.approve(&browser, &location(&response), true).await;
    let query = query_of(&success);
    assert!(query.contains_key("code"));
    assert_eq!(query["iss"], issuer, "success");

    // Consent remembered: a direct code redirect carries it too.
    let response = authorize(&app, &browser, &params_for(&client_id, REDIRECT_URI)).await;
    let query = query_of(&location(&response));
    assert!(query.contains_key("code"));
    assert_eq!(query["iss"], issuer, "direct success");

    let response = authorize(
        &app,
        &browser,
        &with(
            params_for(&client_id, REDIRECT_URI),
            "prompt",
            Some("bogus"),
        ),
    )
    .await;
    assert_eq!(
        error_redirect(&response, REDIRECT_URI)["iss"],
        issuer,
        "error"
    );

    let response = authorize(
        &app,
        &browser,
        &with(
            params_for(&client_id, REDIRECT_URI),
            "prompt",
            Some("consent"),
        ),
    )
    .await;
    let denied = app.approve(&browser, &location(&response), false).await;
    assert_eq!(query_of(&denied)["iss"], issuer, "denial");
}

#[tokio::test]
async fn s11_state_is_returned_unchanged() {
    let app = spawn_app().await;
    let browser = app.signed_in_browser().await;
    let client_id = app.register_public(REDIRECT_URI).await;
    let state = "a b&c=d/é+%20?#x";

    let response = authorize(
        &app,
        &browser,
        &with(params_for(&client_id, REDIRECT_URI), "state", Some(state)),
    )
    .await;
    let success = app.approve(&browser, &location(&response), true).await;
    let query = query_of(&success);
    assert!(query.contains_key("code"), "{success}");
    assert_eq!(query["state"], state, "success: {success}");

    let response = authorize(
        &app,
        &browser,
        &with(
            with(params_for(&client_id, REDIRECT_URI), "state", Some(state)),
            "response_type",
            Some("token"),
        ),
    )
    .await;
    let query = error_redirect(&response, REDIRECT_URI);
    assert_eq!(query["state"], state, "error");

    let response = authorize(
        &app,
        &browser,
        &with(
            with(params_for(&client_id, REDIRECT_URI), "state", Some(state)),
            "prompt",
            Some("consent"),
        ),
    )
    .await;
    let denied = app.approve(&browser, &location(&response), false).await;
    assert_eq!(query_of(&denied)["state"], state, "denial: {denied}");
}

#[tokio::test]
async fn error_redirect_without_state_has_no_state() {
    let app = spawn_app().await;
    let browser = app.signed_in_browser().await;
    let client_id = app.register_public(REDIRECT_URI).await;
    let response = authorize(
        &app,
        &browser,
        &with(
            with(params_for(&client_id, REDIRECT_URI), "state", None),
            "prompt",
            Some("bogus"),
        ),
    )
    .await;
    let query = error_redirect(&response, REDIRECT_URI);
    assert!(!query.contains_key("state"));
    assert_eq!(query["iss"], app.base);
}

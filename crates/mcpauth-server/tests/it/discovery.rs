//! Discovery documents (RFC 8414, RFC 9728; SPEC §4; SECURITY S7) as MCP clients fetch them
//! (INTEROP.md steps 2 and 3).

use crate::common::*;
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};

const AS_PATHS: [&str; 2] = [
    "/.well-known/oauth-authorization-server",
    "/api/auth/.well-known/oauth-authorization-server",
];

const OIDC_PATHS: [&str; 2] = [
    "/.well-known/openid-configuration",
    "/api/auth/.well-known/openid-configuration",
];

const PRM_PATHS: [&str; 3] = [
    "/.well-known/oauth-protected-resource",
    "/.well-known/oauth-protected-resource/api/mcp",
    "/api/auth/.well-known/oauth-protected-resource",
];

/// GETs a JSON document; asserts 200 and a JSON content type.
async fn document(app: &TestApp, path: &str) -> Value {
    let response = app.http.get(app.url(path)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    let content_type = response.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{path}: {content_type}"
    );
    response.json().await.unwrap()
}

#[tokio::test]
async fn authorization_server_metadata_is_the_same_everywhere() {
    let app = spawn_app().await;
    let root = document(&app, AS_PATHS[0]).await;
    assert_eq!(document(&app, AS_PATHS[1]).await, root, "{}", AS_PATHS[1]);
    // The OpenID configuration is the same document (plus, possibly, OIDC-only fields).
    for path in OIDC_PATHS {
        let oidc = document(&app, path).await;
        for (key, value) in root.as_object().unwrap() {
            assert_eq!(&oidc[key], value, "{path}: {key}");
        }
    }
}

#[tokio::test]
async fn issuer_is_the_base_and_matches_the_resource_metadata() {
    let app = spawn_app().await;
    let metadata = document(&app, AS_PATHS[0]).await;
    let issuer = metadata["issuer"].as_str().unwrap();
    assert_eq!(issuer, app.base);
    for path in PRM_PATHS {
        let prm = document(&app, path).await;
        assert_eq!(
            prm["authorization_servers"][0].as_str().unwrap(),
            issuer,
            "{path}: byte-identical issuer"
        );
    }
}

#[tokio::test]
async fn authorization_server_metadata_fields() {
    let app = spawn_app().await;
    let m = document(&app, AS_PATHS[0]).await;
    let base = &app.base;
    assert_eq!(
        m["authorization_endpoint"],
        format!("{base}/api/auth/mcp/authorize")
    );
    assert_eq!(m["token_endpoint"], format!("{base}/api/auth/mcp/token"));
    assert_eq!(
        m["registration_endpoint"],
        format!("{base}/api/auth/mcp/register")
    );
    assert_eq!(m["response_types_supported"], json!(["code"]));
    assert_eq!(m["response_modes_supported"], json!(["query"]));
    assert_eq!(
        m["grant_types_supported"],
        json!(["authorization_code", "refresh_token"])
    );
    let methods = m["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap();
    for method in ["none", "client_secret_basic", "client_secret_post"] {
        assert!(methods.contains(&json!(method)), "{method}");
    }
    assert_eq!(m["authorization_response_iss_parameter_supported"], true);
    let scopes = m["scopes_supported"].as_array().unwrap();
    for scope in ["openid", "offline_access", "mcp:tools"] {
        assert!(scopes.contains(&json!(scope)), "{scope} in {scopes:?}");
    }
    assert!(m["subject_types_supported"].is_array());
}

#[tokio::test]
async fn s07_only_s256_and_no_none_algorithms() {
    let app = spawn_app().await;
    for path in AS_PATHS.iter().chain(OIDC_PATHS.iter()) {
        let m = document(&app, path).await;
        assert_eq!(
            m["code_challenge_methods_supported"],
            json!(["S256"]),
            "{path}"
        );
        for (key, value) in m.as_object().unwrap() {
            if key.ends_with("alg_values_supported") {
                let algs = value
                    .as_array()
                    .unwrap_or_else(|| panic!("{key} is a list"));
                assert!(
                    !algs
                        .iter()
                        .any(|a| a.as_str().is_some_and(|a| a.eq_ignore_ascii_case("none"))),
                    "{path}: {key} offers none: {algs:?}"
                );
            }
        }
    }
}

#[tokio::test]
async fn protected_resource_metadata_everywhere() {
    let app = spawn_app().await;
    let first = document(&app, PRM_PATHS[0]).await;
    for path in PRM_PATHS {
        let prm = document(&app, path).await;
        assert_eq!(prm, first, "{path} is the same document");
        assert_eq!(prm["resource"], format!("{}/api/mcp", app.base), "{path}");
        assert_eq!(prm["authorization_servers"], json!([app.base]), "{path}");
        assert_eq!(prm["bearer_methods_supported"], json!(["header"]), "{path}");
        assert!(prm["resource_name"].is_string(), "{path}");
        let scopes = prm["scopes_supported"].as_array().unwrap();
        assert!(scopes.contains(&json!("mcp:tools")), "{path}: {scopes:?}");
        assert!(
            !scopes.contains(&json!("offline_access")),
            "{path}: offline_access is an AS-only scope: {scopes:?}"
        );
    }
}

#[tokio::test]
async fn challenge_points_at_the_resource_metadata() {
    let app = spawn_app().await;
    let response = app
        .http
        .get(app.url("/api/auth/mcp/get-session"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    let url = challenge
        .split("resource_metadata=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("resource_metadata in {challenge}"));
    let fetched = app.http.get(url).send().await.unwrap();
    assert_eq!(fetched.status(), StatusCode::OK, "{url}");
    let prm: Value = fetched.json().await.unwrap();
    assert_eq!(prm["resource"], app.resource().as_str());
}

#[tokio::test]
async fn every_advertised_endpoint_exists() {
    let app = spawn_app().await;
    let m = document(&app, AS_PATHS[0]).await;
    let mut checked = 0;
    for (key, value) in m.as_object().unwrap() {
        if !(key.ends_with("_endpoint") || key.ends_with("_uri")) {
            continue;
        }
        let url = value
            .as_str()
            .unwrap_or_else(|| panic!("{key} is a URL string"));
        assert!(
            url.starts_with(&app.base),
            "{key} is on the issuer's origin: {url}"
        );
        // POST-only endpoints get an (empty) POST; everything else a GET.
        let post = matches!(
            key.as_str(),
            "token_endpoint"
                | "registration_endpoint"
                | "revocation_endpoint"
                | "introspection_endpoint"
        );
        let response = if post {
            app.http
                .post(url)
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body("")
                .send()
                .await
                .unwrap()
        } else {
            app.http.get(url).send().await.unwrap()
        };
        let status = response.status();
        assert_ne!(status, StatusCode::NOT_FOUND, "{key}: {url}");
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{key}: {url}");
        assert!(!status.is_server_error(), "{key}: {url} answered {status}");
        checked += 1;
    }
    assert!(checked >= 3, "at least authorize, token and register");
}

#[tokio::test]
async fn metadata_setting_overrides_fields() {
    let app = spawn_app_with(|s| {
        s.auth
            .metadata
            .insert("subject_types_supported".into(), json!(["pairwise"]));
        s.auth.metadata.insert(
            "service_documentation".into(),
            json!("https://docs.example.com/mcpauth"),
        );
    })
    .await;
    for path in AS_PATHS {
        let m = document(&app, path).await;
        assert_eq!(m["subject_types_supported"], json!(["pairwise"]), "{path}");
        assert_eq!(
            m["service_documentation"], "https://docs.example.com/mcpauth",
            "{path}"
        );
        assert_eq!(m["issuer"], app.base.as_str(), "the rest is untouched");
        assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
    }
}

#[tokio::test]
async fn mcp_protocol_version_header_is_accepted() {
    let app = spawn_app().await;
    for version in ["2025-06-18", "2025-11-25", "2026-07-28", "1999-01-01"] {
        for path in AS_PATHS.iter().chain(PRM_PATHS.iter()) {
            let response = app
                .http
                .get(app.url(path))
                .header("MCP-Protocol-Version", version)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{path} with {version}");
            let with_header: Value = response.json().await.unwrap();
            assert_eq!(with_header, document(&app, path).await, "{path}");
        }
    }
    // A browser client may send it cross-origin: the preflight allows it.
    let preflight = app
        .http
        .request(reqwest::Method::OPTIONS, app.url(AS_PATHS[0]))
        .header("origin", "http://localhost:6274")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "mcp-protocol-version")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let allowed = preflight
        .headers()
        .get("access-control-allow-headers")
        .map(|v| v.to_str().unwrap().to_ascii_lowercase())
        .unwrap_or_default();
    assert!(
        allowed.contains("mcp-protocol-version") || allowed == "*",
        "{allowed:?}"
    );
}

#[tokio::test]
async fn metadata_is_readable_cross_origin() {
    let app = spawn_app().await;
    for path in AS_PATHS.iter().chain(PRM_PATHS.iter()) {
        let response = app
            .http
            .get(app.url(path))
            .header("origin", "http://localhost:6274")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            response
                .headers()
                .contains_key("access-control-allow-origin"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn s21_forwarded_headers_do_not_change_the_issuer() {
    let app = spawn_app().await;
    let response = app
        .http
        .get(app.url(AS_PATHS[0]))
        .header("host", "evil.test")
        .header("x-forwarded-host", "evil.test")
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let m: Value = response.json().await.unwrap();
    assert_eq!(m["issuer"], app.base.as_str());
    assert!(!m.to_string().contains("evil.test"));
}

//! The promises of `mcpauth::IdentityProvider` (see its documentation), checked on each
//! implementation of `mcpauth-idp` against its peer — the OpenID provider against the test OP,
//! GitHub against the stand-in: the authorization URL carries the state, the S256 challenge of
//! the verifier (never the verifier), the redirect URI and the client id, and for OpenID the
//! nonce; a code redeems to the identity only with the right verifier; a refused code is
//! `Refused`, a provider that cannot be reached `Unavailable`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcpauth::identity_provider::{AuthorizationStart, CodeExchange};
use mcpauth::{IdentityProvider, IdentityProviderError};
use mcpauth_idp::{GitHubConfig, GitHubProvider, HttpOptions, OidcConfig, OidcProvider};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::github::{GH_CLIENT_ID, GH_SECRET, stand_in};
use super::test_op::{self, TestOp};
use crate::common::{client, location, query_of};

const REDIRECT: &str = "http://localhost:1/api/auth/callback/x";

fn oidc(issuer: &str) -> OidcProvider {
    OidcProvider::new(OidcConfig {
        issuer: issuer.to_owned(),
        client_id: test_op::CLIENT_ID.to_owned(),
        client_secret: Some(test_op::CLIENT_SECRET.to_owned()),
        scopes: vec![],
        http: HttpOptions::default(),
    })
    .unwrap()
}

fn github(base: &str) -> GitHubProvider {
    let mut config = GitHubConfig::new(GH_CLIENT_ID, GH_SECRET);
    config.web_url = base.to_owned();
    config.api_url = format!("{base}/api");
    GitHubProvider::new(config).unwrap()
}

/// The contract, on one implementation; `openid` says whether it must send a nonce.
async fn contract(provider: &dyn IdentityProvider, client_id: &str, openid: bool) {
    let verifier = mcpauth_core::secret::random_token();
    let start = AuthorizationStart {
        redirect_uri: REDIRECT,
        state: "state-123",
        nonce: "nonce-456",
        code_verifier: &verifier,
    };
    let url = provider.authorization_url(&start).await.unwrap();
    let query = query_of(url.as_str());
    assert_eq!(query["response_type"], "code");
    assert_eq!(query["client_id"], client_id);
    assert_eq!(query["redirect_uri"], REDIRECT);
    assert_eq!(query["state"], "state-123");
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(
        query["code_challenge"],
        URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
    );
    assert!(
        !url.as_str().contains(&verifier),
        "never the verifier itself"
    );
    if openid {
        assert_eq!(query["nonce"], "nonce-456");
        assert!(query["scope"].split(' ').any(|s| s == "openid"));
    }

    // The peer answers with a code (it redirects to the callback).
    let code_for = |url: url::Url| async move {
        let response = client().get(url).send().await.unwrap();
        query_of(&location(&response))["code"].clone()
    };
    // A wrong verifier: refused.
    let code = code_for(url.clone()).await;
    let wrong = mcpauth_core::secret::random_token();
    let refused = provider
        .identity(&CodeExchange {
            redirect_uri: REDIRECT,
            code: &code,
            code_verifier: &wrong,
            nonce: "nonce-456",
        })
        .await;
    assert!(
        matches!(refused, Err(IdentityProviderError::Refused(_))),
        "{refused:?}"
    );
    // A code never issued: refused.
    let refused = provider
        .identity(&CodeExchange {
            redirect_uri: REDIRECT,
            code: "never-issued",
            code_verifier: &verifier,
            nonce: "nonce-456",
        })
        .await;
    assert!(
        matches!(refused, Err(IdentityProviderError::Refused(_))),
        "{refused:?}"
    );
    // The right verifier: the identity.
    let code = code_for(url).await;
    let identity = provider
        .identity(&CodeExchange {
            redirect_uri: REDIRECT,
            code: &code,
            code_verifier: &verifier,
            nonce: "nonce-456",
        })
        .await
        .unwrap();
    assert_eq!(identity.subject, "4242");
    assert_eq!(identity.email.as_deref(), Some("grace@example.com"));
    assert!(identity.email_verified);
}

#[tokio::test]
async fn the_openid_provider_keeps_the_identity_provider_contract() {
    let op = TestOp::start().await;
    op.next_identity(
        "4242",
        json!({ "email": "grace@example.com", "email_verified": true, "name": "Grace" }),
    );
    contract(&oidc(&op.issuer), test_op::CLIENT_ID, true).await;
}

#[tokio::test]
async fn the_github_preset_keeps_the_identity_provider_contract() {
    let (base, stand, _stop) = stand_in().await;
    stand.lock().unwrap().next = (
        json!({ "id": 4242, "login": "grace" }),
        json!([{ "email": "grace@example.com", "primary": true, "verified": true }]),
    );
    contract(&github(&base), GH_CLIENT_ID, false).await;
}

#[tokio::test]
async fn a_provider_that_cannot_be_reached_is_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let nowhere = format!("http://127.0.0.1:{port}");
    let start = AuthorizationStart {
        redirect_uri: REDIRECT,
        state: "s",
        nonce: "n",
        code_verifier: "v",
    };
    let error = oidc(&nowhere).authorization_url(&start).await.unwrap_err();
    assert!(
        matches!(error, IdentityProviderError::Unavailable(_)),
        "{error:?}"
    );
    let exchange = CodeExchange {
        redirect_uri: REDIRECT,
        code: "c",
        code_verifier: "v",
        nonce: "n",
    };
    let error = github(&nowhere).identity(&exchange).await.unwrap_err();
    assert!(
        matches!(error, IdentityProviderError::Unavailable(_)),
        "{error:?}"
    );
}

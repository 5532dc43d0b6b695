//! `mcpauth::remote::RemoteVerifier` against a live server (SECURITY T1, T2 at a resource
//! server elsewhere): discovery and JWKS, the audience, refusals, a DPoP-bound token with its
//! proof, and a key rotation by another process (an unknown `kid` re-reads the JWKS, bounded).

use std::time::Duration;

use mcpauth::remote::{ProofRequest, RemoteError, RemoteVerifier};

use super::*;

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} in {value}"))
}

#[tokio::test]
async fn t1_remote_verifier_checks_tokens_with_discovery_and_jwks() {
    let formats = spawn_formats(|_| {}).await;
    let app = &formats.app;
    let verifier = RemoteVerifier::discover(&app.base, &app.resource())
        .await
        .unwrap()
        .with_reread_interval(Duration::ZERO);
    let flow = app.full_flow("openid mcp:tools").await;
    let access = text(&flow.tokens, "access_token");
    let verified = verifier.verify(access).await.unwrap();
    assert_eq!(verified.client_id, flow.client_id);
    assert!(verified.has_scope("mcp:tools"));
    assert_eq!(verified.audience, app.resource());

    // Another resource's token, an id_token, an opaque token: refused.
    let for_a = app
        .full_flow_for("mcp:tools", Some(&app.url("/mcp/a")))
        .await;
    let for_b = app
        .full_flow_for("mcp:tools", Some(&app.url("/mcp/b")))
        .await;
    for (what, token) in [
        ("token for /mcp/a", text(&for_a.tokens, "access_token")),
        ("id_token", text(&flow.tokens, "id_token")),
        ("opaque token", text(&for_b.tokens, "access_token")),
    ] {
        assert!(
            matches!(verifier.verify(token).await, Err(RemoteError::Invalid(_))),
            "{what}"
        );
    }
    let at_a = RemoteVerifier::discover(&app.base, &app.url("/mcp/a"))
        .await
        .unwrap();
    assert!(
        at_a.verify(text(&for_a.tokens, "access_token"))
            .await
            .is_ok()
    );

    // A DPoP-bound token: only with its proof, once.
    let key = DpopKey::new();
    let (_, bound) = dpop_flow(app, &key, None).await;
    let bound = text(&bound, "access_token");
    assert!(
        verifier.verify(bound).await.is_err(),
        "not as a bearer token"
    );
    let url = "https://mcp.example.test/mcp";
    let proof = key.proof("POST", url, app.clock_now(), Some(bound));
    let request = ProofRequest {
        proof: &proof,
        method: "POST",
        url,
    };
    let verified = verifier.verify_with_proof(bound, &request).await.unwrap();
    assert_eq!(verified.dpop_jkt.as_deref(), Some(key.jkt.as_str()));
    assert!(
        verifier.verify_with_proof(bound, &request).await.is_err(),
        "replayed"
    );
    let other = DpopKey::new().proof("POST", url, app.clock_now(), Some(bound));
    let request = ProofRequest {
        proof: &other,
        method: "POST",
        url,
    };
    assert!(
        verifier.verify_with_proof(bound, &request).await.is_err(),
        "another key"
    );

    // The keys rotate (the admin CLI, another process): the new kid is fetched on first sight.
    let reads = verifier.jwks_reads();
    let rotated = mcpauth(app.db_path.parent().unwrap())
        .args(["keys", "rotate", "--database-url"])
        .arg(format!("sqlite://{}", app.db_path.display()))
        .output()
        .await
        .unwrap();
    assert!(rotated.status.success(), "{rotated:?}");
    crate::common::after_revocation_check().await;
    let fresh = app.full_flow("mcp:tools").await;
    let fresh = text(&fresh.tokens, "access_token");
    assert_ne!(header_of(fresh)["kid"], header_of(access)["kid"]);
    assert!(verifier.verify(fresh).await.is_ok());
    assert_eq!(verifier.jwks_reads(), reads + 1);
    assert!(
        verifier.verify(access).await.is_ok(),
        "the retired key is still published"
    );
}

#[tokio::test]
async fn t1_remote_verifier_rereads_the_jwks_at_most_once_per_interval() {
    let formats = spawn_formats(|_| {}).await;
    let app = &formats.app;
    let verifier = RemoteVerifier::discover(&app.base, &app.resource())
        .await
        .unwrap();
    let flow = app.full_flow("mcp:tools").await;
    let access = text(&flow.tokens, "access_token");
    let mut header = header_of(access);
    header["kid"] = Value::from("made-up");
    let made_up = sign_raw(&header, &claims_of(access), |_| "c2ln".to_owned());
    for _ in 0..5 {
        assert!(verifier.verify(&made_up).await.is_err());
    }
    assert_eq!(verifier.jwks_reads(), 1, "no re-read within the interval");
}

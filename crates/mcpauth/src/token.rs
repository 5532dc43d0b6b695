//! The token endpoint (OAuth 2.1 §3.2, RFC 6749 §4.1.3 and §6, RFC 7636 §4.6, RFC 8707 §2.2).
//!
//! The client is authenticated before the code is consumed. A code works once; a second use
//! revokes what the first produced (SECURITY S8). Refresh tokens rotate on every use; a client
//! that lost the answer may retry within `refresh_reuse_grace` and gets the same answer back,
//! read from a copy sealed under the old token. A later reuse is judged by the client's
//! `refresh_reuse_policy` ([`mcpauth_core::RefreshReusePolicy`]): the immediately previous
//! token within the window gets new tokens of the same grant (`refresh.reuse_tolerated`);
//! anything else revokes the whole grant (S12). The grants without a browser
//! (`client_credentials`, ID-JAG redemption; issue 21) are decided in `client_credentials` and
//! `id_jag` and minted here (`issue_direct`).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use mcpauth_core::grant::{self, CodeBinding, RefreshBinding, RefreshTokenState};
use mcpauth_core::model::{
    AccessToken, Client, CodeRedemption, GrantType, RefreshToken, Reissue, Rotation,
};
use mcpauth_core::{ErrorCode, OAuthError, Scopes, secret};
use serde_json::{Value, json};

use crate::McpAuth;
use crate::access_token_jwt::{self, AccessTokenFormat};
use crate::client_auth::authenticate_client;
use crate::dpop;
use crate::errors::{NoStore, OAuthJson};
use crate::oidc::{IdTokenRequest, id_token};
use crate::params::{params_from_body, read_body};
use crate::rate_limit::Limit;
use mcpauth_core::Params;

/// `POST {base}/mcp/token`.
pub async fn token_endpoint(State(auth): State<McpAuth>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let ip = auth.site().client_ip(&parts.headers, &parts.extensions);
    if let Err(limited) = auth.limiter().hit(Limit::TokenPerIp, &ip, auth.now()).await {
        return limited.annotate(OAuthJson::from(limited.error()).into_response());
    }
    let response = match token(&auth, &parts.headers, body, &ip).await {
        Ok(body) => NoStore(axum::Json(body)).into_response(),
        Err(error) => error.into_response(),
    };
    with_dpop_nonce(&auth, &parts.headers, response)
}

async fn token(
    auth: &McpAuth,
    headers: &HeaderMap,
    body: Body,
    ip: &str,
) -> Result<Value, OAuthJson> {
    let bytes = read_body(body).await?;
    let params = params_from_body(headers, &bytes, &["resource"])?;
    let grant_type = grant::requested_grant_type(params.require("grant_type")?)?;
    let client = authenticate_client(auth, headers, &params).await?;
    let proof = token_endpoint_proof(auth, headers, &client).await?;
    let proof = proof.as_deref();
    match grant_type {
        GrantType::AuthorizationCode => exchange_code(auth, &client, &params, ip, proof).await,
        GrantType::RefreshToken => refresh(auth, &client, &params, ip, proof).await,
        GrantType::ClientCredentials => {
            let grant = crate::client_credentials::client_credentials(auth, &client, &params)?;
            issue_direct(auth, &client, grant, ip, proof).await
        }
        GrantType::JwtBearer => {
            let grant = crate::id_jag::redeem(auth, &client, &params, ip).await?;
            issue_direct(auth, &client, grant, ip, proof).await
        }
    }
}

/// Mints and stores a grant made without a code (`client_credentials`, an ID-JAG), with its
/// audit entry, in one transaction.
async fn issue_direct(
    auth: &McpAuth,
    client: &Client,
    grant: crate::client_credentials::DirectGrant,
    ip: &str,
    proof: Option<&str>,
) -> Result<Value, OAuthJson> {
    let family_id = secret::random_id();
    let issued = Issued::new(
        auth,
        Grant {
            client,
            family_id: &family_id,
            user_id: grant.user_id.as_deref(),
            scopes: &grant.scopes,
            grant_scopes: &grant.scopes,
            resource: &grant.resource,
        },
        grant.refresh_until,
    )
    .shape(
        auth,
        Shape {
            dpop_jkt: proof,
            bind_refresh: client.is_public(),
            auth_time: None,
        },
    )
    .await?;
    let mut detail = grant.audit_detail;
    detail["scope"] = Value::String(grant.scopes.to_string());
    detail["family_id"] = Value::String(family_id);
    let audit = auth.audit_event(
        "token.issue",
        grant.user_id.as_deref(),
        Some(&client.client_id),
        Some(ip),
        detail,
    );
    let family_end = grant.refresh_until.unwrap_or(issued.access.expires_at);
    auth.store()
        .issue_direct_grant(&issued.access, issued.refresh.as_ref(), family_end, &audit)
        .await?;
    Ok(issued.response)
}

async fn exchange_code(
    auth: &McpAuth,
    client: &Client,
    params: &Params,
    ip: &str,
    proof: Option<&str>,
) -> Result<Value, OAuthJson> {
    let code = params.require("code")?;
    let verifier = params.get("code_verifier");
    let resource = params.all("resource");
    let now = auth.now();
    let code_hash = secret::hash_token(code);
    let store = &auth.store();
    // Read first, redeem last: everything the answer needs is checked and built before the one
    // write transaction that redeems the code and stores the tokens.
    let Some((record, user)) = store.unused_code_with_user(&code_hash).await? else {
        return Err(spent_code(auth, client, &code_hash, now, ip).await);
    };
    let binding = CodeBinding {
        client_id: &record.client_id,
        redirect_uri: record.redirect_uri.as_str(),
        code_challenge: record.code_challenge.as_deref(),
        resource: &record.resource,
        expires_at: record.expires_at,
    };
    let checked = binding.check(
        &client.client_id,
        params.get("redirect_uri"),
        verifier,
        &resource,
        now,
    );
    let user = match checked {
        Ok(()) if !user.disabled => Ok(user),
        Ok(()) => Err(OAuthError::invalid_grant("the user no longer exists")),
        Err(error) => Err(error),
    };
    let user = match user {
        Ok(user) => user,
        Err(error) => {
            // A failed attempt spends the code all the same: it is never tried twice.
            store.consume_code(&code_hash, now).await?;
            return Err(error.into());
        }
    };
    let scopes = &record.scopes;
    let options = auth.options();
    let with_refresh = options
        .refresh_token_policy
        .issues_refresh_token(scopes, client.has_grant_type(GrantType::RefreshToken));
    let issued = Issued::new(
        auth,
        Grant {
            client,
            family_id: &record.family_id,
            user_id: Some(&record.user_id),
            scopes,
            grant_scopes: scopes,
            resource: &record.resource,
        },
        with_refresh.then_some(now + options.refresh_family_lifetime),
    )
    .shape(
        auth,
        Shape {
            dpop_jkt: proof,
            bind_refresh: client.is_public(),
            auth_time: Some(record.auth_time),
        },
    )
    .await?;
    let mut response = issued.response;
    if scopes.contains("openid") {
        let id_token = id_token(
            auth,
            IdTokenRequest {
                user: &user,
                client_id: &client.client_id,
                scopes,
                auth_time: record.auth_time,
                nonce: record.nonce.as_deref(),
            },
        )
        .await
        .map_err(|error| {
            tracing::error!(%error, "could not sign an id_token");
            OAuthJson::from(OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "the id_token could not be signed; try again",
            ))
        })?;
        response["id_token"] = Value::String(id_token);
    }
    let audit = auth.audit_event(
        "token.issue",
        Some(&record.user_id),
        Some(&client.client_id),
        Some(ip),
        json!({ "grant_type": "authorization_code", "scope": record.scopes, "family_id": record.family_id }),
    );
    if store
        .redeem_code(
            &code_hash,
            now,
            &issued.access,
            issued.refresh.as_ref(),
            &audit,
        )
        .await?
    {
        return Ok(response);
    }
    // Redeemed by a concurrent request since it was read: this one is the replay.
    Err(spent_code(auth, client, &code_hash, now, ip).await)
}

/// The answer to a code that is unknown or already used. A used code revokes what it was
/// exchanged for (RFC 6749 §4.1.2, SECURITY S8).
async fn spent_code(
    auth: &McpAuth,
    client: &Client,
    code_hash: &str,
    now: i64,
    ip: &str,
) -> OAuthJson {
    match auth.store().consume_code(code_hash, now).await {
        Ok(CodeRedemption::Replayed) => {
            auth.forget_validated_tokens();
            tracing::warn!(client_id = %client.client_id, "authorization code replayed; its tokens are revoked");
            auth.audit(
                "code.replay_detected",
                None,
                Some(&client.client_id),
                Some(ip),
                json!({}),
            )
            .await;
            OAuthError::invalid_grant(
                "the authorization code was already used; tokens issued from it are revoked",
            )
            .into()
        }
        // Redeemed here means it appeared only now: spent, and refused all the same.
        Ok(CodeRedemption::Unknown | CodeRedemption::Redeemed(_)) => {
            OAuthError::invalid_grant("the authorization code is not valid").into()
        }
        Err(error) => error.into(),
    }
}

async fn refresh(
    auth: &McpAuth,
    client: &Client,
    params: &Params,
    ip: &str,
    proof: Option<&str>,
) -> Result<Value, OAuthJson> {
    let presented = params.require("refresh_token")?;
    let old_hash = secret::hash_token(presented);
    let now = auth.now();
    let invalid = || OAuthError::invalid_grant("the refresh token is not valid");
    let (old, family, user) = auth
        .store()
        .refresh_token_with_user(&old_hash)
        .await?
        .ok_or_else(invalid)?;
    // A bound refresh token refreshes only with its key's proof (SECURITY T3); checked before
    // anything else, so that a thief without the key changes nothing: not even reuse detection
    // sees the attempt.
    if let Some(bound) = &old.dpop_jkt
        && proof != Some(bound.as_str())
    {
        return Err(OAuthError::invalid_grant(
            "the refresh token is bound to a DPoP key: present a DPoP proof signed by that key",
        )
        .into());
    }
    let binding = RefreshBinding {
        client_id: &old.client_id,
        family_revoked: family.revoked_at.is_some(),
        rotated_at: old.rotated_at,
        expires_at: old.expires_at,
        family_expires_at: family.expires_at,
    };
    let state = binding.check(&client.client_id, now)?;
    let options = auth.options();
    let window = options
        .refresh_reuse_policy_of(&client.client_id)
        .tolerance_window(options.refresh_reuse_window);
    if let RefreshTokenState::Rotated { rotated_at } = state {
        if let Some(previous) =
            retry_answer(auth, presented, rotated_at, old.retry_response.as_deref())
        {
            return Ok(previous);
        }
        if window.is_none() {
            return Err(revoke_reused(auth, &family.id, ip).await);
        }
    }
    let granted = &old.scopes;
    let scopes = grant::narrow_scope(granted, params.get("scope"))?;
    grant::check_refresh_resource(&old.resource, &params.all("resource"))?;
    if user.disabled {
        return Err(OAuthError::invalid_grant("the user no longer exists").into());
    }
    let issued = Issued::new(
        auth,
        Grant {
            client,
            family_id: &family.id,
            user_id: Some(&old.user_id),
            scopes: &scopes,
            grant_scopes: granted,
            resource: &old.resource,
        },
        Some(family.expires_at),
    )
    .shape(
        auth,
        Shape {
            dpop_jkt: proof,
            bind_refresh: client.is_public(),
            auth_time: None,
        },
    )
    .await?;
    let Some(refresh) = &issued.refresh else {
        return Err(OAuthError::server_error().into());
    };
    let sealed = secret::seal(presented, issued.response.to_string().as_bytes());
    let detail = json!({ "family_id": family.id, "scope": scopes.to_string() });
    // Whether the token must be spent (marked rotated with this answer) by a tolerated
    // reissue: only when it was never rotated.
    let spend = match state {
        RefreshTokenState::Live => {
            let audit = auth.audit_event(
                "token.refresh",
                Some(&old.user_id),
                Some(&client.client_id),
                Some(ip),
                detail.clone(),
            );
            match auth
                .store()
                .rotate_refresh_token(&old_hash, now, &sealed, &issued.access, refresh, &audit)
                .await?
            {
                Rotation::Rotated => return Ok(issued.response),
                Rotation::AlreadyRotated {
                    rotated_at,
                    retry_response,
                } => {
                    if let Some(previous) =
                        retry_answer(auth, presented, rotated_at, retry_response.as_deref())
                    {
                        return Ok(previous);
                    }
                    None
                }
                Rotation::Superseded => Some(sealed.as_str()),
            }
        }
        RefreshTokenState::Rotated { .. } => None,
    };
    let Some(window) = window else {
        return Err(revoke_reused(auth, &family.id, ip).await);
    };
    // The tolerated reuse (SECURITY S12): the store decides, atomically, whether this token is
    // the immediately previous one and the grant advanced within the window.
    let audit = auth.audit_event(
        "refresh.reuse_tolerated",
        Some(&old.user_id),
        Some(&client.client_id),
        Some(ip),
        detail,
    );
    let mut spend = spend;
    loop {
        match auth
            .store()
            .reissue_refresh_token(
                &old_hash,
                now,
                window,
                spend,
                &issued.access,
                refresh,
                &audit,
            )
            .await?
        {
            Reissue::Reissued => {
                tracing::info!(
                    family_id = %family.id,
                    client_id = %client.client_id,
                    "previous refresh token presented again within the window; tolerated"
                );
                return Ok(issued.response);
            }
            Reissue::AlreadyRotated {
                rotated_at,
                retry_response,
            } => {
                // A concurrent presentation spent it first: its answer, or judge it as rotated.
                if let Some(previous) =
                    retry_answer(auth, presented, rotated_at, retry_response.as_deref())
                {
                    return Ok(previous);
                }
                if spend.take().is_none() {
                    break;
                }
            }
            Reissue::Refused => break,
        }
    }
    Err(revoke_reused(auth, &family.id, ip).await)
}

/// The answer a rotated token's rotation gave, when it is retried within the grace window
/// (the answer is sealed under the token, so only its holder can open it).
fn retry_answer(
    auth: &McpAuth,
    presented: &str,
    rotated_at: i64,
    retry_response: Option<&str>,
) -> Option<Value> {
    if !grant::within_retry_window(rotated_at, auth.now(), auth.options().refresh_reuse_grace) {
        return None;
    }
    retry_response
        .and_then(|sealed| secret::open(presented, sealed))
        .and_then(|plain| serde_json::from_slice::<Value>(&plain).ok())
}

/// A refresh token came back that the policy does not tolerate: the grant is treated as
/// stolen and revoked.
async fn revoke_reused(auth: &McpAuth, family_id: &str, ip: &str) -> OAuthJson {
    let now = auth.now();
    let revoked = auth.store().revoke_family(family_id, now).await;
    auth.forget_validated_tokens();
    if let Err(error) = revoked {
        return error.into();
    }
    auth.audit(
        "refresh.reuse_detected",
        None,
        None,
        Some(ip),
        json!({ "family_id": family_id }),
    )
    .await;
    tracing::warn!(
        family_id,
        "refresh token reused after rotation; the grant is revoked"
    );
    OAuthError::invalid_grant("the refresh token was already used; the grant has been revoked")
        .into()
}

/// Tokens minted for one response, and the response.
struct Issued {
    access: AccessToken,
    refresh: Option<RefreshToken>,
    response: Value,
}

/// What the tokens of one response are for.
struct Grant<'a> {
    client: &'a Client,
    family_id: &'a str,
    /// The user; `None` for a machine's grant (`client_credentials`), which never gets a
    /// refresh token.
    user_id: Option<&'a str>,
    /// Scopes of the access token (possibly narrowed).
    scopes: &'a Scopes,
    /// Scopes of the whole grant, which the refresh token keeps.
    grant_scopes: &'a Scopes,
    resource: &'a str,
}

impl Issued {
    /// Mints an access token, and a refresh token when `refresh_until` (the grant's absolute
    /// end) is given and the grant has a user.
    fn new(auth: &McpAuth, grant: Grant<'_>, refresh_until: Option<i64>) -> Self {
        let options = &auth.options();
        let now = auth.now();
        let access_token = secret::ordered_token();
        let access = AccessToken {
            id: secret::random_id(),
            token_hash: secret::hash_token(&access_token),
            family_id: grant.family_id.to_owned(),
            client_id: grant.client.client_id.clone(),
            user_id: grant.user_id.map(str::to_owned),
            scopes: grant.scopes.clone(),
            audience: grant.resource.to_owned(),
            expires_at: now + options.access_token_expires_in,
            created_at: now,
            dpop_jkt: None,
        };
        let refresh_token = refresh_until
            .zip(grant.user_id)
            .map(|(end, user_id)| (secret::ordered_token(), end, user_id));
        let refresh = refresh_token
            .as_ref()
            .map(|(token, end, user_id)| RefreshToken {
                id: secret::random_id(),
                token_hash: secret::hash_token(token),
                family_id: grant.family_id.to_owned(),
                client_id: grant.client.client_id.clone(),
                user_id: (*user_id).to_owned(),
                scopes: grant.grant_scopes.clone(),
                resource: grant.resource.to_owned(),
                expires_at: (now + options.refresh_token_expires_in).min(*end),
                created_at: now,
                rotated_at: None,
                retry_response: None,
                dpop_jkt: None,
            });
        let mut response = json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": options.access_token_expires_in,
            "scope": grant.scopes.to_string(),
        });
        if let Some((token, _, _)) = refresh_token {
            response["refresh_token"] = Value::String(token);
        }
        Self {
            access,
            refresh,
            response,
        }
    }
}

// ---- Token formats and DPoP (RFC 9068, RFC 9449) ----------------------------------------------

/// How the tokens of one response are finished.
struct Shape<'a> {
    /// The thumbprint of the key the client proved (`DPoP` header), if it sent a proof.
    dpop_jkt: Option<&'a str>,
    /// Whether the refresh token is bound to that key too: for public clients (RFC 9449 §5),
    /// which have no other way to show it is theirs.
    bind_refresh: bool,
    /// When the user signed in, when known (the code exchange).
    auth_time: Option<i64>,
}

impl Issued {
    /// Binds the tokens to the client's DPoP key (`token_type: DPoP`) and, when the resource
    /// issues JWT access tokens, replaces the opaque access token with an RFC 9068 JWT (its
    /// row keyed by the JWT's hash, with the JWT's shorter lifetime).
    async fn shape(mut self, auth: &McpAuth, shape: Shape<'_>) -> Result<Self, OAuthJson> {
        if let Some(jkt) = shape.dpop_jkt {
            self.access.dpop_jkt = Some(jkt.to_owned());
            self.response["token_type"] = Value::from("DPoP");
            if shape.bind_refresh
                && let Some(refresh) = &mut self.refresh
            {
                refresh.dpop_jkt = Some(jkt.to_owned());
            }
        }
        let format = auth
            .resource(&self.access.audience)
            .map(|resource| resource.access_token_format)
            .unwrap_or_default();
        if format == AccessTokenFormat::Jwt {
            let options = auth.options();
            let lifetime = options
                .jwt_access_token_expires_in
                .min(options.access_token_expires_in);
            let expires_at = self.access.created_at + lifetime;
            let scope = self.access.scopes.to_string();
            let claims = access_token_jwt::Claims {
                issuer: &options.issuer,
                // A machine's token (client_credentials) has the client as its subject.
                subject: self
                    .access
                    .user_id
                    .as_deref()
                    .unwrap_or(&self.access.client_id),
                audience: &self.access.audience,
                client_id: &self.access.client_id,
                scope: &scope,
                jti: &self.access.id,
                issued_at: self.access.created_at,
                expires_at,
                auth_time: shape.auth_time,
                dpop_jkt: shape.dpop_jkt,
            };
            let jwt = auth
                .sign_typed_jwt(access_token_jwt::TYP, &claims.to_map())
                .await
                .map_err(|error| {
                    tracing::error!(%error, "could not sign a JWT access token");
                    OAuthJson::from(OAuthError::new(
                        ErrorCode::TemporarilyUnavailable,
                        "the access token could not be signed; try again",
                    ))
                })?;
            self.access.token_hash = secret::hash_token(&jwt);
            self.access.expires_at = expires_at;
            self.response["access_token"] = Value::String(jwt);
            self.response["expires_in"] = Value::from(lifetime);
        }
        Ok(self)
    }
}

/// The thumbprint of the key of the request's DPoP proof, checked for the token endpoint
/// (RFC 9449 §4.3, §5); `None` without a proof. A client registered with
/// `dpop_bound_access_tokens: true` must send one (§5.2).
async fn token_endpoint_proof(
    auth: &McpAuth,
    headers: &HeaderMap,
    client: &Client,
) -> Result<Option<String>, OAuthJson> {
    let refused = |description: &'static str| {
        OAuthJson::from(OAuthError::new(ErrorCode::InvalidDpopProof, description))
    };
    let proof = dpop::proof_header(headers).map_err(|error| proof_refusal(error, refused))?;
    let Some(proof) = proof else {
        let required = client
            .metadata
            .get("dpop_bound_access_tokens")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if required {
            return Err(refused(
                "this client is registered with dpop_bound_access_tokens: send a DPoP proof",
            ));
        }
        return Ok(None);
    };
    let url = auth.endpoint("/mcp/token");
    let nonces = dpop::Nonces::new(auth.site());
    let expected = dpop::Expected {
        method: "POST",
        url: &url,
        access_token: None,
        nonces: auth.options().use_dpop_nonce.then_some(&nonces),
    };
    dpop::check_proof(auth.store().as_ref(), auth.now(), proof, &expected)
        .await
        .map(Some)
        .map_err(|error| proof_refusal(error, refused))
}

fn proof_refusal(
    error: dpop::ProofError,
    refused: impl Fn(&'static str) -> OAuthJson,
) -> OAuthJson {
    match error {
        dpop::ProofError::Invalid(why) => refused(why),
        dpop::ProofError::NonceRequired => OAuthJson::from(OAuthError::new(
            ErrorCode::UseDpopNonce,
            "the DPoP proof must carry the nonce sent in DPoP-Nonce",
        )),
        dpop::ProofError::Store(error) => error.into(),
    }
}

/// With server nonces on, every answer to a request that carried a DPoP proof names the
/// current nonce (RFC 9449 §8.2).
fn with_dpop_nonce(auth: &McpAuth, headers: &HeaderMap, mut response: Response) -> Response {
    if auth.options().use_dpop_nonce
        && headers.contains_key("dpop")
        && let Ok(value) =
            HeaderValue::from_str(&dpop::Nonces::new(auth.site()).current(auth.now()))
    {
        response.headers_mut().insert("dpop-nonce", value);
    }
    response
}

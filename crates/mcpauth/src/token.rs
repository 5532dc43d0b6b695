//! The token endpoint (OAuth 2.1 §3.2, RFC 6749 §4.1.3 and §6, RFC 7636 §4.6, RFC 8707 §2.2).
//!
//! The client is authenticated before the code is consumed. A code works once; a second use
//! revokes what the first produced (SECURITY S8). Refresh tokens rotate on every use; a client
//! that lost the answer may retry within `refresh_reuse_grace` and gets the same answer back,
//! read from a copy sealed under the old token; any later reuse revokes the whole grant (S12).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mcpauth_core::grant::{self, CodeBinding, RefreshBinding, RefreshTokenState};
use mcpauth_core::model::{
    AccessToken, Client, CodeRedemption, GrantType, RefreshToken, Rotation, TokenEndpointAuthMethod,
};
use mcpauth_core::{ErrorCode, OAuthError, Scopes, secret};
use serde_json::{Value, json};

use crate::McpAuth;
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
    match token(&auth, &parts.headers, body, &ip).await {
        Ok(body) => NoStore(axum::Json(body)).into_response(),
        Err(error) => error.into_response(),
    }
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
    let basic = basic_credentials(headers);
    let used_basic = basic.is_some();
    let client = authenticate_client(auth, basic, &params)
        .await
        .map_err(|error| OAuthJson {
            basic_challenge: used_basic,
            ..OAuthJson::from(error)
        })?;
    match grant_type {
        GrantType::AuthorizationCode => exchange_code(auth, &client, &params, ip).await,
        GrantType::RefreshToken => refresh(auth, &client, &params, ip).await,
    }
}

/// Client credentials from `Authorization: Basic` (RFC 6749 §2.3.1: each part form-encoded).
/// `Some(Err)` when the header is there but malformed.
pub(crate) fn basic_credentials(
    headers: &HeaderMap,
) -> Option<Result<(String, String), OAuthError>> {
    let value = headers.get(header::AUTHORIZATION)?;
    let malformed =
        || OAuthError::invalid_client("the Authorization header is not valid HTTP Basic");
    let parse = || -> Result<(String, String), OAuthError> {
        let value = value.to_str().map_err(|_| malformed())?;
        let (scheme, encoded) = value.split_once(' ').ok_or_else(malformed)?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(OAuthError::invalid_client(
                "only HTTP Basic client authentication is accepted in the Authorization header",
            ));
        }
        let decoded = STANDARD.decode(encoded.trim()).map_err(|_| malformed())?;
        let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
        let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
        let unescape = |s: &str| {
            form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        Ok((unescape(id), unescape(secret)))
    };
    Some(parse())
}

pub(crate) async fn authenticate_client(
    auth: &McpAuth,
    basic: Option<Result<(String, String), OAuthError>>,
    params: &Params,
) -> Result<Client, OAuthError> {
    let basic = basic.transpose()?;
    let body_secret = params.get("client_secret");
    let (client_id, presented, method) = match basic {
        Some((id, secret)) => {
            if body_secret.is_some() {
                return Err(OAuthError::invalid_request(
                    "use one client authentication method, not Basic and client_secret together",
                ));
            }
            if params.get("client_id").is_some_and(|body_id| body_id != id) {
                return Err(OAuthError::invalid_client(
                    "client_id in the body differs from the Basic credentials",
                ));
            }
            (id, Some(secret), TokenEndpointAuthMethod::ClientSecretBasic)
        }
        None => {
            let id = params.get("client_id").ok_or_else(|| {
                OAuthError::invalid_client("client authentication is required (client_id missing)")
            })?;
            let method = if body_secret.is_some() {
                TokenEndpointAuthMethod::ClientSecretPost
            } else {
                TokenEndpointAuthMethod::None
            };
            (id.to_owned(), body_secret.map(str::to_owned), method)
        }
    };
    let unknown = || OAuthError::invalid_client("client authentication failed");
    let client = auth
        .client(&client_id)
        .await?
        .filter(|c| !c.disabled)
        .ok_or_else(unknown)?;
    if client.token_endpoint_auth_method != method {
        return Err(OAuthError::invalid_client(format!(
            "this client authenticates with {}",
            client.token_endpoint_auth_method.as_str()
        )));
    }
    if let Some(presented) = presented {
        let stored = client.client_secret_hash.as_deref().unwrap_or_default();
        if !secret::constant_time_eq(secret::hash_token(&presented).as_bytes(), stored.as_bytes()) {
            return Err(unknown());
        }
    }
    Ok(client)
}

async fn exchange_code(
    auth: &McpAuth,
    client: &Client,
    params: &Params,
    ip: &str,
) -> Result<Value, OAuthJson> {
    let code = params.require("code")?;
    let verifier = params.get("code_verifier");
    let resource = params.all("resource");
    let now = auth.now();
    let code_hash = secret::hash_token(code);
    let store = &auth.store();
    // Read first, redeem last: everything the answer needs is checked and built before the one
    // write transaction that redeems the code and stores the tokens.
    let Some(record) = store.unused_code(&code_hash).await? else {
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
        Ok(()) => match store.user_by_id(&record.user_id).await? {
            Some(user) if !user.disabled => Ok(user),
            _ => Err(OAuthError::invalid_grant("the user no longer exists")),
        },
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
            user_id: &record.user_id,
            scopes,
            grant_scopes: scopes,
            resource: &record.resource,
        },
        with_refresh.then_some(now + options.refresh_family_lifetime),
    );
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
) -> Result<Value, OAuthJson> {
    let presented = params.require("refresh_token")?;
    let old_hash = secret::hash_token(presented);
    let now = auth.now();
    let invalid = || OAuthError::invalid_grant("the refresh token is not valid");
    let (old, family) = auth
        .store()
        .refresh_token(&old_hash)
        .await?
        .ok_or_else(invalid)?;
    let binding = RefreshBinding {
        client_id: &old.client_id,
        family_revoked: family.revoked_at.is_some(),
        rotated_at: old.rotated_at,
        expires_at: old.expires_at,
        family_expires_at: family.expires_at,
    };
    if let RefreshTokenState::Rotated { rotated_at } = binding.check(&client.client_id, now)? {
        return replay_or_revoke(
            auth,
            presented,
            &family.id,
            rotated_at,
            old.retry_response.as_deref(),
            ip,
        )
        .await;
    }
    let granted = &old.scopes;
    let scopes = grant::narrow_scope(granted, params.get("scope"))?;
    grant::check_refresh_resource(&old.resource, &params.all("resource"))?;
    match auth.store().user_by_id(&old.user_id).await? {
        Some(user) if !user.disabled => {}
        _ => return Err(OAuthError::invalid_grant("the user no longer exists").into()),
    }
    let issued = Issued::new(
        auth,
        Grant {
            client,
            family_id: &family.id,
            user_id: &old.user_id,
            scopes: &scopes,
            grant_scopes: granted,
            resource: &old.resource,
        },
        Some(family.expires_at),
    );
    let Some(refresh) = &issued.refresh else {
        return Err(OAuthError::server_error().into());
    };
    let sealed = secret::seal(presented, issued.response.to_string().as_bytes());
    let audit = auth.audit_event(
        "token.refresh",
        Some(&old.user_id),
        Some(&client.client_id),
        Some(ip),
        json!({ "family_id": family.id, "scope": scopes.to_string() }),
    );
    match auth
        .store()
        .rotate_refresh_token(&old_hash, now, &sealed, &issued.access, refresh, &audit)
        .await?
    {
        Rotation::Rotated => Ok(issued.response),
        Rotation::AlreadyRotated {
            rotated_at,
            retry_response,
        } => {
            replay_or_revoke(
                auth,
                presented,
                &family.id,
                rotated_at,
                retry_response.as_deref(),
                ip,
            )
            .await
        }
    }
}

/// A rotated refresh token came back: within the grace window the client gets the answer it
/// lost; after it, the grant is treated as stolen and revoked.
async fn replay_or_revoke(
    auth: &McpAuth,
    presented: &str,
    family_id: &str,
    rotated_at: i64,
    retry_response: Option<&str>,
    ip: &str,
) -> Result<Value, OAuthJson> {
    let now = auth.now();
    if grant::within_retry_window(rotated_at, now, auth.options().refresh_reuse_grace)
        && let Some(previous) = retry_response
            .and_then(|sealed| secret::open(presented, sealed))
            .and_then(|plain| serde_json::from_slice::<Value>(&plain).ok())
    {
        return Ok(previous);
    }
    let revoked = auth.store().revoke_family(family_id, now).await;
    auth.forget_validated_tokens();
    revoked?;
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
    Err(
        OAuthError::invalid_grant("the refresh token was already used; the grant has been revoked")
            .into(),
    )
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
    user_id: &'a str,
    /// Scopes of the access token (possibly narrowed).
    scopes: &'a Scopes,
    /// Scopes of the whole grant, which the refresh token keeps.
    grant_scopes: &'a Scopes,
    resource: &'a str,
}

impl Issued {
    /// Mints an access token, and a refresh token when `refresh_until` (the grant's absolute
    /// end) is given.
    fn new(auth: &McpAuth, grant: Grant<'_>, refresh_until: Option<i64>) -> Self {
        let options = &auth.options();
        let now = auth.now();
        let access_token = secret::random_token();
        let access = AccessToken {
            id: secret::random_id(),
            token_hash: secret::hash_token(&access_token),
            family_id: grant.family_id.to_owned(),
            client_id: grant.client.client_id.clone(),
            user_id: grant.user_id.to_owned(),
            scopes: grant.scopes.clone(),
            audience: grant.resource.to_owned(),
            expires_at: now + options.access_token_expires_in,
            created_at: now,
        };
        let refresh_token = refresh_until.map(|end| (secret::random_token(), end));
        let refresh = refresh_token.as_ref().map(|(token, end)| RefreshToken {
            id: secret::random_id(),
            token_hash: secret::hash_token(token),
            family_id: grant.family_id.to_owned(),
            client_id: grant.client.client_id.clone(),
            user_id: grant.user_id.to_owned(),
            scopes: grant.grant_scopes.clone(),
            resource: grant.resource.to_owned(),
            expires_at: (now + options.refresh_token_expires_in).min(*end),
            created_at: now,
            rotated_at: None,
            retry_response: None,
        });
        let mut response = json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": options.access_token_expires_in,
            "scope": grant.scopes.to_string(),
        });
        if let Some((token, _)) = refresh_token {
            response["refresh_token"] = Value::String(token);
        }
        Self {
            access,
            refresh,
            response,
        }
    }
}

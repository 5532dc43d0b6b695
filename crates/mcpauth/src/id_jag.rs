//! Identity Assertion JWT Authorization Grants (ID-JAG, draft-ietf-oauth-identity-assertion-
//! authz-grant §4.3; the MCP auth extension "Enterprise-Managed Authorization", SEP-990),
//! redeemed with the jwt-bearer grant (RFC 7523 §2.1, `grant_type=urn:ietf:params:oauth:
//! grant-type:jwt-bearer`, `assertion=…`).
//!
//! An organisation's identity provider decides which MCP servers an employee may use: it
//! issues the client an ID-JAG naming the user, the client, this server (`aud`), the resource
//! and the scopes; this server trusts only the issuers the operator configured
//! (`[[trusted_issuers]]`) and gives tokens without a consent page — the enterprise's admin
//! consented, and the audit log says so (`consent: "enterprise_admin"`, the issuer, the `jti`).
//!
//! Checked, in order, each refusal `invalid_grant` naming the rule, nothing written
//! (SECURITY E3): the JOSE `typ` is `oauth-id-jag+jwt`; `iss` is a trusted issuer; the
//! signature verifies with that issuer's keys (asymmetric algorithms only); `aud` is this
//! server's issuer; `client_id` is the authenticated client and one the issuer may assert for;
//! `exp`/`iat`/`nbf` are current and `exp` at most five minutes ahead; `resource`, when present,
//! is one of this server's; the scopes are narrowed to the allowed ones (refused when none is
//! left); the subject maps to a user (below); and last its `jti` was never used before, on any
//! instance ([`mcpauth_core::Store::use_once`]).
//!
//! The subject: `subject = "email"` takes the assertion's `email`, which must be verified
//! (`email_verified: true`, or the issuer's `trust_email`), and matches a user whose own
//! address is verified too; `subject = "linked"` takes the account linked to the assertion's
//! `sub` through the `[[identity_providers]]` entry of the same issuer. An unknown person gets
//! an account only with `create_users`, and never one whose email belongs to an existing user:
//! an identity is never joined to an account it was not proven to own.

use mcpauth_core::machine::{self, CLOCK_SKEW, ID_JAG_TYPE};
use mcpauth_core::model::{Client, User};
use mcpauth_core::{DisplayName, Email, ErrorCode, OAuthError, Params, StoreError, secret};
use serde_json::{Map, Value, json};

use crate::McpAuth;
use crate::assertion_keys::{peek_claims, peek_header, string_claim, times, verify_signed};
use crate::client_credentials::{DirectGrant, choose_resource, grantable_scopes};
use crate::errors::OAuthJson;
use crate::machine_options::{SubjectMapping, TrustedIssuer};

/// An `invalid_grant` refusal naming the rule that failed.
fn refuse(why: impl Into<String>) -> OAuthError {
    OAuthError::invalid_grant(why)
}

/// Who an ID-JAG's subject is, decided before anything is written.
enum Person {
    Existing(User),
    New { user: User, provider: String },
}

/// The user the assertion's subject maps to (SECURITY E3: an unverified identity never joins
/// an existing account).
async fn map_subject(
    auth: &McpAuth,
    issuer: &TrustedIssuer,
    claims: &Map<String, Value>,
    sub: &str,
) -> Result<Person, OAuthError> {
    let store = auth.store();
    let (provider, email_verified) = match issuer.subject {
        SubjectMapping::Linked => {
            let provider = issuer.identity_provider.clone().unwrap_or_default();
            if let Some(user) = store.user_by_account(&provider, sub).await? {
                return Ok(Person::Existing(user));
            }
            (
                provider,
                claims.get("email_verified") == Some(&Value::Bool(true)),
            )
        }
        SubjectMapping::Email => {
            if let Some(user) = store.user_by_account(&issuer.id, sub).await? {
                return Ok(Person::Existing(user));
            }
            let verified =
                issuer.trust_email || claims.get("email_verified") == Some(&Value::Bool(true));
            (issuer.id.clone(), verified)
        }
    };
    let email = string_claim(claims, "email")
        .and_then(|raw| Email::parse(raw).ok())
        .ok_or_else(|| match issuer.subject {
            SubjectMapping::Linked => {
                refuse("no account is linked to the assertion's subject through this issuer")
            }
            SubjectMapping::Email => refuse("the assertion has no usable email claim"),
        })?;
    if !email_verified {
        return Err(refuse(
            "the assertion's email is not verified (email_verified)",
        ));
    }
    if !auth.email_allow_list().allows(&email) {
        return Err(refuse(
            "the assertion's email is not allowed to have an account here",
        ));
    }
    if let Some((user, _)) = store.user_by_email(email.as_str()).await? {
        if issuer.subject == SubjectMapping::Email && user.email_verified {
            return Ok(Person::Existing(user));
        }
        return Err(refuse(
            "an account with this email exists and is not linked to this identity; it is never joined without proof",
        ));
    }
    if !issuer.create_users {
        return Err(refuse(
            "no account matches the assertion's subject and this issuer does not create users",
        ));
    }
    let now = auth.now();
    let name = string_claim(claims, "name").map(|n| n.chars().take(100).collect::<String>());
    let name = DisplayName::parse(name.as_deref(), &email)
        .map_err(|_| refuse("the assertion's name is unusable"))?;
    Ok(Person::New {
        user: User {
            id: secret::random_id(),
            name: name.into_string(),
            email: email.into_string(),
            email_verified: true,
            image: None,
            created_at: now,
            updated_at: now,
            disabled: false,
        },
        provider,
    })
}

/// `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` with an ID-JAG, for the
/// authenticated `client`: the grant to make (the token endpoint mints and stores it), or the
/// refusal. Only a user created for the assertion's subject is written here.
pub(crate) async fn redeem(
    auth: &McpAuth,
    client: &Client,
    params: &Params,
    ip: &str,
) -> Result<DirectGrant, OAuthJson> {
    if auth.trusted_issuers().is_empty() {
        return Err(OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            "the jwt-bearer grant is not enabled on this server (no trusted issuer)",
        )
        .into());
    }
    if client.is_public() {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "an identity assertion grant needs a confidential client",
        )
        .into());
    }
    let assertion = params.require("assertion")?;
    let header = peek_header(assertion).map_err(refuse)?;
    let typ_ok = header.typ.as_deref().is_some_and(|typ| {
        typ.eq_ignore_ascii_case(ID_JAG_TYPE)
            || typ.eq_ignore_ascii_case(&format!("application/{ID_JAG_TYPE}"))
    });
    if !typ_ok {
        return Err(refuse(format!("the assertion's typ must be {ID_JAG_TYPE}")).into());
    }
    let unverified = peek_claims(assertion).map_err(refuse)?;
    let iss = string_claim(&unverified, "iss").ok_or_else(|| refuse("the assertion has no iss"))?;
    let Some((issuer, source)) = auth.trusted_issuers().find(iss) else {
        return Err(refuse("the assertion's issuer is not trusted").into());
    };
    let keys = auth
        .trusted_issuers()
        .keys(source, header.kid.as_deref(), auth.now())
        .await
        .map_err(refuse)?;
    let verified = verify_signed(assertion, &keys).map_err(refuse)?;
    let claims = &verified.claims;
    if string_claim(claims, "iss") != Some(issuer.issuer.as_str()) {
        return Err(refuse("the assertion's issuer is not trusted").into());
    }
    if verified.header.typ != header.typ {
        return Err(refuse(format!("the assertion's typ must be {ID_JAG_TYPE}")).into());
    }
    if !machine::audience_has(claims.get("aud"), &[auth.options().issuer.as_str()]) {
        return Err(refuse("the assertion's aud must be this server's issuer").into());
    }
    if string_claim(claims, "client_id") != Some(client.client_id.as_str()) {
        return Err(refuse("the assertion's client_id is not the authenticated client").into());
    }
    if !issuer.client_ids.contains(&client.client_id) {
        return Err(refuse("this issuer may not assert for this client").into());
    }
    let now = auth.now();
    let exp = machine::check_times(times(claims), now).map_err(refuse)?;
    let jti = string_claim(claims, "jti")
        .filter(|jti| jti.len() <= 256)
        .ok_or_else(|| refuse("the assertion has no jti"))?;
    let sub = string_claim(claims, "sub")
        .filter(|sub| sub.len() <= 255)
        .ok_or_else(|| refuse("the assertion has no sub"))?;
    let asserted_resource = match claims.get("resource") {
        None | Some(Value::Null) => None,
        Some(Value::String(resource)) => Some(resource.as_str()),
        Some(_) => return Err(refuse("the assertion's resource must be a string").into()),
    };
    let requested = params.all("resource");
    let resource = match asserted_resource {
        Some(resource) => {
            if auth.resource(resource).is_none() {
                return Err(
                    refuse("the assertion's resource is not a resource of this server").into(),
                );
            }
            if requested.iter().any(|r| *r != resource) {
                return Err(OAuthError::invalid_target(
                    "resource differs from the assertion's resource",
                )
                .into());
            }
            resource.to_owned()
        }
        None => choose_resource(auth, &requested, &[])?,
    };
    let configured = (!issuer.scopes.is_empty())
        .then(|| mcpauth_core::Scopes::from_tokens(issuer.scopes.iter().cloned()));
    let allowed = grantable_scopes(auth, configured);
    let scopes =
        machine::id_jag_scopes(string_claim(claims, "scope"), params.get("scope"), &allowed)?;
    let person = map_subject(auth, issuer, claims, sub).await?;
    if let Person::Existing(user) = &person
        && user.disabled
    {
        return Err(refuse("the user is disabled").into());
    }
    // Every rule passed: the jti is spent now, once, on every instance.
    let key = format!("id-jag:{}:{jti}", issuer.issuer);
    if !auth.store().use_once(&key, exp + CLOCK_SKEW).await? {
        return Err(refuse("the assertion was used before (jti replayed)").into());
    }
    let user = match person {
        Person::Existing(user) => user,
        Person::New { user, provider } => {
            match auth
                .store()
                .create_user_with_account(&user, &provider, sub)
                .await
            {
                Ok(()) => {}
                Err(StoreError::Conflict(_)) => {
                    return Err(refuse(
                        "an account with this email or identity was created meanwhile; try again",
                    )
                    .into());
                }
                Err(error) => return Err(error.into()),
            }
            auth.audit(
                "user.created",
                Some(&user.id),
                Some(&client.client_id),
                Some(ip),
                json!({ "trusted_issuer": issuer.id }),
            )
            .await;
            user
        }
    };
    let options = auth.options();
    Ok(DirectGrant {
        user_id: Some(user.id),
        scopes,
        resource: resource.clone(),
        refresh_until: issuer
            .refresh_tokens
            .then_some(now + options.refresh_family_lifetime),
        audit_detail: json!({
            "grant_type": mcpauth_core::model::JWT_BEARER,
            "consent": "enterprise_admin",
            "trusted_issuer": issuer.id,
            "issuer": issuer.issuer,
            "jti": jti,
            "resource": resource,
        }),
    })
}

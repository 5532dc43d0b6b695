//! The account page's "Sign-in methods": the password and the linked providers, with
//! Unlink (never the last way in, SECURITY S29) and Link (which starts an sign-in that
//! ends by linking, `identity_provider::link_start`).

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mcpauth_core::StoreError;
use mcpauth_core::model::Unlink;
use serde_json::json;

use super::account_page::{Message, account_post, show, utc_text};
use super::see_other;
use crate::McpAuth;
use crate::errors::PageError;
use crate::views::{ProviderView, SignInMethodView};

/// The user's sign-in methods, and the configured providers not linked yet.
pub(super) async fn methods(
    auth: &McpAuth,
    user_id: &str,
) -> Result<(Vec<SignInMethodView>, Vec<ProviderView>), StoreError> {
    let accounts = auth.store().user_accounts(user_id).await?;
    let last_one = accounts.len() <= 1;
    let name_of = |id: &str| match id {
        "credential" => "Password".to_owned(),
        other => auth
            .identity_provider(other)
            .map_or_else(|| other.to_owned(), |p| p.name.clone()),
    };
    let linkable = auth
        .options()
        .identity_providers
        .iter()
        .filter(|p| !accounts.iter().any(|a| a.provider_id == p.id))
        .map(|p| ProviderView {
            id: p.id.clone(),
            name: p.name.clone(),
        })
        .collect();
    let methods = accounts
        .into_iter()
        .map(|a| SignInMethodView {
            name: name_of(&a.provider_id),
            added_at: utc_text(a.created_at),
            can_unlink: !last_one && a.provider_id != "credential",
            id: a.provider_id,
        })
        .collect();
    Ok((methods, linkable))
}

/// `POST /account/unlink` with `provider`: removes that provider's account from the user,
/// unless it is their last way in (then the page says so, 409).
pub(crate) async fn unlink_provider(State(auth): State<McpAuth>, request: Request) -> Response {
    let post = match account_post(&auth, request).await {
        Ok(post) => post,
        Err(response) => return response,
    };
    let Some(provider) = post.params.get("provider").filter(|p| !p.is_empty()) else {
        return PageError::bad_request("Choose the sign-in method to remove.").into_response();
    };
    let outcome = auth
        .store()
        .unlink_account(&post.user.id, provider, auth.now())
        .await;
    let refused = match outcome {
        Ok(Unlink::Unlinked) => {
            let detail = json!({ "provider": provider, "via": "account_page" });
            auth.audit(
                "account_unlinked",
                Some(&post.user.id),
                None,
                Some(&post.ip),
                detail,
            )
            .await;
            return see_other("/account?done=unlinked#sign-in-methods", []);
        }
        Ok(Unlink::LastWayIn) => "This is your only way to sign in, so it can't be removed.",
        Ok(Unlink::NotLinked) => "That sign-in method is not linked to your account.",
        Err(error) => return PageError::from(error).into_response(),
    };
    show(
        &auth,
        &post.headers,
        &post.session,
        &post.user,
        StatusCode::CONFLICT,
        Message::Methods(refused),
    )
    .await
}

//! What the console changes, each change followed by an `admin.*` audit entry naming the acting
//! admin (`detail.admin`, `detail.admin_id`, `detail.via`) — the same functions behind the pages
//! and the API. Destructive ones need a typed confirmation: the user's email, the client's id.

use mcpauth_core::model::{Client, User};
use serde_json::{Value, json};

use super::gate::Admin;
use super::read::{ClientKind, clients};
use crate::McpAuth;
use crate::email::{MailRequestError, RESET_PAGE};
use crate::errors::ConsoleError;

/// What a user action is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UserAction {
    Disable,
    Enable,
    EndSessions,
    SendResetLink,
    Delete,
}

impl UserAction {
    /// The action named in the URL (`…/users/{id}/{action}`).
    pub(crate) fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "disable" => Self::Disable,
            "enable" => Self::Enable,
            "end-sessions" => Self::EndSessions,
            "send-reset-link" => Self::SendResetLink,
            "delete" => Self::Delete,
            _ => return None,
        })
    }
}

/// What a client action is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientAction {
    Disable,
    Enable,
    Delete,
    /// Delete every self-registered (DCR) client that never had tokens issued.
    PurgeUnused,
}

impl ClientAction {
    pub(crate) fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "disable" => Self::Disable,
            "enable" => Self::Enable,
            "delete" => Self::Delete,
            "purge-unused" => Self::PurgeUnused,
            _ => return None,
        })
    }
}

/// Appends an `admin.*` entry with who did it.
async fn record(
    auth: &McpAuth,
    admin: &Admin,
    kind: &str,
    user_id: Option<&str>,
    client_id: Option<&str>,
    mut detail: Value,
) {
    if let Some(object) = detail.as_object_mut() {
        object.insert("admin".to_owned(), Value::from(admin.user.email.as_str()));
        object.insert("admin_id".to_owned(), Value::from(admin.user.id.as_str()));
        object.insert("via".to_owned(), Value::from(admin.via.as_str()));
    }
    auth.audit(kind, user_id, client_id, Some(&admin.ip), detail)
        .await;
}

async fn find_user(auth: &McpAuth, user_id: &str) -> Result<User, ConsoleError> {
    auth.store()
        .user_by_id(user_id)
        .await?
        .ok_or(ConsoleError::NotFound)
}

async fn find_client(auth: &McpAuth, client_id: &str) -> Result<Client, ConsoleError> {
    auth.store()
        .client_by_id(client_id)
        .await?
        .ok_or_else(|| ConsoleError::BadRequest("There is no such client.".to_owned()))
}

/// Does `action` to the user `user_id`; returns what happened, in a sentence. `confirm` is the
/// typed confirmation a deletion needs (the user's email).
pub(crate) async fn user_action(
    auth: &McpAuth,
    admin: &Admin,
    user_id: &str,
    action: UserAction,
    confirm: Option<&str>,
) -> Result<String, ConsoleError> {
    let user = find_user(auth, user_id).await?;
    let store = auth.store();
    let now = auth.now();
    let about = json!({ "email": user.email });
    let myself = user.id == admin.user.id;
    match action {
        UserAction::Disable | UserAction::Enable => {
            let disable = action == UserAction::Disable;
            if disable && myself {
                return Err(ConsoleError::BadRequest(
                    "You cannot disable your own account here: another admin can.".to_owned(),
                ));
            }
            if user.disabled != disable {
                store.set_user_disabled(&user.id, disable, now).await?;
                if disable {
                    // Their tokens stop at once (the store moved the revocation epoch); their
                    // sessions end too, so that enabling them later does not revive those.
                    store.delete_user_sessions(&user.id, None).await?;
                }
                let kind = if disable {
                    "admin.user.disable"
                } else {
                    "admin.user.enable"
                };
                record(auth, admin, kind, Some(&user.id), None, about).await;
            }
            Ok(if disable {
                format!(
                    "{} is disabled: no sign-in, and their sessions and tokens no longer work.",
                    user.email
                )
            } else {
                format!("{} is enabled again.", user.email)
            })
        }
        UserAction::EndSessions => {
            let ended = store.delete_user_sessions(&user.id, None).await?;
            record(
                auth,
                admin,
                "admin.user.end_sessions",
                Some(&user.id),
                None,
                json!({ "email": user.email, "sessions_ended": ended }),
            )
            .await;
            Ok(format!("Ended {ended} session(s) of {}.", user.email))
        }
        UserAction::SendResetLink => {
            match crate::email_flows::request_password_reset(
                auth,
                &user.email,
                RESET_PAGE,
                &admin.ip,
            )
            .await
            {
                Ok(()) => {}
                Err(MailRequestError::RateLimited(limited)) => {
                    return Err(ConsoleError::RateLimited(limited));
                }
                Err(error) => {
                    return Err(ConsoleError::BadRequest(format!(
                        "No reset link was sent: {error}."
                    )));
                }
            }
            record(
                auth,
                admin,
                "admin.user.send_reset_link",
                Some(&user.id),
                None,
                about,
            )
            .await;
            Ok(format!(
                "A password-reset link is on its way to {}.",
                user.email
            ))
        }
        UserAction::Delete => {
            if myself {
                return Err(ConsoleError::BadRequest(
                    "You cannot delete your own account here: another admin can.".to_owned(),
                ));
            }
            if confirm.map(str::trim) != Some(user.email.as_str()) {
                return Err(ConsoleError::BadRequest(format!(
                    "To delete this user, type their email address ({}) to confirm.",
                    user.email
                )));
            }
            store.delete_user(&user.id).await?;
            record(
                auth,
                admin,
                "admin.user.delete",
                Some(&user.id),
                None,
                about,
            )
            .await;
            Ok(format!(
                "{} was deleted with their sessions, consents and grants.",
                user.email
            ))
        }
    }
}

/// Does `action` to a client (or, for [`ClientAction::PurgeUnused`], to every unused DCR
/// client); returns what happened. A deletion needs the client id typed as `confirm`.
pub(crate) async fn client_action(
    auth: &McpAuth,
    admin: &Admin,
    client_id: Option<&str>,
    action: ClientAction,
    confirm: Option<&str>,
) -> Result<String, ConsoleError> {
    let store = auth.store();
    let now = auth.now();
    if action == ClientAction::PurgeUnused {
        let unused: Vec<String> = clients(auth)
            .await?
            .into_iter()
            .filter(|c| c.kind == ClientKind::Dcr && c.last_used_at.is_none())
            .map(|c| c.client_id)
            .collect();
        let mut purged = 0u64;
        for client_id in &unused {
            if store.delete_client(client_id).await? {
                purged += 1;
            }
        }
        record(
            auth,
            admin,
            "admin.client.purge_unused",
            None,
            None,
            json!({ "purged": purged }),
        )
        .await;
        return Ok(format!(
            "Purged {purged} self-registered client(s) that were never used."
        ));
    }
    let client_id = client_id
        .ok_or_else(|| ConsoleError::BadRequest("Name the client (client_id).".to_owned()))?;
    let client = find_client(auth, client_id).await?;
    let name = client
        .name
        .clone()
        .unwrap_or_else(|| client.client_id.clone());
    let about = json!({ "name": client.name });
    match action {
        ClientAction::Disable | ClientAction::Enable => {
            let disable = action == ClientAction::Disable;
            if client.disabled != disable {
                store
                    .set_client_disabled(&client.client_id, disable, now)
                    .await?;
                let kind = if disable {
                    "admin.client.disable"
                } else {
                    "admin.client.enable"
                };
                record(auth, admin, kind, None, Some(&client.client_id), about).await;
            }
            Ok(if disable {
                format!("{name} is disabled: it can neither get nor use tokens.")
            } else {
                format!("{name} is enabled again.")
            })
        }
        ClientAction::Delete => {
            if confirm.map(str::trim) != Some(client.client_id.as_str()) {
                return Err(ConsoleError::BadRequest(format!(
                    "To delete this client, type its client ID ({}) to confirm.",
                    client.client_id
                )));
            }
            store.delete_client(&client.client_id).await?;
            record(
                auth,
                admin,
                "admin.client.delete",
                None,
                Some(&client.client_id),
                about,
            )
            .await;
            Ok(format!("{name} was deleted with everything issued to it."))
        }
        ClientAction::PurgeUnused => Ok(String::new()),
    }
}

/// Revokes grants, each named `(user_id, client_id)`: the client's tokens for that user stop
/// working and it must ask again. Returns how many grants were revoked.
pub(crate) async fn revoke_grants(
    auth: &McpAuth,
    admin: &Admin,
    grants: &[(String, String)],
) -> Result<u64, ConsoleError> {
    if grants.is_empty() {
        return Err(ConsoleError::BadRequest(
            "Choose the grants to revoke.".to_owned(),
        ));
    }
    if grants.len() > super::read::MAX_PAGE as usize {
        return Err(ConsoleError::BadRequest(format!(
            "Revoke at most {} grants at a time.",
            super::read::MAX_PAGE
        )));
    }
    let mut revoked = 0;
    for (user_id, client_id) in grants {
        let count = auth
            .store()
            .revoke_grants(user_id, Some(client_id), auth.now())
            .await?;
        if count > 0 {
            record(
                auth,
                admin,
                "admin.grant.revoke",
                Some(user_id),
                Some(client_id),
                json!({ "grants_revoked": count }),
            )
            .await;
        }
        revoked += count;
    }
    if revoked > 0 {
        // This process's own copies go at once; others notice the epoch.
        auth.forget_validated_tokens();
    }
    Ok(revoked)
}

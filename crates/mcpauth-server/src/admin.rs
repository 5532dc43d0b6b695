//! The administration commands of `mcpauth` (`user`, `client`, `grant`, `audit`): what each does
//! to the store, and how its result is shown — an aligned plain-text table by default, JSON with
//! `--json`. Every command that changes something appends an `admin.*` event to the audit log.
//!
//! Errors (unknown user or client, invalid input, a refused delete) are returned to `main`,
//! which prints them as `error: …` and exits with status 1.

use std::io::Write;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use mcpauth::{Accounts, SigningKeys};
use mcpauth_core::client_registration::ClientFields;
use mcpauth_core::model::{
    AuditEvent, Client, GrantSummary, GrantType, TokenEndpointAuthMethod, User,
};
use mcpauth_core::{ClientRegistration, Clock, Store, SystemClock, UtcDateTime, secret};
use mcpauth_server::{Settings, open_store_with};
use serde_json::{Value, json};

/// How a command shows its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Aligned plain-text table (or short sentences) for people.
    Table,
    /// JSON on standard output, for scripts.
    Json,
}

impl Output {
    /// `--json` given or not.
    pub fn from_json_flag(json: bool) -> Self {
        if json { Self::Json } else { Self::Table }
    }
}

/// A client to create with `mcpauth client create`.
#[derive(Debug, Clone)]
pub struct NewClient {
    /// Display name, shown on the consent page.
    pub name: String,
    /// Where the client may be sent back to (the rules of dynamic registration).
    pub redirect_uris: Vec<String>,
    /// A public client (no secret, `token_endpoint_auth_method` `none`).
    pub public: bool,
    /// Trusted: authorization requests are not put to the user for consent.
    pub skip_consent: bool,
    /// The grants (`--grant`); empty: `authorization_code` and `refresh_token`.
    pub grants: Vec<GrantType>,
    /// For a machine (`--grant client_credentials`): the scopes it may be given (`--scope`).
    pub scope: Option<String>,
    /// For a machine: the resources it may get tokens for (`--resource`); empty: all.
    pub resources: Vec<String>,
}

/// The store the commands act on, and the settings it was opened with.
pub struct Admin {
    store: Arc<dyn Store>,
    settings: Settings,
}

impl Admin {
    /// Opens (and migrates) the configured database.
    pub async fn open(settings: Settings) -> anyhow::Result<Self> {
        let store = open_store_with(&settings.database_url, &settings.database).await?;
        Ok(Self { store, settings })
    }

    // ----- users -------------------------------------------------------------------------

    /// `user create`: a user with an email and password.
    pub async fn create_user(
        &self,
        email: &str,
        password: &str,
        name: Option<&str>,
        output: Output,
    ) -> anyhow::Result<()> {
        let accounts = Accounts::new(Arc::clone(&self.store), Arc::new(SystemClock));
        let user = accounts
            .create_user(email, password, name)
            .await
            .map_err(|e| anyhow!("could not create the user: {e}"))?;
        self.audit(
            "admin.user.create",
            Some(&user.id),
            None,
            json!({ "email": user.email }),
        )
        .await?;
        match output {
            Output::Json => emit_json(&user_json(&user)),
            Output::Table => emit(&format!(
                "created user {} <{}> (id {})\n",
                clean(&user.name),
                clean(&user.email),
                user.id
            )),
        }
    }

    /// `user reset-password`: sets a new password, ends every session of the user and, with
    /// `revoke_grants_on_password_change`, disconnects every app (their tokens stop working).
    pub async fn reset_password(&self, who: &str, password: &str) -> anyhow::Result<()> {
        let user = self.find_user(who).await?;
        let accounts = Accounts::new(Arc::clone(&self.store), Arc::new(SystemClock));
        let hash = accounts
            .new_password_hash(password)
            .await
            .map_err(|e| anyhow!("could not set the password: {e}"))?;
        self.store.set_password(&user.id, &hash, now()).await?;
        let sessions = self.store.delete_user_sessions(&user.id, None).await?;
        let revoke = self.settings.auth.revoke_grants_on_password_change;
        let grants = if revoke {
            self.store.revoke_grants(&user.id, None, now()).await?
        } else {
            0
        };
        self.audit(
            "admin.user.reset_password",
            Some(&user.id),
            None,
            json!({ "email": user.email, "sessions_ended": sessions, "grants_revoked": grants }),
        )
        .await?;
        let apps = if revoke {
            format!(", {grants} app grant(s) revoked")
        } else {
            String::new()
        };
        emit(&format!(
            "password of <{}> (id {}) reset; {sessions} session(s) ended{apps}\n",
            clean(&user.email),
            user.id
        ))
    }

    /// `user list`: every user, oldest first.
    pub async fn list_users(&self, output: Output) -> anyhow::Result<()> {
        let users = self.store.list_users().await?;
        match output {
            Output::Json => emit_json(&Value::from(
                users.iter().map(user_json).collect::<Vec<_>>(),
            )),
            Output::Table if users.is_empty() => emit("no users\n"),
            Output::Table => {
                let mut table = Table::new(&["ID", "EMAIL", "NAME", "STATUS", "CREATED (UTC)"]);
                for user in &users {
                    table.row(vec![
                        user.id.clone(),
                        user.email.clone(),
                        user.name.clone(),
                        status(user.disabled).to_owned(),
                        utc(user.created_at),
                    ]);
                }
                emit(&table.render())
            }
        }
    }

    /// `user disable` / `user enable`. A disabled user cannot sign in, and their sessions and
    /// tokens stop working until they are enabled again.
    pub async fn set_user_disabled(&self, who: &str, disabled: bool) -> anyhow::Result<()> {
        let user = self.find_user(who).await?;
        let state = status(disabled);
        if user.disabled == disabled {
            return emit(&format!(
                "user <{}> is already {state}\n",
                clean(&user.email)
            ));
        }
        if !self
            .store
            .set_user_disabled(&user.id, disabled, now())
            .await?
        {
            bail!("user <{}> no longer exists", clean(&user.email));
        }
        let kind = if disabled {
            "admin.user.disable"
        } else {
            "admin.user.enable"
        };
        self.audit(kind, Some(&user.id), None, json!({ "email": user.email }))
            .await?;
        emit(&format!(
            "user <{}> (id {}) is now {state}\n",
            clean(&user.email),
            user.id
        ))
    }

    /// `user delete`: the user and everything of theirs. Refused without `--yes`.
    pub async fn delete_user(&self, who: &str, yes: bool) -> anyhow::Result<()> {
        let user = self.find_user(who).await?;
        if !yes {
            bail!(
                "refusing to delete user <{}> (id {}) and their sessions, consents and grants \
                 without --yes; to keep the account but lock it out, use `mcpauth user disable`",
                clean(&user.email),
                user.id
            );
        }
        if !self.store.delete_user(&user.id).await? {
            bail!("user <{}> no longer exists", clean(&user.email));
        }
        self.audit(
            "admin.user.delete",
            Some(&user.id),
            None,
            json!({ "email": user.email }),
        )
        .await?;
        emit(&format!(
            "deleted user <{}> (id {}) with their sessions, consents and grants\n",
            clean(&user.email),
            user.id
        ))
    }

    /// `user admin` (`--revoke`): makes the user an admin of the console, or takes it back.
    pub async fn set_admin(&self, who: &str, admin: bool) -> anyhow::Result<()> {
        let user = self.find_user(who).await?;
        if !self.store.set_admin(&user.id, admin, now()).await? {
            bail!("user <{}> no longer exists", clean(&user.email));
        }
        let kind = if admin {
            "admin.user.admin_grant"
        } else {
            "admin.user.admin_revoke"
        };
        self.audit(
            kind,
            Some(&user.id),
            None,
            json!({ "email": user.email, "via": "cli" }),
        )
        .await?;
        let configured = self
            .settings
            .auth
            .admins
            .iter()
            .any(|email| email.eq_ignore_ascii_case(&user.email));
        if !admin && configured {
            eprintln!(
                "warning: <{}> is named in the configuration's admins and stays an admin until \
                 removed from there",
                clean(&user.email)
            );
        }
        emit(&format!(
            "user <{}> (id {}) {} an admin of the console\n",
            clean(&user.email),
            user.id,
            if admin { "is now" } else { "is no longer" }
        ))
    }

    // ----- clients -----------------------------------------------------------------------

    /// `client list`: every client, oldest first.
    pub async fn list_clients(&self, output: Output) -> anyhow::Result<()> {
        let clients = self.store.list_clients().await?;
        match output {
            Output::Json => emit_json(&Value::from(
                clients.iter().map(client_json).collect::<Vec<_>>(),
            )),
            Output::Table if clients.is_empty() => emit("no clients\n"),
            Output::Table => {
                let mut table = Table::new(&[
                    "CLIENT ID",
                    "NAME",
                    "TYPE",
                    "STATUS",
                    "CONSENT",
                    "CREATED (UTC)",
                    "REDIRECT URIS",
                ]);
                for client in &clients {
                    table.row(vec![
                        client.client_id.clone(),
                        client.name.clone().unwrap_or_else(|| "-".into()),
                        client_type(client).to_owned(),
                        status(client.disabled).to_owned(),
                        if client.skip_consent {
                            "skipped"
                        } else {
                            "asked"
                        }
                        .to_owned(),
                        utc(client.created_at),
                        client
                            .redirect_uris
                            .iter()
                            .map(|uri| uri.as_str())
                            .collect::<Vec<_>>()
                            .join(" "),
                    ]);
                }
                emit(&table.render())
            }
        }
    }

    /// `client create`: validates like dynamic registration, stores only the secret's hash and
    /// shows the secret this once.
    pub async fn create_client(&self, new: NewClient, output: Output) -> anyhow::Result<()> {
        if new.name.chars().any(char::is_control) {
            bail!("--name must not contain control characters");
        }
        let machine_only =
            !new.grants.is_empty() && !new.grants.contains(&GrantType::AuthorizationCode);
        if new.redirect_uris.is_empty() && !machine_only {
            bail!("at least one --redirect-uri is required");
        }
        if new.public && machine_only {
            bail!("a machine client (client_credentials) cannot be public");
        }
        let method = if new.public {
            TokenEndpointAuthMethod::None
        } else {
            TokenEndpointAuthMethod::ClientSecretBasic
        };
        let registration = ClientRegistration::from_fields(ClientFields {
            redirect_uris: &new.redirect_uris,
            client_name: Some(&new.name),
            token_endpoint_auth_method: method,
            grant_types: if new.grants.is_empty() {
                &[GrantType::AuthorizationCode, GrantType::RefreshToken]
            } else {
                &new.grants
            },
            logo_uri: None,
            scope: new.scope.as_deref(),
            resources: &new.resources,
            jwks_uri: None,
            jwks: None,
        })
        .map_err(|e| anyhow!("{}", e.description))?;
        let Some(name) = registration.client_name.clone() else {
            bail!("--name must not be empty");
        };
        let client_secret = (!new.public).then(secret::random_token);
        let client = registration.into_client(
            secret::random_id(),
            client_secret.as_deref().map(secret::hash_token),
            new.skip_consent,
            now(),
        );
        self.store
            .create_client(&client)
            .await
            .context("could not create the client")?;
        self.audit(
            "admin.client.create",
            None,
            Some(&client.client_id),
            json!({
                "name": name,
                "type": client_type(&client),
                "redirect_uris": client.redirect_uris,
                "skip_consent": client.skip_consent,
                "grant_types": client.grant_types,
            }),
        )
        .await?;
        let mut shown = client_json(&client);
        if let (Some(secret), Value::Object(fields)) = (&client_secret, &mut shown) {
            fields.insert("client_secret".into(), Value::from(secret.as_str()));
        }
        match output {
            Output::Json => emit_json(&shown)?,
            Output::Table => {
                let mut text = format!(
                    "created {} client {:?}\n  client_id:      {}\n",
                    client_type(&client),
                    name,
                    client.client_id
                );
                match &client_secret {
                    Some(secret) => text.push_str(&format!(
                        "  client_secret:  {secret}\n  auth method:    {}\n",
                        method.as_str()
                    )),
                    None => text.push_str(
                        "  client_secret:  (none: a public client authenticates with PKCE)\n",
                    ),
                }
                emit(&text)?;
            }
        }
        if client_secret.is_some() {
            eprintln!(
                "warning: the client secret is shown only this once; mcpauth stores only its hash. \
                 Save it now — if it is lost, delete the client and create a new one."
            );
        }
        Ok(())
    }

    /// `client disable` / `client enable`. A disabled client can neither obtain nor use tokens.
    pub async fn set_client_disabled(&self, client_id: &str, disabled: bool) -> anyhow::Result<()> {
        let client = self.find_client(client_id).await?;
        let state = status(disabled);
        if client.disabled == disabled {
            return emit(&format!("client {} is already {state}\n", client.client_id));
        }
        if !self
            .store
            .set_client_disabled(&client.client_id, disabled, now())
            .await?
        {
            bail!("client {} no longer exists", client.client_id);
        }
        let kind = if disabled {
            "admin.client.disable"
        } else {
            "admin.client.enable"
        };
        self.audit(
            kind,
            None,
            Some(&client.client_id),
            json!({ "name": client.name }),
        )
        .await?;
        self.warn_if_configured(&client.client_id, "re-enables");
        emit(&format!(
            "client {} ({}) is now {state}\n",
            client.client_id,
            display_name(&client)
        ))
    }

    /// `client delete`: the client and everything issued to it. Refused without `--yes`.
    pub async fn delete_client(&self, client_id: &str, yes: bool) -> anyhow::Result<()> {
        let client = self.find_client(client_id).await?;
        if !yes {
            bail!(
                "refusing to delete client {} ({}) and every token issued to it without --yes; \
                 to stop it for now, use `mcpauth client disable`",
                client.client_id,
                display_name(&client)
            );
        }
        if !self.store.delete_client(&client.client_id).await? {
            bail!("client {} no longer exists", client.client_id);
        }
        self.audit(
            "admin.client.delete",
            None,
            Some(&client.client_id),
            json!({ "name": client.name }),
        )
        .await?;
        self.warn_if_configured(&client.client_id, "re-creates");
        emit(&format!(
            "deleted client {} ({}) and every token issued to it\n",
            client.client_id,
            display_name(&client)
        ))
    }

    // ----- grants ------------------------------------------------------------------------

    /// `grant list`: live grants, newest first, optionally only a user's and/or a client's.
    pub async fn list_grants(
        &self,
        user: Option<&str>,
        client_id: Option<&str>,
        output: Output,
    ) -> anyhow::Result<()> {
        let user = match user {
            Some(who) => Some(self.find_user(who).await?),
            None => None,
        };
        let client = match client_id {
            Some(id) => Some(self.find_client(id).await?),
            None => None,
        };
        let grants = self
            .store
            .grants(
                user.as_ref().map(|u| u.id.as_str()),
                client.as_ref().map(|c| c.client_id.as_str()),
                now(),
            )
            .await?;
        match output {
            Output::Json => emit_json(&Value::from(
                grants.iter().map(grant_json).collect::<Vec<_>>(),
            )),
            Output::Table if grants.is_empty() => emit("no grants\n"),
            Output::Table => {
                let mut table = Table::new(&[
                    "USER",
                    "CLIENT ID",
                    "CLIENT NAME",
                    "SCOPES",
                    "CREATED (UTC)",
                    "LAST USED (UTC)",
                    "EXPIRES (UTC)",
                ]);
                for grant in &grants {
                    table.row(vec![
                        grant.user_email.clone(),
                        grant.client_id.clone(),
                        grant.client_name.clone().unwrap_or_else(|| "-".into()),
                        grant.scopes.to_string(),
                        utc(grant.created_at),
                        utc(grant.last_used_at),
                        utc(grant.expires_at),
                    ]);
                }
                emit(&table.render())
            }
        }
    }

    /// `grant revoke`: kills a user's grants (all, or one client's) and forgets the consents,
    /// so the client must ask again.
    pub async fn revoke_grants(&self, user: &str, client_id: Option<&str>) -> anyhow::Result<()> {
        let user = self.find_user(user).await?;
        let client = match client_id {
            Some(id) => Some(self.find_client(id).await?),
            None => None,
        };
        let client_id = client.as_ref().map(|c| c.client_id.as_str());
        let revoked = self.store.revoke_grants(&user.id, client_id, now()).await?;
        self.audit(
            "admin.grant.revoke",
            Some(&user.id),
            client_id,
            json!({ "email": user.email, "revoked": revoked }),
        )
        .await?;
        let noun = if revoked == 1 { "grant" } else { "grants" };
        let scope = match &client {
            Some(client) => format!(" to client {} ({})", client.client_id, display_name(client)),
            None => String::new(),
        };
        emit(&format!(
            "revoked {revoked} {noun} of <{}>{scope}; their tokens no longer work and the \
             client must ask for consent again\n",
            clean(&user.email)
        ))
    }

    // ----- audit log ---------------------------------------------------------------------

    /// `audit list`: the newest `limit` security events, newest first.
    pub async fn list_audit(&self, limit: u32, output: Output) -> anyhow::Result<()> {
        let events = self.store.audit_events(limit).await?;
        match output {
            Output::Json => emit_json(&Value::from(
                events.iter().map(audit_json).collect::<Vec<_>>(),
            )),
            Output::Table if events.is_empty() => emit("no audit events\n"),
            Output::Table => {
                let mut table =
                    Table::new(&["TIME (UTC)", "KIND", "USER", "CLIENT", "IP", "DETAIL"]);
                for event in &events {
                    let dash = || "-".to_owned();
                    table.row(vec![
                        utc(event.at),
                        event.kind.clone(),
                        event.user_id.clone().unwrap_or_else(dash),
                        event.client_id.clone().unwrap_or_else(dash),
                        event.ip.clone().unwrap_or_else(dash),
                        event.detail.clone(),
                    ]);
                }
                emit(&table.render())
            }
        }
    }

    // ----- signing keys --------------------------------------------------------------------

    /// `keys rotate`: a new id_token signing key, published at once on every instance; the old
    /// keys stay published until the tokens they signed have expired.
    pub async fn rotate_keys(&self, output: Output) -> anyhow::Result<()> {
        let settings = &self.settings;
        let algorithm = settings.auth.signing_algorithm;
        let key_encryption_secret = mcpauth::key_encryption_secret(
            self.store.as_ref(),
            settings.auth.key_encryption_secret.as_deref(),
            settings.auth.secret.as_deref(),
        )
        .await?;
        let keys = SigningKeys::new(
            Arc::clone(&self.store),
            Arc::new(SystemClock),
            algorithm,
            key_encryption_secret,
            settings.auth.access_token_expires_in,
        );
        let kid = keys.rotate().await?;
        self.audit("admin.keys.rotate", None, None, json!({ "kid": kid }))
            .await?;
        match output {
            Output::Json => emit_json(&json!({ "kid": kid })),
            Output::Table => emit(&format!("new signing key {kid}; older keys are retired\n")),
        }
    }

    /// `keys list`: every signing key, newest first (public information only).
    pub async fn list_keys(&self, output: Output) -> anyhow::Result<()> {
        let keys = self.store.signing_keys().await?;
        match output {
            Output::Json => emit_json(&Value::from(
                keys.iter()
                    .map(|k| {
                        json!({
                            "kid": k.kid,
                            "algorithm": k.algorithm,
                            "created_at": k.created_at,
                            "retired_at": k.retired_at,
                            "status": if k.retired_at.is_some() { "retired" } else { "current" },
                        })
                    })
                    .collect::<Vec<_>>(),
            )),
            Output::Table if keys.is_empty() => {
                emit("no signing keys (one is made when the first id_token is signed)\n")
            }
            Output::Table => {
                let mut table = Table::new(&[
                    "KID",
                    "ALGORITHM",
                    "STATUS",
                    "CREATED (UTC)",
                    "RETIRED (UTC)",
                ]);
                for key in &keys {
                    table.row(vec![
                        key.kid.clone(),
                        key.algorithm.clone(),
                        if key.retired_at.is_some() {
                            "retired"
                        } else {
                            "current"
                        }
                        .to_owned(),
                        utc(key.created_at),
                        key.retired_at.map(utc).unwrap_or_else(|| "-".to_owned()),
                    ]);
                }
                emit(&table.render())
            }
        }
    }

    // ----- connected accounts ------------------------------------------------------------

    /// Connected accounts over this store, with the configured connections and vault keys;
    /// refuses (as `serve` does) a missing or wrong vault key.
    async fn connections(&self) -> anyhow::Result<mcpauth::Connections> {
        let settings = &self.settings;
        let options = settings.options(
            settings
                .issuer
                .as_deref()
                .unwrap_or("http://localhost:3000"),
        )?;
        let connections = mcpauth::Connections::new(
            Arc::clone(&self.store),
            Arc::new(SystemClock),
            &options.connections,
            options.vault_keys.clone(),
            &format!("{}{}", options.issuer, options.base_path),
        )
        .map_err(|reason| anyhow!("connections: {reason}"))?;
        connections.check_vault().await?;
        Ok(connections)
    }

    /// `connection list --email …`: a user's connected services (never a token).
    pub async fn list_connections(&self, who: &str, output: Output) -> anyhow::Result<()> {
        let user = self.find_user(who).await?;
        let list = self.connections().await?.list(&user.id).await?;
        match output {
            Output::Json => emit_json(&Value::from(
                list.iter()
                    .map(|c| {
                        json!({
                            "connection": c.connection_id,
                            "name": c.name,
                            "scopes": c.scopes,
                            "status": if c.reconnect_needed { "reconnect" } else { "active" },
                            "connected_at": c.connected_at,
                            "last_used_at": c.last_used_at,
                        })
                    })
                    .collect::<Vec<_>>(),
            )),
            Output::Table if list.is_empty() => emit("no connected services\n"),
            Output::Table => {
                let mut table = Table::new(&[
                    "CONNECTION",
                    "STATUS",
                    "SCOPES",
                    "CONNECTED (UTC)",
                    "LAST USED (UTC)",
                ]);
                for c in &list {
                    table.row(vec![
                        c.connection_id.clone(),
                        if c.reconnect_needed {
                            "reconnect"
                        } else {
                            "active"
                        }
                        .to_owned(),
                        c.scopes.join(" "),
                        utc(c.connected_at),
                        c.last_used_at.map(utc).unwrap_or_else(|| "-".to_owned()),
                    ]);
                }
                emit(&table.render())
            }
        }
    }

    /// `connection delete --email … --connection …`: revokes at the provider where it can,
    /// then deletes.
    pub async fn delete_connection(&self, who: &str, connection_id: &str) -> anyhow::Result<()> {
        let user = self.find_user(who).await?;
        let deleted = self
            .connections()
            .await?
            .disconnect(&user.id, connection_id, "admin")
            .await
            .map_err(|e| anyhow!("could not disconnect: {e}"))?;
        if !deleted {
            bail!(
                "<{}> has no connection {connection_id:?}",
                clean(&user.email)
            );
        }
        emit(&format!(
            "disconnected {connection_id} from <{}> (id {})\n",
            clean(&user.email),
            user.id
        ))
    }

    /// `keys rotate-vault`: every connected account re-sealed under the current vault key.
    pub async fn rotate_vault(&self, output: Output) -> anyhow::Result<()> {
        let resealed = self.connections().await?.rotate_vault().await?;
        self.audit(
            "admin.keys.rotate_vault",
            None,
            None,
            json!({ "resealed": resealed }),
        )
        .await?;
        match output {
            Output::Json => emit_json(&json!({ "resealed": resealed })),
            Output::Table => emit(&format!(
                "{resealed} connection(s) re-sealed under the current vault key; older keys may now be removed\n"
            )),
        }
    }

    // ----- helpers -----------------------------------------------------------------------

    /// A user by email (when `who` contains `@`) or by id.
    async fn find_user(&self, who: &str) -> anyhow::Result<User> {
        let who = who.trim();
        if who.contains('@') {
            let email = who.to_lowercase();
            match self.store.user_by_email(&email).await? {
                Some((user, _)) => Ok(user),
                None => bail!("no user with email {:?}", clean(who)),
            }
        } else {
            match self.store.user_by_id(who).await? {
                Some(user) => Ok(user),
                None => bail!("no user with id {:?} (give an email or an id)", clean(who)),
            }
        }
    }

    async fn find_client(&self, client_id: &str) -> anyhow::Result<Client> {
        let client_id = client_id.trim();
        match self.store.client_by_id(client_id).await? {
            Some(client) => Ok(client),
            None => bail!("no client with client_id {:?}", clean(client_id)),
        }
    }

    /// Appends an `admin.*` event. The change it records has already happened, so a failure
    /// here says so rather than implying nothing changed.
    async fn audit(
        &self,
        kind: &str,
        user_id: Option<&str>,
        client_id: Option<&str>,
        detail: Value,
    ) -> anyhow::Result<()> {
        let event = AuditEvent {
            at: now(),
            kind: kind.to_owned(),
            user_id: user_id.map(str::to_owned),
            client_id: client_id.map(str::to_owned),
            ip: None,
            detail: detail.to_string(),
        };
        self.store
            .append_audit(&event)
            .await
            .with_context(|| format!("the change was made, but could not be audited ({kind})"))
    }

    /// Clients from `[[trusted_clients]]` are written back at every server start.
    fn warn_if_configured(&self, client_id: &str, what: &str) {
        if self
            .settings
            .auth
            .trusted_clients
            .iter()
            .any(|t| t.client_id == client_id)
        {
            eprintln!(
                "warning: client {client_id} is configured in trusted_clients; the next server \
                 start {what} it unless you remove it from the configuration"
            );
        }
    }
}

// ----- rendering -----------------------------------------------------------------------------

fn user_json(user: &User) -> Value {
    json!({
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "email_verified": user.email_verified,
        "disabled": user.disabled,
        "created_at": user.created_at,
        "updated_at": user.updated_at,
    })
}

/// A client as shown: everything but its secret hash.
fn client_json(client: &Client) -> Value {
    json!({
        "client_id": client.client_id,
        "name": client.name,
        "type": client_type(client),
        "token_endpoint_auth_method": client.token_endpoint_auth_method.as_str(),
        "redirect_uris": client.redirect_uris,
        "grant_types": client.grant_types,
        "logo_uri": client.logo_uri,
        "skip_consent": client.skip_consent,
        "registered_dynamically": client.registered_dynamically,
        "disabled": client.disabled,
        "created_at": client.created_at,
    })
}

fn grant_json(grant: &GrantSummary) -> Value {
    json!({
        "id": grant.family_id,
        "user_id": grant.user_id,
        "user_email": grant.user_email,
        "client_id": grant.client_id,
        "client_name": grant.client_name,
        "scope": grant.scopes,
        "created_at": grant.created_at,
        "last_used_at": grant.last_used_at,
        "expires_at": grant.expires_at,
    })
}

fn audit_json(event: &AuditEvent) -> Value {
    json!({
        "at": event.at,
        "kind": event.kind,
        "user_id": event.user_id,
        "client_id": event.client_id,
        "ip": event.ip,
        // Stored as JSON text; shown as JSON when it parses.
        "detail": serde_json::from_str::<Value>(&event.detail)
            .unwrap_or_else(|_| Value::from(event.detail.as_str())),
    })
}

fn client_type(client: &Client) -> &'static str {
    if client.is_public() {
        "public"
    } else {
        "confidential"
    }
}

fn display_name(client: &Client) -> String {
    client
        .name
        .as_deref()
        .map_or_else(|| "no name".to_owned(), |name| format!("{:?}", clean(name)))
}

fn status(disabled: bool) -> &'static str {
    if disabled { "disabled" } else { "enabled" }
}

/// Text safe to print on a terminal: control characters (which could move the cursor or
/// recolour the screen, from a name a client registered itself) become `?`.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Columns padded to their widest cell, two spaces apart.
struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(headers: &[&str]) -> Self {
        Self {
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells.iter().map(|c| clean(c)).collect());
    }

    fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if let Some(width) = widths.get_mut(i) {
                    *width = (*width).max(cell.chars().count());
                }
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.headers).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                let width = widths.get(i).copied().unwrap_or(0);
                line.extend(std::iter::repeat_n(
                    ' ',
                    width.saturating_sub(cell.chars().count()),
                ));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Writes to standard output; a closed pipe (`mcpauth … | head`) is not an error.
fn emit(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

fn emit_json(value: &Value) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    emit(&text)
}

/// Seconds since the Unix epoch.
fn now() -> i64 {
    SystemClock.now()
}

/// Seconds since the Unix epoch as UTC `YYYY-MM-DD HH:MM:SS`.
fn utc(timestamp: i64) -> String {
    let t = UtcDateTime::from_unix(timestamp);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_shown_in_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20");
        assert_eq!(utc(1_709_251_199), "2024-02-29 23:59:59");
        assert_eq!(utc(4_102_444_800), "2100-01-01 00:00:00");
        assert_eq!(utc(-1), "1969-12-31 23:59:59");
    }

    #[test]
    fn tables_align_and_neutralise_control_characters() {
        let mut table = Table::new(&["A", "LONGER"]);
        table.row(vec!["wide cell".into(), "x".into()]);
        table.row(vec!["\u{1b}[31mred".into(), String::new()]);
        assert_eq!(
            table.render(),
            "A          LONGER\nwide cell  x\n?[31mred\n"
        );
    }
}

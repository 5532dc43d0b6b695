//! [`Connections`]: a user's token for a connection (refreshed single-flight, SECURITY V4),
//! the connect URL of an MCP URL elicitation, completion notices, the vault's start check and
//! key rotation (V1), and disconnecting.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use mcpauth_core::model::{ConnectionRecord, ConnectionStatus, SealedTokens};
use mcpauth_core::vault::Keyring;
use mcpauth_core::{Clock, Store, StoreError, secret};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::broadcast;

use super::options::{self, ConnectionOptions};
use super::provider::{Provider, ProviderError, TokenAnswer};
use crate::audit::security_event;

/// An access token is refreshed when it expires within this many seconds.
const REFRESH_MARGIN: i64 = 60;
/// How long a refresh claim holds (a claimer that dies frees it then).
const CLAIM_SECONDS: i64 = 30;
/// How long a caller waits for another instance's refresh before giving up.
const WAIT_FOR_REFRESH: Duration = Duration::from_secs(20);
/// How long a connect URL made for an elicitation stays usable.
pub(crate) const CONNECT_LINK_LIFETIME: i64 = 600;
/// `last_used_at` is written at most this often per connection.
const TOUCH_EVERY: i64 = 60;

/// A user's access token at a connected service. Its `Debug` leaves out the token.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionToken {
    /// The provider's access token, to send to the service (never log it).
    pub access_token: String,
    /// Its type, as the provider said (`Bearer`, `bearer`).
    pub token_type: String,
    /// When it expires (seconds since the Unix epoch), if the provider said.
    pub expires_at: Option<i64>,
}

impl std::fmt::Debug for ConnectionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionToken")
            .field("access_token", &"[redacted]")
            .field("token_type", &self.token_type)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Why there is no token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    /// No `[[connections]]` entry has this id.
    #[error("no connection is configured with this id")]
    UnknownConnection,
    /// The user has not connected this service (or their account is disabled, which locks
    /// their connections).
    #[error("the user has not connected this service")]
    NotConnected,
    /// The provider refused a refresh (or the token expired without a refresh token): the
    /// user must connect again.
    #[error("the user must connect this service again")]
    ReconnectNeeded,
    /// The store or the provider could not be reached; try again later.
    #[error("connected services are unavailable: {0}")]
    Unavailable(String),
}

impl From<StoreError> for ConnectionError {
    fn from(error: StoreError) -> Self {
        Self::Unavailable(error.to_string())
    }
}

/// A connect completed in a browser, on this instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionCompleted {
    /// The mcpauth user who connected.
    pub user_id: String,
    /// The connection's id.
    pub connection_id: String,
    /// The elicitation the connect answered, when it was started from a connect URL
    /// ([`Connections::connect_url`]).
    pub elicitation_id: Option<String>,
}

/// Why the vault cannot be used: stops the start (SECURITY V1).
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// Connections are configured, or stored, but no vault key is.
    #[error(
        "{0}: set MCPAUTH_VAULT_KEY or vault.key_file (make a key with `mcpauth keys generate-vault-key`)"
    )]
    NoKey(String),
    /// Stored connections are sealed under keys the keyring does not hold.
    #[error(
        "the database holds connected-account tokens sealed under vault key(s) {0}, which the configured vault keys do not include: the vault key is wrong or missing. Nothing was reset; configure the key they were sealed with (a new key goes first, the old one after it, then run `mcpauth keys rotate-vault`)"
    )]
    WrongKey(String),
    /// A stored ciphertext does not open under its key.
    #[error("a connected account's tokens do not open under vault key {0}: the key is wrong")]
    DoesNotOpen(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One of a user's connections as the account page and the CLI show it (no token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionView {
    /// The connection's id.
    pub connection_id: String,
    /// Its configured name.
    pub name: String,
    /// The scopes the provider granted.
    pub scopes: Vec<String>,
    /// Whether the user must connect again.
    pub reconnect_needed: bool,
    /// When the user connected.
    pub connected_at: i64,
    /// When a tool last used it.
    pub last_used_at: Option<i64>,
}

/// What the connect URL of an elicitation stands for, under the hash of its ticket.
#[derive(Serialize, Deserialize)]
pub(crate) struct ConnectTicket {
    pub(crate) user_id: String,
    pub(crate) connection_id: String,
    pub(crate) elicitation_id: String,
}

/// The verification key of a connect ticket.
pub(crate) fn ticket_key(ticket: &str) -> String {
    format!("connection-ticket:{}", secret::hash_token(ticket))
}

/// The associated data of a sealed token: its row and which token, so a ciphertext moved to
/// another row or field does not open.
fn context(user_id: &str, connection_id: &str, which: &str) -> String {
    format!("mcpauth connection v1\n{user_id}\n{connection_id}\n{which}")
}

/// The refreshes in progress on this instance, by (user, connection).
type Flights = HashMap<(String, String), Arc<tokio::sync::Mutex<()>>>;

/// Connected accounts: cheap to clone, shared by the library, the gateway and the CLI.
#[derive(Clone)]
pub struct Connections {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    providers: Vec<Arc<Provider>>,
    keyring: Option<Keyring>,
    completions: broadcast::Sender<ConnectionCompleted>,
    /// One lock per (user, connection) being refreshed here: callers on this instance queue
    /// behind it instead of polling the store.
    flights: StdMutex<Flights>,
    /// `{issuer}{base_path}`.
    base_url: String,
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections")
            .field(
                "connections",
                &self
                    .inner
                    .providers
                    .iter()
                    .map(|p| p.options.id.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Connections {
    /// Connected accounts over `store`, for the configured `connections`, sealed with
    /// `keyring`. `base_url` is `{issuer}{base_path}`. Call [`Connections::check_vault`]
    /// before serving.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        connections: &[ConnectionOptions],
        keyring: Option<Keyring>,
        base_url: &str,
    ) -> Result<Self, String> {
        options::check(connections)?;
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                clock,
                providers: connections
                    .iter()
                    .cloned()
                    .map(|c| Arc::new(Provider::new(c)))
                    .collect(),
                keyring,
                completions: broadcast::channel(64).0,
                flights: StdMutex::new(HashMap::new()),
                base_url: base_url.trim_end_matches('/').to_owned(),
            }),
        })
    }

    /// Checks, before serving, that every stored connection can be opened: a key when
    /// connections are configured or stored, and the key of every stored ciphertext
    /// (SECURITY V1). Never resets anything.
    pub async fn check_vault(&self) -> Result<(), VaultError> {
        let ids = self.inner.store.connection_key_ids().await?;
        let Some(keyring) = &self.inner.keyring else {
            if !ids.is_empty() {
                return Err(VaultError::NoKey(
                    "the database holds connected-account tokens but no vault key is configured"
                        .to_owned(),
                ));
            }
            if !self.inner.providers.is_empty() {
                return Err(VaultError::NoKey(
                    "[[connections]] are configured but no vault key is".to_owned(),
                ));
            }
            return Ok(());
        };
        let missing: Vec<String> = ids.into_iter().filter(|id| !keyring.has(id)).collect();
        if !missing.is_empty() {
            return Err(VaultError::WrongKey(missing.join(", ")));
        }
        Ok(())
    }

    /// The configured connections.
    pub fn configured(&self) -> impl Iterator<Item = &ConnectionOptions> {
        self.inner.providers.iter().map(|p| &p.options)
    }

    pub(crate) fn provider(&self, connection_id: &str) -> Option<&Arc<Provider>> {
        self.inner
            .providers
            .iter()
            .find(|p| p.options.id == connection_id)
    }

    /// `{issuer}{base_path}/connections/{id}/callback`: the redirect URI to register at the
    /// provider.
    pub fn redirect_uri(&self, connection_id: &str) -> String {
        format!(
            "{}/connections/{connection_id}/callback",
            self.inner.base_url
        )
    }

    /// Notices of connects completed on this instance (for an MCP server to send
    /// `notifications/elicitation/complete`). A receiver that lags loses the oldest.
    pub fn completions(&self) -> broadcast::Receiver<ConnectionCompleted> {
        self.inner.completions.subscribe()
    }

    pub(crate) fn completed(&self, completed: ConnectionCompleted) {
        // No receiver is no error: nobody is waiting.
        let _ = self.inner.completions.send(completed);
    }

    fn keyring(&self) -> Result<&Keyring, ConnectionError> {
        self.inner
            .keyring
            .as_ref()
            .ok_or_else(|| ConnectionError::Unavailable("no vault key is configured".into()))
    }

    fn now(&self) -> i64 {
        self.inner.clock.now()
    }

    /// The user's access token for `connection_id`, refreshed first when it expires within a
    /// minute. Of concurrent callers for one user and connection, on any number of instances
    /// sharing the database, one refreshes and the others get its result (SECURITY V4). A
    /// refresh the provider refuses marks the connection for reconnect, audited
    /// (`connection.refresh_failed`), and answers [`ConnectionError::ReconnectNeeded`].
    pub async fn token(
        &self,
        user_id: &str,
        connection_id: &str,
    ) -> Result<ConnectionToken, ConnectionError> {
        let provider = self
            .provider(connection_id)
            .ok_or(ConnectionError::UnknownConnection)?
            .clone();
        let result = self.token_of(&provider, user_id).await;
        let outcome = match &result {
            Ok(_) => None,
            Err(ConnectionError::NotConnected) => Some("not_connected"),
            Err(ConnectionError::ReconnectNeeded) => Some("reconnect_needed"),
            Err(_) => Some("unavailable"),
        };
        if let Some(outcome) = outcome {
            count(connection_id, outcome);
        }
        result
    }

    async fn token_of(
        &self,
        provider: &Provider,
        user_id: &str,
    ) -> Result<ConnectionToken, ConnectionError> {
        let connection_id = provider.options.id.as_str();
        let record = self.usable(user_id, connection_id).await?;
        if !needs_refresh(&record, self.now()) {
            return self.hand_out(&record).await;
        }
        let flight = {
            let mut flights = self
                .inner
                .flights
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            flights
                .entry((user_id.to_owned(), connection_id.to_owned()))
                .or_default()
                .clone()
        };
        let result = {
            let _turn = flight.lock().await;
            self.refresh_or_wait(provider, user_id).await
        };
        // The last one out forgets the lock, so the map holds only refreshes in progress.
        let mut flights = self
            .inner
            .flights
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if Arc::strong_count(&flight) <= 2 {
            flights.remove(&(user_id.to_owned(), connection_id.to_owned()));
        }
        result
    }

    /// Under this instance's lock for the connection: refreshes when the token still needs
    /// it and the store grants the claim; otherwise waits for the instance that holds it.
    async fn refresh_or_wait(
        &self,
        provider: &Provider,
        user_id: &str,
    ) -> Result<ConnectionToken, ConnectionError> {
        let connection_id = provider.options.id.as_str();
        let started = Instant::now();
        loop {
            let record = self.usable(user_id, connection_id).await?;
            let now = self.now();
            if !needs_refresh(&record, now) {
                return self.hand_out(&record).await;
            }
            if record.tokens.refresh_token_sealed.is_none() {
                if record.tokens.expires_at.is_some_and(|at| at > now) {
                    // Nothing to refresh with; usable for a little longer.
                    return self.hand_out(&record).await;
                }
                self.give_up(&record, "expired without a refresh token")
                    .await?;
                return Err(ConnectionError::ReconnectNeeded);
            }
            let claimed = self
                .inner
                .store
                .claim_connection_refresh(
                    user_id,
                    connection_id,
                    record.generation,
                    now,
                    now + CLAIM_SECONDS,
                )
                .await?;
            if claimed {
                return self.refresh(provider, &record).await;
            }
            if started.elapsed() > WAIT_FOR_REFRESH {
                return Err(ConnectionError::Unavailable(
                    "another instance's refresh of this connection is taking too long".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The connection, when it can be used at all.
    async fn usable(
        &self,
        user_id: &str,
        connection_id: &str,
    ) -> Result<ConnectionRecord, ConnectionError> {
        let Some((record, user_disabled)) =
            self.inner.store.connection(user_id, connection_id).await?
        else {
            return Err(ConnectionError::NotConnected);
        };
        if user_disabled {
            // A disabled user's connections are locked.
            return Err(ConnectionError::NotConnected);
        }
        if record.status == ConnectionStatus::ReconnectNeeded {
            return Err(ConnectionError::ReconnectNeeded);
        }
        Ok(record)
    }

    /// Opens the access token and records the use.
    async fn hand_out(
        &self,
        record: &ConnectionRecord,
    ) -> Result<ConnectionToken, ConnectionError> {
        let access_token = self.open(record, "access", &record.tokens.access_token_sealed)?;
        let now = self.now();
        if record
            .last_used_at
            .is_none_or(|used| used <= now - TOUCH_EVERY)
        {
            self.inner
                .store
                .touch_connection(&record.user_id, &record.connection_id, now)
                .await?;
        }
        count(&record.connection_id, "used");
        Ok(ConnectionToken {
            access_token,
            token_type: record.tokens.token_type.clone(),
            expires_at: record.tokens.expires_at,
        })
    }

    fn open(
        &self,
        record: &ConnectionRecord,
        which: &str,
        sealed: &str,
    ) -> Result<String, ConnectionError> {
        let opened = self.keyring()?.open(
            &record.tokens.key_id,
            &context(&record.user_id, &record.connection_id, which),
            sealed,
        );
        opened
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| {
                ConnectionError::Unavailable(format!(
                    "a sealed token does not open under vault key {}",
                    record.tokens.key_id
                ))
            })
    }

    /// Seals a token answer for the row (`refresh_token` kept when the provider sent none).
    pub(crate) fn seal(
        &self,
        user_id: &str,
        connection_id: &str,
        answer: &TokenAnswer,
        kept_refresh_token: Option<&str>,
        kept_scopes: Option<&str>,
    ) -> Result<SealedTokens, ConnectionError> {
        let keyring = self.keyring()?;
        let refresh = answer.refresh_token.as_deref().or(kept_refresh_token);
        let scopes = answer
            .scope
            .as_deref()
            .map(|s| s.replace(',', " "))
            .or_else(|| kept_scopes.map(str::to_owned))
            .unwrap_or_default();
        Ok(SealedTokens {
            key_id: keyring.current_id().to_owned(),
            access_token_sealed: keyring.seal(
                &context(user_id, connection_id, "access"),
                answer.access_token.as_bytes(),
            ),
            refresh_token_sealed: refresh.map(|token| {
                keyring.seal(
                    &context(user_id, connection_id, "refresh"),
                    token.as_bytes(),
                )
            }),
            token_type: answer
                .token_type
                .clone()
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| "Bearer".to_owned()),
            expires_at: answer
                .expires_in
                .filter(|&seconds| seconds > 0)
                .map(|seconds| self.now().saturating_add(seconds)),
            scopes: scopes.chars().take(2000).collect(),
        })
    }

    /// Refreshes under a claim of `record`'s generation.
    async fn refresh(
        &self,
        provider: &Provider,
        record: &ConnectionRecord,
    ) -> Result<ConnectionToken, ConnectionError> {
        let (user_id, connection_id) = (&record.user_id, &record.connection_id);
        let store = &self.inner.store;
        let refresh_token = match &record.tokens.refresh_token_sealed {
            Some(sealed) => self.open(record, "refresh", sealed)?,
            None => return Err(ConnectionError::ReconnectNeeded),
        };
        match provider.refresh(&refresh_token).await {
            Ok(answer) => {
                let tokens = self.seal(
                    user_id,
                    connection_id,
                    &answer,
                    Some(&refresh_token),
                    Some(&record.tokens.scopes),
                )?;
                let now = self.now();
                let audit = security_event(
                    now,
                    "connection.refreshed",
                    Some(user_id),
                    None,
                    None,
                    json!({ "connection": connection_id }),
                );
                store
                    .finish_connection_refresh(
                        user_id,
                        connection_id,
                        record.generation,
                        Some(&tokens),
                        now,
                        &audit,
                    )
                    .await?;
                count(connection_id, "refreshed");
                Ok(ConnectionToken {
                    access_token: answer.access_token,
                    token_type: tokens.token_type,
                    expires_at: tokens.expires_at,
                })
            }
            Err(ProviderError::Refused(code)) => {
                self.give_up(record, &code).await?;
                Err(ConnectionError::ReconnectNeeded)
            }
            Err(ProviderError::Unavailable(reason)) => {
                tracing::warn!(connection = %connection_id, %reason, "refresh failed");
                store
                    .release_connection_refresh(user_id, connection_id, record.generation)
                    .await?;
                count(connection_id, "refresh_unavailable");
                if record.tokens.expires_at.is_some_and(|at| at > self.now()) {
                    return self.hand_out(record).await;
                }
                Err(ConnectionError::Unavailable(reason))
            }
        }
    }

    /// Marks the connection for reconnect, audited.
    async fn give_up(&self, record: &ConnectionRecord, reason: &str) -> Result<(), StoreError> {
        let now = self.now();
        let audit = security_event(
            now,
            "connection.refresh_failed",
            Some(&record.user_id),
            None,
            None,
            json!({ "connection": record.connection_id, "reason": reason }),
        );
        self.inner
            .store
            .finish_connection_refresh(
                &record.user_id,
                &record.connection_id,
                record.generation,
                None,
                now,
                &audit,
            )
            .await?;
        count(&record.connection_id, "refresh_refused");
        Ok(())
    }

    /// A URL that connects `connection_id` to `user_id`'s account, to send as an MCP URL
    /// elicitation (`elicitation_id` is the elicitation's id). Single-use, valid ten minutes,
    /// and only for that user: opened in a browser signed in as anyone else, it connects
    /// nothing (SECURITY V2).
    pub async fn connect_url(
        &self,
        user_id: &str,
        connection_id: &str,
        elicitation_id: &str,
    ) -> Result<String, ConnectionError> {
        if self.provider(connection_id).is_none() {
            return Err(ConnectionError::UnknownConnection);
        }
        let ticket = secret::random_token();
        let value = serde_json::to_string(&ConnectTicket {
            user_id: user_id.to_owned(),
            connection_id: connection_id.to_owned(),
            elicitation_id: elicitation_id.chars().take(200).collect(),
        })
        .map_err(|e| ConnectionError::Unavailable(e.to_string()))?;
        let now = self.now();
        self.inner
            .store
            .put_verification(
                &ticket_key(&ticket),
                &value,
                now + CONNECT_LINK_LIFETIME,
                now,
            )
            .await?;
        Ok(format!(
            "{}/connections/{connection_id}/connect?ticket={ticket}",
            self.inner.base_url
        ))
    }

    /// The user's connections, for every configured connection they have (no token).
    pub async fn list(&self, user_id: &str) -> Result<Vec<ConnectionView>, StoreError> {
        let records = self.inner.store.user_connections(user_id).await?;
        Ok(records
            .into_iter()
            .map(|record| ConnectionView {
                name: self
                    .provider(&record.connection_id)
                    .map_or_else(|| record.connection_id.clone(), |p| p.options.name.clone()),
                scopes: record
                    .tokens
                    .scopes
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect(),
                reconnect_needed: record.status == ConnectionStatus::ReconnectNeeded,
                connected_at: record.created_at,
                last_used_at: record.last_used_at,
                connection_id: record.connection_id,
            })
            .collect())
    }

    /// Disconnects: revokes the grant at the provider where it can (RFC 7009), then deletes
    /// the connection, audited (`connection.disconnected`). `false` when there was none. A
    /// provider that cannot be reached does not keep the connection: it is deleted anyway,
    /// and the audit entry says the revocation failed.
    pub async fn disconnect(
        &self,
        user_id: &str,
        connection_id: &str,
        via: &str,
    ) -> Result<bool, ConnectionError> {
        let Some((record, _)) = self.inner.store.connection(user_id, connection_id).await? else {
            return Ok(false);
        };
        let revoked = match self.provider(connection_id) {
            Some(provider) => {
                let access = self.open(&record, "access", &record.tokens.access_token_sealed);
                let refresh = record
                    .tokens
                    .refresh_token_sealed
                    .as_deref()
                    .map(|sealed| self.open(&record, "refresh", sealed))
                    .transpose();
                match (access, refresh) {
                    (Ok(access), Ok(refresh)) => {
                        match provider.revoke(&access, refresh.as_deref()).await {
                            Ok(true) => "revoked",
                            Ok(false) => "not_revocable",
                            Err(error) => {
                                tracing::warn!(connection = %connection_id, %error, "revocation failed");
                                "revocation_failed"
                            }
                        }
                    }
                    _ => "revocation_failed",
                }
            }
            None => "not_configured",
        };
        let audit = security_event(
            self.now(),
            "connection.disconnected",
            Some(user_id),
            None,
            None,
            json!({ "connection": connection_id, "revocation": revoked, "via": via }),
        );
        let deleted = self
            .inner
            .store
            .delete_connection(user_id, connection_id, &audit)
            .await?;
        if deleted {
            metrics::counter!(
                "mcpauth_connection_events_total",
                "connection" => self.label(connection_id),
                "event" => "disconnected"
            )
            .increment(1);
        }
        Ok(deleted)
    }

    /// A bounded metric label: the id of a configured connection, else `other`.
    fn label(&self, connection_id: &str) -> String {
        if self.provider(connection_id).is_some() {
            connection_id.to_owned()
        } else {
            "other".to_owned()
        }
    }

    /// Re-seals every stored connection under the current vault key (the first), opening each
    /// with the key it names (`mcpauth keys rotate-vault`). Returns how many were re-sealed;
    /// one that changed meanwhile is sealed under the current key already.
    pub async fn rotate_vault(&self) -> Result<u64, VaultError> {
        self.check_vault().await?;
        let Some(keyring) = &self.inner.keyring else {
            return Ok(0);
        };
        let mut resealed = 0;
        for record in self.inner.store.all_connections().await? {
            if record.tokens.key_id == keyring.current_id() {
                continue;
            }
            let does_not_open = || VaultError::DoesNotOpen(record.tokens.key_id.clone());
            let access = self
                .open(&record, "access", &record.tokens.access_token_sealed)
                .map_err(|_| does_not_open())?;
            let refresh = match &record.tokens.refresh_token_sealed {
                Some(sealed) => Some(
                    self.open(&record, "refresh", sealed)
                        .map_err(|_| does_not_open())?,
                ),
                None => None,
            };
            let (user_id, connection_id) = (&record.user_id, &record.connection_id);
            let tokens = SealedTokens {
                key_id: keyring.current_id().to_owned(),
                access_token_sealed: keyring.seal(
                    &context(user_id, connection_id, "access"),
                    access.as_bytes(),
                ),
                refresh_token_sealed: refresh.map(|token| {
                    keyring.seal(
                        &context(user_id, connection_id, "refresh"),
                        token.as_bytes(),
                    )
                }),
                ..record.tokens.clone()
            };
            if self
                .inner
                .store
                .reseal_connection(user_id, connection_id, record.generation, &tokens)
                .await?
            {
                resealed += 1;
            }
        }
        Ok(resealed)
    }
}

fn needs_refresh(record: &ConnectionRecord, now: i64) -> bool {
    record
        .tokens
        .expires_at
        .is_some_and(|at| at <= now + REFRESH_MARGIN)
}

/// Counts a token request by connection and outcome (`connection` is a configured id: the
/// label set stays bounded).
fn count(connection_id: &str, outcome: &'static str) {
    metrics::counter!(
        "mcpauth_connection_tokens_total",
        "connection" => connection_id.to_owned(),
        "outcome" => outcome
    )
    .increment(1);
}

//! The storage contract. Every backend implements [`Store`] with identical behaviour; the rules
//! that make the protocol safe under concurrency live here as documented obligations:
//!
//! - [`Store::consume_code`] marks a code used atomically: of any number of concurrent calls
//!   with the same code, exactly one gets [`CodeRedemption::Redeemed`];
//!   [`Store::redeem_code`] likewise, together with the tokens and the audit entry of the
//!   exchange, and exactly one concurrent caller gets `true`.
//! - Every change that can end an access token before its expiry moves
//!   [`Store::revocation_epoch`] in the same transaction.
//! - [`Store::rotate_refresh_token`] rotates atomically: exactly one caller gets
//!   [`Rotation::Rotated`], and the successor tokens and the sealed retry response are written
//!   in the same transaction, so a loser sees either nothing rotated or everything. Rotating a
//!   token of the grant's head generation advances the grant in the same transaction; a token
//!   that is no longer of the head generation is not rotated ([`Rotation::Superseded`]).
//! - [`Store::reissue_refresh_token`] decides the tolerated reuse
//!   ([`crate::RefreshReusePolicy`]) against the grant's head generation and last advance as
//!   committed, in the transaction that stores the new tokens: a concurrent rotation is
//!   ordered either before it (and the reissue is judged against the new head) or after it.
//! - [`Store::rate_limit_hit`] counts atomically: concurrent calls for the same window, from
//!   any number of instances on the same database, each get a distinct count.
//! - [`Store::claim_mail`] leases the mail it returns: of concurrent claimers, on any number of
//!   instances sharing the database, each mail goes to at most one until its lease ends.
//! - [`Store::claim_connection_refresh`] claims atomically: of concurrent claims for one
//!   connection's generation, from any number of instances on the database, exactly one
//!   succeeds while the claim runs (single-flight refresh, SECURITY V4).
//! - Multi-row changes are transactions: a failure leaves nothing half-written.

use async_trait::async_trait;

use crate::error::StoreError;
use crate::model::{
    AccessToken, AccessTokenGrant, AuditCount, AuditEvent, AuditFilter, AuthorizationCode, Client,
    ClientDocument, ClientUsage, CodeRedemption, ConnectionRecord, Consent, ConsoleCounts,
    GrantSummary, LinkedAccount, OutboxMail, RefreshToken, Reissue, Rotation, SealedTokens,
    Session, SigningKey, TokenFamily, Unlink, User,
};

#[async_trait]
/// A storage backend: every record mcpauth keeps, with the atomicity the module documentation
/// requires. Times passed in (`now`) are seconds since the Unix epoch; tokens, codes and
/// session cookies are looked up by their hashes ([`crate::secret::hash_token`]).
pub trait Store: Send + Sync + 'static {
    /// Creates or updates the schema; idempotent.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// The server-wide signing secret: stores `candidate` if none exists yet and returns the
    /// one stored, so every instance on the same database agrees.
    async fn server_secret(&self, candidate: &str) -> Result<String, StoreError>;

    /// Creates a user and their password credential together.
    /// [`StoreError::Conflict`] when the email is taken.
    async fn create_user(&self, user: &User, password_hash: &str) -> Result<(), StoreError>;

    /// A user by email (exact, already normalised), with their password hash if they have one.
    async fn user_by_email(
        &self,
        email: &str,
    ) -> Result<Option<(User, Option<String>)>, StoreError>;

    /// The user an account (`provider_id`, `account_id`) is linked to, disabled or not.
    async fn user_by_account(
        &self,
        provider_id: &str,
        account_id: &str,
    ) -> Result<Option<User>, StoreError>;
    /// Creates a user who signs in only through an provider (no password) and links
    /// the account, in one transaction. [`StoreError::Conflict`] when the email is taken or the
    /// account is linked already.
    async fn create_user_with_account(
        &self,
        user: &User,
        provider_id: &str,
        account_id: &str,
    ) -> Result<(), StoreError>;
    /// Links an account to an existing user. [`StoreError::Conflict`] when that
    /// account is linked already (to this user or another).
    async fn link_account(
        &self,
        user_id: &str,
        provider_id: &str,
        account_id: &str,
        now: i64,
    ) -> Result<(), StoreError>;
    /// Every way `user_id` signs in, oldest first: the password credential (only when it has a
    /// password) and each linked account.
    async fn user_accounts(&self, user_id: &str) -> Result<Vec<LinkedAccount>, StoreError>;
    /// Removes the user's accounts at `provider_id` (never the password credential), unless
    /// that would leave the user no way in ([`Unlink::LastWayIn`]). Decided and done in one
    /// transaction that locks the user's row, so concurrent unlinks cannot both remove the
    /// last two ways in.
    async fn unlink_account(
        &self,
        user_id: &str,
        provider_id: &str,
        now: i64,
    ) -> Result<Unlink, StoreError>;
    /// A user by id, disabled or not.
    async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError>;

    /// Stores a new browser session.
    async fn create_session(&self, session: &Session) -> Result<(), StoreError>;

    /// The unexpired session with this token hash, and its (enabled) user.
    async fn session_by_token(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<(Session, User)>, StoreError>;

    /// Deletes the session with this token hash (sign-out); nothing happens if there is none.
    async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError>;

    /// [`StoreError::Conflict`] when the client id is taken.
    async fn create_client(&self, client: &Client) -> Result<(), StoreError>;

    /// Creates the client, or replaces everything but its creation time when the client id
    /// exists (for pre-registered, trusted clients from configuration).
    async fn save_client(&self, client: &Client) -> Result<(), StoreError>;

    /// A client by client id, disabled or not.
    async fn client_by_id(&self, client_id: &str) -> Result<Option<Client>, StoreError>;

    /// A client from a metadata document with its cache entry (the client disabled or not);
    /// `None` when the document was never stored.
    async fn client_document(
        &self,
        client_id: &str,
    ) -> Result<Option<(Client, ClientDocument)>, StoreError>;

    /// Stores a fetched or revalidated metadata document, in one transaction: creates the
    /// client or updates its metadata (keeping its creation time and `disabled` flag), and
    /// writes its cache entry. When its redirect URIs changed, every consent given to it is
    /// deleted (earlier approvals do not cover the new redirects) and the revocation epoch
    /// moves (so that in-memory copies of the client are dropped). Returns whether consents
    /// were deleted.
    async fn save_client_document(
        &self,
        client: &Client,
        document: &ClientDocument,
    ) -> Result<bool, StoreError>;

    /// The consent `user_id` has given `client_id`, if any.
    async fn consent(&self, user_id: &str, client_id: &str) -> Result<Option<Consent>, StoreError>;

    /// Creates or replaces the consent for (user, client).
    async fn save_consent(&self, consent: &Consent) -> Result<(), StoreError>;

    /// Stores a short-lived value under an identifier (Better Auth's `verification` table).
    async fn put_verification(
        &self,
        identifier: &str,
        value: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<(), StoreError>;

    /// Reads an unexpired value without consuming it.
    async fn peek_verification(
        &self,
        identifier: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError>;

    /// Removes and returns an unexpired value; of concurrent callers only one gets it.
    async fn take_verification(
        &self,
        identifier: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError>;

    /// Stores a verification value as [`Store::put_verification`] does, and `mail` (the mail
    /// that carries its token) in the outbox, in one transaction: the token exists exactly when
    /// its mail is queued, so a crash cannot lose the mail of a token or send one for a token
    /// that was not stored. The mail is due at once (`now`), with no attempt made yet.
    async fn put_verification_with_mail(
        &self,
        identifier: &str,
        value: &str,
        expires_at: i64,
        now: i64,
        mail: &OutboxMail,
    ) -> Result<(), StoreError>;

    /// Claims up to `limit` mails of the outbox that are due (their retry time reached), not
    /// given up, not expired (`expires_at > now`) and not leased by another claim (no lease, or
    /// one that ended at or before `now`), oldest due first: each is leased until
    /// `lease_until` and its attempt count grows by one (the returned mail shows the new
    /// count). Atomic: of concurrent calls, from any instance on the same database, a mail
    /// goes to one caller only while its lease runs. A claimer that dies (kill -9) leaves the
    /// mail to whoever claims after the lease.
    async fn claim_mail(
        &self,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<OutboxMail>, StoreError>;

    /// Deletes a mail that was handed over (sent): it is never sent again. Nothing happens
    /// when it is gone.
    async fn mail_sent(&self, id: &str) -> Result<(), StoreError>;

    /// Records a failed attempt to send a mail, with the reason (never a secret): with
    /// `retry_at`, releases its lease so that it is due again at that time; without, gives the
    /// mail up: it is never claimed again and goes with the purge once expired.
    async fn mail_failed(
        &self,
        id: &str,
        now: i64,
        retry_at: Option<i64>,
        error: &str,
    ) -> Result<(), StoreError>;

    /// Deletes the mails not yet sent nor given up whose token expired (`expires_at <= now`)
    /// and that no lease holds: they are never sent late. Returns how many.
    async fn drop_expired_mail(&self, now: i64) -> Result<u64, StoreError>;

    /// Stores a new code and the (empty) token family it will start, in one transaction.
    async fn create_code(
        &self,
        code: &AuthorizationCode,
        family: &TokenFamily,
    ) -> Result<(), StoreError>;

    /// Marks a code used. On a second use, revokes the code's token family (RFC 6749 §4.1.2).
    async fn consume_code(&self, code_hash: &str, now: i64) -> Result<CodeRedemption, StoreError>;

    /// The code with this hash if it exists and has not been used (nothing changes).
    async fn unused_code(&self, code_hash: &str) -> Result<Option<AuthorizationCode>, StoreError>;

    /// Like [`Store::unused_code`], with the code's user, in one read (the code exchange needs
    /// both). A code's user always exists: deleting a user deletes its codes.
    async fn unused_code_with_user(
        &self,
        code_hash: &str,
    ) -> Result<Option<(AuthorizationCode, User)>, StoreError>;

    /// Redeems a code and stores what it was exchanged for, in one transaction: marks the code
    /// used if it was not, then stores the tokens and `audit`. Returns false, writing nothing,
    /// when the code was already used or is gone; [`Store::consume_code`] then tells which and
    /// deals with a replay. Of concurrent calls for one code, at most one returns true.
    async fn redeem_code(
        &self,
        code_hash: &str,
        now: i64,
        access: &AccessToken,
        refresh: Option<&RefreshToken>,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError>;

    /// An access token by hash, with what decides whether it still works.
    async fn access_token(&self, token_hash: &str) -> Result<Option<AccessTokenGrant>, StoreError>;

    /// A refresh token by hash, with its family.
    async fn refresh_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<(RefreshToken, TokenFamily)>, StoreError>;

    /// Like [`Store::refresh_token`], with the token's user, in one read (the refresh grant
    /// needs all three). A token's user always exists: deleting a user deletes its tokens.
    async fn refresh_token_with_user(
        &self,
        token_hash: &str,
    ) -> Result<Option<(RefreshToken, TokenFamily, User)>, StoreError>;

    /// Rotates `old_hash` to the given successors, storing `retry_response` on the old token
    /// and, when it rotates, `audit`; see the module documentation for the atomicity this
    /// promises. The successor is of the next generation, which becomes the grant's head
    /// ([`crate::RefreshReusePolicy`] describes generations).
    async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        now: i64,
        retry_response: &str,
        access: &AccessToken,
        refresh: &RefreshToken,
        audit: &AuditEvent,
    ) -> Result<Rotation, StoreError>;

    /// The tolerated reuse of `old_hash` ([`crate::RefreshReusePolicy::ToleratePrevious`]),
    /// in one transaction: when `retry_response` is given (the caller saw the token unrotated),
    /// first marks the token rotated with it — [`Reissue::AlreadyRotated`], writing nothing,
    /// when another call did so first. Then, if the token is of the generation just before its
    /// grant's head, the grant last advanced at or after `now - window`, and the grant is
    /// neither revoked nor over, stores the new tokens (the refresh token of the head
    /// generation, without advancing the grant) and `audit`: [`Reissue::Reissued`]. Otherwise
    /// writes nothing: [`Reissue::Refused`].
    #[allow(clippy::too_many_arguments)]
    async fn reissue_refresh_token(
        &self,
        old_hash: &str,
        now: i64,
        window: i64,
        retry_response: Option<&str>,
        access: &AccessToken,
        refresh: &RefreshToken,
        audit: &AuditEvent,
    ) -> Result<Reissue, StoreError>;

    /// Revokes every token of a family.
    async fn revoke_family(&self, family_id: &str, now: i64) -> Result<(), StoreError>;

    /// A counter that grows, in the same transaction, with every change that can end an
    /// access token before its expiry: a family revoked (here, by a code replay or by
    /// [`Store::revoke_grants`]), a user or client disabled or deleted, a purge
    /// ([`Store::purge_expired`]); and with every change to what a copy of a client or of the
    /// current signing key would say ([`Store::save_client`], [`Store::rotate_signing_key`]).
    /// Whoever keeps validated tokens (or such copies) in memory keeps them only while this is
    /// unchanged, whichever process made the change. Re-enabling a user or client does not
    /// move it.
    async fn revocation_epoch(&self) -> Result<i64, StoreError>;

    /// Deletes what can no longer be used: expired sessions and verifications, token families
    /// past their absolute end (with their codes and tokens), expired access tokens, codes
    /// a day past their expiry (kept that long so a late replay still revokes its grant),
    /// rate-limit windows past their `expires_at`, outbox mail whose token expired (given up or
    /// never sent), and clients that registered themselves
    /// ([`Client::registered_dynamically`]) at least a day before `now` and never had tokens
    /// issued (no token family that issued any; SECURITY M5) — a client with a grant stays.
    /// Returns how many rows went.
    async fn purge_expired(&self, now: i64) -> Result<u64, StoreError>;

    /// Counts one request in the fixed rate-limit window of `key` that starts at
    /// `window_start`, and returns the window's count including this request. The window may
    /// be forgotten once `expires_at` has passed ([`Store::purge_expired`]). Atomic: of
    /// concurrent calls for one window, on any instance sharing the database, each gets a
    /// distinct count.
    async fn rate_limit_hit(
        &self,
        key: &str,
        window_start: i64,
        expires_at: i64,
    ) -> Result<u32, StoreError>;

    /// Records the one use of `key` (a `jti` of a DPoP proof, a client assertion or an ID-JAG,
    /// prefixed with its kind and issuer) and returns `true`; `false` when `key` was used
    /// before, on this or any instance sharing the database. The record may be forgotten once
    /// `expires_at` has passed ([`Store::purge_expired`]), so `expires_at` must be no earlier
    /// than the moment the thing it names would be refused anyway (its `exp`, or the end of
    /// the window its `iat` is accepted in). Atomic: of concurrent first uses exactly one
    /// returns `true`.
    async fn use_once(&self, key: &str, expires_at: i64) -> Result<bool, StoreError>;

    /// The count of `key`'s window that starts at `window_start`, without counting a request;
    /// 0 when nothing was counted in it.
    async fn rate_limit_count(&self, key: &str, window_start: i64) -> Result<u32, StoreError>;

    /// Every user, oldest first.
    async fn list_users(&self) -> Result<Vec<User>, StoreError>;

    /// Disables or re-enables a user; `false` when there is no such user. A disabled user
    /// cannot sign in and their tokens stop working.
    async fn set_user_disabled(
        &self,
        user_id: &str,
        disabled: bool,
        now: i64,
    ) -> Result<bool, StoreError>;

    /// Deletes a user and everything of theirs (sessions, credentials, consents, grants);
    /// `false` when there is no such user.
    async fn delete_user(&self, user_id: &str) -> Result<bool, StoreError>;

    /// Replaces a user's password hash.
    async fn set_password(
        &self,
        user_id: &str,
        password_hash: &str,
        now: i64,
    ) -> Result<(), StoreError>;

    /// Marks a user's email address verified (they followed a link mailed to it); `false`
    /// when there is no such user.
    async fn set_email_verified(&self, user_id: &str, now: i64) -> Result<bool, StoreError>;

    /// Completes a password reset in one transaction: takes the verification value stored
    /// under `identifier` (the user's id; of concurrent callers only one gets it, and an
    /// expired one is only deleted), stores `password_hash` as that user's password, marks
    /// their email verified (the reset proved they read mail sent to it), ends every session of
    /// theirs, and, when `revoke_grants`, revokes every grant and forgets their consents (moving
    /// the revocation epoch, as [`Store::revoke_grants`] does); then appends `audit` with the
    /// user's id. Returns the user's id, or `None` (writing nothing) when there was no
    /// unexpired value or its user is gone.
    async fn reset_password(
        &self,
        identifier: &str,
        password_hash: &str,
        now: i64,
        revoke_grants: bool,
        audit: &AuditEvent,
    ) -> Result<Option<String>, StoreError>;

    /// A user's unexpired sessions, newest first.
    async fn user_sessions(&self, user_id: &str, now: i64) -> Result<Vec<Session>, StoreError>;

    /// Ends a user's sessions, except the one with id `keep` when given; returns how many.
    async fn delete_user_sessions(
        &self,
        user_id: &str,
        keep: Option<&str>,
    ) -> Result<u64, StoreError>;

    /// Every client, oldest first.
    async fn list_clients(&self) -> Result<Vec<Client>, StoreError>;

    /// Disables or re-enables a client; `false` when there is no such client.
    async fn set_client_disabled(
        &self,
        client_id: &str,
        disabled: bool,
        now: i64,
    ) -> Result<bool, StoreError>;

    /// Deletes a client and everything issued to it; `false` when there is no such client.
    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError>;

    /// Live grants (unrevoked, unexpired token families that have issued tokens), newest
    /// first, optionally only a user's and/or a client's.
    async fn grants(
        &self,
        user_id: Option<&str>,
        client_id: Option<&str>,
        now: i64,
    ) -> Result<Vec<GrantSummary>, StoreError>;

    /// Revokes a user's grants (all, or one client's) and forgets the matching consents, so
    /// the client must ask again; returns how many grants were revoked.
    async fn revoke_grants(
        &self,
        user_id: &str,
        client_id: Option<&str>,
        now: i64,
    ) -> Result<u64, StoreError>;

    /// Every signing key: the current one first, then retired keys, most recently retired
    /// first.
    async fn signing_keys(&self) -> Result<Vec<SigningKey>, StoreError>;

    /// Adds a signing key and retires every other current key, in one transaction.
    async fn rotate_signing_key(&self, key: &SigningKey, now: i64) -> Result<(), StoreError>;

    /// Deletes keys retired before `retired_before`; returns how many.
    async fn prune_signing_keys(&self, retired_before: i64) -> Result<u64, StoreError>;

    /// Appends to the security log.
    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError>;

    /// The newest `limit` security log entries, newest first.
    async fn audit_events(&self, limit: u32) -> Result<Vec<AuditEvent>, StoreError>;

    // Connected accounts (issue 19): a user's tokens at other services, sealed (SECURITY V1),
    // refreshed single-flight (V4). Deleting a user deletes their connections.

    /// Stores the tokens of a completed connect (creating the connection, or replacing the
    /// tokens of an existing one), active, with a new generation and no refresh claim, and
    /// appends `audit`, in one transaction.
    async fn save_connection(
        &self,
        user_id: &str,
        connection_id: &str,
        tokens: &SealedTokens,
        now: i64,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// A user's connection, with whether the user is disabled (a disabled user's connections
    /// are locked).
    async fn connection(
        &self,
        user_id: &str,
        connection_id: &str,
    ) -> Result<Option<(ConnectionRecord, bool)>, StoreError>;

    /// A user's connections, by connection id.
    async fn user_connections(&self, user_id: &str) -> Result<Vec<ConnectionRecord>, StoreError>;

    /// Every connection of every user (for re-sealing under a new vault key).
    async fn all_connections(&self) -> Result<Vec<ConnectionRecord>, StoreError>;

    /// The ids of the vault keys any stored connection is sealed under.
    async fn connection_key_ids(&self) -> Result<Vec<String>, StoreError>;

    /// Claims the refresh of a connection until `until`: `true` when the connection is still
    /// of `generation`, active, and holds no claim that runs past `now`. Atomic across
    /// instances (module documentation).
    async fn claim_connection_refresh(
        &self,
        user_id: &str,
        connection_id: &str,
        generation: i64,
        now: i64,
        until: i64,
    ) -> Result<bool, StoreError>;

    /// Ends a refresh of the connection as of `generation`, with `audit`, in one transaction:
    /// with `tokens`, stores them (active); without, marks the connection
    /// [`ConnectionStatus::ReconnectNeeded`](crate::model::ConnectionStatus). Either way the
    /// generation grows and the claim ends. `false`, writing nothing, when the connection is
    /// gone or no longer of `generation`.
    async fn finish_connection_refresh(
        &self,
        user_id: &str,
        connection_id: &str,
        generation: i64,
        tokens: Option<&SealedTokens>,
        now: i64,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError>;

    /// Gives up a claim made for `generation` without changing the tokens (the provider could
    /// not be reached), so the next caller may try.
    async fn release_connection_refresh(
        &self,
        user_id: &str,
        connection_id: &str,
        generation: i64,
    ) -> Result<(), StoreError>;

    /// Records that a token of the connection was used at `now`.
    async fn touch_connection(
        &self,
        user_id: &str,
        connection_id: &str,
        now: i64,
    ) -> Result<(), StoreError>;

    /// Replaces the sealed tokens of a connection still of `generation` by the same tokens
    /// sealed under another key (vault key rotation); the generation stays. `false` when the
    /// connection changed meanwhile (its new tokens are sealed under the current key anyway).
    async fn reseal_connection(
        &self,
        user_id: &str,
        connection_id: &str,
        generation: i64,
        tokens: &SealedTokens,
    ) -> Result<bool, StoreError>;

    /// Deletes a connection and appends `audit`, in one transaction; `false`, writing nothing,
    /// when there was none.
    async fn delete_connection(
        &self,
        user_id: &str,
        connection_id: &str,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError>;
    // ----- The console (SECURITY A1) -----------------------------------------------------------

    /// Makes `user_id` an admin of the console (`admin`) or takes that back; returns whether
    /// the user exists. Idempotent. Admins named in the configuration are not stored here.
    async fn set_admin(&self, user_id: &str, admin: bool, now: i64) -> Result<bool, StoreError>;

    /// Whether `user_id` was made an admin with [`Store::set_admin`].
    async fn is_admin(&self, user_id: &str) -> Result<bool, StoreError>;

    /// Users whose email or name contains `query` (case-insensitively for ASCII letters; `%`,
    /// `_` and `\` match themselves), oldest first, `limit` from `offset`; with the number of
    /// all matches. An empty query matches everyone.
    async fn search_users(
        &self,
        query: &str,
        offset: u64,
        limit: u32,
    ) -> Result<(Vec<User>, u64), StoreError>;

    /// Security log entries that match `filter`, newest first, `limit` from `offset`.
    async fn search_audit(
        &self,
        filter: &AuditFilter,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError>;

    /// How many security log entries of each kind fell in each of `buckets` consecutive
    /// windows of `bucket_seconds`, the first starting at `since`. Only non-zero counts.
    async fn audit_histogram(
        &self,
        since: i64,
        bucket_seconds: i64,
        buckets: u32,
    ) -> Result<Vec<AuditCount>, StoreError>;

    /// What the console's overview counts, at `now`.
    async fn console_counts(&self, now: i64) -> Result<ConsoleCounts, StoreError>;

    /// Every client that has had tokens issued: when last, and for how many users.
    async fn client_usage(&self) -> Result<Vec<ClientUsage>, StoreError>;
    // --- Machine and enterprise clients (issue 21: client_credentials, ID-JAG) ---

    /// Stores a grant made at the token endpoint without an authorization code (a machine's
    /// `client_credentials` token, whose `access.user_id` is `None`, or a redeemed ID-JAG), in
    /// one transaction: its token family (`access.family_id`, of `access`'s client, user,
    /// scopes and resource, ending at `family_expires_at`), the access token, the refresh
    /// token when given, and `audit`. A failure leaves nothing written.
    async fn issue_direct_grant(
        &self,
        access: &AccessToken,
        refresh: Option<&RefreshToken>,
        family_expires_at: i64,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;
}

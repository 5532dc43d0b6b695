//! Rate limits on sign-in, sign-up, client registration and the token endpoint (SECURITY S26,
//! M5): fixed-window counters per limit and key (a client address, or an account), answered
//! with 429 and `Retry-After` when over the limit.
//!
//! The counters live in a [`RateLimitStore`]:
//!
//! - [`MemoryRateLimits`], in this process: each instance counts on its own (the default);
//! - [`StoreRateLimits`], in the database through [`Store::rate_limit_hit`]: shared by every
//!   instance on the database;
//! - `RedisRateLimits` (feature `redis`), in Redis: shared by every instance on the Redis.
//!
//! A backend that fails or takes longer than [`BACKEND_TIMEOUT`] is logged (a warning, at
//! most once a minute) and the request goes through: the limits slow down abuse, and their
//! storage being down must not take sign-in, registration or the token endpoint down with it
//! (fail open; never a 5xx). After a failure the backend is left alone for [`BACKEND_BACKOFF`],
//! so that an outage does not add a timeout to every request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use mcpauth_core::{ErrorCode, OAuthError, Store, StoreError, secret};

/// How long a request waits for the rate-limit backend before going through uncounted.
pub const BACKEND_TIMEOUT: Duration = Duration::from_secs(2);

/// How long requests go through uncounted, without asking the backend, after it failed.
pub const BACKEND_BACKOFF: Duration = Duration::from_secs(5);

/// Request limits per time window. A limit of 0 turns that limit off. (`[rate_limits]` in the
/// server's configuration, which refuses unknown keys there: it adds keys of its own to the
/// table, so this type does not refuse them.)
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct RateLimitOptions {
    /// Length of the counting window, in seconds.
    pub window: i64,
    /// Sign-in attempts per client address.
    pub sign_in_per_ip: u32,
    /// Failed sign-in attempts per account.
    pub sign_in_per_account: u32,
    /// Sign-ups per client address.
    pub sign_up_per_ip: u32,
    /// Client registrations per client address.
    pub register_per_ip: u32,
    /// Token requests per client address.
    pub token_per_ip: u32,
    /// Requests for a password-reset or verification mail per client address (SECURITY S30).
    pub email_per_ip: u32,
    /// Requests for a password-reset or verification mail per email address, whether or not
    /// it has an account (S30).
    pub email_per_address: u32,
    /// Requests to the console and its API per client address (SECURITY A1).
    pub admin_per_ip: u32,
}

impl Default for RateLimitOptions {
    fn default() -> Self {
        Self {
            window: 60,
            sign_in_per_ip: 30,
            sign_in_per_account: 10,
            sign_up_per_ip: 10,
            register_per_ip: 30,
            token_per_ip: 600,
            email_per_ip: 10,
            email_per_address: 3,
            admin_per_ip: 300,
        }
    }
}

impl RateLimitOptions {
    /// No limits at all (benchmarks, trusted networks).
    pub fn disabled() -> Self {
        Self {
            window: 60,
            sign_in_per_ip: 0,
            sign_in_per_account: 0,
            sign_up_per_ip: 0,
            register_per_ip: 0,
            token_per_ip: 0,
            email_per_ip: 0,
            email_per_address: 0,
            admin_per_ip: 0,
        }
    }
}

/// Why a [`RateLimitStore`] could not count.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RateLimitStoreError(pub String);

impl From<StoreError> for RateLimitStoreError {
    fn from(error: StoreError) -> Self {
        Self(error.to_string())
    }
}

/// Where rate-limit counters are kept: fixed windows of `window` seconds, one counter per key
/// and window. Implementations shared by several instances must count atomically.
#[async_trait]
pub trait RateLimitStore: Send + Sync + 'static {
    /// Counts one request for `key` in the window that starts at `window_start` (Unix
    /// seconds) and lasts `window` seconds; returns the window's count including it.
    async fn hit(
        &self,
        key: &str,
        window_start: i64,
        window: i64,
    ) -> Result<u32, RateLimitStoreError>;

    /// The count of `key` in the window that starts at `window_start`, without counting a
    /// request; 0 when nothing was counted in it.
    async fn count(&self, key: &str, window_start: i64) -> Result<u32, RateLimitStoreError>;
}

/// Which [`RateLimitStore`] an [`McpAuth`](crate::McpAuth) counts in
/// ([`McpAuthOptions::rate_limit_backend`](crate::McpAuthOptions::rate_limit_backend)).
#[derive(Clone, Default)]
pub enum RateLimitBackend {
    /// [`MemoryRateLimits`]: in this process only.
    #[default]
    Memory,
    /// [`StoreRateLimits`] on the server's own store: shared by every instance on the database.
    Store,
    /// Any other backend, e.g. `RedisRateLimits`.
    Custom(Arc<dyn RateLimitStore>),
}

impl std::fmt::Debug for RateLimitBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Memory => "Memory",
            Self::Store => "Store",
            Self::Custom(_) => "Custom",
        })
    }
}

/// Counters in this process's memory: limits per instance. Windows of the past are dropped
/// once more than 100 000 counters have piled up.
#[derive(Default)]
pub struct MemoryRateLimits {
    windows: Mutex<HashMap<String, (i64, u32)>>,
}

impl MemoryRateLimits {
    /// No counters yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn add(&self, key: &str, window_start: i64, add: u32) -> u32 {
        let mut windows = match self.windows.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if windows.len() > 100_000 {
            windows.retain(|_, (start, _)| *start >= window_start);
        }
        if add == 0 {
            return match windows.get(key) {
                Some((start, count)) if *start == window_start => *count,
                _ => 0,
            };
        }
        let entry = windows.entry(key.to_owned()).or_insert((window_start, 0));
        if entry.0 != window_start {
            *entry = (window_start, 0);
        }
        entry.1 = entry.1.saturating_add(add);
        entry.1
    }
}

#[async_trait]
impl RateLimitStore for MemoryRateLimits {
    async fn hit(
        &self,
        key: &str,
        window_start: i64,
        _window: i64,
    ) -> Result<u32, RateLimitStoreError> {
        Ok(self.add(key, window_start, 1))
    }

    async fn count(&self, key: &str, window_start: i64) -> Result<u32, RateLimitStoreError> {
        Ok(self.add(key, window_start, 0))
    }
}

/// Counters in the database ([`Store::rate_limit_hit`], the `"rateLimit"` table): every
/// instance on the same database shares them. Windows are deleted by
/// [`Store::purge_expired`] once over.
pub struct StoreRateLimits {
    store: Arc<dyn Store>,
}

impl StoreRateLimits {
    /// Counters in `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }
}

#[async_trait]
impl RateLimitStore for StoreRateLimits {
    async fn hit(
        &self,
        key: &str,
        window_start: i64,
        window: i64,
    ) -> Result<u32, RateLimitStoreError> {
        Ok(self
            .store
            .rate_limit_hit(key, window_start, window_start.saturating_add(window))
            .await?)
    }

    async fn count(&self, key: &str, window_start: i64) -> Result<u32, RateLimitStoreError> {
        Ok(self.store.rate_limit_count(key, window_start).await?)
    }
}

#[cfg(feature = "redis")]
pub use self::redis_backend::RedisRateLimits;

#[cfg(feature = "redis")]
mod redis_backend {
    use std::time::Duration;

    use async_trait::async_trait;
    use redis::AsyncCommands;
    use redis::aio::{ConnectionManager, ConnectionManagerConfig};

    use super::{RateLimitStore, RateLimitStoreError};

    /// Counters in Redis, shared by every instance that uses the same Redis and key prefix:
    /// one key per limit, client key and window (`{prefix}{key}:{window_start}`), counted with
    /// `INCR` and given a time to live with `EXPIRE` in one `MULTI`/`EXEC` transaction, so
    /// concurrent requests from any instance each get a distinct count and counters vanish
    /// by themselves.
    ///
    /// The connection is made on first use and remade after a failure; while Redis cannot be
    /// reached, counting fails (and the limiter lets requests through).
    pub struct RedisRateLimits {
        connection: ConnectionManager,
        prefix: String,
    }

    fn backend_error(error: redis::RedisError) -> RateLimitStoreError {
        RateLimitStoreError(format!("Redis: {error}"))
    }

    impl RedisRateLimits {
        /// Counters in the Redis at `url` (`redis://[user:password@]host[:port][/db]`, or
        /// `rediss://` for TLS), under keys starting with `prefix` (e.g. `"mcpauth:"`), which
        /// separates deployments sharing one Redis. Connects lazily: only a malformed URL
        /// fails here. Must be called inside a Tokio runtime.
        pub fn new(url: &str, prefix: impl Into<String>) -> Result<Self, RateLimitStoreError> {
            // The URL may carry a password: never echo it.
            let client = redis::Client::open(url)
                .map_err(|error| RateLimitStoreError(format!("invalid Redis URL: {error}")))?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(1)))
                .set_response_timeout(Some(Duration::from_secs(1)))
                .set_number_of_retries(2);
            let connection =
                ConnectionManager::new_lazy_with_config(client, config).map_err(backend_error)?;
            Ok(Self {
                connection,
                prefix: prefix.into(),
            })
        }

        /// Checks that Redis answers (`PING`).
        pub async fn ping(&self) -> Result<(), RateLimitStoreError> {
            let mut connection = self.connection.clone();
            let _: String = redis::cmd("PING")
                .query_async(&mut connection)
                .await
                .map_err(backend_error)?;
            Ok(())
        }

        fn key(&self, key: &str, window_start: i64) -> String {
            format!("{}{key}:{window_start}", self.prefix)
        }
    }

    #[async_trait]
    impl RateLimitStore for RedisRateLimits {
        async fn hit(
            &self,
            key: &str,
            window_start: i64,
            window: i64,
        ) -> Result<u32, RateLimitStoreError> {
            let key = self.key(key, window_start);
            let mut connection = self.connection.clone();
            // The window's key outlives its last hit by a window at most.
            let (count,): (u32,) = redis::pipe()
                .atomic()
                .incr(&key, 1)
                .expire(&key, window.max(1))
                .ignore()
                .query_async(&mut connection)
                .await
                .map_err(backend_error)?;
            Ok(count)
        }

        async fn count(&self, key: &str, window_start: i64) -> Result<u32, RateLimitStoreError> {
            let mut connection = self.connection.clone();
            let count: Option<u32> = connection
                .get(self.key(key, window_start))
                .await
                .map_err(backend_error)?;
            Ok(count.unwrap_or(0))
        }
    }
}

/// Which limit a request counts against.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Limit {
    SignInPerIp,
    SignInPerAccount,
    SignUpPerIp,
    RegisterPerIp,
    TokenPerIp,
    EmailPerIp,
    EmailPerAddress,
    AdminPerIp,
}

impl Limit {
    /// The limit's name in metrics.
    fn name(self) -> &'static str {
        match self {
            Limit::SignInPerIp => "sign_in_per_ip",
            Limit::SignInPerAccount => "sign_in_per_account",
            Limit::SignUpPerIp => "sign_up_per_ip",
            Limit::RegisterPerIp => "register_per_ip",
            Limit::TokenPerIp => "token_per_ip",
            Limit::EmailPerIp => "email_per_ip",
            Limit::EmailPerAddress => "email_per_address",
            Limit::AdminPerIp => "admin_per_ip",
        }
    }
}

/// The limits of [`RateLimitOptions`], counted in a [`RateLimitStore`].
pub(crate) struct RateLimiter {
    options: RateLimitOptions,
    backend: Arc<dyn RateLimitStore>,
    /// How long to wait for the backend ([`BACKEND_TIMEOUT`]).
    timeout: Duration,
    /// How long to leave a failed backend alone ([`BACKEND_BACKOFF`]).
    backoff: Duration,
    outage: Mutex<Outage>,
    /// Refusals per hour (start of the hour, count), the last week's, for the console's chart:
    /// this process's only (the audit log does not take one row per refusal, which a flood
    /// would fill).
    refusals: Mutex<Vec<(i64, u64)>>,
}

/// What the limiter remembers of backend failures (real time, not the configured clock).
#[derive(Default)]
struct Outage {
    /// Until when the backend is not asked.
    retry_at: Option<Instant>,
    /// When a failure was last logged as a warning.
    warned_at: Option<Instant>,
}

impl RateLimiter {
    pub(crate) fn new(options: RateLimitOptions, backend: Arc<dyn RateLimitStore>) -> Self {
        Self {
            options,
            backend,
            timeout: BACKEND_TIMEOUT,
            backoff: BACKEND_BACKOFF,
            outage: Mutex::new(Outage::default()),
            refusals: Mutex::new(Vec::new()),
        }
    }

    /// The limit's maximum per window and the key it counts `key` under. Accounts are counted
    /// by a hash of the (normalised) email, so shared counters hold no email addresses.
    fn limit_of(&self, limit: Limit, key: &str) -> (u32, String) {
        let o = &self.options;
        match limit {
            Limit::SignInPerIp => (o.sign_in_per_ip, format!("sign-in:{key}")),
            Limit::SignInPerAccount => (
                o.sign_in_per_account,
                format!("sign-in-account:{}", secret::hash_token(key)),
            ),
            Limit::SignUpPerIp => (o.sign_up_per_ip, format!("sign-up:{key}")),
            Limit::RegisterPerIp => (o.register_per_ip, format!("register:{key}")),
            Limit::TokenPerIp => (o.token_per_ip, format!("token:{key}")),
            Limit::EmailPerIp => (o.email_per_ip, format!("email:{key}")),
            Limit::EmailPerAddress => (
                o.email_per_address,
                format!("email-address:{}", secret::hash_token(key)),
            ),
            Limit::AdminPerIp => (o.admin_per_ip, format!("admin:{key}")),
        }
    }

    /// Counts one request; `Err` when it is over the limit.
    pub(crate) async fn hit(&self, limit: Limit, key: &str, now: i64) -> Result<(), RateLimited> {
        self.count(limit, key, now, true).await
    }

    /// Checks a limit without counting a request: `Err` when the limit is already reached.
    pub(crate) async fn check(&self, limit: Limit, key: &str, now: i64) -> Result<(), RateLimited> {
        self.count(limit, key, now, false).await
    }

    async fn count(&self, limit: Limit, key: &str, now: i64, add: bool) -> Result<(), RateLimited> {
        let (max, key) = self.limit_of(limit, key);
        if max == 0 {
            return Ok(());
        }
        if self.backing_off() {
            return Ok(());
        }
        let window = self.options.window.max(1);
        let start = now - now.rem_euclid(window);
        let counted = if add {
            tokio::time::timeout(self.timeout, self.backend.hit(&key, start, window)).await
        } else {
            tokio::time::timeout(self.timeout, self.backend.count(&key, start)).await
        };
        let count = match counted {
            Ok(Ok(count)) => count,
            Ok(Err(error)) => {
                self.fail_open(&error.to_string());
                return Ok(());
            }
            Err(_) => {
                self.fail_open(&format!("no answer within {:?}", self.timeout));
                return Ok(());
            }
        };
        if count > max || (!add && count == max) {
            metrics::counter!("mcpauth_rate_limit_refusals_total", "limit" => limit.name())
                .increment(1);
            self.count_refusal(now);
            Err(RateLimited {
                retry_after: start + window - now,
            })
        } else {
            Ok(())
        }
    }

    fn count_refusal(&self, now: i64) {
        let hour = now - now.rem_euclid(3600);
        let mut refusals = match self.refusals.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        match refusals.last_mut() {
            Some((last, count)) if *last == hour => *count += 1,
            _ => refusals.push((hour, 1)),
        }
        refusals.retain(|(start, _)| *start > hour - 8 * 86_400);
    }

    /// How many requests this process refused in each of `buckets` windows of
    /// `bucket_seconds` (whole hours) from `since`.
    pub(crate) fn refusals(&self, since: i64, bucket_seconds: i64, buckets: u32) -> Vec<u64> {
        let mut counts = vec![0; buckets as usize];
        let refusals = match self.refusals.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        for (start, count) in refusals.iter() {
            if *start >= since {
                let index =
                    usize::try_from((start - since) / bucket_seconds.max(1)).unwrap_or(usize::MAX);
                if let Some(slot) = counts.get_mut(index) {
                    *slot += count;
                }
            }
        }
        counts
    }

    fn outage(&self) -> std::sync::MutexGuard<'_, Outage> {
        match self.outage.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// True while a failed backend is left alone.
    fn backing_off(&self) -> bool {
        self.outage()
            .retry_at
            .is_some_and(|retry_at| Instant::now() < retry_at)
    }

    /// Notes a backend failure, leaving the backend alone for a while, and logs it: a warning
    /// at most once a minute, the rest at debug level.
    fn fail_open(&self, error: &str) {
        let now = Instant::now();
        let mut outage = self.outage();
        outage.retry_at = Some(now + self.backoff);
        if outage
            .warned_at
            .is_none_or(|warned| now.duration_since(warned) >= Duration::from_secs(60))
        {
            outage.warned_at = Some(now);
            drop(outage);
            tracing::warn!(
                %error,
                "rate-limit backend failed: requests go through uncounted until it recovers"
            );
        } else {
            drop(outage);
            tracing::debug!(%error, "rate-limit backend failed");
        }
    }
}

/// A request over its limit; answered with 429 and `Retry-After`.
#[derive(Debug, Clone, Copy)]
pub struct RateLimited {
    /// Seconds until the limit resets.
    pub retry_after: i64,
}

impl RateLimited {
    pub(crate) fn error(self) -> OAuthError {
        OAuthError::new(
            ErrorCode::TooManyRequests,
            format!(
                "too many requests; try again in {} seconds",
                self.retry_after
            ),
        )
    }

    /// Adds `Retry-After` to a response.
    pub(crate) fn annotate(self, mut response: Response) -> Response {
        if let Ok(value) = HeaderValue::from_str(&self.retry_after.max(1).to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    struct Failing;

    #[async_trait]
    impl RateLimitStore for Failing {
        async fn hit(&self, _: &str, _: i64, _: i64) -> Result<u32, RateLimitStoreError> {
            Err(RateLimitStoreError("down".into()))
        }
        async fn count(&self, _: &str, _: i64) -> Result<u32, RateLimitStoreError> {
            Err(RateLimitStoreError("down".into()))
        }
    }

    struct Hanging;

    #[async_trait]
    impl RateLimitStore for Hanging {
        async fn hit(&self, _: &str, _: i64, _: i64) -> Result<u32, RateLimitStoreError> {
            std::future::pending().await
        }
        async fn count(&self, _: &str, _: i64) -> Result<u32, RateLimitStoreError> {
            std::future::pending().await
        }
    }

    fn options() -> RateLimitOptions {
        RateLimitOptions {
            window: 60,
            register_per_ip: 2,
            sign_in_per_account: 2,
            ..RateLimitOptions::default()
        }
    }

    /// 30 s into the window [1_699_999_980, 1_700_000_040).
    const NOW: i64 = 1_700_000_010;

    #[tokio::test]
    async fn memory_counts_per_key_and_window() {
        let limiter = RateLimiter::new(options(), Arc::new(MemoryRateLimits::new()));
        assert!(limiter.hit(Limit::RegisterPerIp, "a", NOW).await.is_ok());
        assert!(limiter.hit(Limit::RegisterPerIp, "a", NOW).await.is_ok());
        let limited = limiter
            .hit(Limit::RegisterPerIp, "a", NOW)
            .await
            .unwrap_err();
        assert_eq!(limited.retry_after, 30);
        assert!(limiter.hit(Limit::RegisterPerIp, "b", NOW).await.is_ok());
        assert!(limiter.hit(Limit::TokenPerIp, "a", NOW).await.is_ok());
        assert!(
            limiter
                .hit(Limit::RegisterPerIp, "a", NOW + 30)
                .await
                .is_ok(),
            "a new window"
        );
    }

    #[tokio::test]
    async fn check_does_not_count_and_refuses_at_the_limit() {
        let limiter = RateLimiter::new(options(), Arc::new(MemoryRateLimits::new()));
        for _ in 0..5 {
            assert!(
                limiter
                    .check(Limit::SignInPerAccount, "e", NOW)
                    .await
                    .is_ok()
            );
        }
        limiter
            .hit(Limit::SignInPerAccount, "e", NOW)
            .await
            .unwrap();
        assert!(
            limiter
                .check(Limit::SignInPerAccount, "e", NOW)
                .await
                .is_ok()
        );
        limiter
            .hit(Limit::SignInPerAccount, "e", NOW)
            .await
            .unwrap();
        assert!(
            limiter
                .check(Limit::SignInPerAccount, "e", NOW)
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_failing_or_hanging_backend_lets_requests_through() {
        for backend in [
            Arc::new(Failing) as Arc<dyn RateLimitStore>,
            Arc::new(Hanging),
        ] {
            let mut limiter = RateLimiter::new(options(), backend);
            limiter.timeout = Duration::from_millis(50);
            for _ in 0..5 {
                assert!(limiter.hit(Limit::RegisterPerIp, "a", NOW).await.is_ok());
                assert!(
                    limiter
                        .check(Limit::SignInPerAccount, "e", NOW)
                        .await
                        .is_ok()
                );
            }
        }
    }

    /// Counts calls, failing the first `fail` of them.
    #[derive(Default)]
    struct Flaky {
        calls: std::sync::atomic::AtomicU32,
        fail: u32,
    }

    #[async_trait]
    impl RateLimitStore for Flaky {
        async fn hit(&self, _: &str, _: i64, _: i64) -> Result<u32, RateLimitStoreError> {
            let call = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if call < self.fail {
                Err(RateLimitStoreError("down".into()))
            } else {
                Ok(99)
            }
        }
        async fn count(&self, _: &str, _: i64) -> Result<u32, RateLimitStoreError> {
            Ok(0)
        }
    }

    #[tokio::test]
    async fn a_failed_backend_is_left_alone_for_a_while_then_asked_again() {
        let flaky = Arc::new(Flaky {
            fail: 1,
            ..Flaky::default()
        });
        let mut limiter = RateLimiter::new(options(), flaky.clone());
        limiter.backoff = Duration::from_millis(200);
        assert!(limiter.hit(Limit::RegisterPerIp, "a", NOW).await.is_ok());
        assert!(limiter.hit(Limit::RegisterPerIp, "a", NOW).await.is_ok());
        assert_eq!(
            flaky.calls.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "not asked while backing off"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(
            limiter.hit(Limit::RegisterPerIp, "a", NOW).await.is_err(),
            "asked again, and its count counts"
        );
        assert_eq!(flaky.calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_zero_limit_is_off_and_never_asks_the_backend() {
        let limiter = RateLimiter::new(RateLimitOptions::disabled(), Arc::new(Hanging));
        let started = std::time::Instant::now();
        assert!(limiter.hit(Limit::TokenPerIp, "a", NOW).await.is_ok());
        assert!(started.elapsed() < BACKEND_TIMEOUT);
    }
}

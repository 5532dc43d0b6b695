//! Validated access tokens kept in memory, so the hot path (every protected request) usually
//! costs a SHA-256 and a map lookup instead of a database query — without letting revocation
//! lag behind more than a configured bound.
//!
//! An entry is the [`McpSession`] of a token that passed every check, tagged with two numbers
//! read *before* the database lookup that produced it:
//!
//! - the store's revocation epoch ([`Store::revocation_epoch`]), which grows in the same
//!   transaction as every change that can end a token early, in any process sharing the
//!   database. The cache re-reads it at most once per
//!   [`TokenCacheOptions::revocation_check_interval`] (one query shared by every request in that
//!   interval; requests that find it older wait for the re-read), so a revocation made by another
//!   instance or by the admin CLI takes effect here within that interval;
//! - a local generation, bumped at once when this process revokes something, so that its own
//!   revocations take effect immediately.
//!
//! An entry is used only while both numbers are current and the token has not expired. Tagging
//! with numbers read before the lookup means a lookup that raced a revocation can only produce
//! an entry that is already stale.
//!
//! [`Store::revocation_epoch`]: mcpauth_core::Store::revocation_epoch

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mcpauth_core::{Store, StoreError};

use crate::session::McpSession;

/// How the validated-token cache behaves ([`crate::McpAuthOptions::token_cache`]; `[token_cache]`
/// in the server's configuration, the interval as `revocation_check_ms`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenCacheOptions {
    /// The most tokens kept (default 10 000); 0 turns the cache off, and every request then
    /// asks the database. When full, expired and stale entries go first, then arbitrary ones.
    pub capacity: usize,
    /// The longest a revocation made by another process (another instance, the admin CLI) can
    /// go unnoticed here (default 25 ms). Revocations made through this process take effect at
    /// once. Zero re-reads the revocation epoch on every request.
    #[serde(
        rename = "revocation_check_ms",
        with = "crate::option_formats::duration_ms"
    )]
    pub revocation_check_interval: Duration,
}

impl Default for TokenCacheOptions {
    fn default() -> Self {
        Self {
            capacity: 10_000,
            revocation_check_interval: Duration::from_millis(25),
        }
    }
}

/// The numbers an entry must match to be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    epoch: i64,
    local: u64,
}

/// `checked_at` value meaning "the epoch has never been read".
const NEVER: u64 = u64::MAX;

pub(crate) struct TokenCache {
    options: TokenCacheOptions,
    sessions: StampedMap<McpSession>,
    /// The revocation epoch last read from the store.
    epoch: AtomicI64,
    /// When the read that produced `epoch` began, in nanoseconds since `started`.
    checked_at: AtomicU64,
    /// Bumped by this process's own revocations.
    local: AtomicU64,
    started: Instant,
    /// Serialises epoch re-reads: one query, however many requests wait for it.
    refresh: tokio::sync::Mutex<()>,
}

impl TokenCache {
    pub(crate) fn new(options: TokenCacheOptions) -> Self {
        Self {
            sessions: StampedMap::new(options.capacity),
            options,
            epoch: AtomicI64::new(0),
            checked_at: AtomicU64::new(NEVER),
            local: AtomicU64::new(0),
            started: Instant::now(),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    /// The current stamp ([`Self::stamp`]), or `None` when the cache is off (capacity 0):
    /// callers then ask the store every time.
    pub(crate) async fn stamp_if_enabled(
        &self,
        store: &dyn Store,
    ) -> Result<Option<Stamp>, StoreError> {
        if self.options.capacity == 0 {
            return Ok(None);
        }
        self.stamp(store).await.map(Some)
    }

    fn elapsed_nanos(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(NEVER - 1)
    }

    fn fresh_epoch(&self) -> Option<i64> {
        let checked_at = self.checked_at.load(Ordering::Acquire);
        if checked_at == NEVER {
            return None;
        }
        let age = self.elapsed_nanos().saturating_sub(checked_at);
        let limit = u64::try_from(self.options.revocation_check_interval.as_nanos()).unwrap_or(0);
        (age <= limit && limit > 0).then(|| self.epoch.load(Ordering::Acquire))
    }

    /// The stamp current now: the revocation epoch as of at most the check interval ago
    /// (re-read from the store when older) and the local generation.
    async fn stamp(&self, store: &dyn Store) -> Result<Stamp, StoreError> {
        let local = self.local.load(Ordering::Acquire);
        if let Some(epoch) = self.fresh_epoch() {
            return Ok(Stamp { epoch, local });
        }
        let arrived = self.elapsed_nanos();
        let _guard = self.refresh.lock().await;
        // Someone else's re-read that began after this request arrived is as good as our own.
        let checked_at = self.checked_at.load(Ordering::Acquire);
        if checked_at != NEVER && checked_at >= arrived {
            return Ok(Stamp {
                epoch: self.epoch.load(Ordering::Acquire),
                local,
            });
        }
        let began = self.elapsed_nanos();
        let epoch = store.revocation_epoch().await?;
        self.epoch.store(epoch, Ordering::Release);
        self.checked_at.store(began, Ordering::Release);
        Ok(Stamp { epoch, local })
    }

    /// The cached session of `token_hash`, if it is current under `stamp` and unexpired at
    /// `now`.
    pub(crate) fn get(&self, token_hash: &str, stamp: Stamp, now: i64) -> Option<McpSession> {
        let found = self
            .sessions
            .get(token_hash, stamp)
            .filter(|session| session.expires_at > now);
        let outcome = if found.is_some() { "hit" } else { "miss" };
        metrics::counter!("mcpauth_token_cache_lookups_total", "outcome" => outcome).increment(1);
        found
    }

    /// Keeps `session`, validated by a lookup that began under `stamp`.
    pub(crate) fn insert(&self, token_hash: String, session: McpSession, stamp: Stamp) {
        self.sessions.insert(token_hash, session, stamp);
    }

    /// This process revoked something: every entry made before now is stale.
    pub(crate) fn revoked_here(&self) {
        self.local.fetch_add(1, Ordering::AcqRel);
    }
}

/// Copies keyed by id (validated tokens' sessions, clients), each used only while the stamp it
/// was read under is current, so a change announced through the revocation epoch reaches them
/// all alike. Bounded: when full, entries under other stamps go first, then arbitrary ones.
pub(crate) struct StampedMap<V> {
    capacity: usize,
    entries: RwLock<HashMap<String, (V, Stamp)>>,
}

impl<V: Clone> StampedMap<V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: RwLock::new(HashMap::new()),
        }
    }

    pub(crate) fn get(&self, key: &str, stamp: Stamp) -> Option<V> {
        let entries = self.entries.read().ok()?;
        let (value, stamped) = entries.get(key)?;
        (*stamped == stamp).then(|| value.clone())
    }

    pub(crate) fn insert(&self, key: String, value: V, stamp: Stamp) {
        if self.capacity == 0 {
            return;
        }
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, (_, stamped)| *stamped == stamp);
            if entries.len() >= self.capacity {
                let excess = entries.len() + 1 - self.capacity * 3 / 4;
                let victims: Vec<String> = entries.keys().take(excess).cloned().collect();
                for victim in victims {
                    entries.remove(&victim);
                }
            }
        }
        entries.insert(key, (value, stamp));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn session(id: &str, expires_at: i64) -> McpSession {
        McpSession {
            token_id: id.to_owned(),
            user_id: Some("u".to_owned()),
            client_id: "c".to_owned(),
            scopes: vec!["mcp:tools".to_owned()],
            audience: "https://rs.test/api/mcp".to_owned(),
            expires_at,
            dpop_jkt: None,
            connections: Default::default(),
        }
    }

    fn cache(capacity: usize) -> TokenCache {
        TokenCache::new(TokenCacheOptions {
            capacity,
            revocation_check_interval: Duration::from_secs(60),
        })
    }

    #[test]
    fn entries_need_the_current_stamp_and_an_unexpired_token() {
        let cache = cache(10);
        let stamp = Stamp { epoch: 3, local: 0 };
        cache.insert("h".into(), session("t", 100), stamp);
        assert_eq!(cache.get("h", stamp, 99).unwrap().token_id, "t");
        assert!(cache.get("h", stamp, 100).is_none(), "expired");
        assert!(cache.get("h", Stamp { epoch: 4, local: 0 }, 50).is_none());
        assert!(cache.get("h", Stamp { epoch: 3, local: 1 }, 50).is_none());
        assert!(cache.get("other", stamp, 50).is_none());
    }

    #[test]
    fn a_local_revocation_changes_the_stamp_at_once() {
        let cache = cache(10);
        let before = cache.local.load(Ordering::Acquire);
        cache.revoked_here();
        assert_eq!(cache.local.load(Ordering::Acquire), before + 1);
    }

    #[test]
    fn capacity_is_a_bound() {
        let cache = cache(8);
        let stamp = Stamp { epoch: 0, local: 0 };
        for i in 0..100 {
            cache.insert(format!("h{i}"), session("t", 1_000), stamp);
            let len = cache.sessions.entries.read().unwrap().len();
            assert!(len <= 8, "{len} entries");
        }
        assert!(
            cache.get("h99", stamp, 0).is_some(),
            "the newest entry stays"
        );
    }

    #[test]
    fn stamped_copies_need_the_current_stamp_and_are_bounded() {
        let map = StampedMap::new(4);
        let stamp = Stamp { epoch: 1, local: 0 };
        map.insert("a".into(), 1, stamp);
        assert_eq!(map.get("a", stamp), Some(1));
        assert_eq!(map.get("a", Stamp { epoch: 2, local: 0 }), None);
        for i in 0..20 {
            map.insert(format!("k{i}"), i, stamp);
        }
        assert!(map.entries.read().unwrap().len() <= 4);
        assert_eq!(map.get("k19", stamp), Some(19));
    }

    #[test]
    fn a_zero_interval_never_trusts_a_previous_read() {
        let cache = TokenCache::new(TokenCacheOptions {
            capacity: 10,
            revocation_check_interval: Duration::ZERO,
        });
        cache
            .checked_at
            .store(cache.elapsed_nanos(), Ordering::Release);
        assert!(cache.fresh_epoch().is_none());
    }
}

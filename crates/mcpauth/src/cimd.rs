//! Client ID Metadata Documents (CIMD): clients whose `client_id` is an https URL serving their
//! metadata, fetched safely (SECURITY M3) and kept in the store for every instance.
//!
//! - [`ClientMetadataFetcher`] is the seam that fetches a document; [`HttpFetcher`] is the
//!   real one (reqwest over rustls). Its promises: it connects only to public addresses (the
//!   resolver it gives reqwest returns only those, so the address connected to is the address
//!   checked and DNS rebinding has nothing to slip through; literal IP hosts are checked
//!   before any connection), follows no redirects, accepts only a 200 (or a 304 answering
//!   `If-None-Match`), reads at most the size limit, gives up after the timeouts, and lets
//!   each host have a bounded number of fetches at once and per minute.
//! - `ClientDocuments` (crate-private) turns a `client_id` into a [`Client`]: from the store while its cache
//!   entry is fresh, else fetched (revalidated with its `ETag`), checked by the core rules
//!   ([`mcpauth_core::cimd`]) and stored. Failures and invalid documents are never stored.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use mcpauth_core::cimd::{self, CimdError};
use mcpauth_core::model::{Client, ClientDocument};
use mcpauth_core::{Clock, Store, StoreError};

/// How client metadata documents are accepted and fetched (`[cimd]` in the server's
/// configuration; the timeouts as `connect_timeout_ms` and `timeout_ms`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CimdOptions {
    /// Accept `client_id`s that are document URLs (default true).
    pub enabled: bool,
    /// Hosts (`chatgpt.com`) or URL prefixes (`https://example.com/clients/`) whose documents
    /// are accepted; empty: every host not denied.
    pub allowed: Vec<String>,
    /// Hosts or URL prefixes whose documents are refused (checked first).
    pub denied: Vec<String>,
    /// Accept document URLs with a query (default false).
    pub allow_query: bool,
    /// Fetch from loopback addresses too. For tests and local development only: off by
    /// default, and the server warns at start when it is on.
    pub allow_loopback: bool,
    /// A PEM file of extra certificate authorities trusted for fetching, besides the system's
    /// (for tests with a throw-away CA).
    pub extra_ca_file: Option<std::path::PathBuf>,
    /// The largest document accepted, in bytes (default 5 KiB).
    pub max_document_bytes: usize,
    /// Time to connect (default 2 s).
    #[serde(
        rename = "connect_timeout_ms",
        with = "crate::option_formats::duration_ms"
    )]
    pub connect_timeout: Duration,
    /// Time for the whole fetch, body included (default 5 s).
    #[serde(rename = "timeout_ms", with = "crate::option_formats::duration_ms")]
    pub timeout: Duration,
    /// Bounds on how long a document is used before it is fetched again, in seconds (default
    /// 300 and 86400); within them, the document's `Cache-Control: max-age` decides.
    pub min_cache_seconds: i64,
    /// See `min_cache_seconds`.
    pub max_cache_seconds: i64,
    /// Fetches one host may have in flight at once (default 2).
    pub per_host_concurrency: usize,
    /// Fetches one host may get per minute (default 20).
    pub per_host_per_minute: u32,
}

impl Default for CimdOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            allowed: Vec::new(),
            denied: Vec::new(),
            allow_query: false,
            allow_loopback: false,
            extra_ca_file: None,
            max_document_bytes: cimd::DEFAULT_MAX_DOCUMENT_BYTES,
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(5),
            min_cache_seconds: cimd::DEFAULT_MIN_CACHE_SECONDS,
            max_cache_seconds: cimd::DEFAULT_MAX_CACHE_SECONDS,
            per_host_concurrency: 2,
            per_host_per_minute: 20,
        }
    }
}

/// What a fetch brought back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// A 200 with its body (at most the size limit) and caching headers.
    Document {
        /// The body.
        body: Vec<u8>,
        /// The `ETag` header.
        etag: Option<String>,
        /// The `Cache-Control` header.
        cache_control: Option<String>,
    },
    /// A 304: the document sent with the `ETag` given is still current.
    NotModified {
        /// The `Cache-Control` header.
        cache_control: Option<String>,
    },
}

/// Fetches client metadata documents. An implementation must connect only to addresses the
/// server's policy allows, follow no redirects, accept only a 200 (or a 304 when `etag` was
/// sent), and bound the size and time of a fetch; every failure is a [`CimdError::Fetch`]
/// whose text says why.
#[async_trait]
pub trait ClientMetadataFetcher: Send + Sync {
    /// Fetches the document at `url` (already checked by
    /// [`mcpauth_core::cimd::parse_document_url`]), revalidating with `If-None-Match: etag`
    /// when given.
    async fn fetch(&self, url: &url::Url, etag: Option<&str>) -> Result<Fetched, CimdError>;
}

/// True when the fetcher may connect to `ip`.
fn address_allowed(ip: IpAddr, allow_loopback: bool) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    };
    cimd::is_public_ip(ip) || (allow_loopback && ip.is_loopback())
}

/// reqwest's resolver for the fetcher: the system's answer, keeping only allowed addresses,
/// so that reqwest can connect to nothing else.
struct PublicResolver {
    allow_loopback: bool,
}

impl reqwest::dns::Resolve for PublicResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        let allow_loopback = self.allow_loopback;
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let allowed: Vec<SocketAddr> = found
                .filter(|addr| address_allowed(addr.ip(), allow_loopback))
                .collect();
            if allowed.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// Fetches per host: how many now, and how many in the current minute.
#[derive(Default)]
struct HostLoad {
    in_flight: usize,
    window_start: Option<Instant>,
    in_window: u32,
}

/// Admits a fetch from a host while it is within its limits; dropping it ends the fetch.
struct HostPermit {
    hosts: Arc<Mutex<HashMap<String, HostLoad>>>,
    host: String,
}

impl Drop for HostPermit {
    fn drop(&mut self) {
        if let Ok(mut hosts) = self.hosts.lock()
            && let Some(load) = hosts.get_mut(&self.host)
        {
            load.in_flight = load.in_flight.saturating_sub(1);
        }
    }
}

/// The real fetcher: https through reqwest, whose resolver hands it only allowed addresses.
pub struct HttpFetcher {
    client: reqwest::Client,
    allow_loopback: bool,
    max_bytes: usize,
    timeout: Duration,
    per_host_concurrency: usize,
    per_host_per_minute: u32,
    hosts: Arc<Mutex<HashMap<String, HostLoad>>>,
}

impl HttpFetcher {
    /// A fetcher with these options; `extra_roots` are PEM certificate authorities trusted
    /// besides the system's.
    pub fn new(options: &CimdOptions, extra_roots: Option<&[u8]>) -> Result<Self, String> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .https_only(true)
            .connect_timeout(options.connect_timeout)
            .timeout(options.timeout)
            .user_agent(concat!("mcpauth/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(PublicResolver {
                allow_loopback: options.allow_loopback,
            }));
        if let Some(pem) = extra_roots {
            let roots = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| e.to_string())?;
            builder = builder.tls_certs_merge(roots);
        }
        Ok(Self {
            client: builder.build().map_err(|e| e.to_string())?,
            allow_loopback: options.allow_loopback,
            max_bytes: options.max_document_bytes,
            timeout: options.timeout,
            per_host_concurrency: options.per_host_concurrency.max(1),
            per_host_per_minute: options.per_host_per_minute.max(1),
            hosts: Arc::default(),
        })
    }

    fn admit(&self, host: &str) -> Result<HostPermit, CimdError> {
        let busy = || CimdError::Fetch(format!("too many fetches from {host}; try again later"));
        let mut hosts = self.hosts.lock().map_err(|_| busy())?;
        if hosts.len() > 10_000 {
            // Forget idle hosts so that many hosts cannot grow the table without end.
            hosts.retain(|_, load| load.in_flight > 0);
        }
        let load = hosts.entry(host.to_owned()).or_default();
        let now = Instant::now();
        if load
            .window_start
            .is_none_or(|start| now.duration_since(start) >= Duration::from_secs(60))
        {
            load.window_start = Some(now);
            load.in_window = 0;
        }
        if load.in_flight >= self.per_host_concurrency || load.in_window >= self.per_host_per_minute
        {
            return Err(busy());
        }
        load.in_flight += 1;
        load.in_window += 1;
        Ok(HostPermit {
            hosts: self.hosts.clone(),
            host: host.to_owned(),
        })
    }

    fn describe(&self, error: &reqwest::Error) -> CimdError {
        let why = if error.is_timeout() {
            format!("it took longer than {} s", self.timeout.as_secs_f32())
        } else if error.is_connect() {
            "its server could not be reached at a public address".to_owned()
        } else {
            "the connection failed".to_owned()
        };
        tracing::info!(%error, "client metadata document fetch failed");
        CimdError::Fetch(why)
    }
}

fn header(response: &reqwest::Response, name: reqwest::header::HeaderName) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

#[async_trait]
impl ClientMetadataFetcher for HttpFetcher {
    async fn fetch(&self, url: &url::Url, etag: Option<&str>) -> Result<Fetched, CimdError> {
        let fail = |why: &str| CimdError::Fetch(why.to_owned());
        let ip = match url.host() {
            Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
            Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
            Some(url::Host::Domain(_)) => None,
            None => return Err(fail("the URL names no host")),
        };
        // reqwest connects to a literal address without asking the resolver: check it here.
        if ip.is_some_and(|ip| !address_allowed(ip, self.allow_loopback)) {
            return Err(fail("its address is not a public address"));
        }
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let _permit = self.admit(&host)?;
        let mut request = self
            .client
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(etag) = etag {
            request = request.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        let mut response = request.send().await.map_err(|e| self.describe(&e))?;
        let status = response.status();
        let cache_control = header(&response, reqwest::header::CACHE_CONTROL);
        if status == reqwest::StatusCode::NOT_MODIFIED && etag.is_some() {
            return Ok(Fetched::NotModified { cache_control });
        }
        if status.is_redirection() {
            return Err(fail(&format!(
                "it answered {status} (a redirect); redirects are not followed"
            )));
        }
        if status != reqwest::StatusCode::OK {
            return Err(fail(&format!("it answered {status}; only 200 is accepted")));
        }
        if let Some(kind) = header(&response, reqwest::header::CONTENT_TYPE) {
            let essence = kind
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            // JSON documents on raw file hosts are served as text/plain.
            if essence != "application/json"
                && !essence.ends_with("+json")
                && essence != "text/plain"
            {
                return Err(fail(&format!(
                    "it was served as {essence}, not application/json"
                )));
            }
        }
        let too_large = || fail(&format!("it is larger than {} bytes", self.max_bytes));
        if response
            .content_length()
            .is_some_and(|length| length > self.max_bytes as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.describe(&e))? {
            if body.len() + chunk.len() > self.max_bytes {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched::Document {
            body,
            etag: header(&response, reqwest::header::ETAG),
            cache_control,
        })
    }
}

/// Why a client could not be found or made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientLookupError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The `client_id` is a document URL that was refused, or whose document could not be
    /// fetched or was invalid.
    #[error(transparent)]
    Document(#[from] CimdError),
}

/// True when a policy entry (a host, or a URL prefix) covers this document URL.
fn listed(entries: &[String], raw: &str, host: &str) -> bool {
    entries.iter().any(|entry| {
        if cimd::is_document_url(entry) {
            raw.starts_with(entry.as_str())
        } else {
            entry.eq_ignore_ascii_case(host)
        }
    })
}

/// Clients from metadata documents: the fetcher, the policy and the store's cache.
pub(crate) struct ClientDocuments {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    fetcher: Arc<dyn ClientMetadataFetcher>,
    options: CimdOptions,
    /// Document URLs pinned in `trusted_clients`: consent skipped, allow-list bypassed.
    pinned: HashSet<String>,
}

impl ClientDocuments {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        fetcher: Arc<dyn ClientMetadataFetcher>,
        options: CimdOptions,
        pinned: HashSet<String>,
    ) -> Self {
        Self {
            store,
            clock,
            fetcher,
            options,
            pinned,
        }
    }

    /// The client the document at `client_id` describes (disabled or not): the stored one
    /// while its cache entry is fresh, else fetched, checked and stored.
    pub(crate) async fn client(&self, client_id: &str) -> Result<Client, ClientLookupError> {
        if !self.options.enabled {
            return Err(CimdError::Policy(
                "this server does not accept client metadata documents".to_owned(),
            )
            .into());
        }
        let url = cimd::parse_document_url(client_id, self.options.allow_query)?;
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let pinned = self.pinned.contains(client_id);
        if listed(&self.options.denied, client_id, &host)
            || (!pinned
                && !self.options.allowed.is_empty()
                && !listed(&self.options.allowed, client_id, &host))
        {
            return Err(CimdError::Policy(host).into());
        }
        let now = self.clock.now();
        let cached = self.store.client_document(client_id).await?;
        if let Some((client, entry)) = &cached
            && entry.expires_at > now
        {
            return Ok(client.clone());
        }
        // What the store keeps across fetches: an operator's `disabled` and the creation time.
        let kept = cached
            .as_ref()
            .map(|(client, _)| (client.disabled, client.created_at));
        let etag = cached.as_ref().and_then(|(_, entry)| entry.etag.as_deref());
        let (mut client, etag, cache_control) = match self.fetcher.fetch(&url, etag).await? {
            Fetched::NotModified { cache_control } => match cached {
                Some((client, entry)) => (client, entry.etag, cache_control),
                None => return Err(CimdError::Fetch("an unexpected 304".to_owned()).into()),
            },
            Fetched::Document {
                body,
                etag,
                cache_control,
            } => {
                let registration = cimd::validate_document(client_id, &body)?;
                let client = cimd::document_client(client_id, registration, pinned, now);
                (client, etag, cache_control)
            }
        };
        let lifetime = cimd::cache_lifetime(
            cache_control.as_deref(),
            self.options.min_cache_seconds,
            self.options.max_cache_seconds,
        );
        let entry = ClientDocument {
            client_id: client_id.to_owned(),
            etag,
            fetched_at: now,
            expires_at: now + lifetime,
        };
        if self.store.save_client_document(&client, &entry).await? {
            tracing::info!(
                client_id,
                "client metadata document changed its redirect URIs: consents withdrawn"
            );
        }
        if let Some((disabled, created_at)) = kept {
            client.disabled = disabled;
            client.created_at = created_at;
        }
        Ok(client)
    }
}

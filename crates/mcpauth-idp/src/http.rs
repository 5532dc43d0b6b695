//! The HTTP client behind `openidconnect` and `oauth2`: their `AsyncHttpClient` hook over the
//! workspace's reqwest, so no second HTTP stack is linked. Provider URLs come from the
//! operator's configuration (not from clients), but answers are still bounded: connect and
//! total timeouts, no redirects (a token endpoint that redirects is refused, never followed),
//! and at most [`MAX_BODY`] bytes read.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures_util::StreamExt;
use openidconnect::{AsyncHttpClient, HttpRequest, HttpResponse};

use crate::ConfigError;

/// The most of a response body read (discovery documents, JWKS, token and user answers).
const MAX_BODY: usize = 1024 * 1024;

/// Timeouts of requests to a provider.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Time to establish a connection.
    pub connect_timeout: Duration,
    /// Time for a whole request and its answer.
    pub timeout: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(15),
        }
    }
}

/// Why a request to a provider failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Connecting, sending or reading failed (or timed out).
    #[error("request to the provider failed: {0}")]
    Transport(#[from] reqwest::Error),
    /// The answer was larger than [`MAX_BODY`].
    #[error("the provider's answer is too large")]
    TooLarge,
    /// The request could not be built.
    #[error("bad request to the provider: {0}")]
    Build(String),
}

/// The client both provider kinds use.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
}

impl Http {
    pub(crate) fn new(options: &HttpOptions) -> Result<Self, ConfigError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(options.connect_timeout)
            .timeout(options.timeout)
            .user_agent(concat!("mcpauth/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError(format!("HTTP client: {e}")))?;
        Ok(Self { client })
    }

    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends `request` and reads at most [`MAX_BODY`] bytes of the answer.
    pub(crate) async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let (parts, body) = request.into_parts();
        let url = reqwest::Url::parse(&parts.uri.to_string())
            .map_err(|e| HttpError::Build(e.to_string()))?;
        let response = self
            .client
            .request(parts.method, url)
            .headers(parts.headers)
            .body(body)
            .send()
            .await?;
        read_limited(response).await
    }
}

/// The answer as an `http::Response`, its body read up to [`MAX_BODY`].
pub(crate) async fn read_limited(response: reqwest::Response) -> Result<HttpResponse, HttpError> {
    let status = response.status();
    let headers = response.headers().clone();
    if response
        .content_length()
        .is_some_and(|n| n > MAX_BODY as u64)
    {
        return Err(HttpError::TooLarge);
    }
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if body.len() + chunk.len() > MAX_BODY {
            return Err(HttpError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    let mut out = HttpResponse::new(body);
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    Ok(out)
}

impl<'c> AsyncHttpClient<'c> for Http {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}

//! Answers given before the body is read are still heard (issue 18 item 7): a client that
//! writes its whole request body before it reads — as most HTTP clients do, with or without
//! `Expect: 100-continue` — reads the server's 4xx even when the server refused the request
//! without reading the body (too large, cross-site, no token, rate limited). The server drains
//! the rest of the body before closing (`mcpauth_server::linger`), for a bounded time and
//! amount.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcpauth_server::linger::{LINGER_BYTES, LINGER_TIME};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::common::*;

/// The body every refused request carries: far over the 64 KiB the account API reads, and more
/// than the kernel buffers on both ends hold, so the client cannot finish writing unless the
/// server reads.
const BODY_BYTES: usize = 1024 * 1024;

/// One kind of request the server answers without reading (all of) its body.
#[derive(Clone, Copy, Debug)]
enum Refused {
    /// JSON over the account API's 64 KiB: 413 after reading 64 KiB.
    JsonTooLarge,
    /// A form over 64 KiB to the sign-up page.
    FormTooLarge,
    /// A cross-site JSON sign-in: 403 before the body is read.
    CrossSite,
    /// A `text/plain` body to the MCP endpoint without a token: 401 before the body is read.
    WrongTypeNoToken,
    /// Dynamic registration over its rate limit: 429 before the body is read.
    RateLimited,
}

impl Refused {
    const ALL: [Refused; 5] = [
        Refused::JsonTooLarge,
        Refused::FormTooLarge,
        Refused::CrossSite,
        Refused::WrongTypeNoToken,
        Refused::RateLimited,
    ];

    fn head(self, expect_continue: bool, content_length: u64) -> String {
        let (path, content_type, extra) = match self {
            Refused::JsonTooLarge => ("/api/auth/sign-in/email", "application/json", ""),
            Refused::FormTooLarge => ("/sign-up", "application/x-www-form-urlencoded", ""),
            Refused::CrossSite => (
                "/api/auth/sign-in/email",
                "application/json",
                "Origin: https://elsewhere.example\r\n",
            ),
            Refused::WrongTypeNoToken => ("/api/mcp", "text/plain", ""),
            Refused::RateLimited => ("/api/auth/mcp/register", "application/json", ""),
        };
        let expect = if expect_continue {
            "Expect: 100-continue\r\n"
        } else {
            ""
        };
        format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\n\
             Content-Length: {content_length}\r\n{extra}{expect}\r\n"
        )
    }
}

/// The status of the first final (non-1xx) answer in `bytes`, once its head is complete.
fn final_status(mut bytes: &[u8]) -> Option<u16> {
    loop {
        let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = std::str::from_utf8(&bytes[..end]).ok()?;
        let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
        if !(100..200).contains(&status) {
            return Some(status);
        }
        bytes = &bytes[end + 4..];
    }
}

/// Sends `head`, then the whole `body`, and only then reads: the final status, or what went
/// wrong (a failed write, with what was read). The body goes in 16 KiB pieces a millisecond
/// apart, as over a real network, so the server answers while it is still coming. With
/// `expect_continue` the client waits (up to a second, as curl does) for `100 Continue` first,
/// and sends no body if a final answer comes instead.
async fn send_whole_then_read(
    address: SocketAddr,
    head: &str,
    body: &[u8],
    expect_continue: bool,
) -> Result<u16, String> {
    let mut stream = TcpStream::connect(address)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut answer = Vec::new();
    let mut buf = [0_u8; 4096];
    let written = async {
        stream.write_all(head.as_bytes()).await?;
        if expect_continue
            && let Ok(read) =
                tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await
        {
            answer.extend_from_slice(&buf[..read?]);
            if final_status(&answer).is_some() {
                return Ok(());
            }
        }
        for piece in body.chunks(16 * 1024) {
            stream.write_all(piece).await?;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Ok::<(), std::io::Error>(())
    }
    .await;
    loop {
        if let Some(status) = final_status(&answer) {
            // A client that fails to send its body reports that failure, not the answer
            // (Node's fetch: `EPIPE`; curl: "connection closed").
            return match written {
                Ok(()) => Ok(status),
                Err(error) => Err(format!("write: {error}, although {status} came")),
            };
        }
        match stream.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(error) => {
                return Err(format!(
                    "read: {error} (write: {written:?}), read so far: {:?}",
                    String::from_utf8_lossy(&answer)
                ));
            }
        }
    }
    Err(format!(
        "closed before a final answer (write: {written:?}), read: {:?}",
        String::from_utf8_lossy(&answer)
    ))
}

/// 200 refused requests, each with a 1 MiB body written whole before the answer is read, half
/// of them with `Expect: 100-continue`: every client gets to write its whole body and reads its
/// status line and its 4xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_bodies_written_whole_still_read_their_4xx() {
    let (_app, address) = spawn_app_with_address(|_| {}).await;
    // Rate limits on (the kit turns them off), registration limited to one a window.
    let (_limited, limited_address) = spawn_app_with_address(|settings| {
        settings.rate_limits.enabled = true;
        settings.rate_limits.limits.register_per_ip = 1;
    })
    .await;
    let body: Arc<[u8]> = vec![b'a'; BODY_BYTES].into();
    // A few at a time: enough for answers and drains to overlap, not enough to starve the
    // shared machine.
    let slots = Arc::new(Semaphore::new(8));
    let mut requests = Vec::new();
    for i in 0..200 {
        let kind = Refused::ALL[i % Refused::ALL.len()];
        let expect_continue = (i / Refused::ALL.len()) % 2 == 1;
        let target = match kind {
            Refused::RateLimited => limited_address,
            _ => address,
        };
        let head = kind.head(expect_continue, BODY_BYTES as u64);
        let body = body.clone();
        let slot = slots.clone().acquire_owned().await.unwrap();
        requests.push(tokio::spawn(async move {
            let outcome = tokio::time::timeout(
                Duration::from_secs(20),
                send_whole_then_read(target, &head, &body, expect_continue),
            )
            .await
            .unwrap_or_else(|_| Err("no answer in 20 s".to_owned()));
            drop(slot);
            (kind, expect_continue, outcome)
        }));
    }
    let mut failures = Vec::new();
    for request in requests {
        let (kind, expect_continue, outcome) = request.await.unwrap();
        match outcome {
            Ok(status) if (400..500).contains(&status) => {}
            other => failures.push(format!("{kind:?} (expect: {expect_continue}): {other:?}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 200 got no 4xx:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A refused request whose small body arrived with it keeps its connection: the next request
/// on the same connection is answered (the unread body is not taken for the next request).
#[tokio::test]
async fn a_refused_small_body_keeps_the_connection_alive() {
    let (_app, address) = spawn_app_with_address(|_| {}).await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    let body = br#"{"email":"a@example.com","password":"x"}"#;
    let refused = Refused::CrossSite.head(false, body.len() as u64);
    stream.write_all(refused.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answers = String::new();
    let mut buf = [0_u8; 4096];
    while answers.matches("HTTP/1.1 ").count() < 2 || !answers.ends_with("ok") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("both answers come")
            .unwrap();
        assert!(n > 0, "the connection stays open: {answers:?}");
        answers.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(answers.starts_with("HTTP/1.1 403"), "{answers:?}");
    assert!(answers.contains("HTTP/1.1 200"), "{answers:?}");
}

/// Reads until the server's FIN (sent right after the answer) or a reset: the final status.
async fn read_answer(mut reader: tokio::net::tcp::OwnedReadHalf) -> Option<u16> {
    let mut answer = Vec::new();
    let mut buf = [0_u8; 4096];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return final_status(&answer),
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
}

/// Starts a refused request with a body that never ends, written by `write` in `chunk`s with
/// `pause` between them until a write fails (the server has closed the socket): the final
/// status, the bytes the client got to send and how long after the head the writes failed.
async fn endless_body(chunk: usize, pause: Duration) -> (Option<u16>, usize, Duration) {
    let (_app, address) = spawn_app_with_address(|_| {}).await;
    let stream = TcpStream::connect(address).await.unwrap();
    let (reader, mut writer) = stream.into_split();
    let head = Refused::CrossSite.head(false, 1 << 40);
    writer.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let writing = tokio::spawn(async move {
        let chunk = vec![b'a'; chunk];
        let mut sent = 0_usize;
        while writer.write_all(&chunk).await.is_ok() {
            sent += chunk.len();
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
        }
        (sent, started.elapsed())
    });
    let status = tokio::time::timeout(LINGER_TIME * 3, read_answer(reader))
        .await
        .expect("the answer and the FIN come");
    let (sent, cut_off) = tokio::time::timeout(LINGER_TIME * 3, writing)
        .await
        .expect("the writer is cut off")
        .unwrap();
    (status, sent, cut_off)
}

/// A client that sends an endless body fast reads its answer, and the server stops reading
/// after [`LINGER_BYTES`]: the connection is closed well before the time cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_fast_body_is_drained_only_up_to_the_byte_cap() {
    let (status, sent, cut_off) = endless_body(64 * 1024, Duration::ZERO).await;
    assert_eq!(status, Some(403));
    // At least what was drained (less the chunk being written at the close), at most that plus
    // what the kernel buffers on both ends held at the close.
    assert!(
        (LINGER_BYTES - 64 * 1024..LINGER_BYTES + 32 * 1024 * 1024).contains(&sent),
        "the client got to send {sent} bytes"
    );
    assert!(cut_off < LINGER_TIME, "cut off after {cut_off:?}");
}

/// A client that trickles an endless body reads its answer, and its connection is closed once
/// [`LINGER_TIME`] is up, although bytes keep coming.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_trickled_body_is_drained_only_for_the_linger_time() {
    // A byte more often than the idle limit, so only the total time ends the drain.
    let (status, _, cut_off) = endless_body(1, Duration::from_millis(100)).await;
    assert_eq!(status, Some(403));
    assert!(
        (LINGER_TIME..LINGER_TIME + Duration::from_secs(2)).contains(&cut_off),
        "cut off after {cut_off:?}"
    );
}

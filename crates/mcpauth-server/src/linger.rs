//! Lingering close (nginx's `lingering_close`, Apache's `lingering_close`): a connection the
//! server closes is first half-closed, then what the client still sends is read and thrown
//! away, for at most [`LINGER_BYTES`] and [`LINGER_TIME`], before the socket is closed.
//!
//! Why: a handler may answer without reading the request body (too large, rate limited,
//! refused before the body matters). hyper then stops reading and closes the connection after
//! the answer. Closing a socket whose receive buffer still holds unread bytes makes the kernel
//! send RST instead of FIN, and a client still writing its body gets `EPIPE`/`ECONNRESET` — and
//! the RST can discard the answer before the client reads it. Reading the rest of the body
//! first lets the client finish writing and read the answer, as it would from nginx.
//!
//! hyper calls `poll_shutdown` on its IO when it closes a connection it has answered on (after
//! flushing the answer), never on the error paths (a header read timeout, a broken
//! connection), so slow or silent clients cut off by those timeouts are not kept any longer.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The most a closing connection reads and discards: the largest body the server reads at all
/// (the MCP endpoints' 4 MiB) twice over, so that a client sending a body just over a limit
/// reads its 413. A client sending more than this is cut off (and may see a reset).
pub const LINGER_BYTES: usize = 8 * 1024 * 1024;

/// The longest a closing connection lingers, however slowly the client trickles.
pub const LINGER_TIME: Duration = Duration::from_secs(5);

/// How long a lingering connection waits for the client's next bytes (or its own close) before
/// closing: a client that has stopped sending but keeps its socket open does not hold the
/// connection for the whole [`LINGER_TIME`].
pub const LINGER_IDLE: Duration = Duration::from_secs(1);

/// A stream whose `poll_shutdown` half-closes, then drains what the peer still sends (see the
/// module documentation). Reads and writes pass through untouched.
pub struct LingeringClose<S> {
    inner: S,
    state: State,
}

enum State {
    Open,
    Draining {
        /// Bytes that may still be discarded.
        left: usize,
        /// The end of the whole linger.
        deadline: Pin<Box<Sleep>>,
        /// The end of the wait for the client's next bytes.
        idle: Pin<Box<Sleep>>,
    },
    Closed,
}

impl<S> LingeringClose<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            state: State::Open,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for LingeringClose<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for LingeringClose<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Open => {
                    // FIN after the answer: the client learns the answer is complete even
                    // while it is still sending.
                    let shut = ready!(Pin::new(&mut this.inner).poll_shutdown(cx));
                    if shut.is_err() {
                        this.state = State::Closed;
                        return Poll::Ready(shut);
                    }
                    let now = Instant::now();
                    this.state = State::Draining {
                        left: LINGER_BYTES,
                        deadline: Box::pin(tokio::time::sleep_until(now + LINGER_TIME)),
                        idle: Box::pin(tokio::time::sleep_until(now + LINGER_IDLE)),
                    };
                }
                State::Draining {
                    left,
                    deadline,
                    idle,
                } => {
                    if deadline.as_mut().poll(cx).is_ready() || idle.as_mut().poll(cx).is_ready() {
                        this.state = State::Closed;
                        continue;
                    }
                    let mut scratch = [0_u8; 8192];
                    let mut buf = ReadBuf::new(&mut scratch);
                    match ready!(Pin::new(&mut this.inner).poll_read(cx, &mut buf)) {
                        Ok(()) if !buf.filled().is_empty() => {
                            *left = left.saturating_sub(buf.filled().len());
                            if *left == 0 {
                                this.state = State::Closed;
                            } else {
                                idle.as_mut().reset(Instant::now() + LINGER_IDLE);
                            }
                        }
                        // The client closed its side (or broke the connection): nothing
                        // unread is left to turn the close into a reset.
                        Ok(()) | Err(_) => this.state = State::Closed,
                    }
                }
                State::Closed => return Poll::Ready(Ok(())),
            }
        }
    }
}

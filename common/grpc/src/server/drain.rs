//! A shutdown that ends. tonic's graceful shutdown waits for every connection to close, and
//! some never do: a client that connected and sent nothing (HTTP/2 waits for its preface), one
//! that does not acknowledge the GOAWAY ping, a long-lived stream. So every accepted connection
//! is tracked, and the ones still open when the shutdown timeout runs out fail their next read
//! or write, which ends them.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{oneshot, watch};
use tonic::transport::server::Connected;

/// How long the server may take to notice the closed connections once they are closed.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// A connection that has sent nothing this long after it was accepted is closed, so that
/// silent connections cannot pile up until the process runs out of file descriptors (the
/// gateway gives a request's headers as long).
pub(super) const FIRST_BYTES_WITHIN: Duration = Duration::from_secs(10);

/// The connections of one server, closable all at once.
#[derive(Clone)]
pub(super) struct Connections(Arc<watch::Sender<bool>>);

impl Connections {
    pub(super) fn new() -> Self {
        Self(Arc::new(watch::channel(false).0))
    }

    /// `io`, tracked: it fails once [`Connections::close_all`] is called.
    pub(super) fn track<IO>(&self, io: IO) -> Closable<IO> {
        let mut closed = self.0.subscribe();
        Closable {
            io,
            // Also completes when the server is gone (the sender dropped).
            closed: Box::pin(async move {
                let _ = closed.wait_for(|closed| *closed).await;
            }),
            is_closed: false,
            silent_until: Some(Box::pin(tokio::time::sleep(FIRST_BYTES_WITHIN))),
        }
    }

    /// How many tracked connections are still open.
    pub(super) fn open(&self) -> usize {
        self.0.receiver_count()
    }

    pub(super) fn close_all(&self) {
        self.0.send_replace(true);
    }
}

/// Runs `serving` (a server with graceful shutdown) to its end; once `stopping` fires, at most
/// `timeout` longer before the connections still open are closed.
pub(super) async fn bounded<E>(
    serving: impl Future<Output = Result<(), E>>,
    stopping: oneshot::Receiver<()>,
    timeout: Duration,
    connections: &Connections,
) -> Result<(), E> {
    let deadline = async {
        match stopping.await {
            Ok(()) => tokio::time::sleep(timeout).await,
            // The server ended without a shutdown: nothing to bound.
            Err(_) => std::future::pending().await,
        }
    };
    tokio::pin!(serving);
    tokio::select! {
        served = &mut serving => served,
        () = deadline => {
            tracing::warn!(
                connections = connections.open(),
                timeout_secs = timeout.as_secs_f64(),
                "shutdown timeout reached; closing the connections still open"
            );
            connections.close_all();
            // Closed connections end at their next poll; should one linger anyway, the
            // process must still stop.
            tokio::time::timeout(CLOSE_GRACE, serving)
                .await
                .unwrap_or(Ok(()))
        }
    }
}

/// A connection that fails its reads and writes once its server closes it, and its reads if
/// it sent nothing within [`FIRST_BYTES_WITHIN`].
pub(super) struct Closable<IO> {
    io: IO,
    closed: Pin<Box<dyn Future<Output = ()> + Send>>,
    is_closed: bool,
    /// Until the first bytes arrive.
    silent_until: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<IO> Closable<IO> {
    /// Whether the connection was closed; registers the task to be woken when it is.
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if !self.is_closed && self.closed.as_mut().poll(cx).is_ready() {
            self.is_closed = true;
        }
        if self.is_closed {
            Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the server is shutting down",
            ))
        } else {
            Ok(())
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Closable<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check(cx)?;
        if let Some(deadline) = self.silent_until.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the connection sent nothing in time",
            )));
        }
        let before = buf.filled().len();
        let read = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.silent_until = None;
        }
        read
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Closable<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check(cx)?;
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.check(cx)?;
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check(cx)?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl<IO: Connected> Connected for Closable<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_tracked_connection_fails_once_closed_and_wakes_its_reader() {
        let (client, server) = tokio::io::duplex(64);
        let connections = Connections::new();
        let mut tracked = connections.track(server);
        assert_eq!(connections.open(), 1);
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 8];
            tracked.read(&mut buf).await
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!reader.is_finished(), "reads wait for data until closed");
        connections.close_all();
        let read = tokio::time::timeout(Duration::from_secs(1), reader)
            .await
            .expect("the blocked read ends when closed")
            .expect("reader task");
        assert_eq!(
            read.expect_err("a closed connection fails").kind(),
            io::ErrorKind::ConnectionAborted
        );
        assert_eq!(
            connections.open(),
            0,
            "the ended connection is no longer counted"
        );
        drop(client);
    }

    #[tokio::test]
    async fn an_open_connection_passes_data_through() {
        let (mut client, server) = tokio::io::duplex(64);
        let connections = Connections::new();
        let mut tracked = connections.track(server);
        client.write_all(b"ping").await.expect("write");
        let mut buf = [0u8; 4];
        tracked.read_exact(&mut buf).await.expect("read");
        assert_eq!(&buf, b"ping");
        tracked.write_all(b"pong").await.expect("write back");
        client.read_exact(&mut buf).await.expect("read back");
        assert_eq!(&buf, b"pong");
    }

    #[tokio::test]
    async fn bounded_returns_after_the_timeout_even_if_serving_never_ends() {
        let (stop, stopping) = oneshot::channel();
        let connections = Connections::new();
        let serving = std::future::pending::<Result<(), ()>>();
        stop.send(()).expect("stop");
        let started = std::time::Instant::now();
        let outcome = tokio::time::timeout(
            Duration::from_secs(5),
            bounded(serving, stopping, Duration::from_millis(100), &connections),
        )
        .await
        .expect("bounded returns");
        assert_eq!(outcome, Ok(()));
        assert!(started.elapsed() >= Duration::from_millis(100));
    }
}

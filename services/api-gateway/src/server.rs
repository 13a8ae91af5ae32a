//! The HTTP/1 server: hyper directly (axum::serve exposes neither a header read timeout nor
//! header limits nor a bounded drain), with a graceful shutdown that waits at most
//! `shutdown_timeout` for open connections, and the error envelope even for the requests hyper
//! refuses before any handler sees them.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::Router;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use metachat_proto::error::{ApiError, ErrorCode};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::config::GatewayConfig;
use crate::limits::{MAX_HEADER_BYTES, MAX_HEADERS, MAX_URI_BYTES};

/// Hyper's own header-count limit, above ours so that our middleware (which can answer with
/// the envelope and the client's request id) is what normally refuses; past it hyper refuses
/// and [`EnvelopeIo`] rewrites its answer.
const HYPER_MAX_HEADERS: usize = 4 * MAX_HEADERS;

/// Serves `app` on `listener` until `shutdown` completes, then lets open connections finish
/// their requests for at most `config.shutdown_timeout` and closes the rest.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    config: &GatewayConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_headers(HYPER_MAX_HEADERS);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: wait instead of spinning.
                        tracing::warn!(error = %error, "accepting a connection failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                // Who is on the other end, for the per-address rate limits.
                let app = app
                    .clone()
                    .layer(axum::Extension(crate::ratelimit::PeerAddr(peer.ip())));
                let service = TowerToHyperService::new(app);
                let connection = http.serve_connection(EnvelopeIo::new(stream), service);
                let connection = graceful.watch(connection);
                connections.spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(error = %error, "connection ended with an error");
                    }
                });
            }
            // Reap finished connections so the set does not grow with every one ever served.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let open = connections.len();
    tracing::info!(
        open_connections = open,
        timeout_s = config.shutdown_timeout.as_secs_f64(),
        "api gateway draining"
    );
    if tokio::time::timeout(config.shutdown_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            open_connections = connections.len(),
            "shutdown timeout reached; closing the remaining connections"
        );
    }
    connections.shutdown().await;
}

/// The connection's socket, passing everything through except hyper's automatic answers to
/// requests it could not parse (a malformed request line or header, a non-numeric
/// Content-Length, a URI over 65534 bytes, too many or too large headers): hyper writes those
/// as a bare status line with `content-length: 0` and closes, with no hook to change them, so
/// they are replaced here by the error envelope with a fresh `x-request-id`.
///
/// They are recognised as a write that starts a 400/414/431 response head without an
/// `x-request-id` header: every response the router produces carries one, and response
/// bodies (JSON, or the static docs) never contain a raw CR LF, so no body can look like one.
pub(crate) struct EnvelopeIo {
    inner: TokioIo<TcpStream>,
    /// The replacement being written, how much of it is out, and how many bytes of hyper's
    /// head it stands for.
    replacing: Option<(Vec<u8>, usize, usize)>,
}

impl EnvelopeIo {
    fn new(stream: TcpStream) -> Self {
        Self {
            inner: TokioIo::new(stream),
            replacing: None,
        }
    }
}

impl Read for EnvelopeIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl Write for EnvelopeIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.replacing.is_none() {
            match automatic_error(buf) {
                Some((status, head_len)) => {
                    this.replacing = Some((envelope_response(status), 0, head_len));
                }
                None => return Pin::new(&mut this.inner).poll_write(cx, buf),
            }
        }
        // Hyper retries with the same bytes after Pending, so the replacement resumes here.
        while let Some((bytes, written, _)) = this.replacing.as_mut()
            && *written < bytes.len()
        {
            let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        let head_len = this.replacing.take().map_or(0, |(_, _, len)| len);
        Poll::Ready(Ok(head_len))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The status and head length of a response head hyper wrote by itself, if `buf` starts one.
fn automatic_error(buf: &[u8]) -> Option<(u16, usize)> {
    let rest = buf.strip_prefix(b"HTTP/1.1 ")?;
    let status = match rest.get(..4)? {
        b"400 " => 400,
        b"414 " => 414,
        b"431 " => 431,
        _ => return None,
    };
    // Hyper's automatic heads are a status line and two or three short headers.
    let window = &buf[..buf.len().min(512)];
    let head_len = window.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..head_len]).ok()?;
    let mut empty_body = false;
    for line in head.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("x-request-id") {
            return None;
        }
        if name.eq_ignore_ascii_case("content-length") && value.trim() == "0" {
            empty_body = true;
        }
    }
    empty_body.then_some((status, head_len))
}

/// The whole HTTP/1.1 response that replaces hyper's automatic answer with `status`.
fn envelope_response(status: u16) -> Vec<u8> {
    let (code, reason, message) = match status {
        414 => (
            ErrorCode::UriTooLong,
            "URI Too Long",
            format!("the request URI is too long (limit {MAX_URI_BYTES} bytes)"),
        ),
        431 => (
            ErrorCode::RequestHeaderFieldsTooLarge,
            "Request Header Fields Too Large",
            format!(
                "the request headers are too large (limit {MAX_HEADERS} fields, \
                 {MAX_HEADER_BYTES} bytes)"
            ),
        ),
        _ => (
            ErrorCode::InvalidArgument,
            "Bad Request",
            "the request is not valid HTTP/1.1: malformed request line, header, or \
             Content-Length, or a URI with characters that must be percent-encoded"
                .to_owned(),
        ),
    };
    let request_id = uuid::Uuid::new_v4().to_string();
    crate::metrics::observe("unparsed", "unparsed", status, std::time::Duration::ZERO);
    tracing::info!(
        target: "api_gateway::access",
        status,
        route = "unparsed",
        request_id = %request_id,
        "request"
    );
    let body = crate::error::envelope(&ApiError::new(code, message), &request_id);
    let mut response = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nx-request-id: {request_id}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(&body);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hyper_s_bare_error_heads_are_recognised() {
        let hyper = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        assert_eq!(automatic_error(hyper), Some((414, hyper.len())));
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nx-request-id: a\r\n\r\n";
        assert_eq!(automatic_error(ours), None);
        let with_body = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 12\r\n\r\n{}";
        assert_eq!(automatic_error(with_body), None);
        assert_eq!(automatic_error(b"HTTP/1.1 200 OK\r\n\r\n"), None);
        assert_eq!(automatic_error(b"{\"HTTP/1.1 400 \""), None);
    }

    #[test]
    fn the_replacement_is_a_complete_envelope_response() {
        let response = String::from_utf8(envelope_response(431)).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 "));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"]["code"], "request_header_fields_too_large");
        assert!(head.contains(&format!(
            "x-request-id: {}",
            body["requestId"].as_str().unwrap()
        )));
    }
}

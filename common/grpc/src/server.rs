//! The gRPC server every MetaChat service runs: standard health checking (with dependency
//! probes), server reflection over exactly the services it serves, malformed requests answered
//! as the client's mistake, and a shutdown that waits for in-flight calls only so long.

mod decode;
mod drain;
mod reflection;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tonic::server::NamedService;
use tonic::transport::server::{Router, TcpIncoming};
use tower_layer::{Identity, Stack};

pub use decode::DecodeErrorLayer;

/// The health-service name under which a service reports one of its dependencies.
pub const DEPENDENCY_PREFIX: &str = "metachat.dependency.";

/// How often dependencies are probed, and how long one probe may take.
const PROBE_EVERY: Duration = Duration::from_secs(5);
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The environment variable (whole seconds) that bounds how long a stopping server waits for
/// in-flight calls before it closes the connections still open.
pub const SHUTDOWN_TIMEOUT_VAR: &str = "SHUTDOWN_TIMEOUT_SECS";

/// The default of [`SHUTDOWN_TIMEOUT_VAR`]: well inside Kubernetes' default 30 s grace period,
/// so the process ends on its own before it is killed.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest a handler may run, whatever deadline the client sent (or none): a call stuck on
/// a dependency must not hold its connection and resources forever.
const HANDLER_TIMEOUT: Duration = Duration::from_secs(30);

/// HTTP/2 pings on idle connections, and how long the peer has to answer one before the
/// connection is closed: finds clients that vanished without closing.
const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// TCP keepalive, for peers that are gone before HTTP/2 is even up.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// The router [`serve`] hands to the service to add itself to.
pub type GrpcRouter = Router<Stack<DecodeErrorLayer, Identity>>;

/// A probe: resolves to whether the dependency answered.
pub type Probe = Box<dyn Fn() -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// Something a service needs, reported on its health service as
/// `metachat.dependency.<name>` (e.g. `grpcurl -d '{"service":"metachat.dependency.kafka"}'`).
pub struct Dependency {
    pub name: &'static str,
    /// When a critical dependency is down, nothing the service does can succeed, so the
    /// service itself reports NOT_SERVING (and readiness fails).
    pub critical: bool,
    pub probe: Probe,
}

impl Dependency {
    pub fn new<F, Fut>(name: &'static str, critical: bool, probe: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        Self {
            name,
            critical,
            probe: Box::new(move || Box::pin(probe())),
        }
    }
}

/// Serves `router` (the service `S` added to it) on `listener`, with the standard gRPC health
/// service and server reflection (v1 and v1alpha) over `S`, health and reflection, until
/// `shutdown` completes. The health service reports `S` and, probed every few seconds, each
/// dependency.
///
/// On `shutdown` the server stops accepting and lets in-flight calls finish; connections still
/// open after `shutdown_timeout` (an idle client, one that never finished its handshake, a
/// stuck call) are closed, and the server returns.
pub async fn serve<S>(
    listener: TcpListener,
    router: impl FnOnce(GrpcRouter) -> GrpcRouter,
    dependencies: Vec<Dependency>,
    shutdown: impl Future<Output = ()> + Send,
    shutdown_timeout: Duration,
) -> Result<(), tonic::transport::Error>
where
    S: NamedService,
{
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status(S::NAME, tonic_health::ServingStatus::Serving)
        .await;
    let probes = (!dependencies.is_empty())
        .then(|| tokio::spawn(probe_forever(reporter, S::NAME, dependencies)));
    let reflection = reflection::Reflection::new(S::NAME).map_err(|e| {
        tracing::error!(error = %e, "reflection descriptors are invalid");
        e
    });

    let mut server = tonic::transport::Server::builder()
        .timeout(HANDLER_TIMEOUT)
        .http2_keepalive_interval(Some(HTTP2_KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(HTTP2_KEEPALIVE_TIMEOUT))
        .layer(DecodeErrorLayer);
    let base = server.add_service(health);
    let base = match reflection {
        Ok(reflection) => base
            .add_service(reflection.v1())
            .add_service(reflection.v1alpha()),
        Err(_) => base,
    };

    let connections = drain::Connections::new();
    // With our own incoming stream, tonic's `tcp_keepalive` and `tcp_nodelay` settings do not
    // apply: they are set here.
    let incoming = TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(TCP_KEEPALIVE))
        .map({
            let connections = connections.clone();
            move |accepted| accepted.map(|stream| connections.track(stream))
        });
    let (stopping, stopped) = tokio::sync::oneshot::channel();
    let signal = async move {
        shutdown.await;
        let _ = stopping.send(());
    };
    let serving = router(base).serve_with_incoming_shutdown(incoming, signal);
    let served = drain::bounded(serving, stopped, shutdown_timeout, &connections).await;
    if let Some(probes) = probes {
        probes.abort();
    }
    served
}

async fn probe_forever(
    reporter: tonic_health::server::HealthReporter,
    service: &'static str,
    dependencies: Vec<Dependency>,
) {
    use tonic_health::ServingStatus::{NotServing, Serving};
    let mut was_up: Vec<Option<bool>> = vec![None; dependencies.len()];
    loop {
        let mut critical_down = false;
        for (dependency, was_up) in dependencies.iter().zip(was_up.iter_mut()) {
            let up = tokio::time::timeout(PROBE_TIMEOUT, (dependency.probe)())
                .await
                .unwrap_or(false);
            if *was_up != Some(up) {
                if up {
                    tracing::info!(dependency = dependency.name, "dependency is up");
                } else {
                    tracing::warn!(dependency = dependency.name, "dependency is down");
                }
                *was_up = Some(up);
            }
            let name = format!("{DEPENDENCY_PREFIX}{}", dependency.name);
            reporter
                .set_service_status(name, if up { Serving } else { NotServing })
                .await;
            critical_down |= dependency.critical && !up;
        }
        reporter
            .set_service_status(service, if critical_down { NotServing } else { Serving })
            .await;
        tokio::time::sleep(PROBE_EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::bytes::{Buf, BufMut};
    use tokio::io::AsyncWriteExt;
    use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::health_server::HealthServer;
    use tonic_health::server::HealthService;
    use tonic_types::StatusExt;

    /// A server running only health and reflection, as a service `S` would.
    type HealthOnly = HealthServer<HealthService>;

    async fn start(
        shutdown_timeout: Duration,
    ) -> (
        std::net::SocketAddr,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve::<HealthOnly>(
            listener,
            |router| router,
            Vec::new(),
            async {
                let _ = stopped.await;
            },
            shutdown_timeout,
        ));
        (address, stop, server)
    }

    async fn channel(address: std::net::SocketAddr) -> tonic::transport::Channel {
        tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect")
    }

    #[tokio::test]
    async fn stopping_closes_idle_and_half_open_connections_after_the_timeout() {
        let timeout = Duration::from_millis(300);
        let (address, stop, server) = start(timeout).await;
        let reply = HealthClient::new(channel(address).await)
            .check(tonic_health::pb::HealthCheckRequest {
                service: tonic_health::pb::health_server::SERVICE_NAME.into(),
            })
            .await
            .expect("the server answers");
        assert_eq!(
            reply.into_inner().status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        );
        // Connected, and nothing sent.
        let _silent = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        // Half an HTTP/2 preface.
        let mut partial = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        partial
            .write_all(b"PRI * HTTP/2.0\r\n")
            .await
            .expect("write");
        // A whole preface and SETTINGS, then nothing (not even the acknowledgements).
        let mut idle = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        idle.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
            .await
            .expect("write");
        tokio::time::sleep(Duration::from_millis(100)).await;

        let stopping = std::time::Instant::now();
        stop.send(()).expect("stop");
        tokio::time::timeout(timeout + Duration::from_secs(3), server)
            .await
            .expect("the server stops despite the open connections")
            .expect("server task")
            .expect("server outcome");
        assert!(
            stopping.elapsed() >= timeout,
            "in-flight work gets the whole timeout"
        );
    }

    /// Sends and receives raw message bytes, whatever the method's types.
    #[derive(Debug, Clone, Copy, Default)]
    struct RawCodec;

    impl Codec for RawCodec {
        type Encode = Vec<u8>;
        type Decode = Vec<u8>;
        type Encoder = Self;
        type Decoder = Self;

        fn encoder(&mut self) -> Self {
            Self
        }

        fn decoder(&mut self) -> Self {
            Self
        }
    }

    impl Encoder for RawCodec {
        type Item = Vec<u8>;
        type Error = tonic::Status;

        fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
            dst.put_slice(&item);
            Ok(())
        }
    }

    impl Decoder for RawCodec {
        type Item = Vec<u8>;
        type Error = tonic::Status;

        fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
            let mut message = vec![0; src.remaining()];
            src.copy_to_slice(&mut message);
            Ok(Some(message))
        }
    }

    #[tokio::test]
    async fn a_malformed_request_is_invalid_argument_with_error_info() {
        let (address, stop, server) = start(Duration::from_secs(1)).await;
        let mut grpc = tonic::client::Grpc::new(channel(address).await);
        grpc.ready().await.expect("ready");
        // Field 1 (the service name, a string) holding invalid UTF-8.
        let status = grpc
            .unary(
                tonic::Request::new(vec![0x0a, 0x02, 0xff, 0xfe]),
                tonic::codegen::http::uri::PathAndQuery::from_static(
                    "/grpc.health.v1.Health/Check",
                ),
                RawCodec,
            )
            .await
            .expect_err("a malformed request fails");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        let details = status.get_error_details();
        let info = details.error_info().expect("error info");
        assert_eq!(
            (info.domain.as_str(), info.reason.as_str()),
            ("metachat", "invalid_argument")
        );
        stop.send(()).expect("stop");
        let _ = server.await;
    }
}

//! The gRPC server every MetaChat service runs: standard health checking (with dependency
//! probes), server reflection over exactly the services it serves, malformed requests answered
//! as the client's mistake, and a shutdown that waits for in-flight calls only so long.

mod decode;
mod drain;
pub mod metrics;
mod reflection;
mod trace;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_stream::StreamExt;
use tonic::server::NamedService;
use tonic::transport::server::{Router, TcpIncoming};
use tower_layer::{Identity, Stack};

pub use decode::DecodeErrorLayer;
pub use trace::{CurrentCall, TraceLayer, current_call};

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
pub type GrpcRouter =
    Router<Stack<DecodeErrorLayer, Stack<metrics::MetricsLayer, Stack<TraceLayer, Identity>>>>;

/// A probe: resolves to whether the dependency answered.
pub type Probe = Box<dyn Fn() -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// Something a service needs, reported on its health service as
/// `metachat.dependency.<name>` (e.g. `grpcurl -d '{"service":"metachat.dependency.kafka"}'`).
pub struct Dependency {
    pub name: &'static str,
    /// When a critical dependency is down, nothing the service does can succeed, so the
    /// service itself reports NOT_SERVING (and readiness fails).
    pub critical: bool,
    check: Check,
}

/// How a dependency's state is learnt.
enum Check {
    /// Asked every few seconds.
    Probe(Probe),
    /// Told by something that already knows, as soon as it changes.
    Watch(watch::Receiver<bool>),
}

impl Dependency {
    /// A dependency whose `probe` is run every 5 s (and counts as down when it takes over 3 s).
    pub fn new<F, Fut>(name: &'static str, critical: bool, probe: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        Self {
            name,
            critical,
            check: Check::Probe(Box::new(move || Box::pin(probe()))),
        }
    }

    /// A dependency whose availability a component already tracks (true = up): its health
    /// status follows every change at once, instead of waiting for the next probe.
    pub fn watched(name: &'static str, critical: bool, available: watch::Receiver<bool>) -> Self {
        Self {
            name,
            critical,
            check: Check::Watch(available),
        }
    }
}

/// Serves `router` (the service `S` added to it) on `listener`, with the standard gRPC health
/// service and server reflection (v1 and v1alpha) over `S`, health and reflection, until
/// `shutdown` completes. The health service reports `S` (NOT_SERVING while a critical
/// dependency is down) and each dependency, polled or watched ([`Dependency`]).
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
    metrics::describe();
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status(S::NAME, tonic_health::ServingStatus::Serving)
        .await;
    let stopping_reporter = reporter.clone();
    let mut stopping_names: Vec<String> = dependencies
        .iter()
        .map(|dependency| format!("{DEPENDENCY_PREFIX}{}", dependency.name))
        .collect();
    stopping_names.extend([S::NAME.to_owned(), String::new()]);
    let probes = (!dependencies.is_empty())
        .then(|| tokio::spawn(probe_forever(reporter, S::NAME, dependencies)));
    let stop_probes = probes.as_ref().map(|probes| probes.abort_handle());
    let reflection = reflection::Reflection::new(S::NAME).map_err(|e| {
        tracing::error!(error = %e, "reflection descriptors are invalid");
        e
    });

    let mut server = tonic::transport::Server::builder()
        // HTTP/1.1 too, for `GET /metrics` (gRPC itself stays HTTP/2).
        .accept_http1(true)
        .timeout(HANDLER_TIMEOUT)
        .http2_keepalive_interval(Some(HTTP2_KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(HTTP2_KEEPALIVE_TIMEOUT))
        // Outermost, so that the call's log line and every line of its handling are in its span.
        .layer(TraceLayer)
        .layer(metrics::MetricsLayer)
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
        // Health watchers (load balancers, readiness probes) learn first that this server is
        // going, while calls in progress drain.
        if let Some(probes) = stop_probes {
            probes.abort();
        }
        for service in stopping_names {
            stopping_reporter
                .set_service_status(service, tonic_health::ServingStatus::NotServing)
                .await;
        }
        let _ = stopping.send(());
    };
    let serving = router(base).serve_with_incoming_shutdown(incoming, signal);
    let served = drain::bounded(serving, stopped, shutdown_timeout, &connections).await;
    if let Some(probes) = probes {
        probes.abort();
    }
    served
}

/// Keeps the health statuses of the dependencies, and of `service` (NOT_SERVING while a
/// critical dependency is down), up to date. Each dependency reports on its own, so a slow probe
/// delays no other, and a watched dependency's change shows at once.
async fn probe_forever(
    reporter: tonic_health::server::HealthReporter,
    service: &'static str,
    dependencies: Vec<Dependency>,
) {
    use tonic_health::ServingStatus::{NotServing, Serving};
    let (report, mut reports) = mpsc::unbounded_channel::<(usize, bool)>();
    // Owned here: when this task is aborted, the checks end with it.
    let mut checks = JoinSet::new();
    let mut known = Vec::with_capacity(dependencies.len());
    for (index, dependency) in dependencies.into_iter().enumerate() {
        known.push((dependency.name, dependency.critical, None::<bool>));
        let report = report.clone();
        match dependency.check {
            Check::Probe(probe) => checks.spawn(async move {
                loop {
                    let up = tokio::time::timeout(PROBE_TIMEOUT, probe())
                        .await
                        .unwrap_or(false);
                    if report.send((index, up)).is_err() {
                        return;
                    }
                    tokio::time::sleep(PROBE_EVERY).await;
                }
            }),
            Check::Watch(mut available) => checks.spawn(async move {
                loop {
                    let up = *available.borrow_and_update();
                    if report.send((index, up)).is_err() {
                        return;
                    }
                    // A sender gone for good leaves the last state standing.
                    if available.changed().await.is_err() {
                        return;
                    }
                }
            }),
        };
    }
    drop(report);
    while let Some((index, up)) = reports.recv().await {
        let (name, _, was_up) = &mut known[index];
        if *was_up == Some(up) {
            continue;
        }
        if up {
            tracing::info!(dependency = *name, "dependency is up");
        } else {
            tracing::warn!(dependency = *name, "dependency is down");
        }
        *was_up = Some(up);
        reporter
            .set_service_status(
                format!("{DEPENDENCY_PREFIX}{name}"),
                if up { Serving } else { NotServing },
            )
            .await;
        let critical_down = known
            .iter()
            .any(|(_, critical, up)| *critical && *up == Some(false));
        reporter
            .set_service_status(service, if critical_down { NotServing } else { Serving })
            .await;
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
    async fn a_stopping_server_tells_health_watchers_before_it_drains() {
        use tonic_health::pb::health_check_response::ServingStatus::{NotServing, Serving};
        let (address, stop, server) = start(Duration::from_secs(2)).await;
        let mut watch = HealthClient::new(channel(address).await)
            .watch(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .expect("watch")
            .into_inner();
        let first = watch.message().await.expect("a status").expect("open");
        assert_eq!(first.status, Serving as i32);
        let _ = stop.send(());
        let next = tokio::time::timeout(Duration::from_secs(2), watch.message())
            .await
            .expect("told before the drain ends")
            .expect("a status")
            .expect("still open");
        assert_eq!(next.status, NotServing as i32);
        drop(watch);
        let _ = server.await;
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

    async fn status_of(address: std::net::SocketAddr, service: &str) -> i32 {
        HealthClient::new(channel(address).await)
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("the server answers")
            .into_inner()
            .status
    }

    /// Polls until `service` reports `want`, failing after `within`.
    async fn wait_status(
        address: std::net::SocketAddr,
        service: &str,
        want: tonic_health::pb::health_check_response::ServingStatus,
        within: Duration,
    ) -> Duration {
        let started = std::time::Instant::now();
        loop {
            if status_of(address, service).await == want as i32 {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < within,
                "{service} not {want:?} within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_watched_critical_dependency_flips_the_service_status_at_once() {
        use tonic_health::pb::health_check_response::ServingStatus::{NotServing, Serving};
        let (available, receiver) = watch::channel(true);
        // A polled dependency that is slow to answer must not delay the watched one.
        let slow = Dependency::new("slow", false, || async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            true
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve::<HealthOnly>(
            listener,
            |router| router,
            vec![Dependency::watched("store", true, receiver), slow],
            async {
                let _ = stopped.await;
            },
            Duration::from_secs(1),
        ));
        let service = <HealthOnly as NamedService>::NAME;
        let store = "metachat.dependency.store";
        wait_status(address, store, Serving, Duration::from_secs(1)).await;
        assert_eq!(status_of(address, service).await, Serving as i32);

        available.send_replace(false);
        let took = wait_status(address, service, NotServing, Duration::from_millis(500)).await;
        assert!(took < Duration::from_millis(500), "{took:?}");
        assert_eq!(status_of(address, store).await, NotServing as i32);

        available.send_replace(true);
        wait_status(address, service, Serving, Duration::from_millis(500)).await;
        assert_eq!(status_of(address, store).await, Serving as i32);
        stop.send(()).expect("stop");
        let _ = server.await;
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

//! What every MetaChat process shares: configuration from the environment, structured logging
//! in the seed's format, and graceful shutdown.

mod config;
mod logging;

pub use config::{ConfigError, Env, env_or, env_parse, env_parse_within, env_var, grpc_uri};
pub use logging::{LogFormat, LogSettings, init_logging};

/// The process exit code for a program's outcome, printing a failure (with its causes) to
/// stderr and to the log.
pub fn exit_code<E: std::fmt::Display>(
    program: &str,
    outcome: Result<(), E>,
) -> std::process::ExitCode {
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{program}: {error:#}");
            tracing::error!(error = %format!("{error:#}"), "{program} failed");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Tells a process's background tasks to stop: [`Stop::signal`] completes them all at once.
pub struct Stop(tokio::sync::watch::Sender<bool>);

impl Stop {
    pub fn new() -> Self {
        Self(tokio::sync::watch::channel(false).0)
    }

    /// A future that completes when [`Stop::now`] is called (or the `Stop` is dropped).
    pub fn signal(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut stopped = self.0.subscribe();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    }

    pub fn now(&self) {
        self.0.send_replace(true);
    }
}

impl Default for Stop {
    fn default() -> Self {
        Self::new()
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown requested");
}

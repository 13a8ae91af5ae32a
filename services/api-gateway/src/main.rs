//! The API gateway process: HTTP on `PORT` (default 8080), the services over gRPC.

use std::net::{Ipv4Addr, SocketAddr};

use anyhow::Context;
use api_gateway::GatewayConfig;
use metachat_runtime::{LogSettings, env_parse, init_logging, shutdown_signal};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("api-gateway: {error:#}");
            tracing::error!(error = %format!("{error:#}"), "api gateway failed");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    init_logging(&LogSettings::from_env("api-gateway")?)?;
    let port: u16 = env_parse("PORT", 8080)?;
    let config = GatewayConfig::from_env()?;
    let address = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| {
            format!("cannot listen on {address} (is the port already in use? set PORT)")
        })?;
    api_gateway::serve(listener, config, shutdown_signal()).await
}

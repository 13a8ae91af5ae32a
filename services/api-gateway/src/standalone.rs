//! The API gateway as its own process, configured by the environment.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::Context;
use metachat_runtime::{LogSettings, env_parse, init_logging, shutdown_signal};

use crate::GatewayConfig;

/// Runs until Ctrl-C or SIGTERM: HTTP on `BIND_ADDRESS` (default 0.0.0.0) and `PORT`
/// (default 8080), the services at `USER_SERVICE_ADDRESS` and `DIARY_SERVICE_ADDRESS`.
/// Without authentication it serves only on a loopback address ([`crate::auth`]).
pub async fn run_from_env() -> anyhow::Result<()> {
    init_logging(&LogSettings::from_env("api-gateway")?)?;
    let port: u16 = env_parse("PORT", 8080)?;
    let bind: IpAddr = env_parse("BIND_ADDRESS", IpAddr::V4(Ipv4Addr::UNSPECIFIED))?;
    let config = GatewayConfig::from_env()?;
    let address = SocketAddr::from((bind, port));
    config.auth.check_exposure(address)?;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| {
            format!("cannot listen on {address} (is the port already in use? set PORT)")
        })?;
    crate::serve(listener, config, shutdown_signal()).await
}

//! The api-gateway as its own process (see `standalone::run_from_env` for its configuration).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    metachat_runtime::exit_code("api-gateway", api_gateway::standalone::run_from_env().await)
}

//! The user-service as its own process (see `standalone::run_from_env` for its configuration).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    metachat_runtime::exit_code(
        "user-service",
        user_service::standalone::run_from_env().await,
    )
}

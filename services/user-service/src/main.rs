//! The user service as its own process: gRPC on `PORT` (default 50051).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    user_service::standalone::run_from_env().await
}

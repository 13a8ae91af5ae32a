//! The diary service as its own process: gRPC on `PORT` (default 50052).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    diary_service::standalone::run_from_env().await
}

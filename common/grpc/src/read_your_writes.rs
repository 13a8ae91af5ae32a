//! Read-your-writes for list reads. A list or aggregate call may name a write with a
//! [`ConsistencyToken`] (`<id>:<version>`, the id and version the write answered); the service
//! then waits, for at most its configured bound, until its read models reflect that resource
//! at that version or later, and only then queries them. Read models are fed asynchronously
//! (in-process embedded; relay, Kafka and consumer in production), so without a token a list
//! read right after a write may not show it.

use std::future::Future;
use std::time::Duration;

use metachat_proto::error::ApiError;
use metachat_read_model::QueryError;
use metachat_validation::ConsistencyToken;
use tokio::time::Instant;
use uuid::Uuid;

use crate::query_error;

/// The setting bounding the wait, in milliseconds, read when a service starts.
pub const READ_YOUR_WRITES_TIMEOUT_VAR: &str = "READ_YOUR_WRITES_TIMEOUT_MS";

/// The default of [`READ_YOUR_WRITES_TIMEOUT_VAR`]: well above the production lag at rest
/// (about 0.1 s) and well below the gateway's request timeout (10 s).
pub const DEFAULT_READ_YOUR_WRITES_TIMEOUT: Duration = Duration::from_secs(3);

/// The first pause between two looks at the read models; it doubles up to [`LONGEST_POLL`].
/// Short at first because the embedded read models catch up within milliseconds.
const FIRST_POLL: Duration = Duration::from_millis(5);
const LONGEST_POLL: Duration = Duration::from_millis(50);

/// The `consistency_token` field of a list request; empty means none.
pub fn consistency_token(field: &str, text: &str) -> Result<Option<ConsistencyToken>, ApiError> {
    ConsistencyToken::parse_optional(field, text).map_err(ApiError::from)
}

/// Waits until `applied(token.id)` (the version the read models reflect for that resource,
/// `None` when they have never seen it) reaches `token.version`, for at most `timeout`.
/// Without a token it returns at once. After the deadline the answer is 503 `unavailable`
/// with a retry delay: nothing was read, so trying again is safe.
pub async fn await_applied<F, Fut>(
    token: Option<ConsistencyToken>,
    timeout: Duration,
    mut applied: F,
) -> Result<(), ApiError>
where
    F: FnMut(Uuid) -> Fut,
    Fut: Future<Output = Result<Option<u64>, QueryError>>,
{
    let Some(token) = token else {
        return Ok(());
    };
    let started = Instant::now();
    let deadline = started + timeout;
    let mut pause = FIRST_POLL;
    loop {
        let version = applied(token.id).await.map_err(query_error)?;
        if version.is_some_and(|v| v >= token.version) {
            let waited = started.elapsed();
            if !waited.is_zero() {
                tracing::debug!(token = %token, waited_ms = waited.as_millis() as u64, "read models caught up with the token");
            }
            return Ok(());
        }
        let now = Instant::now();
        if now >= deadline {
            tracing::warn!(token = %token, applied = ?version, timeout_ms = timeout.as_millis() as u64, "read models did not catch up with the token in time");
            return Err(not_caught_up(&token, timeout));
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(LONGEST_POLL);
    }
}

/// After a wait that timed out: a token naming a write that never happened (no stream of
/// `streams` holds that version) is the client's mistake, 400 naming `field`, not a reason
/// to retry. `streams` are the stream names the token's id may be the id of.
pub async fn unknown_write(
    store: &dyn event_sourcing::EventStore,
    token: &ConsistencyToken,
    streams: &[String],
    field: &str,
    waited: ApiError,
) -> ApiError {
    for stream in streams {
        match store.read_stream(stream, token.version, 1).await {
            Ok(events) if !events.is_empty() => return waited,
            Ok(_) => {}
            // The store cannot tell: the wait's answer stands.
            Err(_) => return waited,
        }
    }
    ApiError::invalid_field(
        field,
        format!("names no write that was made ({token}): send the token a write answered"),
    )
}

fn not_caught_up(token: &ConsistencyToken, timeout: Duration) -> ApiError {
    ApiError::unavailable(format!(
        "the lists have not caught up with write {token} yet (waited {} ms); retry shortly",
        timeout.as_millis()
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use metachat_proto::error::ErrorCode;

    use super::*;

    fn token(version: u64) -> ConsistencyToken {
        ConsistencyToken::new(Uuid::from_u128(7), version)
    }

    #[tokio::test]
    async fn waits_until_the_version_is_applied() {
        let seen = Arc::new(AtomicU64::new(0));
        let polls = Arc::clone(&seen);
        let started = Instant::now();
        // The read models reach version 3 on the fourth look.
        let result = await_applied(Some(token(3)), Duration::from_secs(3), move |_| {
            let n = polls.fetch_add(1, Ordering::SeqCst);
            async move { Ok((n >= 3).then_some(3)) }
        })
        .await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(seen.load(Ordering::SeqCst), 4);
        // Pauses of 5, 10 and 20 ms: short while the read models are usually about to catch up.
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(35), "{waited:?}");
        assert!(waited < Duration::from_secs(1), "{waited:?}");
    }

    #[tokio::test]
    async fn a_later_version_also_satisfies_and_no_token_does_not_look() {
        let result = await_applied(Some(token(2)), Duration::ZERO, |_| async { Ok(Some(5)) }).await;
        assert!(result.is_ok());
        let result = await_applied(None, Duration::ZERO, |_| async {
            Err(QueryError::InvalidCursor)
        })
        .await;
        assert!(result.is_ok());
    }

    #[tokio::test]
    async fn an_unreached_version_is_unavailable_after_the_deadline() {
        let started = Instant::now();
        let error = await_applied(Some(token(9)), Duration::from_millis(200), |_| async {
            Ok(Some(8))
        })
        .await
        .unwrap_err();
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(200), "{waited:?}");
        assert!(waited < Duration::from_secs(2), "{waited:?}");
        assert_eq!(error.code, ErrorCode::Unavailable);
        assert!(error.retry_after.is_some(), "a read may be retried");
        assert!(
            error.message.contains(&token(9).to_string()),
            "{}",
            error.message
        );
        // An id never seen is the same: its write may still be on its way.
        let error = await_applied(Some(token(1)), Duration::from_millis(20), |_| async {
            Ok(None)
        })
        .await
        .unwrap_err();
        assert_eq!(error.code, ErrorCode::Unavailable);
    }

    #[test]
    fn a_malformed_token_names_the_field() {
        let error = consistency_token("consistencyToken", "nope").unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidArgument);
        assert_eq!(error.details[0].field, "consistencyToken");
        assert_eq!(consistency_token("consistencyToken", "").unwrap(), None);
    }
}

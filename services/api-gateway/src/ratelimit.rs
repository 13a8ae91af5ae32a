//! Rate limits, per gateway process, with authentication on: each caller (its user id with a token, else its address)
//! may send `RATE_LIMIT_PER_MINUTE` requests a minute (600 by default), and each address, and
//! each login, may see `SIGN_IN_RATE_LIMIT_PER_MINUTE` sign-in attempts a minute (10; an
//! address's `POST /auth/refresh` count too, the web app's cookie renewals do not), so passwords cannot be guessed at the speed of the machine,
//! from one address or from many. Token buckets: a full minute's allowance may
//! be spent at once, then it refills evenly. Beyond it: 429 with `Retry-After`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use metachat_proto::error::{ApiError, ErrorCode};
use metachat_runtime::{ConfigError, Env};

/// Defaults: requests per caller, and sign-in attempts per address, a minute.
pub const DEFAULT_PER_MINUTE: u32 = 600;
pub const DEFAULT_SIGN_INS_PER_MINUTE: u32 = 10;

/// Buckets kept at most before the full ones are dropped.
const MAX_BUCKETS: usize = 100_000;

/// The limits; 0 turns one off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    pub per_minute: u32,
    pub sign_ins_per_minute: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            per_minute: DEFAULT_PER_MINUTE,
            sign_ins_per_minute: DEFAULT_SIGN_INS_PER_MINUTE,
        }
    }
}

impl RateLimitConfig {
    /// `RATE_LIMIT_PER_MINUTE` and `SIGN_IN_RATE_LIMIT_PER_MINUTE`.
    pub fn read(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            per_minute: env.parse_within(
                "RATE_LIMIT_PER_MINUTE",
                DEFAULT_PER_MINUTE,
                0,
                1_000_000,
            )?,
            sign_ins_per_minute: env.parse_within(
                "SIGN_IN_RATE_LIMIT_PER_MINUTE",
                DEFAULT_SIGN_INS_PER_MINUTE,
                0,
                1_000_000,
            )?,
        })
    }
}

/// The connection's peer address, set by the server on every request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerAddr(pub IpAddr);

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets of one limit.
#[derive(Clone)]
pub(crate) struct Buckets {
    per_minute: u32,
    buckets: Arc<Mutex<HashMap<String, Bucket>>>,
}

impl Buckets {
    pub(crate) fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            buckets: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Takes one request from `key`'s bucket; the delay until one is available when empty.
    pub(crate) fn take(&self, key: &str) -> Result<(), Duration> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(self.per_minute);
        let per_second = capacity / 60.0;
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(key) {
            // Full buckets say nothing: forget them. Should a flood of distinct callers leave
            // it full still, start afresh rather than scan on every new caller.
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.at).as_secs_f64() * per_second < capacity
            });
            if buckets.len() >= MAX_BUCKETS / 2 {
                tracing::warn!(
                    buckets = buckets.len(),
                    "rate-limit buckets reset: too many distinct callers"
                );
                buckets.clear();
            }
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        bucket.tokens = (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * per_second)
            .min(capacity);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second))
        }
    }
}

/// The answer to a request over its limit.
pub(crate) fn too_many(wait: Duration, what: &str) -> ApiError {
    // Whole seconds, rounded up: waiting that long is enough.
    let seconds = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
    ApiError {
        retry_after: Some(Duration::from_secs(seconds)),
        ..ApiError::new(
            ErrorCode::TooManyRequests,
            format!("too many {what}; retry after {seconds} s"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_minute_then_says_when_to_retry() {
        let buckets = Buckets::new(3);
        for _ in 0..3 {
            assert!(buckets.take("a").is_ok());
        }
        let wait = buckets.take("a").unwrap_err();
        assert!(
            wait > Duration::from_secs(15) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        // Another caller has its own bucket; 0 is no limit.
        assert!(buckets.take("b").is_ok());
        let off = Buckets::new(0);
        assert!((0..1000).all(|_| off.take("a").is_ok()));
    }
}

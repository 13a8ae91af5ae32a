//! An external identity provider's signing keys, from its JWKS URL: fetched at start, kept,
//! and fetched again when a token names a key id the set does not hold (the provider rotated
//! its keys), at most once per [`ProviderConfig::refetch_after`] (`AUTH_JWKS_REFETCH_SECS`, 30 s
//! by default), and in any case after [`MAX_AGE`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tokio::sync::Mutex;

use super::tokens::{Subject, TokenError, validate};

/// An unknown key id fetches the set again at most this often, by default.
pub const DEFAULT_REFETCH_AFTER: Duration = Duration::from_secs(30);

/// The set is fetched again when older than this.
pub const MAX_AGE: Duration = Duration::from_secs(600);

/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The algorithms accepted from the provider (never `none`, never HMAC: a public key must
/// not be usable as a shared secret).
const ALGORITHMS: [Algorithm; 7] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The provider's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderConfig {
    pub jwks_url: String,
    pub issuer: String,
    pub audience: String,
    /// The claim listing the caller's roles (default `roles`); the admin role is `admin`.
    pub admin_role: String,
    /// A token naming an unknown key fetches the set again at most this often.
    pub refetch_after: Duration,
}

struct Fetched {
    keys: JwkSet,
    at: Instant,
}

/// The provider's keys, shared by every request.
#[derive(Clone)]
pub struct Jwks {
    config: Arc<ProviderConfig>,
    client: reqwest::Client,
    state: Arc<Mutex<Option<Fetched>>>,
}

impl Jwks {
    pub fn new(config: ProviderConfig) -> anyhow::Result<Self> {
        // No redirects: the keys come from the configured URL, never from wherever it points.
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            config: Arc::new(config),
            client,
            state: Arc::new(Mutex::new(None)),
        })
    }

    /// Fetches the set now (at start: a provider that cannot be reached is logged, and tried
    /// again on the first token).
    pub async fn prefetch(&self) {
        let mut state = self.state.lock().await;
        if let Err(error) = self.fetch_into(&mut state).await {
            tracing::warn!(url = %self.config.jwks_url, %error, "identity provider keys not fetched yet");
        }
    }

    async fn fetch_into(&self, state: &mut Option<Fetched>) -> anyhow::Result<()> {
        let keys: JwkSet = self
            .client
            .get(&self.config.jwks_url)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        tracing::info!(url = %self.config.jwks_url, keys = keys.keys.len(), "identity provider keys fetched");
        *state = Some(Fetched {
            keys,
            at: Instant::now(),
        });
        Ok(())
    }

    /// The key `kid` names (fetching the set again when it is stale or lacks `kid`).
    async fn key(&self, kid: &str) -> Result<DecodingKey, TokenError> {
        let mut state = self.state.lock().await;
        let lookup = |state: &Option<Fetched>| {
            state
                .as_ref()
                .and_then(|f| f.keys.find(kid))
                .and_then(|jwk| DecodingKey::from_jwk(jwk).ok())
        };
        let age = state.as_ref().map(|f| f.at.elapsed());
        let found = lookup(&state);
        let refetch = match (&found, age) {
            (_, None) => true,
            (Some(_), Some(age)) => age > MAX_AGE,
            (None, Some(age)) => age > self.config.refetch_after,
        };
        if refetch {
            if let Err(error) = self.fetch_into(&mut state).await {
                tracing::warn!(url = %self.config.jwks_url, %error, "identity provider keys could not be fetched");
                // A key already known stays usable while the provider is unreachable.
                return found.ok_or(TokenError::KeysUnavailable);
            }
            return lookup(&state).ok_or(TokenError::Invalid);
        }
        found.ok_or(TokenError::Invalid)
    }

    /// Verifies a provider's token: signature by a key of its set, issuer, audience, expiry.
    pub async fn verify(&self, token: &str) -> Result<Subject, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(TokenError::Invalid);
        }
        let kid = header.kid.ok_or(TokenError::Invalid)?;
        let key = self.key(&kid).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[self.config.issuer.as_str()]);
        validation.set_audience(&[self.config.audience.as_str()]);
        validate(token, &key, validation, &self.config.admin_role)
    }
}

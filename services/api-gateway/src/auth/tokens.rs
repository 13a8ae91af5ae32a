//! Access tokens: JWTs whose subject is a MetaChat user id. Two sources are accepted:
//! - tokens the platform issues itself, HS256 with `AUTH_TOKEN_SECRET`, issuer and audience
//!   `metachat` ([`Issuer`]);
//! - tokens of an external identity provider, verified with the keys of its JWKS (RS256,
//!   RS384, RS512, PS256, ES256, ES384 or EdDSA), against its issuer and audience
//!   ([`super::jwks::Jwks`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The issuer and audience of the tokens the platform issues.
pub const ISSUER: &str = "metachat";
pub const AUDIENCE: &str = "metachat";

/// The role that may act for every user (and list them).
pub const ADMIN_ROLE: &str = "admin";

/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 30;

/// The claims MetaChat reads.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

/// `aud`: one audience or several.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

/// Who a valid token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// A canonical (lower-case, hyphenated) UUID.
    pub user_id: String,
    pub admin: bool,
}

/// Why a token was refused: said to the client in general terms only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the access token has expired")]
    Expired,
    #[error("the access token is not valid")]
    Invalid,
    #[error("the access token's subject is not a MetaChat user id")]
    Subject,
    #[error("the identity provider's keys are unavailable; retry later")]
    KeysUnavailable,
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Issues and verifies the platform's own tokens.
#[derive(Clone)]
pub struct Issuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    pub access_ttl: Duration,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret is never printed.
        f.debug_struct("Issuer")
            .field("access_ttl", &self.access_ttl)
            .finish_non_exhaustive()
    }
}

/// The shortest secret accepted (bytes): HS256's key should be at least as long as its hash.
pub const MIN_SECRET_BYTES: usize = 32;

impl Issuer {
    /// `None` when the secret cannot key HMAC (it is empty).
    pub fn new(secret: &[u8], access_ttl: Duration) -> Option<Self> {
        Some(Self {
            encoding: EncodingKey::from_secret(secret).ok()?,
            decoding: DecodingKey::from_secret(secret).ok()?,
            access_ttl,
        })
    }

    /// A token for `user_id` valid for `ttl` (the access lifetime when `None`).
    pub fn issue(&self, user_id: &str, admin: bool, ttl: Option<Duration>) -> String {
        let now = now_secs();
        let claims = Claims {
            sub: user_id.to_owned(),
            iat: Some(now),
            exp: now + ttl.unwrap_or(self.access_ttl).as_secs(),
            iss: Some(ISSUER.to_owned()),
            aud: Some(Audience::One(AUDIENCE.to_owned())),
            roles: if admin {
                vec![ADMIN_ROLE.to_owned()]
            } else {
                Vec::new()
            },
        };
        // Serialising these claims with an HMAC key cannot fail.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .unwrap_or_default()
    }

    pub fn verify(&self, token: &str) -> Result<Subject, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validate(token, &self.decoding, validation, ADMIN_ROLE)
    }
}

/// Decodes and checks `token` with `key` under `validation` (expiry always required).
pub(crate) fn validate(
    token: &str,
    key: &DecodingKey,
    mut validation: Validation,
    admin_role: &str,
) -> Result<Subject, TokenError> {
    validation.leeway = LEEWAY_SECS;
    // Issuer and audience must be present, not only right when present: a provider's token
    // minted for another client, without an audience, is no token for MetaChat.
    validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
    validation.validate_nbf = true;
    let data =
        jsonwebtoken::decode::<Claims>(token, key, &validation).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
            _ => TokenError::Invalid,
        })?;
    let user_id = canonical_user_id(&data.claims.sub).ok_or(TokenError::Subject)?;
    Ok(Subject {
        user_id,
        admin: data.claims.roles.iter().any(|r| r == admin_role),
    })
}

/// The subject as a UUID in the hyphenated form (any case), lower-cased; never the nil UUID.
fn canonical_user_id(sub: &str) -> Option<String> {
    let parsed = uuid::Uuid::try_parse(sub).ok().filter(|u| !u.is_nil())?;
    let canonical = parsed.hyphenated().to_string();
    (canonical == sub.to_ascii_lowercase()).then_some(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const USER: &str = "0b9e4c9e-7d1a-4f57-8d59-3f7b8f0d1a2c";

    #[test]
    fn issued_tokens_verify_and_carry_the_admin_role() {
        let issuer = Issuer::new(SECRET, Duration::from_secs(600)).unwrap();
        let token = issuer.issue(USER, false, None);
        assert_eq!(
            issuer.verify(&token),
            Ok(Subject {
                user_id: USER.to_owned(),
                admin: false
            })
        );
        let admin = issuer.issue(USER, true, None);
        assert!(issuer.verify(&admin).unwrap().admin);
    }

    #[test]
    fn forged_expired_and_foreign_tokens_are_refused() {
        let issuer = Issuer::new(SECRET, Duration::from_secs(600)).unwrap();
        let other = Issuer::new(
            b"another secret, also 32 bytes long",
            Duration::from_secs(600),
        )
        .unwrap();
        assert_eq!(
            issuer.verify(&other.issue(USER, true, None)),
            Err(TokenError::Invalid)
        );
        // Tampered payload: the signature no longer matches.
        let token = issuer.issue(USER, false, None);
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged_claims = base64_url(&format!(
            r#"{{"sub":"{USER}","exp":{},"iss":"metachat","aud":"metachat","roles":["admin"]}}"#,
            now_secs() + 600
        ));
        parts[1] = &forged_claims;
        assert_eq!(issuer.verify(&parts.join(".")), Err(TokenError::Invalid));
        // "alg": "none".
        let none = format!(
            "{}.{}.",
            base64_url(r#"{"alg":"none","typ":"JWT"}"#),
            forged_claims
        );
        assert_eq!(issuer.verify(&none), Err(TokenError::Invalid));
        // Expired beyond the leeway.
        let claims = Claims {
            sub: USER.to_owned(),
            exp: now_secs() - 120,
            iat: None,
            iss: Some(ISSUER.to_owned()),
            aud: Some(Audience::One(AUDIENCE.to_owned())),
            roles: Vec::new(),
        };
        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET).unwrap(),
        )
        .unwrap();
        assert_eq!(issuer.verify(&expired), Err(TokenError::Expired));
        // Another audience, another issuer, a subject that is no user id, or the nil one.
        for (iss, aud, sub) in [
            ("metachat", "someone-else", USER),
            ("evil", "metachat", USER),
            ("metachat", "metachat", "root"),
            (
                "metachat",
                "metachat",
                "00000000-0000-0000-0000-000000000000",
            ),
        ] {
            let claims = Claims {
                sub: sub.to_owned(),
                exp: now_secs() + 600,
                iat: None,
                iss: Some(iss.to_owned()),
                aud: Some(Audience::One(aud.to_owned())),
                roles: Vec::new(),
            };
            let token = jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(SECRET).unwrap(),
            )
            .unwrap();
            assert!(issuer.verify(&token).is_err(), "{iss} {aud} {sub}");
        }
        // No issuer, or no audience: refused, not merely unchecked.
        for claims in [
            serde_json::json!({"sub": USER, "exp": now_secs() + 600, "aud": "metachat"}),
            serde_json::json!({"sub": USER, "exp": now_secs() + 600, "iss": "metachat"}),
        ] {
            let token = jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(SECRET).unwrap(),
            )
            .unwrap();
            assert_eq!(issuer.verify(&token), Err(TokenError::Invalid), "{claims}");
        }
        assert_eq!(issuer.verify("not a token"), Err(TokenError::Invalid));
    }

    fn base64_url(text: &str) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
    }
}

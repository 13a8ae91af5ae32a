//! Passwords and sign-ins: the use cases behind `POST /auth/token`, `/auth/refresh` and
//! `/auth/signout` (the gateway signs the access tokens; this service decides who may have
//! one). A password is kept as an argon2id hash; a sign-in as the SHA-256 digest of its
//! refresh token, which is rotated on every refresh: a refresh token presented a second time
//! (stolen and used by someone else, or replayed) ends the sign-in.

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use chrono::{DateTime, Duration as Days, Utc};
use event_sourcing::{
    AppendError, EventMetadata, ExpectedVersion, StreamName, StreamWrite, append_settled,
    decode_event, new_events, read_full_stream,
};
use metachat_grpc::{append_error, store_error};
use metachat_proto::error::{ApiError, ErrorCode};
use metachat_validation::UserId;
use sha2::{Digest, Sha256};

use super::{Claim, Users};
use crate::domain::credentials::{
    CREDENTIALS_CATEGORY, CredentialEvent, SIGN_IN_CATEGORY, SignIn, SignInEvent,
};
use crate::domain::{ClaimEvent, claim_key};

/// Password length bounds, in characters.
pub const PASSWORD_MIN_CHARS: usize = 10;
pub const PASSWORD_MAX_CHARS: usize = 256;

/// How long a refresh token stays valid when unused.
pub const REFRESH_DAYS: i64 = 30;

/// A sign-in as the gateway needs it to issue tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIn {
    pub user_id: UserId,
    /// `<sign-in id>.<secret>`: shown once, kept only as a digest.
    pub refresh_token: String,
    pub refresh_expires_at: DateTime<Utc>,
}

fn refused() -> ApiError {
    ApiError::new(
        ErrorCode::Unauthenticated,
        "the login or the password is wrong",
    )
}

fn refresh_refused(why: &str) -> ApiError {
    ApiError::new(
        ErrorCode::Unauthenticated,
        format!("the refresh token {why}"),
    )
}

/// Checks a new password's length.
pub fn check_password(password: &str) -> Result<(), ApiError> {
    let chars = password.chars().count();
    if (PASSWORD_MIN_CHARS..=PASSWORD_MAX_CHARS).contains(&chars) {
        return Ok(());
    }
    Err(ApiError::invalid_field(
        "password",
        format!("must be {PASSWORD_MIN_CHARS} to {PASSWORD_MAX_CHARS} characters"),
    ))
}

/// The argon2id hash of `password` (tens of milliseconds of CPU: off the async workers).
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
    })
    .await
    .map_err(|e| ApiError::internal(format!("hashing failed: {e}")))?
    .map_err(|e| ApiError::internal(format!("hashing failed: {e}")))
}

/// A hash to verify against when the login is unknown, so that answers take as long.
static DECOY: LazyLock<String> = LazyLock::new(|| {
    Argon2::default()
        .hash_password(b"a password nobody has")
        .map(|h| h.to_string())
        .unwrap_or_default()
});

async fn verify_password(password: String, hash: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| DECOY.clone());
        let matches = PasswordHash::new(&hash).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        });
        known && matches
    })
    .await
    .unwrap_or(false)
}

fn digest(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A fresh refresh token secret: two random UUIDs, 244 random bits.
fn new_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// `<id>.<secret>` split, the id parsed.
fn parse_refresh(token: &str) -> Option<(uuid::Uuid, &str)> {
    let (id, secret) = token.trim().split_once('.')?;
    let id = uuid::Uuid::try_parse(id).ok()?;
    (secret.len() == 64).then_some((id, secret))
}

/// The write that records `user_id`'s password hash (a new credentials stream).
pub(super) fn password_write(
    user_id: &UserId,
    password_hash: String,
    metadata: &EventMetadata,
) -> Result<StreamWrite, ApiError> {
    let event = CredentialEvent::PasswordSet {
        user_id: *user_id,
        password_hash,
    };
    Ok(StreamWrite::new(
        StreamName::new(CREDENTIALS_CATEGORY, user_id),
        ExpectedVersion::NoStream,
        new_events(&[event], metadata).map_err(store_error)?,
    ))
}

impl Users {
    /// The user a login (a username, or an e-mail address) names.
    async fn user_by_login(&self, login: &str) -> Result<Option<UserId>, ApiError> {
        let claim = if login.contains('@') {
            Claim::Email
        } else {
            Claim::Username
        };
        let stream = claim.stream(&claim_key(login));
        let events = read_full_stream(self.store.as_ref(), &stream.to_string())
            .await
            .map_err(store_error)?;
        // The claim's last event says who holds it now (nobody after a release); a claim of
        // an erased user is unreadable, and names nobody.
        Ok(events
            .last()
            .filter(|e| !e.erased)
            .and_then(|e| decode_event::<ClaimEvent>(e).ok()?.holder()))
    }

    async fn password_hash(&self, user_id: &UserId) -> Result<Option<String>, ApiError> {
        let stream = StreamName::new(CREDENTIALS_CATEGORY, user_id).to_string();
        let events = read_full_stream(self.store.as_ref(), &stream)
            .await
            .map_err(store_error)?;
        Ok(events.iter().rev().filter(|e| !e.erased).find_map(|e| {
            match decode_event::<CredentialEvent>(e).ok()? {
                CredentialEvent::PasswordSet { password_hash, .. } => Some(password_hash),
            }
        }))
    }

    /// Signs in with a login and a password: a new sign-in with its refresh token. An unknown
    /// login, a user without a password and a wrong password get the same answer, in the
    /// same time.
    pub async fn sign_in(
        &self,
        login: &str,
        password: &str,
        metadata: &EventMetadata,
    ) -> Result<SignedIn, ApiError> {
        let user_id = self.user_by_login(login).await?;
        let hash = match &user_id {
            Some(id) => self.password_hash(id).await?,
            None => None,
        };
        if !verify_password(password.to_owned(), hash).await {
            return Err(refused());
        }
        let Some(user_id) = user_id else {
            return Err(refused());
        };
        let id = uuid::Uuid::new_v4();
        let secret = new_secret();
        let expires_at = Utc::now() + Days::days(REFRESH_DAYS);
        let event = SignInEvent::SignedIn {
            user_id,
            refresh_digest: digest(&secret),
            expires_at,
        };
        let write = StreamWrite::new(
            StreamName::new(SIGN_IN_CATEGORY, id),
            ExpectedVersion::NoStream,
            new_events(&[event], metadata).map_err(store_error)?,
        );
        append_settled(self.store.as_ref(), vec![write])
            .await
            .map_err(append_error)?;
        tracing::info!(user_id = %user_id, sign_in = %id, "signed in");
        Ok(SignedIn {
            user_id,
            refresh_token: format!("{id}.{secret}"),
            refresh_expires_at: expires_at,
        })
    }

    /// When `user_id`'s password was last set; `None` when never.
    async fn password_set_at(&self, user_id: &UserId) -> Result<Option<DateTime<Utc>>, ApiError> {
        let stream = StreamName::new(CREDENTIALS_CATEGORY, user_id).to_string();
        let events = read_full_stream(self.store.as_ref(), &stream)
            .await
            .map_err(store_error)?;
        Ok(events.last().map(|e| e.recorded_at))
    }

    /// Sets `user_id`'s password to `new`. When one is set, `current` must be it (403 naming
    /// `currentPassword` otherwise). Every sign-in made before refreshes no more.
    pub async fn change_password(
        &self,
        user_id: &UserId,
        current: Option<&str>,
        new: &str,
        metadata: &EventMetadata,
    ) -> Result<(), ApiError> {
        check_password(new).map_err(|e| ApiError {
            details: e
                .details
                .into_iter()
                .map(|mut d| {
                    d.field = "newPassword".into();
                    d
                })
                .collect(),
            message: e.message.replace("password", "newPassword"),
            ..e
        })?;
        self.user(user_id).await?;
        if let Some(hash) = self.password_hash(user_id).await? {
            let given = current.unwrap_or_default().to_owned();
            if !verify_password(given, Some(hash)).await {
                return Err(ApiError {
                    details: vec![metachat_proto::error::FieldViolation {
                        field: "currentPassword".into(),
                        message: "is not the current password".into(),
                    }],
                    ..ApiError::new(
                        ErrorCode::PermissionDenied,
                        "currentPassword: is not the current password",
                    )
                });
            }
        }
        let hash = hash_password(new.to_owned()).await?;
        let event = CredentialEvent::PasswordSet {
            user_id: *user_id,
            password_hash: hash,
        };
        let write = StreamWrite::new(
            StreamName::new(CREDENTIALS_CATEGORY, user_id),
            ExpectedVersion::Any,
            new_events(&[event], metadata).map_err(store_error)?,
        );
        append_settled(self.store.as_ref(), vec![write])
            .await
            .map_err(append_error)?;
        tracing::info!(user_id = %user_id, "password changed");
        Ok(())
    }

    /// The sign-in a refresh token names, with its stream's version.
    async fn sign_in_of(&self, token: &str) -> Result<(uuid::Uuid, String, SignIn, u64), ApiError> {
        let (id, secret) = parse_refresh(token).ok_or_else(|| refresh_refused("is not valid"))?;
        let stream = StreamName::new(SIGN_IN_CATEGORY, id).to_string();
        let recorded = read_full_stream(self.store.as_ref(), &stream)
            .await
            .map_err(store_error)?;
        // A sign-in of an erased user is unreadable: no `SignedIn`, no sign-in.
        let events: Vec<SignInEvent> = recorded
            .iter()
            .filter(|e| !e.erased)
            .filter_map(|e| decode_event(e).ok())
            .collect();
        let version = recorded.last().map_or(0, |e| e.stream_version);
        let mut state = SignIn::replay(&events).ok_or_else(|| refresh_refused("is not valid"))?;
        state.signed_in_at = recorded
            .first()
            .map_or(state.signed_in_at, |e| e.recorded_at);
        Ok((id, digest(secret), state, version))
    }

    async fn end(
        &self,
        id: uuid::Uuid,
        reason: &str,
        metadata: &EventMetadata,
    ) -> Result<(), ApiError> {
        let event = SignInEvent::SignedOut {
            reason: reason.to_owned(),
        };
        let write = StreamWrite::new(
            StreamName::new(SIGN_IN_CATEGORY, id),
            ExpectedVersion::Any,
            new_events(&[event], metadata).map_err(store_error)?,
        );
        append_settled(self.store.as_ref(), vec![write])
            .await
            .map_err(append_error)?;
        Ok(())
    }

    /// Exchanges a refresh token for a new one (the old one is spent). A spent token ends
    /// the sign-in: whoever holds the current one must sign in again.
    pub async fn refresh(
        &self,
        token: &str,
        metadata: &EventMetadata,
    ) -> Result<SignedIn, ApiError> {
        let (id, presented, state, version) = self.sign_in_of(token).await?;
        // Nothing about the sign-in is told to whoever does not hold one of its tokens.
        if state.current != presented && !state.spent.contains(&presented) {
            return Err(refresh_refused("is not valid"));
        }
        if state.ended.is_some() {
            return Err(refresh_refused("belongs to a sign-in that ended"));
        }
        if state.spent.contains(&presented) {
            self.end(id, "a refresh token was used twice", metadata)
                .await?;
            tracing::warn!(user_id = %state.user_id, sign_in = %id, "a spent refresh token was presented: sign-in ended");
            return Err(refresh_refused(
                "was already used: the sign-in is ended, sign in again",
            ));
        }
        if state.expires_at <= Utc::now() {
            return Err(refresh_refused("has expired"));
        }
        // A password changed since the sign-in ends it.
        if self
            .password_set_at(&state.user_id)
            .await?
            .is_some_and(|set| set > state.signed_in_at)
        {
            self.end(id, "the password changed", metadata).await?;
            return Err(refresh_refused(
                "belongs to a sign-in made before the password changed",
            ));
        }
        let secret = new_secret();
        let expires_at = Utc::now() + Days::days(REFRESH_DAYS);
        let event = SignInEvent::TokenRefreshed {
            refresh_digest: digest(&secret),
            expires_at,
        };
        let write = StreamWrite::new(
            StreamName::new(SIGN_IN_CATEGORY, id),
            ExpectedVersion::Exact(version),
            new_events(&[event], metadata).map_err(store_error)?,
        );
        match append_settled(self.store.as_ref(), vec![write]).await {
            Ok(_) => Ok(SignedIn {
                user_id: state.user_id,
                refresh_token: format!("{id}.{secret}"),
                refresh_expires_at: expires_at,
            }),
            // The same token exchanged twice at once: one of the two is a replay.
            Err(AppendError::Refused(e)) if e.is_conflict() => {
                self.end(id, "a refresh token was used twice", metadata)
                    .await?;
                Err(refresh_refused(
                    "was already used: the sign-in is ended, sign in again",
                ))
            }
            Err(e) => Err(append_error(e)),
        }
    }

    /// Ends the sign-in a refresh token names (signing out). Ending an ended one is no error.
    pub async fn sign_out(&self, token: &str, metadata: &EventMetadata) -> Result<(), ApiError> {
        let (id, presented, state, _) = self.sign_in_of(token).await?;
        if state.current != presented && !state.spent.contains(&presented) {
            return Err(refresh_refused("is not valid"));
        }
        if state.ended.is_none() {
            self.end(id, "signed out", metadata).await?;
            tracing::info!(user_id = %state.user_id, sign_in = %id, "signed out");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_parse_only_in_their_shape() {
        let secret = new_secret();
        assert_eq!(secret.len(), 64);
        let id = uuid::Uuid::new_v4();
        assert_eq!(
            parse_refresh(&format!("{id}.{secret}")),
            Some((id, secret.as_str()))
        );
        for bad in ["", "x.y", &format!("{id}.short"), &format!("nope.{secret}")] {
            assert_eq!(parse_refresh(bad), None, "{bad}");
        }
        assert_ne!(digest("a"), digest("b"));
        assert_eq!(digest("a").len(), 64);
    }

    #[test]
    fn passwords_have_bounds() {
        assert!(check_password("short").is_err());
        assert!(check_password("long enough!").is_ok());
        assert!(check_password(&"x".repeat(257)).is_err());
    }
}

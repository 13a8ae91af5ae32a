//! Who a call acts for, as the gateway forwards it, and the service token that lets a service
//! trust that forwarding.
//!
//! The gateway authenticates people; the services trust the `x-actor` (a user id, or
//! `anonymous`) and `x-actor-roles` (`admin`) it sends. With `SERVICE_TOKEN` set, a service
//! refuses every call to its API that does not carry the same token in `x-service-token`
//! ([`ServiceToken::check`]), so only the gateway and the other service can make those claims;
//! the services add it to their own calls to each other ([`ServiceToken`] as an interceptor).

use metachat_proto::error::{ApiError, ErrorCode};
use metachat_proto::metadata::{ACTOR, REQUEST_ID, TRACEPARENT};
use metachat_validation::UserId;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;

/// The metadata key of the caller's roles.
pub const ACTOR_ROLES: &str = "x-actor-roles";

/// The metadata key of the service token.
pub const SERVICE_TOKEN: &str = "x-service-token";

/// Who a call acts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// No user: the gateway let the call through (authentication off, or a public route), or
    /// another service calls.
    Unrestricted,
    /// A signed-in user; an admin may act for everyone.
    User { id: UserId, admin: bool },
}

impl Actor {
    /// The actor `request` carries: a user when `x-actor` is a user id.
    pub fn of<T>(request: &tonic::Request<T>) -> Self {
        let metadata = request.metadata();
        let id = metadata
            .get(ACTOR)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<UserId>().ok());
        match id {
            Some(id) => Actor::User {
                id,
                admin: metadata
                    .get(ACTOR_ROLES)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|roles| roles.split(',').any(|r| r.trim() == "admin")),
            },
            None => Actor::Unrestricted,
        }
    }

    /// Whether the actor may read and change what belongs to `owner`.
    pub fn may_act_for(&self, owner: &UserId) -> bool {
        match self {
            Actor::Unrestricted => true,
            Actor::User { id, admin } => *admin || id == owner,
        }
    }
}

/// The shared service token: checks incoming calls, and adds itself to outgoing ones (with the
/// `traceparent` and request id of the call being served, if any).
#[derive(Debug, Clone, Default)]
pub struct ServiceToken(Option<String>);

impl ServiceToken {
    pub fn new(token: Option<String>) -> Self {
        Self(token.filter(|t| !t.is_empty()))
    }

    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }

    /// An interceptor for a service's API: refuses a call without the token (when one is set).
    pub fn check(&self) -> impl Interceptor + Clone + Send + Sync + 'static {
        let expected = self.0.clone();
        move |request: tonic::Request<()>| {
            let Some(expected) = &expected else {
                return Ok(request);
            };
            let sent = request
                .metadata()
                .get(SERVICE_TOKEN)
                .map(|v| v.as_bytes())
                .unwrap_or_default();
            if constant_time_eq(sent, expected.as_bytes()) {
                Ok(request)
            } else {
                Err(tonic::Status::from(ApiError::new(
                    ErrorCode::Unauthenticated,
                    "this service answers only callers holding its service token",
                )))
            }
        }
    }
}

/// Adds the token to every outgoing call.
impl Interceptor for ServiceToken {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = self
            .0
            .as_deref()
            .and_then(|t| MetadataValue::try_from(t).ok())
        {
            request.metadata_mut().insert(SERVICE_TOKEN, value);
        }
        // A call made while serving one continues its trace, under this service's span, with
        // its request id.
        if let Some(current) = crate::server::current_call() {
            if let Ok(value) = MetadataValue::try_from(current.trace.traceparent()) {
                request.metadata_mut().insert(TRACEPARENT, value);
            }
            if let Some(value) = current
                .request_id
                .and_then(|id| MetadataValue::try_from(id).ok())
            {
                request.metadata_mut().insert(REQUEST_ID, value);
            }
        }
        Ok(request)
    }
}

/// Compares without stopping at the first difference (the time taken says nothing about how
/// much of a guess was right).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_actor_is_read_from_the_metadata() {
        let id = UserId::new();
        let mut request = tonic::Request::new(());
        assert_eq!(Actor::of(&request), Actor::Unrestricted);
        request
            .metadata_mut()
            .insert(ACTOR, id.to_string().parse().unwrap());
        assert_eq!(Actor::of(&request), Actor::User { id, admin: false });
        request
            .metadata_mut()
            .insert(ACTOR_ROLES, "admin".parse().unwrap());
        let admin = Actor::of(&request);
        assert_eq!(admin, Actor::User { id, admin: true });
        assert!(admin.may_act_for(&UserId::new()));
        let user = Actor::User { id, admin: false };
        assert!(user.may_act_for(&id) && !user.may_act_for(&UserId::new()));
    }

    #[test]
    fn the_service_token_is_checked_and_sent() {
        let token = ServiceToken::new(Some("s3cret-token".into()));
        let mut check = token.check();
        assert!(check.call(tonic::Request::new(())).is_err());
        let mut outgoing = token.clone();
        let request = outgoing.call(tonic::Request::new(())).unwrap();
        assert!(check.call(request).is_ok());
        let mut wrong = tonic::Request::new(());
        wrong
            .metadata_mut()
            .insert(SERVICE_TOKEN, "s3cret-tokeN".parse().unwrap());
        assert!(check.call(wrong).is_err());
        // No token configured: every call passes.
        assert!(
            ServiceToken::new(None)
                .check()
                .call(tonic::Request::new(()))
                .is_ok()
        );
    }
}

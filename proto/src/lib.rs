//! The gRPC contracts between the gateway and the services, generated from `proto/metachat`,
//! and the one table that maps MetaChat error codes to gRPC and HTTP statuses.

pub mod error;
pub mod time;
pub mod trace;

/// gRPC metadata keys the gateway sets on every call and the services record in event metadata.
pub mod metadata {
    pub const REQUEST_ID: &str = "x-request-id";
    pub const CORRELATION_ID: &str = "x-correlation-id";
    pub const ACTOR: &str = "x-actor";
    /// A creating call's `Idempotency-Key`.
    pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
    /// The W3C trace context of the call ([`crate::trace`]).
    pub const TRACEPARENT: &str = crate::trace::TRACEPARENT;

    /// The longest request, correlation or actor id taken from a caller.
    pub const ID_MAX: usize = 128;

    /// Whether a caller's id (`x-request-id`, `x-correlation-id`, `x-actor`) is usable as
    /// sent: 1 to [`ID_MAX`] visible ASCII characters. Anything else is not logged nor stored.
    pub fn usable_id(value: &str) -> bool {
        (1..=ID_MAX).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_graphic())
    }
}

/// Generated code, nested like the protobuf packages so cross-package references resolve.
pub mod metachat {
    pub mod common {
        pub mod v1 {
            tonic::include_proto!("metachat.common.v1");
        }
    }
    pub mod user {
        pub mod v1 {
            tonic::include_proto!("metachat.user.v1");
        }
    }
    pub mod diary {
        pub mod v1 {
            tonic::include_proto!("metachat.diary.v1");
        }
    }
}

pub use metachat::common::v1 as common;
pub use metachat::diary::v1 as diary;
pub use metachat::user::v1 as user;

/// The encoded descriptor set of every MetaChat service, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/metachat_descriptor.bin"));

pub use prost_types::Timestamp;

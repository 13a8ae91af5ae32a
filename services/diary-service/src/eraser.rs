//! The diary eraser: follows the user events and, when a user is erased (`UserErased`),
//! deletes their key in the diary's store (a no-op when the services share one) and records
//! `DiaryErased` in their analysis setting stream, on which the read models and the search
//! index drop the user's diary. The user's key is already gone by then (the user
//! service deletes it before recording the erasure), so their entries cannot be read again;
//! this removes the copies the read models keep in the clear.
//!
//! Embedded, it runs as a projection with its own checkpoint; in production, as its own Kafka
//! consumer group on the user topic. The event id is derived from the user, so a redelivered
//! erasure records nothing twice.

use async_trait::async_trait;
use event_sourcing::{
    Aggregate, AppendError, EventMetadata, EventStore, ExpectedVersion, Projection,
    ProjectionError, RecordedEvent, StreamWrite, append_settled, new_event_with_id,
};
use metachat_validation::UserId;
use std::sync::Arc;

use crate::domain::{AnalysisSettingEvent, AnalysisSettingState, DiaryAnalysisSwitched};
use crate::read_model::stored_id;

/// The eraser's name: its checkpoint, and the suffix of its consumer group.
pub const ERASER_NAME: &str = "diary-eraser";

/// Namespace of the `DiaryErased` event ids (UUID v5 of the user id).
const ERASURE_ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6d65_7461_6368_6174_2d65_7261_7365_0001);

/// Erases a user's diary: deletes their key in the diary's store (the user service deleted it
/// already when both share a store, as they do; a diary kept in a store of its own has its own
/// key) and records `DiaryErased` under an id derived from the user, so that the eraser and the
/// gateway's direct call (`EraseDiary`) record it once between them.
pub async fn erase_diary(
    store: &dyn EventStore,
    user_id: &UserId,
    metadata: &EventMetadata,
) -> Result<(), AppendError> {
    store
        .erase_subject(&user_id.to_string())
        .await
        .map_err(AppendError::Refused)?;
    let event = AnalysisSettingEvent::DiaryErased(DiaryAnalysisSwitched { user_id: *user_id });
    let id = uuid::Uuid::new_v5(&ERASURE_ID_NAMESPACE, user_id.to_string().as_bytes());
    let new = new_event_with_id(&event, id, metadata).map_err(AppendError::Refused)?;
    let write = StreamWrite::new(
        AnalysisSettingState::stream_name(user_id),
        ExpectedVersion::Any,
        vec![new],
    );
    let results = append_settled(store, vec![write]).await?;
    if results.iter().any(|r| !r.already_stored) {
        tracing::info!(user_id = %user_id, "diary erased");
    }
    Ok(())
}

pub struct DiaryEraser {
    store: Arc<dyn EventStore>,
}

impl DiaryEraser {
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Self { store }
    }
}

#[async_trait]
impl Projection for DiaryEraser {
    fn name(&self) -> &str {
        ERASER_NAME
    }

    async fn apply(&self, recorded: &RecordedEvent) -> Result<(), ProjectionError> {
        if recorded.category() != "user" || recorded.event_type != "UserErased" {
            return Ok(());
        }
        let user_id: UserId = stored_id(recorded.aggregate_id())?;
        let metadata = EventMetadata::caused_by(recorded, ERASER_NAME);
        erase_diary(self.store.as_ref(), &user_id, &metadata).await?;
        Ok(())
    }

    /// Nothing to reset: what it recorded stays recorded.
    async fn reset(&self) -> Result<(), ProjectionError> {
        Ok(())
    }
}

//! The entry analyzer: follows the diary events and, for each entry created or updated,
//! records the analysis of that version's content as a `DiaryEntryAnalyzed` on the entry's
//! stream ([`application::record_analysis`]). It runs as a [`Projection`]: embedded, with its
//! own checkpoint beside the read models'; in production, as its own Kafka consumer group on
//! the diary topic. Delivery is at least once; recording is idempotent, so a redelivered event
//! stores nothing more.

use std::sync::Arc;

use async_trait::async_trait;
use event_sourcing::{
    Aggregate, EventMetadata, EventStore, Projection, ProjectionError, RecordedEvent, Repository,
};
use metachat_validation::EntryId;

use crate::application::{self, AnalysisOutcome};
use crate::domain::EntryState;
use crate::read_model::stored_id;

/// The analyzer's name: its checkpoint, and the suffix of its consumer group.
pub const ANALYZER_NAME: &str = "entry-analyzer";

/// Records the analysis of every entry version it is shown.
pub struct EntryAnalyzer {
    entries: Repository<EntryState>,
}

impl EntryAnalyzer {
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Self {
            entries: Repository::new(store),
        }
    }

    /// Analyses the entry version `recorded` wrote, if it wrote content; `None` for any other
    /// event.
    pub async fn analyze(
        &self,
        recorded: &RecordedEvent,
    ) -> Result<Option<AnalysisOutcome>, ProjectionError> {
        let writes_content = recorded.category() == EntryState::CATEGORY
            && matches!(
                recorded.event_type.as_str(),
                "DiaryEntryCreated" | "DiaryEntryUpdated"
            );
        if !writes_content {
            return Ok(None);
        }
        let id: EntryId = stored_id(recorded.aggregate_id())?;
        let metadata = EventMetadata {
            correlation_id: recorded.metadata.correlation_id.clone(),
            causation_id: Some(recorded.event_id.to_string()),
            request_id: None,
            actor: Some(ANALYZER_NAME.to_owned()),
        };
        let outcome =
            application::record_analysis(&self.entries, &id, recorded.stream_version, &metadata)
                .await?;
        // Ids and versions only: the text is never logged.
        tracing::debug!(entry_id = %id, version = recorded.stream_version, ?outcome, "entry analysed");
        Ok(Some(outcome))
    }
}

#[async_trait]
impl Projection for EntryAnalyzer {
    fn name(&self) -> &str {
        ANALYZER_NAME
    }

    async fn apply(&self, recorded: &RecordedEvent) -> Result<(), ProjectionError> {
        self.analyze(recorded).await.map(|_| ())
    }

    /// Its results are events, which stay: a replay from position zero records only the
    /// analyses still missing (of each entry's current content).
    async fn reset(&self) -> Result<(), ProjectionError> {
        Ok(())
    }
}

//! The entry analyzer: follows the diary events and, for each entry created or updated,
//! records the analysis of that version's content as a `DiaryEntryAnalyzed` on the entry's
//! stream ([`application::record_analysis`]), unless its writer switched analysis off. When a
//! writer switches analysis back on, it analyses each of their live entries again. It runs as a [`Projection`]: embedded, with its
//! own checkpoint beside the read models'; in production, as its own Kafka consumer group on
//! the diary topic. Delivery is at least once; recording is idempotent, so a redelivered event
//! stores nothing more.

use std::sync::Arc;

use async_trait::async_trait;
use event_sourcing::{
    Aggregate, EventMetadata, EventStore, Projection, ProjectionError, RecordedEvent, Repository,
};
use metachat_validation::{EntryId, UserId};

use crate::application::{self, AnalysisOutcome};
use crate::domain::{AnalysisSettingState, EntryState};
use crate::read_model::{DiaryReadModels, live_entry_ids, stored_id};

/// The analyzer's name: its checkpoint, and the suffix of its consumer group.
pub const ANALYZER_NAME: &str = "entry-analyzer";

/// Records the analysis of every entry version it is shown.
pub struct EntryAnalyzer {
    entries: Repository<EntryState>,
    settings: Repository<AnalysisSettingState>,
    /// Where a writer's entries are listed when they switch analysis back on.
    read_models: Arc<dyn DiaryReadModels>,
}

impl EntryAnalyzer {
    pub fn new(store: Arc<dyn EventStore>, read_models: Arc<dyn DiaryReadModels>) -> Self {
        Self {
            entries: Repository::new(store.clone()),
            settings: Repository::new(store),
            read_models,
        }
    }

    /// Analyses again every live entry of a writer who switched analysis back on (each under
    /// the new setting version, so a redelivered switch records nothing twice).
    async fn analyze_all_of(
        &self,
        user_id: &UserId,
        metadata: &EventMetadata,
    ) -> Result<u64, ProjectionError> {
        let mut recorded = 0;
        for id in live_entry_ids(self.read_models.as_ref(), user_id).await? {
            let loaded = self.entries.load(&id).await?;
            let Some(entry) = loaded.state.live() else {
                continue;
            };
            let outcome = application::record_analysis(
                &self.entries,
                &self.settings,
                &entry.id,
                entry.content_version,
                metadata,
            )
            .await?;
            if outcome == AnalysisOutcome::Recorded {
                recorded += 1;
            }
        }
        Ok(recorded)
    }

    /// Analyses the entry version `recorded` wrote, if it wrote content; `None` for any other
    /// event.
    pub async fn analyze(
        &self,
        recorded: &RecordedEvent,
    ) -> Result<Option<AnalysisOutcome>, ProjectionError> {
        let metadata = EventMetadata::caused_by(recorded, ANALYZER_NAME);
        if recorded.category() == AnalysisSettingState::CATEGORY
            && recorded.event_type == "DiaryAnalysisEnabled"
        {
            let user_id: UserId = stored_id(recorded.aggregate_id())?;
            // The writer's entries are listed from the read models: first they catch up with
            // the switch, so that an entry created just before it (whose own analysis found
            // analysis off) is among them.
            self.read_models
                .wait_for_position(recorded.position, LISTS_CATCH_UP)
                .await;
            let analysed = self.analyze_all_of(&user_id, &metadata).await?;
            tracing::info!(user_id = %user_id, analysed, "entries analysed again after analysis was switched on");
            return Ok(None);
        }
        let writes_content = recorded.category() == EntryState::CATEGORY
            && matches!(
                recorded.event_type.as_str(),
                "DiaryEntryCreated" | "DiaryEntryUpdated"
            );
        if !writes_content {
            return Ok(None);
        }
        let id: EntryId = stored_id(recorded.aggregate_id())?;
        let outcome = application::record_analysis(
            &self.entries,
            &self.settings,
            &id,
            recorded.stream_version,
            &metadata,
        )
        .await?;
        // Ids and versions only: the text is never logged.
        tracing::debug!(entry_id = %id, version = recorded.stream_version, ?outcome, "entry analysed");
        Ok(Some(outcome))
    }
}

/// What a re-analysis did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reanalysis {
    /// Events read from the store.
    pub events: u64,
    /// Analyses recorded (entries whose current content had none by this build's analyzers).
    pub recorded: u64,
    /// Entries whose current content already had one.
    pub current: u64,
    /// Content events no longer current (changed or deleted since), or of writers who
    /// switched analysis off.
    pub skipped: u64,
}

impl EntryAnalyzer {
    /// Analyses again, with this build's analyzers, the current content of every entry
    /// written up to the store's head when it starts: what `metachat reanalyze` runs after an
    /// analyzer's version changed. Safe while the platform serves: recording is idempotent
    /// and decided against the entry's version, so a concurrent change, a running analyzer or
    /// a second re-analysis never yields two analyses of one content. `progress` is called
    /// after each batch.
    pub async fn reanalyze_all(
        &self,
        store: &dyn EventStore,
        mut progress: impl FnMut(&Reanalysis),
    ) -> Result<Reanalysis, ProjectionError> {
        let mut done = Reanalysis::default();
        crate::walk::to_head(
            store,
            &mut done,
            async |done: &mut Reanalysis, recorded: &RecordedEvent| {
                done.events += 1;
                // Only entry content: a switch back on is not replayed here (its writer's
                // entries are among the events anyway).
                if recorded.category() != EntryState::CATEGORY {
                    return Ok(());
                }
                match self.analyze(recorded).await? {
                    Some(AnalysisOutcome::Recorded) => done.recorded += 1,
                    Some(AnalysisOutcome::AlreadyRecorded) => done.current += 1,
                    Some(AnalysisOutcome::Outdated | AnalysisOutcome::SwitchedOff) => {
                        done.skipped += 1
                    }
                    None => {}
                }
                Ok(())
            },
            &mut progress,
        )
        .await?;
        Ok(done)
    }
}

/// How long a switch back on waits for the lists to reflect it before listing the entries.
const LISTS_CATCH_UP: std::time::Duration = std::time::Duration::from_secs(10);

/// Analyses a batch runs at once.
const BATCH_CONCURRENCY: usize = 16;

#[async_trait]
impl Projection for EntryAnalyzer {
    fn name(&self) -> &str {
        ANALYZER_NAME
    }

    async fn apply(&self, recorded: &RecordedEvent) -> Result<(), ProjectionError> {
        self.analyze(recorded).await.map(|_| ())
    }

    /// Analyses of different entries are independent (and two of one entry at once record
    /// one: [`EntryAnalyzer::analyze`]), so a batch's run side by side, [`BATCH_CONCURRENCY`]
    /// at a time: their appends then share commits instead of each waiting for a disk flush
    /// of its own.
    async fn apply_batch(&self, events: &[&RecordedEvent]) -> Result<bool, ProjectionError> {
        for chunk in events.chunks(BATCH_CONCURRENCY) {
            let mut analyses = Vec::with_capacity(chunk.len());
            for event in chunk {
                analyses.push(self.analyze(event));
            }
            for outcome in futures::future::join_all(analyses).await {
                outcome?;
            }
        }
        Ok(true)
    }

    /// Its results are events, which stay: a replay from position zero records only the
    /// analyses still missing (of each entry's current content).
    async fn reset(&self) -> Result<(), ProjectionError> {
        Ok(())
    }
}

//! The entry indexer: follows the diary events and keeps each live entry's embeddings and
//! search terms in the [`SearchIndex`], from the entry's current state (so a redelivered or
//! replayed event indexes nothing twice, and never an old version): indexed after a creation
//! or a change of its title or content, removed after its deletion, removed with all of its
//! writer's entries when they switch analysis off, and indexed again when they switch it back
//! on. It runs as a [`Projection`]: embedded, with its own checkpoint; in production, as its own
//! Kafka consumer group on the diary topic. It runs only where the model is present.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use embeddings::{Embedder, EmbeddingError};
use event_sourcing::{
    Aggregate, EventStore, Projection, ProjectionError, RecordedEvent, Repository,
};
use metachat_validation::{EntryId, UserId};

use super::{IndexedEntry, SearchIndex, Semantic, fingerprint, indexed_text};
use crate::domain::{AnalysisSettingState, Entry, EntryState};
use crate::read_model::{DiaryReadModels, analysis_switch, live_entry_ids, stored_id};

/// The indexer's name: its checkpoint, and the suffix of its consumer group.
pub const INDEXER_NAME: &str = "entry-indexer";

/// Chunks embedded in one batch: a long entry's chunks in batches, so its memory stays small.
const BATCH: usize = 8;

/// Chunks embedded at most per entry: the first 32 passages (about 5,000 words), a second or
/// so of one core. Every entry's indexing then takes a bounded time, so one writer's very long
/// entries cannot hold up everyone's for long; the whole text still counts for keywords.
pub const MAX_CHUNKS: usize = 32;

/// Keywords kept per entry to label themes.
const KEYWORDS: usize = 10;

/// What indexing an entry did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Indexed {
    /// Its embeddings and terms were stored.
    Stored,
    /// The index already held its current text.
    Current,
    /// It was removed (deleted, or its writer switched analysis off).
    Removed,
    /// Nothing to index: it never existed, or its text could not be embedded.
    Skipped,
}

/// Keeps the search index in step with the entries.
pub struct EntryIndexer {
    entries: Repository<EntryState>,
    settings: Repository<AnalysisSettingState>,
    read_models: Arc<dyn DiaryReadModels>,
    semantic: Semantic,
}

impl EntryIndexer {
    pub fn new(
        store: Arc<dyn EventStore>,
        read_models: Arc<dyn DiaryReadModels>,
        semantic: Semantic,
    ) -> Self {
        Self {
            entries: Repository::new(store.clone()),
            settings: Repository::new(store),
            read_models,
            semantic,
        }
    }

    fn index(&self) -> &dyn SearchIndex {
        self.semantic.index.as_ref()
    }

    /// Brings the index in step with entry `id`'s current state.
    pub async fn index_entry(&self, id: &EntryId) -> Result<Indexed, ProjectionError> {
        let loaded = self.entries.load(id).await?;
        let entry = match &loaded.state {
            EntryState::Absent => return Ok(Indexed::Skipped),
            EntryState::Deleted(entry) => {
                self.index().remove(&entry.user_id, id).await?;
                return Ok(Indexed::Removed);
            }
            EntryState::Live(entry) => entry.clone(),
        };
        if !self.analysed(&entry.user_id).await? {
            self.index().remove(&entry.user_id, id).await?;
            return Ok(Indexed::Removed);
        }
        let text = indexed_text(&entry.title, &entry.content);
        if self.index().fingerprint(id).await? == Some(fingerprint(&text)) {
            return Ok(Indexed::Current);
        }
        let written_at = entry
            .written_at
            .or(loaded.created_at)
            .unwrap_or_else(Utc::now);
        let model = self.semantic.model.clone();
        // Tens of milliseconds of CPU per chunk: off the async workers.
        let computed =
            tokio::task::spawn_blocking(move || compute(&model, &entry, text, written_at))
                .await
                .map_err(|e| -> ProjectionError { format!("indexing failed: {e}").into() })?;
        let indexed = match computed {
            Ok(indexed) => indexed,
            // The same text fails the same way every time: retrying would stop the indexer
            // for good. The entry stays out of the index; ids only in the log.
            Err(error) => {
                tracing::error!(entry_id = %id, %error, "entry could not be embedded; not indexed");
                return Ok(Indexed::Skipped);
            }
        };
        self.index().put(&indexed).await?;
        // A switch off recorded while this entry was embedded may have cleared the writer's
        // index before the put: checked again after it.
        if !self.analysed(&indexed.user_id).await? {
            self.index().remove(&indexed.user_id, id).await?;
            return Ok(Indexed::Removed);
        }
        tracing::debug!(entry_id = %id, chunks = indexed.vectors.len(), "entry indexed");
        Ok(Indexed::Stored)
    }

    async fn analysed(&self, user_id: &UserId) -> Result<bool, ProjectionError> {
        Ok(self.settings.load(user_id).await?.state.setting().enabled)
    }

    /// Indexes every live entry of `user_id` (after they switched analysis back on).
    pub async fn index_all_of(&self, user_id: &UserId) -> Result<u64, ProjectionError> {
        let mut stored = 0;
        for id in live_entry_ids(self.read_models.as_ref(), user_id).await? {
            if self.index_entry(&id).await? == Indexed::Stored {
                stored += 1;
            }
        }
        Ok(stored)
    }
}

/// What a re-indexing did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reindexing {
    /// Events read from the store.
    pub events: u64,
    /// Entries whose embeddings and terms were stored.
    pub stored: u64,
    /// Entries the index already held as they are.
    pub current: u64,
    /// Entries removed or left out (deleted, analysis off, or not embeddable).
    pub skipped: u64,
}

impl EntryIndexer {
    /// Brings the index in step with every entry written up to the store's head when it
    /// starts: what `metachat reindex` runs when the indexer could not follow every event
    /// (the model was installed after Kafka's retention dropped the oldest ones). Each entry is
    /// taken once, at its creation, and indexed from its current state.
    pub async fn reindex_all(
        &self,
        store: &dyn EventStore,
        mut progress: impl FnMut(&Reindexing),
    ) -> Result<Reindexing, ProjectionError> {
        let mut done = Reindexing::default();
        crate::walk::to_head(
            store,
            &mut done,
            async |done: &mut Reindexing, recorded: &RecordedEvent| {
                done.events += 1;
                if recorded.category() != EntryState::CATEGORY
                    || recorded.event_type != "DiaryEntryCreated"
                {
                    return Ok(());
                }
                let id: EntryId = stored_id(recorded.aggregate_id())?;
                match self.index_entry(&id).await? {
                    Indexed::Stored => done.stored += 1,
                    Indexed::Current => done.current += 1,
                    Indexed::Removed | Indexed::Skipped => done.skipped += 1,
                }
                Ok(())
            },
            &mut progress,
        )
        .await?;
        Ok(done)
    }
}

/// Embeds and extracts the terms of `entry`'s `text`.
fn compute(
    model: &Embedder,
    entry: &Entry,
    text: String,
    written_at: DateTime<Utc>,
) -> Result<IndexedEntry, EmbeddingError> {
    let mut chunks = model.chunks(&text)?;
    chunks.truncate(MAX_CHUNKS);
    let mut vectors = Vec::with_capacity(chunks.len());
    for batch in chunks.chunks(BATCH) {
        vectors.extend(model.embed(batch)?);
    }
    // A text too short to tell its language is taken as English, as queries are.
    let language = analysis::language::detect(&text)
        .language
        .unwrap_or(analysis::Language::En);
    let terms = analysis::terms::terms(&text, Some(language));
    let keywords = analysis::keywords::extract(&text, Some(language), KEYWORDS)
        .into_iter()
        .map(|k| k.phrase)
        .collect();
    Ok(IndexedEntry {
        entry_id: entry.id,
        user_id: entry.user_id,
        fingerprint: fingerprint(&text),
        written_at,
        vectors,
        terms: terms.counts,
        length: terms.length,
        keywords,
    })
}

#[async_trait]
impl Projection for EntryIndexer {
    fn name(&self) -> &str {
        INDEXER_NAME
    }

    async fn apply(&self, recorded: &RecordedEvent) -> Result<(), ProjectionError> {
        if let Some((user_id, enabled)) = analysis_switch(recorded)? {
            if enabled {
                let stored = self.index_all_of(&user_id).await?;
                tracing::info!(user_id = %user_id, stored, "entries indexed again after analysis was switched on");
            } else {
                self.index().remove_user(&user_id).await?;
            }
            return Ok(());
        }
        let changes_entry = recorded.category() == EntryState::CATEGORY
            && matches!(
                recorded.event_type.as_str(),
                "DiaryEntryCreated" | "DiaryEntryUpdated" | "DiaryEntryDeleted"
            );
        if changes_entry {
            let id: EntryId = stored_id(recorded.aggregate_id())?;
            self.index_entry(&id).await?;
        }
        Ok(())
    }

    /// Empties the index: a replay from position zero indexes every live entry again.
    async fn reset(&self) -> Result<(), ProjectionError> {
        self.index()
            .clear()
            .await
            .map_err(|e| -> ProjectionError { e.to_string().into() })
    }
}

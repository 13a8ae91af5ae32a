//! Search by meaning, related entries and themes: the use cases over the search index
//! ([`crate::search`]). Each answers only from the writer's own entries, and only while their
//! analysis is on (the index holds nothing of theirs otherwise).

use std::collections::HashMap;

use event_sourcing::Loaded;
use metachat_grpc::{query_error, store_error};
use metachat_proto::error::{ApiError, ErrorCode};
use metachat_validation::{EntryId, UserId};

use super::{Diary, entry_not_found, live};
use crate::analytics::Window;
use crate::domain::EntryState;
use crate::search::themes::{self, Theme};
use crate::search::{CANDIDATES, Ranked, Semantic, StoredVectors, indexed_text, mean_unit, rank};

/// The longest query, in characters.
pub const MAX_QUERY_CHARS: usize = 1_000;

/// Results per page by default, and at most.
pub const DEFAULT_RESULTS: u32 = 10;
pub const MAX_RESULTS: u32 = 50;

/// Entries of a period grouped into themes at most (the most recent).
pub const MAX_THEME_ENTRIES: usize = 2_000;

/// One result: the entry as it is now, and how it matched.
#[derive(Debug, Clone)]
pub struct Match {
    pub entry: Loaded<EntryState>,
    pub ranked: Ranked,
}

/// A page of ranked results.
#[derive(Debug, Clone)]
pub struct Matches {
    pub matches: Vec<Match>,
    pub page: u32,
    pub limit: u32,
    pub has_more: bool,
}

/// What a client asks a search for.
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    pub text: String,
    /// 1-based; 0 means 1.
    pub page: u32,
    /// 0 means [`DEFAULT_RESULTS`].
    pub limit: u32,
}

fn paging(page: u32, limit: u32) -> Result<(u32, u32), ApiError> {
    let limit = if limit == 0 { DEFAULT_RESULTS } else { limit };
    if limit > MAX_RESULTS {
        return Err(ApiError::invalid_field(
            "limit",
            format!("must be between 1 and {MAX_RESULTS}"),
        ));
    }
    // A page past the ranked results is empty, as a list's is.
    Ok((page.max(1), limit))
}

impl Diary {
    /// The model and index, or 503 when the model is not installed.
    fn semantic(&self) -> Result<&Semantic, ApiError> {
        self.semantic.as_ref().ok_or_else(|| {
            ApiError::new(
                ErrorCode::Unavailable,
                "search by meaning is unavailable: the diary service runs without its \
                 sentence-embedding model (scripts/model.sh installs it; see METACHAT_MODEL_DIR)",
            )
        })
    }

    /// Refuses when `user_id` switched analysis off: nothing of theirs is indexed.
    async fn analysed(&self, user_id: &UserId) -> Result<(), ApiError> {
        let enabled = self
            .read_models
            .analysis_enabled(user_id)
            .await
            .map_err(query_error)?;
        if enabled {
            return Ok(());
        }
        Err(ApiError::new(
            ErrorCode::FailedPrecondition,
            "analysis is switched off for this user, so their entries are not indexed for \
             search by meaning; switch it on with PUT /users/{id}/analysis",
        ))
    }

    /// Embeds `text` off the async workers.
    async fn embed(semantic: &Semantic, text: String) -> Result<Vec<f32>, ApiError> {
        let model = semantic.model.clone();
        let embedded = tokio::task::spawn_blocking(move || model.embed(&[text.as_str()]))
            .await
            .map_err(|e| ApiError::internal(format!("embedding failed: {e}")))?;
        match embedded {
            Ok(mut vectors) if !vectors.is_empty() => Ok(vectors.swap_remove(0)),
            Ok(_) => Err(ApiError::internal("embedding failed: no vector")),
            Err(e) => {
                tracing::error!(error = %e, "query could not be embedded");
                Err(ApiError::internal("the query could not be embedded"))
            }
        }
    }

    /// `user_id`'s entries ranked by how well they answer `query`: the cosine similarity of
    /// their closest chunk to the query, blended with the keyword score of the query's terms
    /// ([`crate::search::rank`]); at most [`CANDIDATES`] results, paged.
    pub async fn search(&self, user_id: &UserId, query: &SearchQuery) -> Result<Matches, ApiError> {
        let text = query.text.trim();
        if text.is_empty() {
            return Err(ApiError::invalid_field("q", "must not be empty"));
        }
        if text.chars().count() > MAX_QUERY_CHARS {
            return Err(ApiError::invalid_field(
                "q",
                format!("must be at most {MAX_QUERY_CHARS} characters"),
            ));
        }
        let (page, limit) = paging(query.page, query.limit)?;
        let semantic = self.semantic()?;
        self.registered("userId", user_id).await?;
        self.analysed(user_id).await?;
        let vector = Self::embed(semantic, text.to_owned()).await?;
        let index = semantic.index.as_ref();
        let nearest = index
            .nearest(user_id, &vector, CANDIDATES)
            .await
            .map_err(query_error)?;
        let mut similarities: HashMap<EntryId, f32> =
            nearest.iter().map(|h| (h.entry_id, h.similarity)).collect();
        let terms = self.query_terms(semantic, user_id, text).await?;
        let mut keywords = HashMap::new();
        if !terms.is_empty() {
            let nearest_ids: Vec<EntryId> = nearest.iter().map(|h| h.entry_id).collect();
            keywords = index
                .keyword_matches(user_id, &terms, &nearest_ids, CANDIDATES)
                .await
                .map_err(query_error)?;
            // The best keyword matches that were not among the nearest: their similarity too.
            let ids: Vec<EntryId> = keywords
                .keys()
                .filter(|id| !similarities.contains_key(id))
                .copied()
                .collect();
            for stored in index.vectors(user_id, &ids).await.map_err(query_error)? {
                similarities.insert(stored.entry_id, stored.similarity(&vector));
            }
            keywords.retain(|id, _| similarities.contains_key(id));
        }
        let mut ranked = rank(&similarities, &keywords);
        ranked.truncate(CANDIDATES);
        self.page_of(user_id, ranked, page, limit).await
    }

    /// The stems `text`'s words are searched by: for each word, of the stems it may have
    /// been written with (several when the query's language cannot be told), the one most of
    /// the writer's entries hold. A word none of them holds keeps its first stem (it counts as
    /// missing), unless it is a stop word in some language (then it is left out).
    async fn query_terms(
        &self,
        semantic: &Semantic,
        user_id: &UserId,
        text: &str,
    ) -> Result<Vec<String>, ApiError> {
        let words = analysis::terms::query_terms(text);
        let candidates: Vec<String> = words
            .iter()
            .flat_map(|w| w.stems.iter().cloned())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let frequencies: HashMap<String, u64> = if words.iter().any(|w| w.stems.len() > 1) {
            let counted = semantic
                .index
                .document_frequencies(user_id, &candidates)
                .await
                .map_err(query_error)?;
            candidates.into_iter().zip(counted).collect()
        } else {
            HashMap::new()
        };
        let mut terms: Vec<String> = Vec::new();
        for word in words {
            let df = |stem: &String| frequencies.get(stem).copied().unwrap_or(0);
            let best = word
                .stems
                .iter()
                .rev()
                .max_by_key(|stem| df(stem))
                .filter(|stem| df(stem) > 0);
            let chosen = match best {
                Some(stem) => stem.clone(),
                None if word.stop_word_somewhere && word.stems.len() > 1 => continue,
                None => word.stems[0].clone(),
            };
            if !terms.contains(&chosen) {
                terms.push(chosen);
            }
        }
        Ok(terms)
    }

    /// The entries of the same writer closest in meaning to entry `id` (itself left out),
    /// most similar first, at most [`CANDIDATES`], paged.
    pub async fn related(&self, id: &EntryId, page: u32, limit: u32) -> Result<Matches, ApiError> {
        let (page, limit) = paging(page, limit)?;
        let semantic = self.semantic()?;
        let loaded = self.entries.load(id).await.map_err(store_error)?;
        let loaded = live(loaded).ok_or_else(|| entry_not_found(id))?;
        let Some(entry) = loaded.state.live() else {
            return Err(entry_not_found(id));
        };
        let user_id = entry.user_id;
        self.analysed(&user_id).await?;
        let index = semantic.index.as_ref();
        let stored = index
            .vectors(&user_id, std::slice::from_ref(id))
            .await
            .map_err(query_error)?;
        // Not indexed yet (just written): embedded now, as the indexer will.
        let vector = match stored.first() {
            Some(stored) => stored.centroid(),
            None => {
                let text = indexed_text(&entry.title, &entry.content);
                let model = semantic.model.clone();
                let chunks = tokio::task::spawn_blocking(move || model.embed_document(&text))
                    .await
                    .map_err(|e| ApiError::internal(format!("embedding failed: {e}")))?
                    .map_err(|e| {
                        tracing::error!(entry_id = %id, error = %e, "entry could not be embedded");
                        ApiError::internal("the entry could not be embedded")
                    })?;
                mean_unit(&chunks)
            }
        };
        let similarities: HashMap<EntryId, f32> = index
            .nearest(&user_id, &vector, CANDIDATES + 1)
            .await
            .map_err(query_error)?
            .into_iter()
            .filter(|h| h.entry_id != *id)
            .map(|h| (h.entry_id, h.similarity))
            .collect();
        // Similarity alone: the blend's keyword part is for typed queries.
        let mut ranked: Vec<Ranked> = similarities
            .iter()
            .map(|(entry_id, &similarity)| Ranked {
                entry_id: *entry_id,
                score: similarity.max(0.0),
                similarity,
                keyword: 0.0,
            })
            .filter(|r| r.score >= crate::search::MIN_SCORE)
            .collect();
        ranked.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.entry_id.as_uuid().cmp(b.entry_id.as_uuid()))
        });
        ranked.truncate(CANDIDATES);
        self.page_of(&user_id, ranked, page, limit).await
    }

    /// Page `page` of `ranked`, each with its entry as it is now. An entry deleted since it
    /// was indexed, or not the writer's, is left out.
    async fn page_of(
        &self,
        user_id: &UserId,
        ranked: Vec<Ranked>,
        page: u32,
        limit: u32,
    ) -> Result<Matches, ApiError> {
        let start = (page as usize - 1).saturating_mul(limit as usize);
        let has_more = ranked.len() > start.saturating_add(limit as usize);
        let mut matches = Vec::new();
        for r in ranked.into_iter().skip(start).take(limit as usize) {
            let loaded = self.entries.load(&r.entry_id).await.map_err(store_error)?;
            let Some(mut loaded) = live(loaded) else {
                continue;
            };
            if let EntryState::Live(entry) = &mut loaded.state {
                if entry.user_id != *user_id {
                    continue;
                }
                // Results show entries as lists do: without their analysis.
                entry.analysis = None;
            }
            matches.push(Match {
                entry: loaded,
                ranked: r,
            });
        }
        Ok(Matches {
            matches,
            page,
            limit,
            has_more,
        })
    }

    /// The themes of `user_id`'s entries written in `window` (the most recent
    /// [`MAX_THEME_ENTRIES`]); `None` without the model or while analysis is off.
    pub(super) async fn themes(
        &self,
        user_id: &UserId,
        window: &Window,
        enabled: bool,
    ) -> Result<Option<Vec<Theme>>, ApiError> {
        let (Some(semantic), true) = (self.semantic.as_ref(), enabled) else {
            return Ok(None);
        };
        let entries: Vec<StoredVectors> = semantic
            .index
            .written_between(user_id, window.start, window.end, MAX_THEME_ENTRIES)
            .await
            .map_err(query_error)?;
        let found = tokio::task::spawn_blocking(move || themes::themes(&entries))
            .await
            .map_err(|e| ApiError::internal(format!("themes failed: {e}")))?;
        Ok(Some(found))
    }
}

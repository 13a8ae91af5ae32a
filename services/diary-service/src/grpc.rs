//! The gRPC adapter: messages become use-case calls, results and errors become messages.
//! No rule lives here; see [`crate::application`].

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use event_sourcing::{EventStore, Loaded};
use metachat_grpc::{
    Actor, event_metadata, from_timestamp, history, idempotency_key, page_request, timestamp,
};
use metachat_proto::Timestamp;
use metachat_proto::common::{EventHistory, HistoryRequest};
use metachat_proto::diary::diary_service_server::DiaryService;
use metachat_proto::diary::{self as pb};
use metachat_proto::error::ApiError;
use metachat_validation::{EntryId, SessionId, UserId, Violations};
use tonic::{Request, Response, Status};

use crate::analytics::{Analytics, WindowProfile};
use crate::application::{AnalyticsQuery, Diary, EntryDraft, Matches, SearchQuery, check_acts_for};
use crate::domain::{
    AnalysisSettingState, DiaryEntryAnalyzed, Entry, EntryChanges, EntryState, Session,
    SessionState,
};
use crate::read_model::{DiaryReadModels, TimeRange};
use crate::search::Semantic;
use crate::users::UserDirectory;

/// The diary service over its use cases.
pub struct DiaryGrpc {
    diary: Diary,
}

impl DiaryGrpc {
    /// `read_your_writes` bounds how long a list waits for the write its token names.
    pub fn new(
        store: Arc<dyn EventStore>,
        read_models: Arc<dyn DiaryReadModels>,
        users: Arc<dyn UserDirectory>,
        read_your_writes: Duration,
        semantic: Option<Semantic>,
    ) -> Self {
        Self {
            diary: Diary::new(store, read_models, users)
                .with_read_your_writes_timeout(read_your_writes)
                .with_semantic(semantic),
        }
    }
}

fn optional_time(field: &str, ts: Option<Timestamp>) -> Result<Option<DateTime<Utc>>, ApiError> {
    ts.map(|ts| from_timestamp(field, &ts)).transpose()
}

fn parse<T>(parsed: Result<T, Violations>) -> Result<T, ApiError> {
    parsed.map_err(ApiError::from)
}

#[tonic::async_trait]
impl DiaryService for DiaryGrpc {
    async fn create_entry(
        &self,
        request: Request<pb::CreateEntryRequest>,
    ) -> Result<Response<pb::Entry>, Status> {
        let actor = Actor::of(&request);
        let metadata = event_metadata(&request);
        let key = idempotency_key(&request);
        let r = request.into_inner();
        let user_id = parse(UserId::parse("userId", &r.user_id))?;
        check_acts_for(&actor, "userId", &user_id)?;
        let session_id = r
            .session_id
            .map(|id| parse(SessionId::parse("sessionId", &id)))
            .transpose()?;
        let draft = EntryDraft {
            title: r.title,
            content: r.content,
            token_count: r.token_count,
            session_id,
            tags: r.tags,
            created_at: optional_time("createdAt", r.created_at)?,
            idempotency_key: key,
        };
        let loaded = self.diary.write_entry(&user_id, draft, &metadata).await?;
        Ok(Response::new(live_entry_to_proto(loaded)?))
    }

    async fn get_entry(
        &self,
        request: Request<pb::GetEntryRequest>,
    ) -> Result<Response<pb::Entry>, Status> {
        let actor = Actor::of(&request);
        let r = request.into_inner();
        let id = parse(EntryId::parse("id", &r.id))?;
        self.diary.check_entry_access(&actor, &id).await?;
        let loaded = match optional_time("asOf", r.as_of)? {
            None => self.diary.entry(&id).await?,
            Some(as_of) => self.diary.entry_as_of(&id, as_of).await?,
        };
        Ok(Response::new(live_entry_to_proto(loaded)?))
    }

    async fn update_entry(
        &self,
        request: Request<pb::UpdateEntryRequest>,
    ) -> Result<Response<pb::Entry>, Status> {
        let metadata = event_metadata(&request);
        let actor = Actor::of(&request);
        let r = request.into_inner();
        let id = parse(EntryId::parse("id", &r.id))?;
        self.diary.check_entry_access(&actor, &id).await?;
        let changes = EntryChanges {
            title: r.title,
            content: r.content,
            token_count: r.token_count,
            tags: r.replace_tags.then_some(r.tags),
        };
        let loaded = self
            .diary
            .change_entry(&id, changes, r.expected_version, &metadata)
            .await?;
        Ok(Response::new(live_entry_to_proto(loaded)?))
    }

    async fn delete_entry(
        &self,
        request: Request<pb::DeleteEntryRequest>,
    ) -> Result<Response<pb::DeleteEntryResponse>, Status> {
        let metadata = event_metadata(&request);
        let actor = Actor::of(&request);
        let r = request.into_inner();
        let id = parse(EntryId::parse("id", &r.id))?;
        self.diary.check_entry_access(&actor, &id).await?;
        let deleted = self
            .diary
            .delete_entry(&id, r.expected_version, &metadata)
            .await?;
        Ok(Response::new(pb::DeleteEntryResponse {
            id: id.to_string(),
            deleted_at: deleted.updated_at.map(timestamp),
            version: deleted.version.unwrap_or_default(),
        }))
    }

    async fn list_entries_by_user(
        &self,
        request: Request<pb::ListEntriesByUserRequest>,
    ) -> Result<Response<pb::ListEntriesResponse>, Status> {
        let actor = Actor::of(&request);
        let r = request.into_inner();
        let range = TimeRange {
            start: optional_time("startTime", r.start_time)?,
            end: optional_time("endTime", r.end_time)?,
        };
        let (page, request) = page_request(r.page, r.limit, r.cursor)?;
        let user_id = parse(UserId::parse("userId", &r.user_id))?;
        check_acts_for(&actor, "userId", &user_id)?;
        let found = self
            .diary
            .entries_by_user(&user_id, range, &request, &r.consistency_token)
            .await?;
        Ok(Response::new(pb::ListEntriesResponse {
            has_more: found.has_more(),
            next_cursor: found.next_cursor.unwrap_or_default(),
            entries: found
                .items
                .iter()
                .map(|l| entry_to_proto(&l.state, l))
                .collect(),
            page,
            limit: request.limit,
        }))
    }

    async fn start_session(
        &self,
        request: Request<pb::StartSessionRequest>,
    ) -> Result<Response<pb::Session>, Status> {
        let actor = Actor::of(&request);
        let metadata = event_metadata(&request);
        let key = idempotency_key(&request);
        let r = request.into_inner();
        let start_time = optional_time("startTime", r.start_time)?;
        let user_id = parse(UserId::parse("userId", &r.user_id))?;
        check_acts_for(&actor, "userId", &user_id)?;
        let loaded = self
            .diary
            .start_session(&user_id, start_time, key.as_deref(), &metadata)
            .await?;
        Ok(Response::new(started_session_to_proto(loaded)?))
    }

    async fn end_session(
        &self,
        request: Request<pb::EndSessionRequest>,
    ) -> Result<Response<pb::Session>, Status> {
        let metadata = event_metadata(&request);
        let actor = Actor::of(&request);
        let r = request.into_inner();
        let id = parse(SessionId::parse("id", &r.id))?;
        self.diary.check_session_access(&actor, &id).await?;
        let end_time = optional_time("endTime", r.end_time)?;
        let loaded = self
            .diary
            .end_session(&id, end_time, r.expected_version, &metadata)
            .await?;
        Ok(Response::new(started_session_to_proto(loaded)?))
    }

    async fn get_session(
        &self,
        request: Request<pb::GetSessionRequest>,
    ) -> Result<Response<pb::Session>, Status> {
        let actor = Actor::of(&request);
        let r = request.into_inner();
        let id = parse(SessionId::parse("id", &r.id))?;
        self.diary.check_session_access(&actor, &id).await?;
        let loaded = match optional_time("asOf", r.as_of)? {
            None => self.diary.session(&id).await?,
            Some(as_of) => self.diary.session_as_of(&id, as_of).await?,
        };
        Ok(Response::new(started_session_to_proto(loaded)?))
    }

    async fn list_sessions_by_user(
        &self,
        request: Request<pb::ListSessionsByUserRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        let actor = Actor::of(&request);
        let r = request.into_inner();
        let (page, request) = page_request(r.page, r.limit, r.cursor)?;
        let user_id = parse(UserId::parse("userId", &r.user_id))?;
        check_acts_for(&actor, "userId", &user_id)?;
        let found = self
            .diary
            .sessions_by_user(&user_id, &request, &r.consistency_token)
            .await?;
        Ok(Response::new(pb::ListSessionsResponse {
            has_more: found.has_more(),
            next_cursor: found.next_cursor.unwrap_or_default(),
            sessions: found
                .items
                .iter()
                .map(|l| session_to_proto(&l.state, l))
                .collect(),
            page,
            limit: request.limit,
        }))
    }

    async fn get_analytics(
        &self,
        request: Request<pb::GetAnalyticsRequest>,
    ) -> Result<Response<pb::Analytics>, Status> {
        let actor = Actor::of(&request);
        let r = request.into_inner();
        let query = AnalyticsQuery {
            period: r.period,
            from: optional_time("from", r.from)?,
            to: optional_time("to", r.to)?,
            time_zone: r.time_zone,
        };
        let user_id = parse(UserId::parse("userId", &r.user_id))?;
        check_acts_for(&actor, "userId", &user_id)?;
        let a = self
            .diary
            .analytics(&user_id, &query, &r.consistency_token)
            .await?;
        Ok(Response::new(analytics_to_proto(&user_id, a)))
    }

    async fn get_entry_history(
        &self,
        request: Request<HistoryRequest>,
    ) -> Result<Response<EventHistory>, Status> {
        let actor = Actor::of(&request);
        let id = parse(EntryId::parse("id", &request.into_inner().id))?;
        self.diary.check_entry_access(&actor, &id).await?;
        Ok(Response::new(history(self.diary.entry_history(&id).await?)))
    }

    async fn get_session_history(
        &self,
        request: Request<HistoryRequest>,
    ) -> Result<Response<EventHistory>, Status> {
        let actor = Actor::of(&request);
        let id = parse(SessionId::parse("id", &request.into_inner().id))?;
        self.diary.check_session_access(&actor, &id).await?;
        Ok(Response::new(history(
            self.diary.session_history(&id).await?,
        )))
    }

    async fn get_analysis_setting(
        &self,
        request: Request<pb::GetAnalysisSettingRequest>,
    ) -> Result<Response<pb::AnalysisSetting>, Status> {
        let actor = Actor::of(&request);
        let user_id = parse(UserId::parse("userId", &request.into_inner().user_id))?;
        check_acts_for(&actor, "userId", &user_id)?;
        let loaded = self.diary.analysis_setting(&user_id).await?;
        Ok(Response::new(setting_to_proto(&user_id, &loaded)))
    }

    async fn set_analysis_setting(
        &self,
        request: Request<pb::SetAnalysisSettingRequest>,
    ) -> Result<Response<pb::AnalysisSetting>, Status> {
        let actor = Actor::of(&request);
        let metadata = event_metadata(&request);
        let r = request.into_inner();
        let user_id = parse(UserId::parse("userId", &r.user_id))?;
        check_acts_for(&actor, "userId", &user_id)?;
        let loaded = self
            .diary
            .set_analysis_setting(&user_id, r.enabled, &metadata)
            .await?;
        Ok(Response::new(setting_to_proto(&user_id, &loaded)))
    }

    async fn erase_diary(
        &self,
        request: Request<pb::EraseDiaryRequest>,
    ) -> Result<Response<pb::EraseDiaryResponse>, Status> {
        let actor = Actor::of(&request);
        let metadata = event_metadata(&request);
        let r = request.into_inner();
        let user_id = parse(UserId::parse("userId", &r.user_id))?;
        check_acts_for(&actor, "userId", &user_id)?;
        self.diary.erase_diary(&user_id, &metadata).await?;
        Ok(Response::new(pb::EraseDiaryResponse {}))
    }

    async fn search_entries(
        &self,
        request: Request<pb::SearchEntriesRequest>,
    ) -> Result<Response<pb::SearchResults>, Status> {
        let actor = Actor::of(&request);
        let r = request.into_inner();
        let user_id = parse(UserId::parse("userId", &r.user_id))?;
        check_acts_for(&actor, "userId", &user_id)?;
        let query = SearchQuery {
            text: r.query,
            page: r.page,
            limit: r.limit,
        };
        let found = self.diary.search(&user_id, &query).await?;
        Ok(Response::new(matches_to_proto(found)?))
    }

    async fn list_related_entries(
        &self,
        request: Request<pb::ListRelatedEntriesRequest>,
    ) -> Result<Response<pb::SearchResults>, Status> {
        let actor = Actor::of(&request);
        let r = request.into_inner();
        let id = parse(EntryId::parse("id", &r.id))?;
        self.diary.check_entry_access(&actor, &id).await?;
        let found = self.diary.related(&id, r.page, r.limit).await?;
        Ok(Response::new(matches_to_proto(found)?))
    }
}

fn setting_to_proto(
    user_id: &UserId,
    loaded: &Loaded<AnalysisSettingState>,
) -> pb::AnalysisSetting {
    pb::AnalysisSetting {
        user_id: user_id.to_string(),
        enabled: loaded.state.enabled(),
        updated_at: loaded.updated_at.map(timestamp),
        version: loaded.version.unwrap_or(0),
    }
}

fn live_entry_to_proto(loaded: Loaded<EntryState>) -> Result<pb::Entry, ApiError> {
    let entry = loaded
        .state
        .live()
        .ok_or_else(|| ApiError::internal("a written entry has no state"))?;
    Ok(entry_to_proto(entry, &loaded))
}

fn entry_to_proto<A>(e: &Entry, loaded: &Loaded<A>) -> pb::Entry {
    pb::Entry {
        id: e.id.to_string(),
        user_id: e.user_id.to_string(),
        title: e.title.clone(),
        content: e.content.clone(),
        token_count: e.token_count,
        session_id: e.session_id.map(|id| id.to_string()),
        tags: e.tags.iter().map(|t| t.as_str().to_owned()).collect(),
        // When it was written: the client's account, else when its creation was recorded.
        created_at: e.written_at.or(loaded.created_at).map(timestamp),
        updated_at: loaded.updated_at.map(timestamp),
        version: loaded.version.unwrap_or(0),
        analysis: e.analysis.as_ref().map(analysis_to_proto),
    }
}

fn analysis_to_proto(a: &DiaryEntryAnalyzed) -> pb::EntryAnalysis {
    pb::EntryAnalysis {
        entry_version: a.entry_version,
        analyzer_version: a.analyzer_version.clone(),
        sentiment: a.sentiment.as_ref().map(|s| pb::Sentiment {
            neg: s.neg,
            neu: s.neu,
            pos: s.pos,
            compound: s.compound,
            analyzer_version: s.analyzer_version.clone(),
            lexicon: s.lexicon.clone(),
        }),
        token_count: a.token_count,
        language: a.language.clone(),
        keywords: a.keywords.clone(),
        sensory: a.sensory.as_ref().map(|s| pb::SensoryShares {
            visual: s.visual,
            auditory: s.auditory,
            kinesthetic: s.kinesthetic,
            coverage: s.coverage,
        }),
        archetype_signals: a
            .archetype_signals
            .iter()
            .map(|s| pb::ArchetypeScore {
                id: s.id.clone(),
                confidence: s.confidence,
            })
            .collect(),
        explanation: Some(profile_to_proto(WindowProfile {
            entries: 1,
            words: a.features.lexicon_words,
            sensory: analysis::SensoryProfile::from_features(&a.features),
            archetypes: analysis::ArchetypeSignals::from_features(&a.features),
        })),
    }
}

fn started_session_to_proto(loaded: Loaded<SessionState>) -> Result<pb::Session, ApiError> {
    let session = loaded
        .state
        .session()
        .ok_or_else(|| ApiError::internal("a started session has no state"))?;
    Ok(session_to_proto(session, &loaded))
}

fn session_to_proto<A>(s: &Session, loaded: &Loaded<A>) -> pb::Session {
    pb::Session {
        status: if s.is_active() { "active" } else { "ended" }.to_owned(),
        duration_minutes: s.duration_minutes(),
        id: s.id.to_string(),
        user_id: s.user_id.to_string(),
        start_time: Some(timestamp(s.start_time)),
        end_time: s.end_time.map(timestamp),
        created_at: loaded.created_at.map(timestamp),
        updated_at: loaded.updated_at.map(timestamp),
        version: loaded.version.unwrap_or(0),
    }
}

fn date(d: chrono::NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

fn analytics_to_proto(user_id: &UserId, a: Analytics) -> pb::Analytics {
    pb::Analytics {
        user_id: user_id.to_string(),
        period: a.window.period.clone(),
        period_start: Some(timestamp(a.window.start)),
        period_end: Some(timestamp(a.window.end)),
        time_zone: a.window.zone.name().to_owned(),
        entry_count: a.entry_count,
        session_count: a.session_count,
        total_session_minutes: a.total_session_minutes,
        average_session_minutes: a.average_session_minutes,
        total_tokens: a.total_tokens,
        word_count: a.word_count,
        tag_frequencies: a
            .tag_frequencies
            .into_iter()
            .map(|(tag, count)| pb::TagCount { tag, count })
            .collect(),
        entries_per_day: a
            .days
            .iter()
            .map(|d| pb::DayCount {
                date: date(d.date),
                entries: d.entries,
            })
            .collect(),
        writing_days: a.writing_days,
        current_streak: a.current_streak,
        longest_streak: a.longest_streak,
        days: a
            .days
            .iter()
            .map(|d| pb::DayTotals {
                date: date(d.date),
                entries: d.entries,
                words: d.words,
                tokens: d.tokens,
                mean_sentiment: d.mean_sentiment,
            })
            .collect(),
        mean_sentiment: a.mean_sentiment,
        top_keywords: a
            .top_keywords
            .into_iter()
            .map(|(keyword, entries)| pb::KeywordCount { keyword, entries })
            .collect(),
        profile: a.profile.map(profile_to_proto),
        analysis_enabled: a.analysis_enabled,
        themes_available: a.themes.is_some(),
        themes: a
            .themes
            .unwrap_or_default()
            .into_iter()
            .map(|t| pb::Theme {
                label: t.label,
                keywords: t.keywords,
                entry_count: t.entry_count,
                share: t.share,
                first_written_at: Some(timestamp(t.first_written_at)),
                last_written_at: Some(timestamp(t.last_written_at)),
                example_entry_ids: t.examples.iter().map(ToString::to_string).collect(),
            })
            .collect(),
    }
}

fn matches_to_proto(m: Matches) -> Result<pb::SearchResults, ApiError> {
    let results = m
        .matches
        .into_iter()
        .map(|found| {
            Ok(pb::SearchResult {
                entry: Some(live_entry_to_proto(found.entry)?),
                score: f64::from(found.ranked.score),
                similarity: f64::from(found.ranked.similarity),
                keyword_score: f64::from(found.ranked.keyword),
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(pb::SearchResults {
        results,
        page: m.page,
        limit: m.limit,
        has_more: m.has_more,
    })
}

fn profile_to_proto(p: WindowProfile) -> pb::WritingProfile {
    use analysis::{ArchetypeSignals, SensoryProfile, archetypes, sensory};
    let mut out = pb::WritingProfile {
        entries: p.entries,
        words: p.words,
        sensory_minimum_words: sensory::MIN_WORDS,
        archetype_minimum_words: archetypes::MIN_WORDS,
        analyzer_version: analysis::ANALYZER_VERSION.to_owned(),
        ..Default::default()
    };
    out.sensory_state = match p.sensory {
        SensoryProfile::Measured(m) => {
            out.sensory = Some(pb::SensoryShares {
                visual: m.visual,
                auditory: m.auditory,
                kinesthetic: m.kinesthetic,
                coverage: m.coverage,
            });
            out.sensory_evidence = m
                .evidence
                .into_iter()
                .map(|e| pb::SensoryWord {
                    word: e.word,
                    modality: e.modality.name().to_owned(),
                    count: e.count,
                    negated: e.negated,
                })
                .collect();
            "measured"
        }
        SensoryProfile::InsufficientText { .. } => "insufficientText",
        SensoryProfile::UnsupportedLanguage => "unsupportedLanguage",
    }
    .to_owned();
    out.archetype_state = match p.archetypes {
        ArchetypeSignals::Measured { signals } => {
            out.archetype_signals = signals
                .into_iter()
                .map(|s| pb::ArchetypeSignal {
                    id: s.id,
                    name: s.name,
                    confidence: s.confidence,
                    evidence: s
                        .evidence
                        .into_iter()
                        .map(|e| pb::FeatureEvidence {
                            feature: e.feature.name().to_owned(),
                            value: e.value,
                            strength: e.strength,
                            weight: e.weight,
                            words: e
                                .words
                                .into_iter()
                                .map(|(word, count)| pb::WordCount { word, count })
                                .collect(),
                        })
                        .collect(),
                })
                .collect();
            "measured"
        }
        ArchetypeSignals::InsufficientText { .. } => "insufficientText",
        ArchetypeSignals::UnsupportedLanguage => "unsupportedLanguage",
    }
    .to_owned();
    out
}

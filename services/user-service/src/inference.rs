//! Profile inference: the user service follows the diary events and keeps, on each user, an
//! inferred archetype and inferred sensory modalities, recorded as the product's
//! `ArchetypeAssigned` / `ArchetypeUpdated` and `ModalitiesUpdated` events marked `inferred`,
//! with the evidence and the writing they rest on. Explicit values (a client's) are never
//! touched: they live beside the inferred ones.
//!
//! What it infers from is the diary service's analytics of the user's last
//! [`WINDOW_DAYS`] days: the summed counts of every analysed entry, scored by the analysis
//! crate's rules. Each `DiaryEntryAnalyzed` or `DiaryEntryDeleted` triggers a new inference,
//! asked with that event's consistency token, so the analytics answer only once they count
//! it. A `DiaryAnalysisDisabled` clears the inferred values. It runs like the entry analyzer:
//! embedded, as a checkpointed projection; in production, as its own consumer group on the
//! diary topic. Delivery is at least once, and inferring twice from the same writing records
//! nothing more.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use event_sourcing::{
    EventMetadata, EventStore, ExecuteError, Projection, ProjectionError, RecordedEvent, Repository,
};
use metachat_grpc::ServiceToken;
use metachat_proto::diary::diary_service_client::DiaryServiceClient;
use metachat_proto::diary::{GetAnalyticsRequest, WritingProfile};
use metachat_proto::error::ApiError;
use metachat_validation::UserId;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::domain::{
    ArchetypeSet, Confidence, Evidence, Inference, InferenceBasis, InferredProfile,
    ModalitiesUpdated, UserCommand, UserError, UserState,
};

/// The follower's name: its checkpoint, and the suffix of its consumer group.
pub const INFERENCE_NAME: &str = "profile-inference";

/// The days of writing an inference looks at: recent enough to follow a writer who changes,
/// long enough to hold more than a few entries.
pub const WINDOW_DAYS: u32 = 90;

/// How far past now the window reaches (more than the 5 minutes an entry may be dated
/// ahead).
const CLOCK_SKEW_MINUTES: i64 = 10;

/// Evidence words kept per feature.
const EVIDENCE_WORDS: usize = 5;

/// What the inference asks of the diary: the user's writing profile over a window, once the
/// analytics reflect the write `consistency_token` names. `None` when the user switched
/// analysis off.
#[async_trait]
pub trait WritingProfiles: Send + Sync + 'static {
    async fn recent_profile(
        &self,
        user_id: &UserId,
        consistency_token: &str,
    ) -> Result<Option<WritingProfile>, ApiError>;
}

/// Asks the diary service's analytics over gRPC.
#[derive(Clone)]
pub struct GrpcWritingProfiles {
    client: DiaryServiceClient<InterceptedService<Channel, ServiceToken>>,
}

impl GrpcWritingProfiles {
    /// Connects lazily to `address` (`host:port`, with or without `http://`; an error names
    /// `DIARY_SERVICE_ADDRESS`, where the address comes from).
    /// Each call carries `token` (`SERVICE_TOKEN`).
    pub fn new(address: &str, token: ServiceToken) -> anyhow::Result<Self> {
        let uri = metachat_runtime::grpc_uri("DIARY_SERVICE_ADDRESS", address)?;
        let channel = metachat_grpc::service_channel(uri, Duration::from_secs(10))?;
        Ok(Self {
            client: DiaryServiceClient::with_interceptor(channel, token),
        })
    }
}

#[async_trait]
impl WritingProfiles for GrpcWritingProfiles {
    async fn recent_profile(
        &self,
        user_id: &UserId,
        consistency_token: &str,
    ) -> Result<Option<WritingProfile>, ApiError> {
        // Up to a little ahead of now: an entry may be dated a few minutes into the future
        // (a client's clock), and must count in the inference its analysis triggers.
        let now = Utc::now();
        let from = now - chrono::Duration::days(i64::from(WINDOW_DAYS));
        let to = now + chrono::Duration::minutes(CLOCK_SKEW_MINUTES);
        let request = GetAnalyticsRequest {
            user_id: user_id.to_string(),
            period: String::new(),
            consistency_token: consistency_token.to_owned(),
            from: Some(metachat_proto::time::timestamp(from)),
            to: Some(metachat_proto::time::timestamp(to)),
            time_zone: String::new(),
        };
        let analytics = self
            .client
            .clone()
            .get_analytics(request)
            .await
            .map_err(ApiError::from)?
            .into_inner();
        Ok(analytics
            .analysis_enabled
            .then_some(analytics.profile)
            .flatten())
    }
}

/// Whether `recorded` calls for a new inference of its writer.
fn triggers(recorded: &RecordedEvent) -> bool {
    matches!(
        (recorded.category(), recorded.event_type.as_str()),
        ("entry", "DiaryEntryAnalyzed" | "DiaryEntryDeleted")
            | ("analysis_setting", "DiaryAnalysisDisabled")
    )
}

/// Keeps each user's inferred profile.
pub struct ProfileInference {
    users: Repository<UserState>,
    profiles: Arc<dyn WritingProfiles>,
}

impl ProfileInference {
    pub fn new(store: Arc<dyn EventStore>, profiles: Arc<dyn WritingProfiles>) -> Self {
        Self {
            users: Repository::new(store),
            profiles,
        }
    }

    async fn execute(
        &self,
        user_id: &UserId,
        command: UserCommand,
        metadata: &EventMetadata,
    ) -> Result<(), ProjectionError> {
        match self.users.execute(user_id, &command, metadata, None).await {
            Ok(executed) => {
                crate::metrics::changed(&executed.events);
                Ok(())
            }
            // A user the diary knows but this store does not (an id from before a reset):
            // nothing to infer on.
            Err(ExecuteError::Rejected(UserError::NotFound)) => Ok(()),
            Err(ExecuteError::Rejected(e)) => {
                Err(format!("inference refused for user {user_id}: {e}").into())
            }
            Err(e) => Err(format!("recording the inference of user {user_id}: {e}").into()),
        }
    }
}

#[async_trait]
impl Projection for ProfileInference {
    fn name(&self) -> &str {
        INFERENCE_NAME
    }

    /// An inference reads the writer's whole recent profile: of a batch's triggers for one
    /// writer, the last one's inference is the one that stands (a switch off clears; an
    /// analysis or deletion infers from analytics that reflect everything up to it, the
    /// setting included).
    fn coalescing_key(&self, recorded: &RecordedEvent) -> Option<String> {
        triggers(recorded).then(|| recorded.payload.get("userId")?.as_str().map(str::to_owned))?
    }

    async fn apply(&self, recorded: &RecordedEvent) -> Result<(), ProjectionError> {
        if !triggers(recorded) {
            return Ok(());
        }
        let Some(user_id) = recorded
            .payload
            .get("userId")
            .and_then(|u| u.as_str())
            .and_then(|u| UserId::parse("userId", u).ok())
        else {
            return Err(format!("event {} names no user", recorded.event_id).into());
        };
        let metadata = EventMetadata::caused_by(recorded, INFERENCE_NAME);
        if recorded.event_type == "DiaryAnalysisDisabled" {
            let command = UserCommand::ClearInference {
                reason: crate::application::SWITCHED_OFF.into(),
            };
            return self.execute(&user_id, command, &metadata).await;
        }
        let token = format!("{}:{}", recorded.aggregate_id(), recorded.stream_version);
        let profile = self
            .profiles
            .recent_profile(&user_id, &token)
            .await
            .map_err(|e| -> ProjectionError {
                format!(
                    "reading the writing profile of user {user_id}: {}",
                    e.message
                )
                .into()
            })?;
        let command = match profile {
            None => UserCommand::ClearInference {
                reason: crate::application::SWITCHED_OFF.into(),
            },
            Some(profile) => UserCommand::Infer(inferred_profile(&profile)),
        };
        // Ids and numbers only: no words of the diary are logged.
        tracing::debug!(user_id = %user_id, "profile inferred");
        self.execute(&user_id, command, &metadata).await
    }

    /// Its results are events, which stay: a replay infers again from the current writing,
    /// which records nothing where nothing moved.
    async fn reset(&self) -> Result<(), ProjectionError> {
        Ok(())
    }
}

/// The inferred archetype (the strongest signal, when measured and above zero) and
/// modalities (when measured) of a writing profile.
pub fn inferred_profile(profile: &WritingProfile) -> InferredProfile {
    let basis = InferenceBasis {
        entries: profile.entries,
        words: profile.words,
        window_days: WINDOW_DAYS,
        analyzer_version: profile.analyzer_version.clone(),
    };
    let archetype = (profile.archetype_state == "measured")
        .then(|| profile.archetype_signals.first())
        .flatten()
        .filter(|s| s.confidence > 0.0)
        .and_then(|signal| {
            let definition = analysis::archetypes::catalogue()
                .iter()
                .find(|a| a.id == signal.id)?;
            let mut evidence: Vec<Evidence> = signal
                .evidence
                .iter()
                .map(|e| Evidence {
                    feature: e.feature.clone(),
                    value: e.value,
                    strength: e.strength,
                    weight: e.weight,
                    words: e
                        .words
                        .iter()
                        .take(EVIDENCE_WORDS)
                        .map(|w| w.word.clone())
                        .collect(),
                })
                .collect();
            evidence.sort_by(|a, b| (b.weight * b.strength).total_cmp(&(a.weight * a.strength)));
            Some(ArchetypeSet {
                archetype_id: definition.id.to_owned(),
                archetype_name: definition.name.to_owned(),
                confidence: Confidence::parse(signal.confidence.clamp(0.0, 1.0)).ok()?,
                description: definition.description.to_owned(),
                inferred: Some(Inference {
                    evidence,
                    basis: basis.clone(),
                    coverage: None,
                }),
            })
        });
    let modalities = match (&profile.sensory_state[..], &profile.sensory) {
        // Measured, but no sensory word at all: no split to infer.
        ("measured", Some(shares)) if shares.coverage > 0.0 => {
            let weights = [
                ("visual", shares.visual),
                ("auditory", shares.auditory),
                ("kinesthetic", shares.kinesthetic),
            ];
            let evidence = weights
                .iter()
                .map(|(modality, share)| Evidence {
                    feature: (*modality).to_owned(),
                    value: *share,
                    strength: *share,
                    weight: 1.0,
                    words: profile
                        .sensory_evidence
                        .iter()
                        .filter(|w| w.modality == *modality && w.count > 0)
                        .take(EVIDENCE_WORDS)
                        .map(|w| w.word.clone())
                        .collect(),
                })
                .collect();
            Some(ModalitiesUpdated {
                modalities: weights
                    .iter()
                    .map(|(m, w)| ((*m).to_owned(), w.clamp(0.0, 1.0)))
                    .collect(),
                inferred: Some(Inference {
                    evidence,
                    basis,
                    coverage: Some(shares.coverage),
                }),
            })
        }
        _ => None,
    };
    InferredProfile {
        archetype,
        modalities,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use event_sourcing::Loaded;
    use event_sourcing::testing::scratch_sqlite_store;
    use metachat_proto::diary::{
        ArchetypeSignal, FeatureEvidence, SensoryShares, SensoryWord, WordCount,
    };

    use super::*;
    use crate::domain::{ArchetypeInput, NewUser};

    /// The diary's answer, as a test sets it (the diary service's analytics are tested on
    /// their own, and end to end with this follower in the platform tests).
    struct Answer(Mutex<Option<WritingProfile>>);

    #[async_trait]
    impl WritingProfiles for Answer {
        async fn recent_profile(
            &self,
            _user_id: &UserId,
            consistency_token: &str,
        ) -> Result<Option<WritingProfile>, ApiError> {
            assert!(consistency_token.contains(':'), "{consistency_token}");
            Ok(self.0.lock().unwrap().clone())
        }
    }

    fn profile(thinker: f64, visual: f64) -> WritingProfile {
        WritingProfile {
            entries: 12,
            words: 2_400,
            sensory_state: "measured".into(),
            sensory_minimum_words: 25,
            sensory: Some(SensoryShares {
                visual,
                auditory: 0.2,
                kinesthetic: 0.8 - visual,
                coverage: 0.05,
            }),
            sensory_evidence: vec![SensoryWord {
                word: "saw".into(),
                modality: "visual".into(),
                count: 9,
                negated: 1,
            }],
            archetype_state: "measured".into(),
            archetype_minimum_words: 50,
            archetype_signals: vec![ArchetypeSignal {
                id: "thinker".into(),
                name: "The Thinker".into(),
                confidence: thinker,
                evidence: vec![FeatureEvidence {
                    feature: "cognitive".into(),
                    value: 0.05,
                    strength: 0.8,
                    weight: 0.6,
                    words: vec![WordCount {
                        word: "think".into(),
                        count: 14,
                    }],
                }],
            }],
            analyzer_version: analysis::ANALYZER_VERSION.into(),
        }
    }

    fn diary_event(event_type: &str, stream_id: String, user_id: UserId) -> RecordedEvent {
        RecordedEvent {
            event_id: uuid::Uuid::new_v4(),
            event_type: event_type.into(),
            schema_version: 1,
            stream_id,
            stream_version: 2,
            position: 1,
            recorded_at: Utc::now(),
            payload: serde_json::json!({ "userId": user_id }),
            metadata: EventMetadata::default(),
            erased: false,
            undecodable: None,
        }
    }

    async fn user(users: &Repository<UserState>) -> Loaded<UserState> {
        let id = UserId::new();
        let create = UserCommand::Create(NewUser {
            user_id: id,
            username: "writer".into(),
            email: "writer@example.com".into(),
            first_name: "W".into(),
            last_name: "R".into(),
            date_of_birth: None,
            today: Utc::now().date_naive(),
        });
        let meta = EventMetadata::default();
        users.execute(&id, &create, &meta, None).await.unwrap();
        let assign = UserCommand::AssignArchetype(ArchetypeInput {
            archetype_id: "planner".into(),
            archetype_name: "The Planner".into(),
            confidence: 0.9,
            description: "chosen by the user".into(),
        });
        users
            .execute(&id, &assign, &meta, None)
            .await
            .unwrap()
            .loaded
    }

    #[tokio::test]
    async fn inference_follows_analyses_keeps_explicit_values_and_clears_when_switched_off() {
        let store: Arc<dyn EventStore> = Arc::new(scratch_sqlite_store(crate::codec()).await);
        let users = Repository::<UserState>::new(store.clone());
        let loaded = user(&users).await;
        let id = loaded.state.user().unwrap().id;
        let answer = Arc::new(Answer(Mutex::new(Some(profile(0.6, 0.5)))));
        let inference = ProfileInference::new(store.clone(), answer.clone());
        let analysed = diary_event("DiaryEntryAnalyzed", format!("entry-{}", UserId::new()), id);

        inference.apply(&analysed).await.unwrap();
        let now = users.load(&id).await.unwrap();
        let user = now.state.user().unwrap();
        assert_eq!(user.archetype.as_ref().unwrap().archetype_id, "planner");
        let inferred = user.inferred_archetype.as_ref().unwrap();
        assert_eq!(inferred.archetype_id, "thinker");
        assert_eq!(inferred.confidence.value(), 0.6);
        let basis = &inferred.inferred.as_ref().unwrap().basis;
        assert_eq!(
            (basis.entries, basis.words, basis.window_days),
            (12, 2_400, WINDOW_DAYS)
        );
        let modalities = user.inferred_modalities.as_ref().unwrap();
        assert_eq!(modalities.modalities["visual"], 0.5);
        assert_eq!(
            modalities.inferred.as_ref().unwrap().evidence[0].words,
            ["saw"]
        );
        assert_eq!(now.version, Some(4));

        // The same writing again (a redelivery): nothing recorded.
        inference.apply(&analysed).await.unwrap();
        assert_eq!(users.load(&id).await.unwrap().version, Some(4));

        // Events of no interest, or of another category, change nothing.
        let created = diary_event("DiaryEntryCreated", format!("entry-{}", UserId::new()), id);
        inference.apply(&created).await.unwrap();
        assert_eq!(users.load(&id).await.unwrap().version, Some(4));

        // Switched off: cleared, the explicit archetype stays.
        let off = diary_event(
            "DiaryAnalysisDisabled",
            format!("analysis_setting-{id}"),
            id,
        );
        inference.apply(&off).await.unwrap();
        let now = users.load(&id).await.unwrap();
        let user = now.state.user().unwrap();
        assert!(user.inferred_archetype.is_none() && user.inferred_modalities.is_none());
        assert_eq!(user.archetype.as_ref().unwrap().archetype_id, "planner");

        // An analysis of a user the store does not know is skipped, not retried forever.
        let stranger = diary_event(
            "DiaryEntryAnalyzed",
            format!("entry-{}", UserId::new()),
            UserId::new(),
        );
        inference.apply(&stranger).await.unwrap();

        // The diary says analysis is off (its answer is None): nothing inferred.
        *answer.0.lock().unwrap() = None;
        inference.apply(&analysed).await.unwrap();
        assert!(
            users
                .load(&id)
                .await
                .unwrap()
                .state
                .user()
                .unwrap()
                .inferred_archetype
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_batch_infers_once_per_writer_from_its_last_trigger() {
        let store: Arc<dyn EventStore> = Arc::new(scratch_sqlite_store(crate::codec()).await);
        let inference = ProfileInference::new(store, Arc::new(Answer(Mutex::new(None))));
        let (a, b) = (UserId::new(), UserId::new());
        let entry = || format!("entry-{}", UserId::new());
        let batch = vec![
            diary_event("DiaryEntryAnalyzed", entry(), a),
            diary_event("DiaryEntryAnalyzed", entry(), b),
            diary_event("DiaryAnalysisDisabled", format!("analysis_setting-{a}"), a),
            diary_event("DiaryEntryCreated", entry(), a),
            diary_event("DiaryEntryDeleted", entry(), a),
            diary_event("DiaryEntryAnalyzed", entry(), b),
        ];
        let applied: Vec<uuid::Uuid> = event_sourcing::to_apply(&inference, &batch)
            .into_iter()
            .map(|e| e.event_id)
            .collect();
        // The creation triggers nothing and is passed on; each writer's last trigger stands.
        let expected: Vec<uuid::Uuid> = [3, 4, 5].iter().map(|i| batch[*i].event_id).collect();
        assert_eq!(applied, expected);
    }

    #[test]
    fn an_unmeasured_profile_infers_nothing() {
        let mut thin = profile(0.6, 0.5);
        thin.archetype_state = "insufficientText".into();
        thin.sensory_state = "insufficientText".into();
        let inferred = inferred_profile(&thin);
        assert_eq!(inferred.archetype, None);
        assert_eq!(inferred.modalities, None);
        // A signal of zero names no archetype.
        let inferred = inferred_profile(&profile(0.0, 0.5));
        assert_eq!(inferred.archetype, None);
        assert!(inferred.modalities.is_some());
        // Enough words, but not one sensory word: no modalities.
        let mut senseless = profile(0.6, 0.0);
        if let Some(s) = &mut senseless.sensory {
            (s.visual, s.auditory, s.kinesthetic, s.coverage) = (0.0, 0.0, 0.0, 0.0);
        }
        let inferred = inferred_profile(&senseless);
        assert!(inferred.archetype.is_some());
        assert_eq!(inferred.modalities, None);
    }
}

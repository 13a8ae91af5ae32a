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
use metachat_proto::diary::diary_service_client::DiaryServiceClient;
use metachat_proto::diary::{GetAnalyticsRequest, WritingProfile};
use metachat_proto::error::ApiError;
use metachat_validation::UserId;
use tonic::transport::{Channel, Endpoint};

use crate::domain::{
    ArchetypeSet, Confidence, Evidence, Inference, InferenceBasis, InferredProfile,
    ModalitiesUpdated, UserCommand, UserError, UserState,
};

/// The follower's name: its checkpoint, and the suffix of its consumer group.
pub const INFERENCE_NAME: &str = "profile-inference";

/// The days of writing an inference looks at: recent enough to follow a writer who changes,
/// long enough to hold more than a few entries.
pub const WINDOW_DAYS: u32 = 90;

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
    client: DiaryServiceClient<Channel>,
}

impl GrpcWritingProfiles {
    /// Connects lazily to `address` (`host:port`, with or without `http://`; an error names
    /// `DIARY_SERVICE_ADDRESS`, where the address comes from).
    pub fn new(address: &str) -> anyhow::Result<Self> {
        let uri = metachat_runtime::grpc_uri("DIARY_SERVICE_ADDRESS", address)?;
        let channel = Endpoint::from_shared(uri)?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10))
            .connect_lazy();
        Ok(Self {
            client: DiaryServiceClient::new(channel),
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
        let to = Utc::now();
        let from = to - chrono::Duration::days(i64::from(WINDOW_DAYS));
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
            Ok(_) => Ok(()),
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

    async fn apply(&self, recorded: &RecordedEvent) -> Result<(), ProjectionError> {
        let triggers = matches!(
            (recorded.category(), recorded.event_type.as_str()),
            ("entry", "DiaryEntryAnalyzed" | "DiaryEntryDeleted")
                | ("analysis_setting", "DiaryAnalysisDisabled")
        );
        if !triggers {
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
        let metadata = EventMetadata {
            correlation_id: recorded.metadata.correlation_id.clone(),
            causation_id: Some(recorded.event_id.to_string()),
            request_id: None,
            actor: Some(INFERENCE_NAME.to_owned()),
        };
        if recorded.event_type == "DiaryAnalysisDisabled" {
            let command = UserCommand::ClearInference {
                reason: "analysisSwitchedOff".into(),
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
                reason: "analysisSwitchedOff".into(),
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
        ("measured", Some(shares)) => {
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

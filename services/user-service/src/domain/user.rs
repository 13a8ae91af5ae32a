//! The user aggregate: its state, its commands and the rules that decide them.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use event_sourcing::Aggregate;
use metachat_proto::error::{ApiError, ErrorCode};
use metachat_validation::{UserId, Violations};

use super::events::{
    ArchetypeSet, InferredProfileCleared, ModalitiesUpdated, UserCreated, UserEvent,
    UserProfileUpdated,
};
use super::values::{Confidence, Email, Username};

/// The sensory modalities a profile may weigh.
pub const MODALITIES: [&str; 3] = ["visual", "auditory", "kinesthetic"];

const NAME_LEN: (usize, usize) = (1, 100);
/// Avatars travel inside events (and Kafka messages, limited to 1 MB by default), so they are
/// kept well below that.
const AVATAR_MAX: usize = 256_000;
const BIO_MAX: usize = 2_000;
const ARCHETYPE_ID_MAX: usize = 64;
const ARCHETYPE_NAME_LEN: (usize, usize) = (1, 100);
const DESCRIPTION_MAX: usize = 1_000;

/// A registered user as rebuilt from their events.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: UserId,
    pub username: Username,
    pub email: Email,
    pub first_name: String,
    pub last_name: String,
    pub date_of_birth: Option<NaiveDate>,
    pub avatar: Option<String>,
    pub bio: Option<String>,
    pub archetype: Option<ArchetypeSet>,
    pub modalities: Option<BTreeMap<String, f64>>,
    /// When things happened, from the events' recorded times (`None` in states folded from
    /// bare events, as in tests).
    pub archetype_assigned_at: Option<DateTime<Utc>>,
    pub archetype_updated_at: Option<DateTime<Utc>>,
    pub modalities_updated_at: Option<DateTime<Utc>>,
    /// What the platform inferred from the user's writing, beside the explicit values above
    /// (which inference never changes).
    pub inferred_archetype: Option<ArchetypeSet>,
    pub inferred_modalities: Option<ModalitiesUpdated>,
    pub inferred_archetype_assigned_at: Option<DateTime<Utc>>,
    pub inferred_archetype_updated_at: Option<DateTime<Utc>>,
    pub inferred_modalities_updated_at: Option<DateTime<Utc>>,
}

/// How far an inferred confidence or modality weight must move before a new inference is
/// recorded: each entry nudges the profile, and the user's stream should not grow by an
/// event per entry written.
pub const INFERENCE_STEP: f64 = 0.02;

/// A new inference from the user's recent writing: `None` where there was too little of it.
#[derive(Debug, Clone, PartialEq)]
pub struct InferredProfile {
    /// With `inferred` set.
    pub archetype: Option<ArchetypeSet>,
    /// With `inferred` set; weights in 0..1.
    pub modalities: Option<ModalitiesUpdated>,
}

/// The user aggregate: nobody yet, or a registered user.
// One value per loaded user, never stored in bulk: boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Default, PartialEq)]
pub enum UserState {
    #[default]
    Unregistered,
    Registered(User),
    /// Erased: nothing of the user can be read, and nothing more is stored of them.
    Erased,
}

impl UserState {
    pub fn user(&self) -> Option<&User> {
        match self {
            Self::Unregistered | Self::Erased => None,
            Self::Registered(user) => Some(user),
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub user_id: UserId,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub date_of_birth: Option<String>,
    /// Today's date, against which a birth date must be in the past.
    pub today: NaiveDate,
}

/// A profile update: `None` leaves a field as it is; `Some("")` clears an optional field.
#[derive(Debug, Clone, Default)]
pub struct ProfileChanges {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub date_of_birth: Option<String>,
    pub avatar: Option<String>,
    pub bio: Option<String>,
    pub today: NaiveDate,
}

#[derive(Debug, Clone)]
pub struct ArchetypeInput {
    pub archetype_id: String,
    pub archetype_name: String,
    pub confidence: f64,
    pub description: String,
}

#[derive(Debug, Clone)]
pub enum UserCommand {
    Create(NewUser),
    UpdateProfile(ProfileChanges),
    AssignArchetype(ArchetypeInput),
    UpdateArchetype(ArchetypeInput),
    UpdateModalities(BTreeMap<String, f64>),
    /// Records the platform's inference (never touching explicit values).
    Infer(InferredProfile),
    /// Removes the inferred values, for `reason` (`analysisSwitchedOff`, ...).
    ClearInference {
        reason: String,
    },
}

/// Why a user command was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UserError {
    #[error("{0}")]
    Invalid(Violations),
    #[error("user not found")]
    NotFound,
    #[error("user already exists")]
    AlreadyExists,
    #[error("the user already has an archetype; update it with PUT")]
    ArchetypeAlreadyAssigned,
    #[error("the user has no archetype yet; assign one with POST first")]
    NoArchetype,
}

/// Each refusal says its code once; the gRPC and HTTP statuses follow from the code table.
impl From<UserError> for ApiError {
    fn from(error: UserError) -> Self {
        let code = match error {
            UserError::Invalid(violations) => return violations.into(),
            UserError::NotFound => ErrorCode::NotFound,
            UserError::AlreadyExists => ErrorCode::AlreadyExists,
            UserError::ArchetypeAlreadyAssigned | UserError::NoArchetype => {
                ErrorCode::FailedPrecondition
            }
        };
        ApiError::new(code, error.to_string())
    }
}

impl Aggregate for UserState {
    const CATEGORY: &'static str = "user";
    type Id = UserId;
    type Event = UserEvent;
    type Command = UserCommand;
    type Error = UserError;

    fn is_final(&self) -> bool {
        matches!(self, Self::Erased)
    }

    fn apply(&mut self, event: &UserEvent) {
        if let UserEvent::UserErased(_) = event {
            *self = Self::Erased;
            return;
        }
        let Self::Registered(user) = self else {
            if let UserEvent::UserCreated(e) = event {
                *self = Self::Registered(User {
                    id: e.user_id,
                    username: e.username.clone(),
                    email: e.email.clone(),
                    first_name: e.first_name.clone(),
                    last_name: e.last_name.clone(),
                    date_of_birth: e.date_of_birth,
                    avatar: None,
                    bio: None,
                    archetype: None,
                    modalities: None,
                    archetype_assigned_at: None,
                    archetype_updated_at: None,
                    modalities_updated_at: None,
                    inferred_archetype: None,
                    inferred_modalities: None,
                    inferred_archetype_assigned_at: None,
                    inferred_archetype_updated_at: None,
                    inferred_modalities_updated_at: None,
                });
            }
            return;
        };
        match event {
            // A user is created once; a second creation event cannot be decided.
            UserEvent::UserCreated(_) => {}
            UserEvent::UserProfileUpdated(e) => {
                user.first_name = e.first_name.clone();
                user.last_name = e.last_name.clone();
                user.date_of_birth = e.date_of_birth;
                user.avatar = e.avatar.clone();
                user.bio = e.bio.clone();
            }
            UserEvent::ArchetypeAssigned(a) | UserEvent::ArchetypeUpdated(a) => {
                if a.inferred.is_some() {
                    user.inferred_archetype = Some(a.clone());
                } else {
                    user.archetype = Some(a.clone());
                }
            }
            UserEvent::ModalitiesUpdated(m) => {
                if m.inferred.is_some() {
                    user.inferred_modalities = Some(m.clone());
                } else {
                    user.modalities = Some(m.modalities.clone());
                }
            }
            UserEvent::InferredProfileCleared(_) => user.clear_inferred(),
            UserEvent::UserErased(_) => {}
        }
    }

    fn apply_recorded(&mut self, event: &UserEvent, recorded_at: DateTime<Utc>) {
        self.apply(event);
        let Self::Registered(user) = self else {
            return;
        };
        match event {
            UserEvent::ArchetypeAssigned(a) if a.inferred.is_some() => {
                user.inferred_archetype_assigned_at = Some(recorded_at);
                user.inferred_archetype_updated_at = Some(recorded_at);
            }
            UserEvent::ArchetypeUpdated(a) if a.inferred.is_some() => {
                user.inferred_archetype_updated_at = Some(recorded_at);
            }
            UserEvent::ModalitiesUpdated(m) if m.inferred.is_some() => {
                user.inferred_modalities_updated_at = Some(recorded_at);
            }
            UserEvent::ArchetypeAssigned(_) => {
                user.archetype_assigned_at = Some(recorded_at);
                user.archetype_updated_at = Some(recorded_at);
            }
            UserEvent::ArchetypeUpdated(_) => user.archetype_updated_at = Some(recorded_at),
            UserEvent::ModalitiesUpdated(_) => user.modalities_updated_at = Some(recorded_at),
            UserEvent::UserCreated(_)
            | UserEvent::UserProfileUpdated(_)
            | UserEvent::InferredProfileCleared(_)
            | UserEvent::UserErased(_) => {}
        }
    }

    fn decide(&self, command: &UserCommand) -> Result<Vec<UserEvent>, UserError> {
        let user = match (self, command) {
            (Self::Unregistered, UserCommand::Create(new)) => {
                return create(new).map(|e| vec![UserEvent::UserCreated(e)]);
            }
            (Self::Registered(_), UserCommand::Create(_)) => {
                return Err(UserError::AlreadyExists);
            }
            (Self::Unregistered | Self::Erased, _) => return Err(UserError::NotFound),
            (Self::Registered(user), _) => user,
        };
        match command {
            UserCommand::Create(_) => Err(UserError::AlreadyExists),
            UserCommand::UpdateProfile(changes) => {
                let updated = user.update_profile(changes)?;
                let unchanged = updated.first_name == user.first_name
                    && updated.last_name == user.last_name
                    && updated.date_of_birth == user.date_of_birth
                    && updated.avatar == user.avatar
                    && updated.bio == user.bio;
                Ok(if unchanged {
                    vec![]
                } else {
                    vec![UserEvent::UserProfileUpdated(updated)]
                })
            }
            UserCommand::AssignArchetype(input) => {
                let archetype = archetype(input)?;
                if user.archetype.is_some() {
                    return Err(UserError::ArchetypeAlreadyAssigned);
                }
                Ok(vec![UserEvent::ArchetypeAssigned(archetype)])
            }
            UserCommand::UpdateArchetype(input) => {
                let archetype = archetype(input)?;
                match &user.archetype {
                    None => Err(UserError::NoArchetype),
                    Some(current) if *current == archetype => Ok(vec![]),
                    Some(_) => Ok(vec![UserEvent::ArchetypeUpdated(archetype)]),
                }
            }
            UserCommand::UpdateModalities(weights) => {
                let modalities = modalities(weights)?;
                if user.modalities.as_ref() == Some(&modalities) {
                    return Ok(vec![]);
                }
                Ok(vec![UserEvent::ModalitiesUpdated(ModalitiesUpdated {
                    modalities,
                    inferred: None,
                })])
            }
            UserCommand::Infer(inferred) => Ok(user.infer(inferred)),
            UserCommand::ClearInference { reason } => Ok(
                if user.inferred_archetype.is_some() || user.inferred_modalities.is_some() {
                    vec![UserEvent::InferredProfileCleared(InferredProfileCleared {
                        reason: reason.clone(),
                    })]
                } else {
                    vec![]
                },
            ),
        }
    }
}

/// Whether two numbers differ by at least [`INFERENCE_STEP`].
fn moved(a: f64, b: f64) -> bool {
    (a - b).abs() >= INFERENCE_STEP
}

impl User {
    /// The events recording `new`: only what moved by a step or more, or changed basis
    /// (another analyzer version); both gone means too little writing is left.
    fn infer(&self, new: &InferredProfile) -> Vec<UserEvent> {
        if new.archetype.is_none() && new.modalities.is_none() {
            let present = self.inferred_archetype.is_some() || self.inferred_modalities.is_some();
            return if present {
                vec![UserEvent::InferredProfileCleared(InferredProfileCleared {
                    reason: "insufficientText".into(),
                })]
            } else {
                vec![]
            };
        }
        let analyzer = |i: &Option<super::events::Inference>| {
            i.as_ref().map(|i| i.basis.analyzer_version.clone())
        };
        let mut events = Vec::new();
        match (&self.inferred_archetype, &new.archetype) {
            (None, Some(a)) => events.push(UserEvent::ArchetypeAssigned(a.clone())),
            (Some(current), Some(a))
                if current.archetype_id != a.archetype_id
                    || moved(current.confidence.value(), a.confidence.value())
                    || analyzer(&current.inferred) != analyzer(&a.inferred) =>
            {
                events.push(UserEvent::ArchetypeUpdated(a.clone()));
            }
            _ => {}
        }
        if let Some(m) = &new.modalities {
            let changed = match &self.inferred_modalities {
                None => true,
                Some(current) => {
                    analyzer(&current.inferred) != analyzer(&m.inferred)
                        || MODALITIES.iter().any(|k| {
                            moved(
                                current.modalities.get(*k).copied().unwrap_or(0.0),
                                m.modalities.get(*k).copied().unwrap_or(0.0),
                            )
                        })
                }
            };
            if changed {
                events.push(UserEvent::ModalitiesUpdated(m.clone()));
            }
        }
        events
    }
}

impl User {
    /// Forgets what the platform inferred (explicit values stay).
    pub fn clear_inferred(&mut self) {
        self.inferred_archetype = None;
        self.inferred_modalities = None;
        self.inferred_archetype_assigned_at = None;
        self.inferred_archetype_updated_at = None;
        self.inferred_modalities_updated_at = None;
    }

    fn update_profile(&self, changes: &ProfileChanges) -> Result<UserProfileUpdated, UserError> {
        let mut v = Violations::new();
        let first_name = match &changes.first_name {
            Some(name) => v.text("firstName", name, NAME_LEN.0, NAME_LEN.1),
            None => self.first_name.clone(),
        };
        let last_name = match &changes.last_name {
            Some(name) => v.text("lastName", name, NAME_LEN.0, NAME_LEN.1),
            None => self.last_name.clone(),
        };
        let date_of_birth = match changes.date_of_birth.as_deref() {
            None => self.date_of_birth,
            Some("") => None,
            Some(date) => birth_date(&mut v, date, changes.today),
        };
        let avatar = optional_text(&mut v, "avatar", &changes.avatar, &self.avatar, AVATAR_MAX);
        let bio = optional_text(&mut v, "bio", &changes.bio, &self.bio, BIO_MAX);
        v.finish(UserProfileUpdated {
            first_name,
            last_name,
            date_of_birth,
            avatar,
            bio,
        })
        .map_err(UserError::Invalid)
    }
}

fn create(new: &NewUser) -> Result<UserCreated, UserError> {
    let mut v = Violations::new();
    let username = Username::parse(&new.username).map_err(|m| v.add("username", m));
    let email = Email::parse(&new.email).map_err(|m| v.add("email", m));
    let first_name = v.text("firstName", &new.first_name, NAME_LEN.0, NAME_LEN.1);
    let last_name = v.text("lastName", &new.last_name, NAME_LEN.0, NAME_LEN.1);
    // Exactly as sent: `" 1990-01-01 "` is not a date (the gateway refuses it too).
    let date_of_birth = match new.date_of_birth.as_deref() {
        None | Some("") => None,
        Some(date) => birth_date(&mut v, date, new.today),
    };
    match (username, email) {
        (Ok(username), Ok(email)) if v.is_empty() => Ok(UserCreated {
            user_id: new.user_id,
            username,
            email,
            first_name,
            last_name,
            date_of_birth,
        }),
        _ => Err(UserError::Invalid(v)),
    }
}

fn optional_text(
    v: &mut Violations,
    field: &str,
    change: &Option<String>,
    current: &Option<String>,
    max: usize,
) -> Option<String> {
    match change.as_deref() {
        None => current.clone(),
        Some(text) if text.trim().is_empty() => None,
        Some(text) => Some(v.multiline_text(field, text, 0, max)),
    }
}

fn birth_date(v: &mut Violations, text: &str, today: NaiveDate) -> Option<NaiveDate> {
    // Exactly YYYY-MM-DD: chrono alone would also take `1990-1-1` or `+1990-01-01`.
    let shaped = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    let parsed = shaped.then(|| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok());
    let Some(Some(date)) = parsed else {
        v.add("dateOfBirth", "must be a calendar date YYYY-MM-DD");
        return None;
    };
    let earliest = NaiveDate::from_ymd_opt(1900, 1, 1).unwrap_or(NaiveDate::MIN);
    if date >= today {
        v.add("dateOfBirth", "must be in the past");
    } else if date < earliest {
        v.add("dateOfBirth", "must not be before 1900-01-01");
    }
    Some(date)
}

fn archetype(input: &ArchetypeInput) -> Result<ArchetypeSet, UserError> {
    let mut v = Violations::new();
    let archetype_id = v.text("archetypeId", &input.archetype_id, 1, ARCHETYPE_ID_MAX);
    if !archetype_id
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'))
    {
        v.add(
            "archetypeId",
            "may contain only lowercase letters, digits, '_' and '-'",
        );
    }
    let archetype_name = v.text(
        "archetypeName",
        &input.archetype_name,
        ARCHETYPE_NAME_LEN.0,
        ARCHETYPE_NAME_LEN.1,
    );
    let description = v.multiline_text("description", &input.description, 0, DESCRIPTION_MAX);
    let confidence = Confidence::parse(input.confidence).map_err(|m| v.add("confidence", m));
    match confidence {
        Ok(confidence) if v.is_empty() => Ok(ArchetypeSet {
            archetype_id,
            archetype_name,
            confidence,
            description,
            inferred: None,
        }),
        _ => Err(UserError::Invalid(v)),
    }
}

fn modalities(weights: &BTreeMap<String, f64>) -> Result<BTreeMap<String, f64>, UserError> {
    let mut v = Violations::new();
    if weights.is_empty() {
        v.add(
            "modalities",
            "must weigh at least one of visual, auditory, kinesthetic",
        );
    }
    for (name, weight) in weights {
        if !MODALITIES.contains(&name.as_str()) {
            // An unknown key is echoed back shortened: it is client input of any length.
            let shown: String = name.chars().take(32).collect();
            v.add(
                format!("modalities.{shown}"),
                "is not a modality; expected visual, auditory or kinesthetic",
            );
        } else {
            v.range(&format!("modalities.{name}"), *weight, 0.0, 1.0);
        }
    }
    v.finish(weights.clone()).map_err(UserError::Invalid)
}

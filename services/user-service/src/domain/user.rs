//! The user aggregate: its state, its commands and the rules that decide them.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use event_sourcing::Aggregate;
use metachat_validation::Violations;
use uuid::Uuid;

use super::events::{ArchetypeSet, ModalitiesUpdated, UserCreated, UserEvent, UserProfileUpdated};

/// The sensory modalities a profile may weigh.
pub const MODALITIES: [&str; 3] = ["visual", "auditory", "kinesthetic"];

const USERNAME_LEN: (usize, usize) = (3, 32);
const EMAIL_MAX: usize = 254;
const NAME_LEN: (usize, usize) = (1, 100);
/// Avatars travel inside events (and Kafka messages, limited to 1 MB by default), so they are
/// kept well below that.
const AVATAR_MAX: usize = 256_000;
const BIO_MAX: usize = 2_000;
const ARCHETYPE_ID_MAX: usize = 64;
const ARCHETYPE_NAME_LEN: (usize, usize) = (1, 100);
const DESCRIPTION_MAX: usize = 1_000;

/// A user as rebuilt from their events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct User {
    pub id: String,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub date_of_birth: Option<NaiveDate>,
    pub avatar: Option<String>,
    pub bio: Option<String>,
    pub archetype: Option<ArchetypeSet>,
    pub modalities: Option<BTreeMap<String, f64>>,
}

impl User {
    pub fn exists(&self) -> bool {
        !self.id.is_empty()
    }
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub user_id: Uuid,
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

impl Aggregate for User {
    const CATEGORY: &'static str = "user";
    type Event = UserEvent;
    type Command = UserCommand;
    type Error = UserError;

    fn apply(&mut self, event: &UserEvent) {
        match event {
            UserEvent::UserCreated(e) => {
                *self = User {
                    id: e.user_id.clone(),
                    username: e.username.clone(),
                    email: e.email.clone(),
                    first_name: e.first_name.clone(),
                    last_name: e.last_name.clone(),
                    date_of_birth: e.date_of_birth,
                    ..User::default()
                };
            }
            UserEvent::UserProfileUpdated(e) => {
                self.first_name = e.first_name.clone();
                self.last_name = e.last_name.clone();
                self.date_of_birth = e.date_of_birth;
                self.avatar = e.avatar.clone();
                self.bio = e.bio.clone();
            }
            UserEvent::ArchetypeAssigned(a) | UserEvent::ArchetypeUpdated(a) => {
                self.archetype = Some(a.clone());
            }
            UserEvent::ModalitiesUpdated(m) => self.modalities = Some(m.modalities.clone()),
        }
    }

    fn decide(&self, command: &UserCommand) -> Result<Vec<UserEvent>, UserError> {
        if let UserCommand::Create(new) = command {
            if self.exists() {
                return Err(UserError::AlreadyExists);
            }
            return create(new).map(|e| vec![UserEvent::UserCreated(e)]);
        }
        if !self.exists() {
            return Err(UserError::NotFound);
        }
        match command {
            UserCommand::Create(_) => unreachable!("handled above"),
            UserCommand::UpdateProfile(changes) => {
                let updated = self.update_profile(changes)?;
                let unchanged = updated.first_name == self.first_name
                    && updated.last_name == self.last_name
                    && updated.date_of_birth == self.date_of_birth
                    && updated.avatar == self.avatar
                    && updated.bio == self.bio;
                Ok(if unchanged {
                    vec![]
                } else {
                    vec![UserEvent::UserProfileUpdated(updated)]
                })
            }
            UserCommand::AssignArchetype(input) => {
                let archetype = archetype(input)?;
                if self.archetype.is_some() {
                    return Err(UserError::ArchetypeAlreadyAssigned);
                }
                Ok(vec![UserEvent::ArchetypeAssigned(archetype)])
            }
            UserCommand::UpdateArchetype(input) => {
                let archetype = archetype(input)?;
                match &self.archetype {
                    None => Err(UserError::NoArchetype),
                    Some(current) if *current == archetype => Ok(vec![]),
                    Some(_) => Ok(vec![UserEvent::ArchetypeUpdated(archetype)]),
                }
            }
            UserCommand::UpdateModalities(weights) => {
                let modalities = modalities(weights)?;
                if self.modalities.as_ref() == Some(&modalities) {
                    return Ok(vec![]);
                }
                Ok(vec![UserEvent::ModalitiesUpdated(ModalitiesUpdated {
                    modalities,
                })])
            }
        }
    }
}

impl User {
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
        let date_of_birth = match changes.date_of_birth.as_deref().map(str::trim) {
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
    let username = v.text("username", &new.username, USERNAME_LEN.0, USERNAME_LEN.1);
    if !username
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        v.add(
            "username",
            "may contain only letters, digits, '_', '.' and '-'",
        );
    }
    let email = new.email.trim().to_owned();
    if let Err(problem) = check_email(&email) {
        v.add("email", problem);
    }
    let first_name = v.text("firstName", &new.first_name, NAME_LEN.0, NAME_LEN.1);
    let last_name = v.text("lastName", &new.last_name, NAME_LEN.0, NAME_LEN.1);
    let date_of_birth = match new.date_of_birth.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(date) => birth_date(&mut v, date, new.today),
    };
    v.finish(UserCreated {
        user_id: new.user_id.to_string(),
        username,
        email,
        first_name,
        last_name,
        date_of_birth,
    })
    .map_err(UserError::Invalid)
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
        Some(text) => Some(v.text(field, text, 0, max)),
    }
}

fn birth_date(v: &mut Violations, text: &str, today: NaiveDate) -> Option<NaiveDate> {
    let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") else {
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

/// A pragmatic e-mail syntax check: one `@`, a plausible local part and a dotted domain.
fn check_email(email: &str) -> Result<(), &'static str> {
    if email.is_empty() {
        return Err("is required");
    }
    if email.chars().count() > EMAIL_MAX {
        return Err("must be at most 254 characters");
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err("must be an e-mail address like name@example.com");
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if local_ok && domain_ok {
        Ok(())
    } else {
        Err("must be an e-mail address like name@example.com")
    }
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
    let description = v.text("description", &input.description, 0, DESCRIPTION_MAX);
    v.range("confidence", input.confidence, 0.0, 1.0);
    v.finish(ArchetypeSet {
        archetype_id,
        archetype_name,
        confidence: input.confidence,
        description,
    })
    .map_err(UserError::Invalid)
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

/// The key of a unique value's claim stream: the same for every spelling that differs only
/// in case, and free of the value itself (the stream id is not personal data).
pub fn claim_key(value: &str) -> String {
    const NAMESPACE: Uuid = Uuid::from_u128(0x6d65_7461_6368_6174_2d75_6e69_7175_6501);
    Uuid::new_v5(&NAMESPACE, value.trim().to_lowercase().as_bytes())
        .simple()
        .to_string()
}

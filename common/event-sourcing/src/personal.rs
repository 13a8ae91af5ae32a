//! Personal data in events, and erasure by crypto-shredding.
//!
//! Each event type that holds someone's personal data is registered in [`PersonalData`] with
//! *whose* data it is (its subject: the user id) and which payload fields stay readable (ids,
//! versions, times). Every other field is sealed on the way into the store: encrypted with
//! AES-256-GCM under a key of that subject alone, and kept as one `"$sealed"` field. The
//! subject is written beside it (`"$subject"`), so any reader can open the event, also one
//! that does not know the writer's rules (a follower of another service's topic).
//!
//! Erasing a subject deletes its key. From then on no copy of its sealed fields can be read:
//! not the store's rows, not the messages the relay published to Kafka (they carry the sealed
//! form), not a backup of either. Reading an event of an erased subject gives its readable
//! fields only, with [`crate::RecordedEvent::erased`] set; replays and projections skip such
//! events, so the subject's aggregates read as absent and rebuilt read models hold nothing of
//! them.
//!
//! Keys live in the store's own database (`data_keys`), one row per subject: the key, or no
//! key and the time it was erased. Writes read and create keys inside the append transaction,
//! after the append lock, so no event can be sealed with a key after that key's erasure
//! committed. Reads cache keys for [`KEY_CACHE_TTL`], so another process may read a subject's
//! events that long after its erasure; the process that erases forgets the key at once.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::{EventStoreError, Result};
use crate::event::stream_aggregate_id;

/// The payload field that holds the sealed fields.
pub const SEALED_FIELD: &str = "$sealed";
/// The payload field that names the subject of a stored event.
pub const SUBJECT_FIELD: &str = "$subject";
/// The version prefix of a sealed value: `v1.` then base64url(nonce ‖ ciphertext ‖ tag).
const SEALED_V1: &str = "v1.";
/// Length of a data key: AES-256.
pub const KEY_LEN: usize = 32;
/// How long a process trusts a key it read before reading it again (see the module docs).
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(30);
/// Subjects whose keys one process keeps cached at most; beyond that the cache starts afresh.
const KEY_CACHE_CAPACITY: usize = 100_000;

/// Whose personal data an event holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// The aggregate of the event's stream (`user-<id>`: the user `<id>`).
    Stream,
    /// The string in this payload field (which must be one of the fields kept readable).
    Field(&'static str),
}

#[derive(Debug, Clone)]
struct Rule {
    subject: Subject,
    keep: &'static [&'static str],
}

/// The event types that hold personal data: whose it is and what stays readable.
#[derive(Debug, Clone, Default)]
pub struct PersonalData {
    rules: HashMap<String, Rule>,
}

impl PersonalData {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `event_type` as personal data of `subject`: every payload field but `keep`
    /// is sealed. An event type with nothing to seal (every field kept) is still registered
    /// when it belongs to a subject, so that it reads as erased once the subject is.
    pub fn register(
        mut self,
        event_type: impl Into<String>,
        subject: Subject,
        keep: &'static [&'static str],
    ) -> Self {
        if let Subject::Field(field) = subject {
            debug_assert!(
                keep.contains(&field),
                "the subject field {field} must be kept"
            );
        }
        self.rules.insert(event_type.into(), Rule { subject, keep });
        self
    }

    /// Adds every rule of `other` (another domain sharing the store).
    pub fn merge(mut self, other: PersonalData) -> Self {
        self.rules.extend(other.rules);
        self
    }

    /// Whose personal data an event of `event_type` in `stream_id` with `payload` holds: the
    /// subject a stored payload names, or else the one the rules say.
    pub fn subject(&self, event_type: &str, stream_id: &str, payload: &Value) -> Option<String> {
        if let Some(subject) = payload.get(SUBJECT_FIELD).and_then(Value::as_str) {
            return Some(subject.to_owned());
        }
        let rule = self.rules.get(event_type)?;
        let subject = match rule.subject {
            Subject::Stream => stream_aggregate_id(stream_id),
            Subject::Field(field) => payload.get(field)?.as_str()?,
        };
        (!subject.is_empty()).then(|| subject.to_owned())
    }

    /// The payload as stored: the fields not kept are moved into one sealed field, encrypted
    /// with `key` and bound to the event id (a sealed value copied into another event does not
    /// open), and the subject is named beside them.
    pub fn seal(
        &self,
        event_type: &str,
        event_id: Uuid,
        subject: &str,
        key: &DataKey,
        payload: &Value,
    ) -> Result<Value> {
        let Value::Object(fields) = payload else {
            return Err(EventStoreError::InvalidWrite(format!(
                "{event_type} payload is not an object"
            )));
        };
        if let Some(reserved) = [SEALED_FIELD, SUBJECT_FIELD]
            .into_iter()
            .find(|f| fields.contains_key(*f))
        {
            return Err(EventStoreError::InvalidWrite(format!(
                "{event_type} payload has a field named {reserved}"
            )));
        }
        let keep = self.rules.get(event_type).map_or(&[][..], |r| r.keep);
        let (kept, sealed): (Map<String, Value>, Map<String, Value>) = fields
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .partition(|(k, _)| keep.contains(&k.as_str()));
        let mut out = Value::Object(kept);
        out[SUBJECT_FIELD] = Value::String(subject.to_owned());
        if !sealed.is_empty() {
            let plain =
                serde_json::to_vec(&sealed).map_err(|e| EventStoreError::Codec(e.to_string()))?;
            out[SEALED_FIELD] = Value::String(key.seal(event_id, plain)?);
        }
        Ok(out)
    }

    /// The payload with its sealed fields back in place; with the subject erased (`key` is
    /// `None`), the kept fields only, and `true`.
    pub fn open(
        &self,
        event_type: &str,
        event_id: Uuid,
        key: KeyState<'_>,
        payload: Value,
    ) -> Result<(Value, bool)> {
        let Value::Object(mut fields) = payload else {
            return Ok((payload, false));
        };
        let sealed = fields.remove(SEALED_FIELD);
        let named = fields.remove(SUBJECT_FIELD).is_some();
        match key {
            KeyState::Erased => {
                // An event stored before sealing existed holds its data in the clear: keep
                // only what the rules keep.
                if !named && let Some(rule) = self.rules.get(event_type) {
                    fields.retain(|k, _| rule.keep.contains(&k.as_str()));
                }
                Ok((Value::Object(fields), true))
            }
            KeyState::Live(key) => {
                if let Some(sealed) = sealed {
                    let Value::String(sealed) = sealed else {
                        return Err(EventStoreError::Codec(format!(
                            "{event_type} {event_id}: {SEALED_FIELD} is not a string"
                        )));
                    };
                    let opened = key.open(event_id, &sealed).map_err(|e| {
                        EventStoreError::Codec(format!("{event_type} {event_id}: {e}"))
                    })?;
                    fields.extend(opened);
                }
                Ok((Value::Object(fields), false))
            }
            KeyState::None if sealed.is_some() => Err(EventStoreError::Codec(format!(
                "{event_type} {event_id} is sealed, but its subject has no key"
            ))),
            KeyState::None => Ok((Value::Object(fields), false)),
        }
    }
}

/// What is known of a subject's key when an event is read.
#[derive(Clone, Copy)]
pub enum KeyState<'a> {
    Live(&'a DataKey),
    /// The subject was erased: its key is gone.
    Erased,
    /// The subject never had a key (its events were stored before sealing existed, or are not
    /// personal data).
    None,
}

/// A subject's data key.
#[derive(Clone)]
pub struct DataKey {
    key: Arc<LessSafeKey>,
}

impl DataKey {
    /// A fresh random key, as bytes to store.
    pub fn generate() -> Result<[u8; KEY_LEN]> {
        let mut bytes = [0u8; KEY_LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| EventStoreError::Codec("no randomness for a data key".into()))?;
        Ok(bytes)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let key = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| EventStoreError::Codec(format!("a data key of {} bytes", bytes.len())))?;
        Ok(Self {
            key: Arc::new(LessSafeKey::new(key)),
        })
    }

    fn seal(&self, event_id: Uuid, mut plain: Vec<u8>) -> Result<String> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| EventStoreError::Codec("no randomness for a nonce".into()))?;
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(event_id.as_bytes()),
                &mut plain,
            )
            .map_err(|_| EventStoreError::Codec("sealing failed".into()))?;
        let mut sealed = Vec::with_capacity(NONCE_LEN + plain.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&plain);
        Ok(format!("{SEALED_V1}{}", URL_SAFE_NO_PAD.encode(sealed)))
    }

    fn open(
        &self,
        event_id: Uuid,
        sealed: &str,
    ) -> std::result::Result<Map<String, Value>, String> {
        let encoded = sealed
            .strip_prefix(SEALED_V1)
            .ok_or("the sealed fields have an unknown format")?;
        let mut bytes = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| "the sealed fields are not base64url")?;
        if bytes.len() < NONCE_LEN {
            return Err("the sealed fields are truncated".into());
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&bytes[..NONCE_LEN]);
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(event_id.as_bytes()),
                &mut bytes[NONCE_LEN..],
            )
            .map_err(|_| "the sealed fields do not open with the subject's key")?;
        serde_json::from_slice(plain).map_err(|_| "the sealed fields are not a JSON object".into())
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

/// A subject's row in `data_keys`: its key, or `None` once erased.
pub type StoredKey = Option<Vec<u8>>;

/// Where a backend keeps the data keys (its `data_keys` table), as readers see it.
#[async_trait]
pub trait KeyTable: Send + Sync {
    /// The rows of `subjects`; a subject without a row never had a key.
    async fn read_keys(&self, subjects: &[String]) -> Result<HashMap<String, StoredKey>>;
}

#[derive(Clone)]
enum Cached {
    Live(DataKey, Instant),
    Erased,
}

/// Keys this process has read, shared by the clones of a store.
#[derive(Clone, Default)]
pub struct KeyCache {
    keys: Arc<Mutex<HashMap<String, Cached>>>,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyCache")
    }
}

/// The keys a batch of events needs, by subject.
pub struct Keys(HashMap<String, Option<DataKey>>);

impl Keys {
    pub fn state(&self, subject: Option<&str>) -> KeyState<'_> {
        match subject.and_then(|s| self.0.get(s)) {
            None => KeyState::None,
            Some(Some(key)) => KeyState::Live(key),
            Some(None) => KeyState::Erased,
        }
    }
}

impl KeyCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        self.keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The keys of `subjects`, from the cache or else from `table`.
    pub async fn keys(&self, subjects: BTreeSet<String>, table: &dyn KeyTable) -> Result<Keys> {
        let mut found = HashMap::new();
        let mut missing = Vec::new();
        {
            let cache = self.lock();
            for subject in subjects {
                match cache.get(&subject) {
                    Some(Cached::Live(key, at)) if at.elapsed() < KEY_CACHE_TTL => {
                        found.insert(subject, Some(key.clone()));
                    }
                    Some(Cached::Erased) => {
                        found.insert(subject, None);
                    }
                    _ => missing.push(subject),
                }
            }
        }
        if !missing.is_empty() {
            let rows = table.read_keys(&missing).await?;
            let now = Instant::now();
            let mut cache = self.lock();
            if cache.len() + rows.len() > KEY_CACHE_CAPACITY {
                cache.clear();
            }
            for (subject, row) in rows {
                let key = row.as_deref().map(DataKey::from_bytes).transpose()?;
                cache.insert(
                    subject.clone(),
                    key.clone().map_or(Cached::Erased, |k| Cached::Live(k, now)),
                );
                found.insert(subject, key);
            }
        }
        Ok(Keys(found))
    }

    /// Remembers a key a write read or created.
    pub fn remember(&self, subject: &str, key: &DataKey) {
        self.lock().insert(
            subject.to_owned(),
            Cached::Live(key.clone(), Instant::now()),
        );
    }

    /// Forgets a subject's key: it was erased.
    pub fn erased(&self, subject: &str) {
        self.lock().insert(subject.to_owned(), Cached::Erased);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules() -> PersonalData {
        PersonalData::new().register("Wrote", Subject::Field("userId"), &["userId", "at"])
    }

    fn new_key() -> DataKey {
        DataKey::from_bytes(&DataKey::generate().unwrap()).unwrap()
    }

    #[test]
    fn sealed_fields_open_with_the_key_and_are_gone_without_it() {
        let rules = rules();
        let id = Uuid::new_v4();
        let key = new_key();
        let payload = json!({"userId": "u1", "at": 5, "text": "dear diary", "tags": ["a"]});
        let sealed = rules.seal("Wrote", id, "u1", &key, &payload).unwrap();
        assert_eq!(sealed["userId"], "u1");
        assert_eq!(sealed[SUBJECT_FIELD], "u1");
        assert_eq!(sealed["at"], 5);
        assert!(sealed.get("text").is_none());
        assert!(!sealed.to_string().contains("dear diary"));
        assert_eq!(
            rules.subject("Wrote", "entry-1", &sealed).as_deref(),
            Some("u1")
        );
        // A reader without the rules finds the subject too.
        let no_rules = PersonalData::new();
        assert_eq!(
            no_rules.subject("Wrote", "entry-1", &sealed).as_deref(),
            Some("u1")
        );
        let (opened, _) = no_rules
            .open("Wrote", id, KeyState::Live(&key), sealed.clone())
            .unwrap();
        assert_eq!(opened, payload);

        let (opened, erased) = rules
            .open("Wrote", id, KeyState::Live(&key), sealed.clone())
            .unwrap();
        assert_eq!((opened, erased), (payload, false));

        let (gone, erased) = rules
            .open("Wrote", id, KeyState::Erased, sealed.clone())
            .unwrap();
        assert_eq!((gone, erased), (json!({"userId": "u1", "at": 5}), true));

        // Another key, another event id, or a changed byte: it does not open.
        assert!(
            rules
                .open("Wrote", id, KeyState::Live(&new_key()), sealed.clone())
                .is_err()
        );
        assert!(
            rules
                .open(
                    "Wrote",
                    Uuid::new_v4(),
                    KeyState::Live(&key),
                    sealed.clone()
                )
                .is_err()
        );
        let mut tampered = sealed.clone();
        let text = tampered[SEALED_FIELD].as_str().unwrap().to_owned();
        let flipped = if text.ends_with('A') { 'B' } else { 'A' };
        tampered[SEALED_FIELD] = json!(format!("{}{flipped}", &text[..text.len() - 1]));
        assert!(
            rules
                .open("Wrote", id, KeyState::Live(&key), tampered)
                .is_err()
        );
        // Sealed, but no key row at all: a broken store, not an erasure.
        assert!(rules.open("Wrote", id, KeyState::None, sealed).is_err());
    }

    #[test]
    fn nothing_to_seal_still_names_the_subject() {
        let rules = rules();
        let id = Uuid::new_v4();
        let payload = json!({"userId": "u1", "at": 1});
        let sealed = rules.seal("Wrote", id, "u1", &new_key(), &payload).unwrap();
        assert_eq!(
            sealed,
            json!({"userId": "u1", "at": 1, SUBJECT_FIELD: "u1"})
        );
        let (gone, erased) = rules.open("Wrote", id, KeyState::Erased, sealed).unwrap();
        assert_eq!((gone, erased), (payload.clone(), true));
        assert_eq!(rules.subject("Other", "x-1", &payload), None);
        // Stored in the clear before sealing existed: erasure still hides what is not kept.
        let legacy = json!({"userId": "u1", "at": 1, "text": "old"});
        let (gone, _) = rules.open("Wrote", id, KeyState::Erased, legacy).unwrap();
        assert_eq!(gone, payload);
        let stream_rules = PersonalData::new().register("Named", Subject::Stream, &[]);
        assert_eq!(
            stream_rules
                .subject("Named", "user-42", &json!({}))
                .as_deref(),
            Some("42")
        );
    }

    #[test]
    fn a_payload_may_not_name_the_sealed_field() {
        for reserved in [SEALED_FIELD, SUBJECT_FIELD] {
            let payload = json!({"userId": "u1", reserved: "x"});
            assert!(
                rules()
                    .seal("Wrote", Uuid::new_v4(), "u1", &new_key(), &payload)
                    .is_err()
            );
        }
    }
}

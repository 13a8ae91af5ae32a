//! Properties of sealing personal data: whatever a payload holds, it opens as it was sealed
//! with its subject's key; without the key only the kept fields remain, and no sealed value
//! appears in what is stored.

use event_sourcing::personal::{DataKey, KeyState, PersonalData, SEALED_FIELD, Subject};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn rules() -> PersonalData {
    PersonalData::new().register("Wrote", Subject::Field("userId"), &["userId", "at"])
}

/// JSON values up to a small depth: strings with any characters, numbers, nested objects.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
        Just(Value::Null),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn payload() -> impl Strategy<Value = Value> {
    (
        prop::collection::btree_map("[a-zA-Z]{1,10}", value(), 0..6),
        any::<i64>(),
    )
        .prop_map(|(fields, at)| {
            let mut object: Map<String, Value> = fields.into_iter().collect();
            object.insert("userId".into(), json!("u-1"));
            object.insert("at".into(), json!(at));
            Value::Object(object)
        })
}

proptest! {
    #[test]
    fn a_sealed_payload_opens_as_it_was_and_only_kept_fields_survive_erasure(
        payload in payload(),
        id in any::<u128>().prop_map(uuid::Uuid::from_u128),
    ) {
        let rules = rules();
        let key = DataKey::from_bytes(&DataKey::generate().unwrap()).unwrap();
        let sealed = rules.seal("Wrote", id, "u-1", &key, &payload).unwrap();
        // Nothing but the kept fields, the subject and the sealed value is stored.
        for field in sealed.as_object().unwrap().keys() {
            prop_assert!(["userId", "at", "$subject", SEALED_FIELD].contains(&field.as_str()), "{}", field);
        }
        let (opened, erased) = rules.open("Wrote", id, KeyState::Live(&key), sealed.clone()).unwrap();
        prop_assert!(!erased);
        prop_assert_eq!(&opened, &payload);
        let (gone, erased) = rules.open("Wrote", id, KeyState::Erased, sealed).unwrap();
        prop_assert!(erased);
        prop_assert_eq!(gone, json!({"userId": "u-1", "at": payload["at"]}));
    }
}

//! Properties of the parsed values every request goes through: ids and consistency tokens
//! accept exactly their canonical forms, whatever else is sent, and never panic.

use metachat_validation::{ConsistencyToken, EntryId, UserId};
use proptest::prelude::*;

fn uuid() -> impl Strategy<Value = uuid::Uuid> {
    any::<u128>().prop_map(uuid::Uuid::from_u128)
}

proptest! {
    #[test]
    fn ids_parse_their_canonical_form_in_any_case(id in uuid(), upper in any::<bool>()) {
        let text = if upper { id.hyphenated().to_string().to_uppercase() } else { id.hyphenated().to_string() };
        let parsed = UserId::parse("userId", &text).expect("a canonical id");
        prop_assert_eq!(*parsed.as_uuid(), id);
        prop_assert_eq!(parsed.to_string(), id.hyphenated().to_string());
    }

    #[test]
    fn other_forms_of_an_id_are_refused_naming_the_field(id in uuid(), form in 0..4usize) {
        let text = match form {
            0 => id.simple().to_string(),
            1 => format!("{{{}}}", id.hyphenated()),
            2 => id.urn().to_string(),
            _ => format!(" {} ", id.hyphenated()),
        };
        let refused = EntryId::parse("id", &text).expect_err("not canonical").into_vec();
        prop_assert_eq!(refused[0].field.as_str(), "id");
    }

    #[test]
    fn any_text_is_an_id_or_a_violation_never_a_panic(text in ".{0,80}") {
        match UserId::parse("userId", &text) {
            Ok(id) => prop_assert_eq!(id.to_string(), text.to_ascii_lowercase()),
            Err(v) => {
                let v = v.into_vec();
                prop_assert_eq!(v[0].field.as_str(), "userId");
            }
        }
    }

    #[test]
    fn tokens_round_trip_and_refuse_version_zero(id in uuid(), version in 1u64..=999_999_999_999_999_999) {
        let token = ConsistencyToken::new(id, version);
        let parsed = ConsistencyToken::parse_optional("t", &token.to_string()).unwrap();
        prop_assert_eq!(parsed, Some(token));
        let zero = format!("{}:0", id);
        prop_assert!(ConsistencyToken::parse_optional("t", &zero).is_err());
        prop_assert_eq!(ConsistencyToken::parse_optional("t", "").unwrap(), None);
    }

    #[test]
    fn any_token_text_parses_or_names_the_field(text in ".{1,80}") {
        if let Err(v) = ConsistencyToken::parse_optional("X-Consistency-Token", &text) {
            let v = v.into_vec();
            prop_assert_eq!(v[0].field.as_str(), "X-Consistency-Token");
        }
    }
}

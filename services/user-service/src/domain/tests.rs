//! Given these past events, when this command, then these new events (or this error).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use event_sourcing::Aggregate;
use event_sourcing::testing::given;
use metachat_validation::UserId;
use uuid::Uuid;

use super::*;

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 6, 1).unwrap()
}

fn new_user() -> NewUser {
    NewUser {
        user_id: UserId::from_uuid(Uuid::from_u128(1)),
        username: " johndoe ".into(),
        email: "john@example.com".into(),
        first_name: "John".into(),
        last_name: "Doe".into(),
        date_of_birth: Some("1990-01-01".into()),
        today: today(),
    }
}

fn created() -> UserEvent {
    UserEvent::UserCreated(UserCreated {
        user_id: UserId::from_uuid(Uuid::from_u128(1)),
        username: Username::parse("johndoe").unwrap(),
        email: Email::parse("john@example.com").unwrap(),
        first_name: "John".into(),
        last_name: "Doe".into(),
        date_of_birth: NaiveDate::from_ymd_opt(1990, 1, 1),
    })
}

fn thinker(confidence: f64) -> ArchetypeInput {
    ArchetypeInput {
        archetype_id: "thinker".into(),
        archetype_name: "The Thinker".into(),
        confidence,
        description: "Analytical".into(),
    }
}

fn assigned() -> UserEvent {
    UserEvent::ArchetypeAssigned(ArchetypeSet {
        archetype_id: "thinker".into(),
        archetype_name: "The Thinker".into(),
        confidence: Confidence::parse(0.85).unwrap(),
        description: "Analytical".into(),
        inferred: None,
    })
}

fn inference(entries: u32) -> Inference {
    Inference {
        evidence: vec![Evidence {
            feature: "cognitive".into(),
            value: 0.05,
            strength: 0.75,
            weight: 0.6,
            words: vec!["think".into()],
        }],
        basis: InferenceBasis {
            entries,
            words: 900,
            window_days: 90,
            analyzer_version: "1".into(),
        },
        coverage: None,
    }
}

fn inferred_archetype(id: &str, confidence: f64) -> ArchetypeSet {
    ArchetypeSet {
        archetype_id: id.into(),
        archetype_name: format!("The {id}"),
        confidence: Confidence::parse(confidence).unwrap(),
        description: String::new(),
        inferred: Some(inference(10)),
    }
}

fn inferred_modalities(visual: f64) -> ModalitiesUpdated {
    ModalitiesUpdated {
        modalities: BTreeMap::from([
            ("visual".to_owned(), visual),
            ("auditory".to_owned(), 0.2),
            ("kinesthetic".to_owned(), 0.8 - visual),
        ]),
        inferred: Some(Inference {
            coverage: Some(0.04),
            ..inference(10)
        }),
    }
}

fn infer(archetype: Option<ArchetypeSet>, modalities: Option<ModalitiesUpdated>) -> UserCommand {
    UserCommand::Infer(InferredProfile {
        archetype,
        modalities,
    })
}

#[test]
fn an_inference_is_recorded_beside_explicit_values_and_never_replaces_them() {
    let history = [created(), assigned()];
    let events = when(
        &history,
        infer(
            Some(inferred_archetype("explorer", 0.7)),
            Some(inferred_modalities(0.5)),
        ),
    )
    .unwrap();
    assert_eq!(
        events,
        vec![
            UserEvent::ArchetypeAssigned(inferred_archetype("explorer", 0.7)),
            UserEvent::ModalitiesUpdated(inferred_modalities(0.5)),
        ]
    );
    let mut state = UserState::default();
    for e in history.iter().chain(&events) {
        state.apply(e);
    }
    let user = state.user().unwrap();
    assert_eq!(user.archetype.as_ref().unwrap().archetype_id, "thinker");
    assert_eq!(
        user.inferred_archetype.as_ref().unwrap().archetype_id,
        "explorer"
    );
    assert_eq!(user.modalities, None);
    assert!(user.inferred_modalities.is_some());
    // The explicit archetype is still the one a client updates.
    let update = UserCommand::UpdateArchetype(ArchetypeInput {
        archetype_id: "thinker".into(),
        archetype_name: "The Thinker".into(),
        confidence: 0.85,
        description: "Analytical".into(),
    });
    assert_eq!(state.decide(&update), Ok(vec![]));
}

#[test]
fn an_inference_that_moved_less_than_a_step_records_nothing() {
    let history = [
        created(),
        UserEvent::ArchetypeAssigned(inferred_archetype("thinker", 0.5)),
        UserEvent::ModalitiesUpdated(inferred_modalities(0.5)),
    ];
    let nudged = infer(
        Some(inferred_archetype("thinker", 0.5 + INFERENCE_STEP / 2.0)),
        Some(inferred_modalities(0.5 + INFERENCE_STEP / 2.0)),
    );
    assert_eq!(when(&history, nudged), Ok(vec![]));
    let moved = infer(
        Some(inferred_archetype("thinker", 0.6)),
        Some(inferred_modalities(0.5)),
    );
    assert_eq!(
        when(&history, moved),
        Ok(vec![UserEvent::ArchetypeUpdated(inferred_archetype(
            "thinker", 0.6
        ))])
    );
    let other = infer(
        Some(inferred_archetype("planner", 0.5)),
        Some(inferred_modalities(0.3)),
    );
    assert_eq!(
        when(&history, other),
        Ok(vec![
            UserEvent::ArchetypeUpdated(inferred_archetype("planner", 0.5)),
            UserEvent::ModalitiesUpdated(inferred_modalities(0.3)),
        ])
    );
}

#[test]
fn clearing_the_inference_keeps_explicit_values() {
    let history = [
        created(),
        assigned(),
        UserEvent::ArchetypeAssigned(inferred_archetype("thinker", 0.5)),
    ];
    let clear = UserCommand::ClearInference {
        reason: "analysisSwitchedOff".into(),
    };
    let events = when(&history, clear.clone()).unwrap();
    assert_eq!(
        events,
        vec![UserEvent::InferredProfileCleared(InferredProfileCleared {
            reason: "analysisSwitchedOff".into()
        })]
    );
    let mut state = UserState::default();
    for e in history.iter().chain(&events) {
        state.apply(e);
    }
    let user = state.user().unwrap();
    assert!(user.inferred_archetype.is_none());
    assert_eq!(user.archetype.as_ref().unwrap().archetype_id, "thinker");
    // Nothing left to clear: nothing recorded.
    assert_eq!(state.decide(&clear), Ok(vec![]));
    // Too little writing left: the inference is cleared too.
    assert_eq!(
        when(&history, infer(None, None)),
        Ok(vec![UserEvent::InferredProfileCleared(
            InferredProfileCleared {
                reason: "insufficientText".into()
            }
        )])
    );
}

fn when(history: &[UserEvent], command: UserCommand) -> Result<Vec<UserEvent>, UserError> {
    given::<UserState>(history).when(command)
}

fn invalid_fields(result: Result<Vec<UserEvent>, UserError>) -> Vec<String> {
    match result {
        Err(UserError::Invalid(v)) => v.iter().map(|x| x.field.clone()).collect(),
        other => panic!("expected invalid input, got {other:?}"),
    }
}

#[test]
fn creating_a_user_trims_and_records_the_profile() {
    assert_eq!(
        when(&[], UserCommand::Create(new_user())),
        Ok(vec![created()])
    );
}

#[test]
fn a_user_is_created_once() {
    assert_eq!(
        when(&[created()], UserCommand::Create(new_user())),
        Err(UserError::AlreadyExists)
    );
}

#[test]
fn creation_reports_every_invalid_field() {
    let command = UserCommand::Create(NewUser {
        username: "a b".into(),
        email: "john@localhost".into(),
        first_name: "".into(),
        last_name: "x".repeat(101),
        date_of_birth: Some("2024-06-01".into()),
        ..new_user()
    });
    assert_eq!(
        invalid_fields(when(&[], command)),
        ["username", "email", "firstName", "lastName", "dateOfBirth"]
    );
}

#[test]
fn birth_dates_must_be_real_past_dates_since_1900() {
    for bad in [
        "1990-02-30",
        "01/01/1990",
        "1899-12-31",
        "2030-01-01",
        "1990-1-1",
        "+1990-01-01",
        " 1990-01-01 ",
    ] {
        let command = UserCommand::Create(NewUser {
            date_of_birth: Some(bad.into()),
            ..new_user()
        });
        assert_eq!(invalid_fields(when(&[], command)), ["dateOfBirth"], "{bad}");
    }
}

#[test]
fn names_refuse_control_characters_but_a_bio_keeps_its_lines() {
    let command = UserCommand::Create(NewUser {
        first_name: "Jo\u{1b}hn".into(),
        last_name: "Do\u{7}e".into(),
        ..new_user()
    });
    assert_eq!(
        invalid_fields(when(&[], command)),
        ["firstName", "lastName"]
    );
    let command = UserCommand::UpdateProfile(ProfileChanges {
        bio: Some("line one\nline two".into()),
        today: today(),
        ..ProfileChanges::default()
    });
    assert!(when(&[created()], command).is_ok());
}

#[test]
fn e_mail_syntax_is_checked() {
    for good in ["a@b.co", "first.last+tag@sub.example.org"] {
        let command = UserCommand::Create(NewUser {
            email: good.into(),
            ..new_user()
        });
        assert!(when(&[], command).is_ok(), "{good}");
    }
    for bad in [
        "",
        "plain",
        "a@b",
        "a@@b.com",
        ".a@b.com",
        "a@-b.com",
        "a b@c.com",
    ] {
        let command = UserCommand::Create(NewUser {
            email: bad.into(),
            ..new_user()
        });
        assert_eq!(invalid_fields(when(&[], command)), ["email"], "{bad:?}");
    }
}

#[test]
fn commands_on_a_missing_user_are_not_found() {
    let commands = [
        UserCommand::UpdateProfile(ProfileChanges::default()),
        UserCommand::AssignArchetype(thinker(0.5)),
        UserCommand::UpdateModalities(BTreeMap::from([("visual".into(), 0.5)])),
    ];
    for command in commands {
        assert_eq!(when(&[], command), Err(UserError::NotFound));
    }
}

#[test]
fn a_profile_update_changes_given_fields_and_clears_empty_ones() {
    let given = [
        created(),
        UserEvent::UserProfileUpdated(UserProfileUpdated {
            first_name: "John".into(),
            last_name: "Doe".into(),
            date_of_birth: NaiveDate::from_ymd_opt(1990, 1, 1),
            avatar: Some("img".into()),
            bio: Some("bio".into()),
        }),
    ];
    let command = UserCommand::UpdateProfile(ProfileChanges {
        first_name: Some("Johnny".into()),
        bio: Some("".into()),
        today: today(),
        ..ProfileChanges::default()
    });
    assert_eq!(
        when(&given, command),
        Ok(vec![UserEvent::UserProfileUpdated(UserProfileUpdated {
            first_name: "Johnny".into(),
            last_name: "Doe".into(),
            date_of_birth: NaiveDate::from_ymd_opt(1990, 1, 1),
            avatar: Some("img".into()),
            bio: None,
        })])
    );
}

#[test]
fn an_update_that_changes_nothing_records_nothing() {
    let command = UserCommand::UpdateProfile(ProfileChanges {
        first_name: Some("John".into()),
        today: today(),
        ..ProfileChanges::default()
    });
    assert_eq!(when(&[created()], command), Ok(vec![]));
}

#[test]
fn an_archetype_is_assigned_once_then_updated() {
    assert_eq!(
        when(&[created()], UserCommand::AssignArchetype(thinker(0.85))),
        Ok(vec![assigned()])
    );
    assert_eq!(
        when(
            &[created(), assigned()],
            UserCommand::AssignArchetype(thinker(0.9))
        ),
        Err(UserError::ArchetypeAlreadyAssigned)
    );
    assert_eq!(
        when(&[created()], UserCommand::UpdateArchetype(thinker(0.9))),
        Err(UserError::NoArchetype)
    );
    assert_eq!(
        when(
            &[created(), assigned()],
            UserCommand::UpdateArchetype(thinker(0.85))
        ),
        Ok(vec![]),
        "the same archetype again changes nothing"
    );
    let updated = when(
        &[created(), assigned()],
        UserCommand::UpdateArchetype(thinker(0.9)),
    );
    assert!(
        matches!(updated.as_deref(), Ok([UserEvent::ArchetypeUpdated(a)]) if a.confidence.value() == 0.9)
    );
}

#[test]
fn archetype_input_is_validated() {
    let bad = ArchetypeInput {
        archetype_id: "The Thinker".into(),
        archetype_name: "".into(),
        confidence: f64::NAN,
        description: "d".repeat(1001),
    };
    assert_eq!(
        invalid_fields(when(&[created()], UserCommand::AssignArchetype(bad))),
        ["archetypeId", "archetypeName", "description", "confidence"]
    );
    assert_eq!(
        invalid_fields(when(
            &[created()],
            UserCommand::AssignArchetype(thinker(-0.1))
        )),
        ["confidence"]
    );
}

#[test]
fn modalities_are_known_names_weighted_within_zero_and_one() {
    let weights = |pairs: &[(&str, f64)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect::<BTreeMap<_, _>>()
    };
    let good = weights(&[("visual", 0.8), ("auditory", 0.6), ("kinesthetic", 0.4)]);
    let expected = UserEvent::ModalitiesUpdated(ModalitiesUpdated {
        modalities: good.clone(),
        inferred: None,
    });
    assert_eq!(
        when(&[created()], UserCommand::UpdateModalities(good.clone())),
        Ok(vec![expected.clone()])
    );
    assert_eq!(
        when(&[created(), expected], UserCommand::UpdateModalities(good)),
        Ok(vec![])
    );
    assert_eq!(
        invalid_fields(when(
            &[created()],
            UserCommand::UpdateModalities(weights(&[("visual", 1.5), ("smell", 0.1)]))
        )),
        ["modalities.smell", "modalities.visual"]
    );
    assert_eq!(
        invalid_fields(when(
            &[created()],
            UserCommand::UpdateModalities(BTreeMap::new())
        )),
        ["modalities"]
    );
}

#[test]
fn claim_keys_ignore_case_and_surrounding_space() {
    assert_eq!(
        claim_key("John@Example.com"),
        claim_key(" john@example.COM ")
    );
    assert_ne!(claim_key("john"), claim_key("johnny"));
    assert!(!claim_key("john@example.com").contains("john"));
}

//! Golden tests: each analyzer's output on realistic diary entries, pinned in `tests/golden/`.
//! A change to any output must come with a new `ANALYZER_VERSION` (and the component version
//! that changed); regenerate the files with `UPDATE_GOLDEN=1 cargo test -p metachat-analysis
//! --test golden` and review the diff.

use std::path::{Path, PathBuf};

use analysis::{Analysis, ArchetypeSignals, SensoryProfile, analyze, profile};

fn dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(name)
}

fn entries() -> Vec<(String, String)> {
    let mut entries: Vec<(String, String)> = std::fs::read_dir(dir("entries"))
        .expect("tests/entries exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .map(|p| {
            let name = p.file_stem().expect("named").to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).expect("UTF-8 entry"))
        })
        .collect();
    entries.sort();
    assert_eq!(entries.len(), 10, "expected the ten sample entries");
    entries
}

fn check_golden(name: &str, value: &impl serde::Serialize) {
    let json = serde_json::to_string_pretty(value).expect("serializable") + "\n";
    let path = dir("golden").join(format!("{name}.json"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &json).expect("writable golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} is missing: run with UPDATE_GOLDEN=1", path.display()));
    assert!(
        expected == json,
        "{name}: the output changed; if intended, bump the versions and run with UPDATE_GOLDEN=1\n--- expected\n{expected}\n--- got\n{json}"
    );
}

fn analyses() -> Vec<(String, Analysis)> {
    entries()
        .into_iter()
        .map(|(name, text)| (name, analyze(&text)))
        .collect()
}

#[test]
fn every_entry_matches_its_golden_analysis() {
    for (name, a) in analyses() {
        check_golden(&name, &a);
        // Results read back from events must be the same.
        let json = serde_json::to_string(&a).expect("serializable");
        let back: Analysis = serde_json::from_str(&json).expect("deserializable");
        assert_eq!(back, a, "{name} round trip");
    }
}

#[test]
fn the_profile_of_all_english_entries_matches_its_golden_file() {
    let all = analyses();
    let p = profile(all.iter().map(|(_, a)| a));
    assert_eq!(p.entries, 10);
    check_golden("profile", &p);
}

fn top_archetype(a: &Analysis) -> &str {
    match &a.archetype_signals {
        ArchetypeSignals::Measured { signals } => signals[0].id.as_str(),
        other => panic!("not measured: {other:?}"),
    }
}

fn by_name(all: &[(String, Analysis)], prefix: &str) -> Analysis {
    all.iter()
        .find(|(n, _)| n.starts_with(prefix))
        .map(|(_, a)| a.clone())
        .expect("entry exists")
}

// Independent of the golden files: what a reader would expect of each entry.
#[test]
fn entries_read_as_a_person_would_expect() {
    let all = analyses();
    assert_eq!(top_archetype(&by_name(&all, "01")), "thinker");
    assert_eq!(top_archetype(&by_name(&all, "02")), "feeler");
    assert_eq!(top_archetype(&by_name(&all, "03")), "explorer");
    assert_eq!(top_archetype(&by_name(&all, "04")), "caregiver");
    assert_eq!(top_archetype(&by_name(&all, "05")), "planner");

    let SensoryProfile::Measured(city) = by_name(&all, "06").sensory else {
        panic!("the city entry is long enough");
    };
    assert!(city.auditory > 0.6, "{city:?}");
    let SensoryProfile::Measured(explorer) = by_name(&all, "03").sensory else {
        panic!("the explorer entry is long enough");
    };
    assert!(explorer.visual > explorer.auditory, "{explorer:?}");

    let short = by_name(&all, "07");
    assert!(matches!(
        short.sensory,
        SensoryProfile::InsufficientText { .. }
    ));
    assert!(matches!(
        short.archetype_signals,
        ArchetypeSignals::InsufficientText { .. }
    ));
    assert!(short.keywords.is_empty());

    let negated = by_name(&all, "08");
    let SensoryProfile::Measured(m) = &negated.sensory else {
        panic!("long enough");
    };
    for word in ["see", "hear", "felt", "music"] {
        let e = m.evidence.iter().find(|e| e.word == word).expect(word);
        assert_eq!((e.count, e.negated), (0, 1), "{word}");
    }

    for (prefix, code) in [("09", "de"), ("10", "fr")] {
        let a = by_name(&all, prefix);
        assert_eq!(a.language.language.map(|l| l.code()), Some(code));
        assert!(!a.keywords.is_empty());
        assert_eq!(a.sensory, SensoryProfile::UnsupportedLanguage);
        assert_eq!(a.archetype_signals, ArchetypeSignals::UnsupportedLanguage);
    }
    let german: Vec<String> = by_name(&all, "09")
        .keywords
        .into_iter()
        .map(|k| k.phrase)
        .collect();
    assert!(german.iter().any(|k| k.contains("büro")), "{german:?}");
    assert!(german.iter().any(|k| k.contains("reise")), "{german:?}");
    let french: Vec<String> = by_name(&all, "10")
        .keywords
        .into_iter()
        .map(|k| k.phrase)
        .collect();
    assert!(french.iter().any(|k| k.contains("marché")), "{french:?}");
    for (prefix, theme) in [
        ("02", "mum"),
        ("03", "lisbon"),
        ("04", "hospital"),
        ("05", "deadline"),
    ] {
        let keywords: Vec<String> = by_name(&all, prefix)
            .keywords
            .into_iter()
            .map(|k| k.phrase)
            .collect();
        assert!(
            keywords.iter().any(|k| k.contains(theme)),
            "{prefix}: {keywords:?}"
        );
    }

    for (name, a) in &all {
        assert!(a.token_count >= a.word_count / 2, "{name}");
        for k in &a.keywords {
            assert!(
                k.score > 0.0 && k.phrase.split(' ').count() <= 3,
                "{name}: {k:?}"
            );
        }
    }
}

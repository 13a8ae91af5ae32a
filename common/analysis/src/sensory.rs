//! Sensory language: how much of a text is about seeing, hearing, and feeling (touch,
//! temperature, the body, movement).
//!
//! What this measures: the share of a text's words that come from an English lexicon of
//! visual, auditory and kinesthetic words, and how those words split between the three. It is a
//! description of the language in a text. What it does not measure: how a person perceives,
//! learns or thinks. The "learning styles" idea (that people learn better when taught in a
//! preferred modality) has weak scientific support; nothing here should be read as a diagnosis
//! or a recommendation about how someone learns.
//!
//! Negation: a lexicon word within [`NEGATION_SCOPE`] words after a negator in the same clause
//! ("I didn't see the sunset", "no sound at all") is not evidence of that modality: it counts
//! for neither the weights nor the coverage, and is reported in the evidence as negated. We chose
//! exclusion over negative weight because "didn't hear anything" still shows attention to sound;
//! it is just not a description of hearing something.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use crate::features::Features;
use crate::language::Language;

/// Version of the sensory lexicon and of the rules below.
pub const VERSION: &str = "sensory-en-1";

/// Fewer English words than this and the profile is [`SensoryProfile::InsufficientText`].
pub const MIN_WORDS: u64 = 25;

/// How many words after a negator it applies to (within one clause).
pub const NEGATION_SCOPE: usize = 3;

/// Evidence words reported per modality.
pub const EVIDENCE_PER_MODALITY: usize = 10;

/// A sense.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Modality {
    Visual,
    Auditory,
    Kinesthetic,
}

impl Modality {
    pub const ALL: [Modality; 3] = [Modality::Visual, Modality::Auditory, Modality::Kinesthetic];

    /// Its name as serialised: `visual`, `auditory` or `kinesthetic`.
    pub fn name(self) -> &'static str {
        match self {
            Modality::Visual => "visual",
            Modality::Auditory => "auditory",
            Modality::Kinesthetic => "kinesthetic",
        }
    }

    fn from_section(name: &str) -> Option<Self> {
        match name {
            "visual" => Some(Modality::Visual),
            "auditory" => Some(Modality::Auditory),
            "kinesthetic" => Some(Modality::Kinesthetic),
            _ => None,
        }
    }
}

/// The lexicon: Snowball English stem → modality. The first section that claims a stem keeps it
/// (a test checks that none is claimed twice).
static LEXICON: LazyLock<HashMap<String, Modality>> = LazyLock::new(|| {
    let stemmer = Language::En.stemmer();
    let mut map = HashMap::new();
    for (section, word) in crate::lexicon::sections(include_str!("../data/sensory_en.txt")) {
        if let Some(m) = Modality::from_section(section) {
            map.entry(stemmer.stem(word).into_owned()).or_insert(m);
        }
    }
    map
});

pub(crate) fn modality_of(stem: &str) -> Option<Modality> {
    LEXICON.get(stem).copied()
}

/// English negators; words ending in "n't" are negators too.
const NEGATORS: &[&str] = &[
    "not", "no", "never", "nor", "neither", "nobody", "nothing", "none", "nowhere", "cannot",
    "without", "hardly", "barely", "scarcely", "dont", "didnt", "doesnt", "cant", "couldnt",
    "wont", "wouldnt", "shouldnt", "isnt", "wasnt", "arent", "werent", "havent", "hasnt", "hadnt",
];

pub(crate) fn is_negator(lower: &str) -> bool {
    lower.ends_with("n't") || NEGATORS.contains(&lower)
}

/// How often one word occurred as sensory evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SensoryTally {
    pub modality: Modality,
    /// Occurrences that count.
    pub count: u64,
    /// Occurrences under a negation (not counted).
    pub negated: u64,
}

/// One word of evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SensoryEvidence {
    pub word: String,
    pub modality: Modality,
    pub count: u64,
    pub negated: u64,
}

/// A measured sensory-language profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SensoryMeasure {
    /// Share of the counted sensory words that are visual; the three weights sum to 1 when
    /// `coverage` > 0 and are all 0 otherwise.
    pub visual: f64,
    pub auditory: f64,
    pub kinesthetic: f64,
    /// Counted sensory words over all words analysed, in [0, 1].
    pub coverage: f64,
    /// Words analysed (English words).
    pub words: u64,
    /// Counted (not negated) sensory words.
    pub sensory_words: u64,
    /// The most frequent sensory words per modality, negated ones included and marked.
    pub evidence: Vec<SensoryEvidence>,
}

/// The sensory-language profile of a text or of a set of entries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "state",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum SensoryProfile {
    Measured(SensoryMeasure),
    /// Too few English words to say anything.
    InsufficientText {
        words: u64,
        minimum: u64,
    },
    /// Enough text, but none in a language the lexicon covers (English).
    UnsupportedLanguage,
}

impl SensoryProfile {
    /// Scores tallied features (one entry's or many entries' summed).
    pub fn from_features(f: &Features) -> Self {
        if f.lexicon_words < MIN_WORDS {
            if f.lexicon_words == 0 && f.words >= MIN_WORDS {
                return SensoryProfile::UnsupportedLanguage;
            }
            return SensoryProfile::InsufficientText {
                words: f.lexicon_words,
                minimum: MIN_WORDS,
            };
        }
        let mut counts: BTreeMap<Modality, u64> = Modality::ALL.iter().map(|m| (*m, 0)).collect();
        for t in f.sensory.values() {
            *counts.entry(t.modality).or_default() += t.count;
        }
        let total: u64 = counts.values().sum();
        let share = |m: Modality| {
            if total == 0 {
                0.0
            } else {
                crate::round(counts.get(&m).copied().unwrap_or(0) as f64 / total as f64)
            }
        };
        let mut evidence = Vec::new();
        for m in Modality::ALL {
            let mut words: Vec<SensoryEvidence> = f
                .sensory
                .iter()
                .filter(|(_, t)| t.modality == m)
                .map(|(w, t)| SensoryEvidence {
                    word: w.clone(),
                    modality: m,
                    count: t.count,
                    negated: t.negated,
                })
                .collect();
            words.sort_by(|a, b| {
                (b.count + b.negated)
                    .cmp(&(a.count + a.negated))
                    .then_with(|| a.word.cmp(&b.word))
            });
            words.truncate(EVIDENCE_PER_MODALITY);
            evidence.extend(words);
        }
        SensoryProfile::Measured(SensoryMeasure {
            visual: share(Modality::Visual),
            auditory: share(Modality::Auditory),
            kinesthetic: share(Modality::Kinesthetic),
            coverage: crate::round(total as f64 / f.lexicon_words as f64),
            words: f.lexicon_words,
            sensory_words: total,
            evidence,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::tally_english;
    use crate::text::segment;

    fn profile(text: &str) -> SensoryProfile {
        let mut f = Features::default();
        let seg = segment(text);
        f.words = seg.words.len() as u64;
        tally_english(&seg, &mut f);
        SensoryProfile::from_features(&f)
    }

    fn measured(text: &str) -> SensoryMeasure {
        match profile(text) {
            SensoryProfile::Measured(m) => m,
            other => panic!("not measured: {other:?}"),
        }
    }

    const FILLER: &str =
        " The rest of the day was ordinary and I did my work and then I went home to rest.";

    #[test]
    fn no_stem_belongs_to_two_modalities() {
        let stemmer = Language::En.stemmer();
        let mut seen: HashMap<String, &str> = HashMap::new();
        for (section, word) in crate::lexicon::sections(include_str!("../data/sensory_en.txt")) {
            assert!(
                Modality::from_section(section).is_some(),
                "unknown section {section}"
            );
            let stem = stemmer.stem(word).into_owned();
            if let Some(prev) = seen.insert(stem.clone(), section) {
                assert_eq!(prev, section, "{word} ({stem}) is {prev} and {section}");
            }
        }
        for m in Modality::ALL {
            let n = LEXICON.values().filter(|v| **v == m).count();
            assert!(n >= 150, "{m:?} has only {n} stems");
        }
    }

    #[test]
    fn stemming_matches_inflections() {
        let m = measured(&format!("I glanced, glancing again; she glances.{FILLER}"));
        let glance: Vec<_> = m
            .evidence
            .iter()
            .filter(|e| e.word.starts_with("glanc"))
            .collect();
        assert_eq!(glance.len(), 3, "{:?}", m.evidence);
        assert!(
            glance
                .iter()
                .all(|e| e.modality == Modality::Visual && e.count == 1)
        );
        assert_eq!(m.sensory_words, 3);
        assert_eq!(m.visual, 1.0);
    }

    #[test]
    fn negation_removes_evidence_within_scope_and_clause() {
        // "see" is negated (2 words after "didn't"); "heard" is past the comma: counted.
        let m = measured(&format!(
            "I didn't really see the boat, but I heard the waves.{FILLER}"
        ));
        let see = m
            .evidence
            .iter()
            .find(|e| e.word == "see")
            .expect("see in evidence");
        assert_eq!((see.count, see.negated), (0, 1));
        assert_eq!(m.sensory_words, 1);
        assert_eq!((m.visual, m.auditory), (0.0, 1.0));
        // Beyond the scope the negation no longer applies.
        let m = measured(&format!(
            "Not once in all those years did I see it.{FILLER}"
        ));
        let see = m
            .evidence
            .iter()
            .find(|e| e.word == "see")
            .expect("see in evidence");
        assert_eq!((see.count, see.negated), (1, 0));
        // "no sound", "never touched".
        let m = measured(&format!("There was no sound. I never touched it.{FILLER}"));
        assert_eq!(m.sensory_words, 0);
        assert_eq!(
            (m.visual, m.auditory, m.kinesthetic, m.coverage),
            (0.0, 0.0, 0.0, 0.0)
        );
    }

    #[test]
    fn weights_sum_to_one_and_coverage_is_a_share() {
        let text = "I watched the bright sky and heard birds singing while I felt the warm sand \
                    under my feet. The colours were vivid, the music loud, the breeze cool.";
        let m = measured(text);
        assert!(
            (m.visual + m.auditory + m.kinesthetic - 1.0).abs() < 1e-5,
            "{m:?}"
        );
        let words = segment(text).words.len() as u64;
        assert_eq!(m.words, words);
        assert_eq!(
            m.coverage,
            crate::round(m.sensory_words as f64 / words as f64)
        );
        assert!(m.visual > 0.0 && m.auditory > 0.0 && m.kinesthetic > 0.0);
    }

    #[test]
    fn insufficient_text_below_the_minimum() {
        assert_eq!(
            profile("I saw the sea."),
            SensoryProfile::InsufficientText {
                words: 4,
                minimum: MIN_WORDS
            }
        );
        assert_eq!(
            profile(""),
            SensoryProfile::InsufficientText {
                words: 0,
                minimum: MIN_WORDS
            }
        );
    }
}

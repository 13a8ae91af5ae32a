//! Archetype signals: a small, versioned rule set that maps measured features of the writing
//! to named archetypes.
//!
//! Each archetype's rule is a weighted sum of feature strengths. A feature's strength is where
//! its value sits between a `low` value (ordinary writing: strength 0) and a `high` one (strongly
//! marked writing: strength 1), clamped to [0, 1]. The weights of a rule sum to 1. The confidence
//! of a signal is that sum times a sufficiency factor, min(1, words / [`FULL_CONFIDENCE_WORDS`]),
//! so that a short entry never claims much. The low and high values were set by hand from what
//! diary prose looks like (they are not fitted to labelled data), and they are part of the
//! versioned rules: changing any of them changes [`VERSION`].
//!
//! What this is: a description of the themes and style of what someone wrote. What it is not:
//! a personality assessment. The archetypes are a product vocabulary, not a validated
//! psychological typology.

use serde::{Deserialize, Serialize};

use crate::features::{Feature, Features};

/// Version of the catalogue and its rules.
pub const VERSION: &str = "archetypes-1";

/// Fewer English words than this and the signals are [`ArchetypeSignals::InsufficientText`].
pub const MIN_WORDS: u64 = 50;

/// Words of writing at which a signal can reach its full confidence.
pub const FULL_CONFIDENCE_WORDS: u64 = 400;

/// Evidence words reported per feature.
pub const EVIDENCE_WORDS: usize = 5;

/// One term of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleTerm {
    pub feature: Feature,
    pub weight: f64,
    /// Value at which the strength is 0.
    pub low: f64,
    /// Value at which the strength is 1.
    pub high: f64,
}

impl RuleTerm {
    pub fn strength(&self, value: f64) -> f64 {
        if self.high <= self.low {
            return 0.0;
        }
        ((value - self.low) / (self.high - self.low)).clamp(0.0, 1.0)
    }
}

/// An archetype of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchetypeDefinition {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    /// The rule in words.
    pub rule: &'static str,
    pub terms: &'static [RuleTerm],
}

const fn term(feature: Feature, weight: f64, low: f64, high: f64) -> RuleTerm {
    RuleTerm {
        feature,
        weight,
        low,
        high,
    }
}

/// The catalogue, in a fixed order (ties between signals keep it).
pub const CATALOGUE: &[ArchetypeDefinition] = &[
    ArchetypeDefinition {
        id: "thinker",
        name: "The Thinker",
        description: "Reflects and reasons: writes about thoughts, causes and meanings, and asks questions.",
        rule: "0.7 × cognitive words (2% → 7% of words) + 0.3 × question rate (0 → 30% of sentences)",
        terms: &[
            term(Feature::Cognitive, 0.7, 0.02, 0.07),
            term(Feature::QuestionRate, 0.3, 0.0, 0.3),
        ],
    },
    ArchetypeDefinition {
        id: "feeler",
        name: "The Feeler",
        description: "Lives through emotions: names feelings and writes in the language of the body and touch.",
        rule: "0.75 × emotion words (1.5% → 6% of words) + 0.25 × kinesthetic share of sensory words (35% → 80%)",
        terms: &[
            term(Feature::Emotion, 0.75, 0.015, 0.06),
            term(Feature::KinestheticShare, 0.25, 0.35, 0.8),
        ],
    },
    ArchetypeDefinition {
        id: "explorer",
        name: "The Explorer",
        description: "Seeks the new: writes about travel, discovery and trying things, and about what they saw.",
        rule: "0.75 × exploration words (0.5% → 4% of words) + 0.25 × visual share of sensory words (35% → 80%)",
        terms: &[
            term(Feature::Exploration, 0.75, 0.005, 0.04),
            term(Feature::VisualShare, 0.25, 0.35, 0.8),
        ],
    },
    ArchetypeDefinition {
        id: "caregiver",
        name: "The Caregiver",
        description: "Centres on others: writes about the people around them and about helping and looking after them.",
        rule: "0.55 × care words (0.5% → 3% of words) + 0.45 × social words (2% → 8% of words)",
        terms: &[
            term(Feature::Care, 0.55, 0.005, 0.03),
            term(Feature::Social, 0.45, 0.02, 0.08),
        ],
    },
    ArchetypeDefinition {
        id: "planner",
        name: "The Planner",
        description: "Organises and looks ahead: writes about plans, tasks and schedules, and about what comes next.",
        rule: "0.5 × planning words (0.5% → 4% of words) + 0.3 × future words (1% → 4% of words) + 0.2 × future orientation (future over future and past words, 40% → 80%)",
        terms: &[
            term(Feature::Planning, 0.5, 0.005, 0.04),
            term(Feature::Future, 0.3, 0.01, 0.04),
            term(Feature::FutureOrientation, 0.2, 0.4, 0.8),
        ],
    },
];

/// The catalogue as data.
pub fn catalogue() -> &'static [ArchetypeDefinition] {
    CATALOGUE
}

/// One feature's part in a signal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeatureEvidence {
    pub feature: Feature,
    /// The measured value.
    pub value: f64,
    /// Its strength under the rule, in [0, 1].
    pub strength: f64,
    pub weight: f64,
    /// The most frequent words behind the value, with counts.
    pub words: Vec<(String, u64)>,
}

/// How strongly the writing matches one archetype.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchetypeSignal {
    pub id: String,
    pub name: String,
    /// In [0, 1].
    pub confidence: f64,
    pub evidence: Vec<FeatureEvidence>,
}

/// Archetype signals of a text or of a set of entries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "state",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum ArchetypeSignals {
    /// Every archetype of the catalogue, strongest first.
    Measured { signals: Vec<ArchetypeSignal> },
    /// Too few English words to say anything.
    InsufficientText { words: u64, minimum: u64 },
    /// Enough text, but none in a language the word lists cover (English).
    UnsupportedLanguage,
}

impl ArchetypeSignals {
    /// Scores tallied features (one entry's or many entries' summed).
    pub fn from_features(f: &Features) -> Self {
        if f.lexicon_words < MIN_WORDS {
            if f.lexicon_words == 0 && f.words >= MIN_WORDS {
                return ArchetypeSignals::UnsupportedLanguage;
            }
            return ArchetypeSignals::InsufficientText {
                words: f.lexicon_words,
                minimum: MIN_WORDS,
            };
        }
        let sufficiency = (f.lexicon_words as f64 / FULL_CONFIDENCE_WORDS as f64).min(1.0);
        let mut signals: Vec<ArchetypeSignal> = CATALOGUE
            .iter()
            .map(|a| {
                let mut score = 0.0;
                let evidence = a
                    .terms
                    .iter()
                    .map(|t| {
                        let value = f.value(t.feature);
                        let strength = t.strength(value);
                        score += t.weight * strength;
                        FeatureEvidence {
                            feature: t.feature,
                            value: crate::round(value),
                            strength: crate::round(strength),
                            weight: t.weight,
                            words: f.top_words(t.feature, EVIDENCE_WORDS),
                        }
                    })
                    .collect();
                ArchetypeSignal {
                    id: a.id.to_owned(),
                    name: a.name.to_owned(),
                    confidence: crate::round((score * sufficiency).clamp(0.0, 1.0)),
                    evidence,
                }
            })
            .collect();
        // Stable: equal confidences keep the catalogue order.
        signals.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
        ArchetypeSignals::Measured { signals }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_is_well_formed() {
        let mut ids: Vec<&str> = CATALOGUE.iter().map(|a| a.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), CATALOGUE.len());
        assert!(CATALOGUE.iter().any(|a| a.name == "The Thinker"));
        for a in CATALOGUE {
            let sum: f64 = a.terms.iter().map(|t| t.weight).sum();
            assert!((sum - 1.0).abs() < 1e-9, "{} weights sum to {sum}", a.id);
            for t in a.terms {
                assert!(
                    t.low < t.high && t.low >= 0.0 && t.high <= 1.0,
                    "{}: {t:?}",
                    a.id
                );
                assert!(
                    a.rule.contains(&format!("{}", t.weight)),
                    "{} rule text",
                    a.id
                );
            }
        }
    }

    #[test]
    fn strength_is_clamped() {
        let t = term(Feature::Cognitive, 1.0, 0.02, 0.06);
        assert_eq!(t.strength(0.0), 0.0);
        assert!((t.strength(0.04) - 0.5).abs() < 1e-12);
        assert_eq!(t.strength(0.5), 1.0);
    }
}

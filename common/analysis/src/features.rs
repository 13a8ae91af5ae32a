//! Measured features of a text: counts that can be summed over entries, so that a user's
//! profile is scored from the sum rather than averaged from scores.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use crate::language::Language;
use crate::sensory::{self, SensoryTally};
use crate::text::Segmented;

/// Version of the feature word lists.
pub const VERSION: &str = "features-en-1";

/// A measured feature that the archetype rules can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Feature {
    /// Share of words about thinking and reasoning.
    Cognitive,
    /// Share of words naming or expressing emotions.
    Emotion,
    /// Share of words about other people and togetherness.
    Social,
    /// Share of words about looking after others.
    Care,
    /// Share of words pointing to the future.
    Future,
    /// Share of words pointing to the past.
    Past,
    /// Share of words about organising and getting things done.
    Planning,
    /// Share of words about novelty and exploring.
    Exploration,
    /// Future words over future and past words (0 when there are none).
    FutureOrientation,
    /// Sentences ending with a question mark over all sentences.
    QuestionRate,
    /// Visual share of the sensory words (see [`crate::sensory`]).
    VisualShare,
    /// Auditory share of the sensory words.
    AuditoryShare,
    /// Kinesthetic share of the sensory words.
    KinestheticShare,
}

impl Feature {
    /// The features counted with a word list.
    pub const WORD_LISTS: [Feature; 8] = [
        Feature::Cognitive,
        Feature::Emotion,
        Feature::Social,
        Feature::Care,
        Feature::Future,
        Feature::Past,
        Feature::Planning,
        Feature::Exploration,
    ];

    /// Every feature, in declaration order.
    pub const ALL: [Feature; 13] = [
        Feature::Cognitive,
        Feature::Emotion,
        Feature::Social,
        Feature::Care,
        Feature::Future,
        Feature::Past,
        Feature::Planning,
        Feature::Exploration,
        Feature::FutureOrientation,
        Feature::QuestionRate,
        Feature::VisualShare,
        Feature::AuditoryShare,
        Feature::KinestheticShare,
    ];

    /// Its name as serialised (camelCase, e.g. `questionRate`).
    pub fn name(self) -> &'static str {
        match self {
            Feature::Cognitive => "cognitive",
            Feature::Emotion => "emotion",
            Feature::Social => "social",
            Feature::Care => "care",
            Feature::Future => "future",
            Feature::Past => "past",
            Feature::Planning => "planning",
            Feature::Exploration => "exploration",
            Feature::FutureOrientation => "futureOrientation",
            Feature::QuestionRate => "questionRate",
            Feature::VisualShare => "visualShare",
            Feature::AuditoryShare => "auditoryShare",
            Feature::KinestheticShare => "kinestheticShare",
        }
    }

    fn from_section(name: &str) -> Option<Self> {
        Feature::WORD_LISTS
            .into_iter()
            .find(|f| f.section() == Some(name))
    }

    fn section(self) -> Option<&'static str> {
        Some(match self {
            Feature::Cognitive => "cognitive",
            Feature::Emotion => "emotion",
            Feature::Social => "social",
            Feature::Care => "care",
            Feature::Future => "future",
            Feature::Past => "past",
            Feature::Planning => "planning",
            Feature::Exploration => "exploration",
            _ => return None,
        })
    }
}

/// Snowball English stem → the word-list features it belongs to.
static LISTS: LazyLock<HashMap<String, Vec<Feature>>> = LazyLock::new(|| {
    let stemmer = Language::En.stemmer();
    let mut map: HashMap<String, Vec<Feature>> = HashMap::new();
    for (section, word) in crate::lexicon::sections(include_str!("../data/features_en.txt")) {
        if let Some(f) = Feature::from_section(section) {
            let entry = map.entry(stemmer.stem(word).into_owned()).or_default();
            if !entry.contains(&f) {
                entry.push(f);
            }
        }
    }
    map
});

/// Counts measured over a text, or summed over many.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Features {
    /// Every word.
    pub words: u64,
    /// Words of text analysed with the English lexicons (all of an English text, else 0).
    pub lexicon_words: u64,
    /// Sentences of that text.
    pub lexicon_sentences: u64,
    /// Of which ending with a question mark.
    pub lexicon_questions: u64,
    /// Sensory words (lower-cased, as written) and their tallies.
    pub sensory: BTreeMap<String, SensoryTally>,
    /// Word-list features: the words (lower-cased, as written) that matched, with counts.
    pub word_lists: BTreeMap<Feature, BTreeMap<String, u64>>,
}

impl Features {
    /// Adds another text's counts to these.
    pub fn add(&mut self, other: &Features) {
        self.words = self.words.saturating_add(other.words);
        self.lexicon_words = self.lexicon_words.saturating_add(other.lexicon_words);
        self.lexicon_sentences = self
            .lexicon_sentences
            .saturating_add(other.lexicon_sentences);
        self.lexicon_questions = self
            .lexicon_questions
            .saturating_add(other.lexicon_questions);
        // Words already counted are not copied again (sums over many texts add mostly
        // words they have).
        for (word, t) in &other.sensory {
            match self.sensory.get_mut(word) {
                Some(mine) => {
                    mine.count = mine.count.saturating_add(t.count);
                    mine.negated = mine.negated.saturating_add(t.negated);
                }
                None => {
                    self.sensory.insert(word.clone(), t.clone());
                }
            }
        }
        for (feature, words) in &other.word_lists {
            let mine = self.word_lists.entry(*feature).or_default();
            for (word, n) in words {
                match mine.get_mut(word) {
                    Some(c) => *c = c.saturating_add(*n),
                    None => {
                        mine.insert(word.clone(), *n);
                    }
                }
            }
        }
    }

    /// Takes back counts [`Features::add`] added (another text's, or a sum of texts' that
    /// these include): what was added and then subtracted leaves no trace, not even a word
    /// counted zero times. Counts never go below zero.
    pub fn subtract(&mut self, other: &Features) {
        self.words = self.words.saturating_sub(other.words);
        self.lexicon_words = self.lexicon_words.saturating_sub(other.lexicon_words);
        self.lexicon_sentences = self
            .lexicon_sentences
            .saturating_sub(other.lexicon_sentences);
        self.lexicon_questions = self
            .lexicon_questions
            .saturating_sub(other.lexicon_questions);
        for (word, t) in &other.sensory {
            if let Some(mine) = self.sensory.get_mut(word) {
                mine.count = mine.count.saturating_sub(t.count);
                mine.negated = mine.negated.saturating_sub(t.negated);
                if mine.count == 0 && mine.negated == 0 {
                    self.sensory.remove(word);
                }
            }
        }
        for (feature, words) in &other.word_lists {
            let Some(mine) = self.word_lists.get_mut(feature) else {
                continue;
            };
            for (word, n) in words {
                if let Some(c) = mine.get_mut(word) {
                    *c = c.saturating_sub(*n);
                    if *c == 0 {
                        mine.remove(word);
                    }
                }
            }
            if mine.is_empty() {
                self.word_lists.remove(feature);
            }
        }
    }

    /// Occurrences of a word-list feature's words.
    pub fn count(&self, feature: Feature) -> u64 {
        self.word_lists
            .get(&feature)
            .map(|w| w.values().sum())
            .unwrap_or(0)
    }

    fn sensory_count(&self, modality: sensory::Modality) -> u64 {
        self.sensory
            .values()
            .filter(|t| t.modality == modality)
            .map(|t| t.count)
            .sum()
    }

    /// The value of a feature, in [0, 1].
    pub fn value(&self, feature: Feature) -> f64 {
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let share = |m| {
            let total: u64 = sensory::Modality::ALL
                .iter()
                .map(|m| self.sensory_count(*m))
                .sum();
            ratio(self.sensory_count(m), total)
        };
        match feature {
            Feature::QuestionRate => ratio(self.lexicon_questions, self.lexicon_sentences),
            Feature::FutureOrientation => {
                let future = self.count(Feature::Future);
                ratio(future, future + self.count(Feature::Past))
            }
            Feature::VisualShare => share(sensory::Modality::Visual),
            Feature::AuditoryShare => share(sensory::Modality::Auditory),
            Feature::KinestheticShare => share(sensory::Modality::Kinesthetic),
            list => ratio(self.count(list), self.lexicon_words),
        }
    }

    /// The most frequent words behind a feature (word-list or sensory share), best first.
    pub fn top_words(&self, feature: Feature, n: usize) -> Vec<(String, u64)> {
        let modality = match feature {
            Feature::VisualShare => Some(sensory::Modality::Visual),
            Feature::AuditoryShare => Some(sensory::Modality::Auditory),
            Feature::KinestheticShare => Some(sensory::Modality::Kinesthetic),
            _ => None,
        };
        let mut words: Vec<(String, u64)> = match (modality, feature) {
            (Some(m), _) => self
                .sensory
                .iter()
                .filter(|(_, t)| t.modality == m && t.count > 0)
                .map(|(w, t)| (w.clone(), t.count))
                .collect(),
            (None, Feature::FutureOrientation) => {
                let mut w = self.top_words(Feature::Future, n);
                w.extend(self.top_words(Feature::Past, n));
                w
            }
            (None, f) => self
                .word_lists
                .get(&f)
                .map(|m| m.iter().map(|(w, c)| (w.clone(), *c)).collect())
                .unwrap_or_default(),
        };
        words.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        words.truncate(n);
        words
    }
}

/// Tallies an English text's sensory and word-list features into `f` (all but `f.words`).
pub(crate) fn tally_english(seg: &Segmented<'_>, f: &mut Features) {
    let stemmer = Language::En.stemmer();
    f.lexicon_words = f.lexicon_words.saturating_add(seg.words.len() as u64);
    f.lexicon_sentences = f.lexicon_sentences.saturating_add(u64::from(seg.sentences));
    f.lexicon_questions = f.lexicon_questions.saturating_add(u64::from(seg.questions));
    // Diaries repeat words: stem each distinct word once.
    let mut stems: HashMap<&str, String> = HashMap::new();
    // Index of the last negator and its chunk.
    let mut negation: Option<(usize, u32)> = None;
    for (i, w) in seg.words.iter().enumerate() {
        if !w.is_lexical() {
            continue;
        }
        let lower = w.lower.as_str();
        if sensory::is_negator(lower) {
            negation = Some((i, w.chunk));
            continue;
        }
        let stem = stems
            .entry(lower)
            .or_insert_with(|| stemmer.stem(lower).into_owned());
        if let Some(m) = sensory::modality_of(stem) {
            let negated = matches!(negation, Some((at, chunk))
                if chunk == w.chunk && i - at <= sensory::NEGATION_SCOPE);
            let t = f.sensory.entry(lower.to_owned()).or_insert(SensoryTally {
                modality: m,
                count: 0,
                negated: 0,
            });
            if negated {
                t.negated = t.negated.saturating_add(1);
            } else {
                t.count = t.count.saturating_add(1);
            }
        }
        // "I'll", "we'll": the future, whoever speaks.
        let lists = if lower.ends_with("'ll") {
            LISTS.get("will")
        } else {
            LISTS.get(stem.as_str())
        };
        for feature in lists.into_iter().flatten() {
            let c = f
                .word_lists
                .entry(*feature)
                .or_default()
                .entry(lower.to_owned())
                .or_default();
            *c = c.saturating_add(1);
        }
    }
}

#[cfg(test)]
mod name_tests {
    use super::Feature;

    #[test]
    fn names_are_the_serialised_names() {
        for f in Feature::ALL {
            assert_eq!(serde_json::to_value(f).unwrap(), f.name(), "{f:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::segment;

    fn tally(text: &str) -> Features {
        let seg = segment(text);
        let mut f = Features {
            words: seg.words.len() as u64,
            ..Features::default()
        };
        tally_english(&seg, &mut f);
        f
    }

    #[test]
    fn subtracting_what_was_added_leaves_no_trace() {
        let a = tally("I think I saw the bright light and never heard the bells.");
        let b = tally("We will plan; I felt the cold, not the warmth. Why?");
        let mut sum = a.clone();
        sum.add(&b);
        assert_ne!(sum, a);
        sum.subtract(&b);
        assert_eq!(sum, a);
        sum.subtract(&a);
        assert_eq!(sum, Features::default());
        // Never below zero.
        sum.subtract(&b);
        assert_eq!(sum, Features::default());
    }

    #[test]
    fn every_list_is_loaded() {
        for f in Feature::WORD_LISTS {
            let n = LISTS.values().filter(|v| v.contains(&f)).count();
            assert!(n >= 25, "{f:?} has only {n} stems");
        }
    }

    #[test]
    fn counts_values_and_sums() {
        let f = tally("I think I'll plan the trip. Why? Because I wondered about it yesterday.");
        assert_eq!(f.lexicon_words, 13);
        assert_eq!((f.lexicon_sentences, f.lexicon_questions), (3, 1));
        // think, why, because, wondered
        assert_eq!(f.count(Feature::Cognitive), 4);
        // i'll, plan
        assert_eq!(f.count(Feature::Future), 2);
        assert_eq!(f.count(Feature::Past), 1);
        assert!((f.value(Feature::FutureOrientation) - 2.0 / 3.0).abs() < 1e-12);
        assert!((f.value(Feature::QuestionRate) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(
            f.top_words(Feature::Cognitive, 2),
            [("because".to_owned(), 1), ("think".to_owned(), 1)]
        );

        let mut sum = f.clone();
        sum.add(&f);
        assert_eq!(sum.words, 26);
        assert_eq!(sum.count(Feature::Cognitive), 8);
        assert_eq!(
            sum.value(Feature::QuestionRate),
            f.value(Feature::QuestionRate)
        );
    }

    #[test]
    fn empty_features_have_zero_values() {
        let f = Features::default();
        for feature in Feature::WORD_LISTS {
            assert_eq!(f.value(feature), 0.0);
        }
        assert_eq!(f.value(Feature::QuestionRate), 0.0);
        assert_eq!(f.value(Feature::KinestheticShare), 0.0);
    }
}

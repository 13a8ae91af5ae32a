//! Content analysis of diary entries: offline, in-process, deterministic and versioned.
//!
//! [`analyze`] runs every analyzer on one entry; [`profile`] combines many entries' analyses
//! into a user-level profile by summing their measured [`Features`] and scoring the sum. Every
//! result carries [`Versions`]: the analyzer's and those of each lexicon, rule set and model it
//! used, so a stored result can be recognised as stale and recomputed. The same text always
//! gives the same result; all data (tokenizer ranks, stop words, lexicons) is compiled into the
//! binary and loaded once, and nothing is read, written or logged at run time.
//!
//! # The analyzers
//!
//! - **Tokens** ([`count_tokens`]): the o200k_base byte-pair encoding, exact (the same count as
//!   OpenAI's tiktoken). Use it when a client sends no token count.
//! - **Language** ([`language::detect`]): whatlang's trigram model on the first 16 KiB. English,
//!   German, French, Spanish, Italian, Portuguese and Dutch are supported; anything else, or a
//!   guess below [`language::MIN_CONFIDENCE`], is unknown. Short texts (a dozen letters) are
//!   always unknown.
//! - **Keywords** ([`keywords`]): YAKE over 1–3-word phrases with the language's stop words and
//!   Snowball stemmer; none for an unknown language (better nothing than function words). YAKE
//!   is statistical: on a few sentences it picks the rarer content words, which is not always
//!   what a reader would call the theme.
//! - **Sensory language** ([`sensory`]): the visual / auditory / kinesthetic split of the
//!   sensory words and their share of the text, with negation. English only. It describes
//!   language, not perception: the evidence for "learning styles" is weak, and this is no
//!   diagnosis of one.
//! - **Archetype signals** ([`archetypes`]): a documented rule set over measured features
//!   (reflective, emotional, social, care, time-orientation, planning and exploration word
//!   shares, question rate, sensory mix) that scores a small [`archetypes::CATALOGUE`]. English
//!   only. A description of writing, not a personality test.
//!
//! Lexicon-based measures see words, not meaning: "I see what you mean" is visual evidence,
//! sarcasm and quotation are taken literally, and the word lists miss most of a large
//! vocabulary. Treat every figure as a weak signal that grows with the amount of text; both
//! per-text measures refuse to answer below a minimum number of words.
//!
//! # Versions
//!
//! [`ANALYZER_VERSION`] changes whenever any output for some input changes (the golden tests pin
//! the outputs); the component versions in [`Versions`] say which part changed. The sources and
//! licences of the embedded data are in `LICENSES.md` beside this crate's `Cargo.toml`.
//!
//! # Throughput
//!
//! `cargo bench -p metachat-analysis --bench throughput` reports MB of text analysed per second
//! on one core, for realistic diary text. On the development machine (a shared 2-core VM):
//! about 2–2.5 MB/s (some 3,000 entries of ~1 KB per second) one entry at a time, where language
//! detection and YAKE take most of the time, and 10–13 MB/s on one long text; token counting
//! alone runs at about 60 MB/s. The first call loads the tokenizer and lexicons (about 40 ms).

pub mod archetypes;
pub mod features;
pub mod keywords;
pub mod language;
mod lexicon;
pub mod sensory;
pub mod terms;
mod text;
pub mod tokens;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use archetypes::{ArchetypeSignal, ArchetypeSignals};
pub use features::{Feature, Features};
pub use keywords::Keyword;
pub use language::{Language, LanguageDetection};
pub use sensory::{Modality, SensoryProfile};
pub use tokens::count_tokens;

/// Version of the analysis as a whole: bumped whenever any result for some input changes.
pub const ANALYZER_VERSION: &str = "1";

/// Keywords returned per entry.
pub const KEYWORDS_PER_ENTRY: usize = 10;

/// Themes returned per profile.
pub const THEMES_PER_PROFILE: usize = 10;

/// Which analyzer, models, lexicons and rules produced a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Versions {
    pub analyzer: String,
    pub tokenizer: String,
    pub language_detector: String,
    pub stemmer: String,
    pub keywords: String,
    pub sensory_lexicon: String,
    pub feature_lexicon: String,
    pub archetype_rules: String,
}

/// The versions of this build.
pub fn versions() -> Versions {
    Versions {
        analyzer: ANALYZER_VERSION.to_owned(),
        tokenizer: tokens::VERSION.to_owned(),
        language_detector: "whatlang 0.18".to_owned(),
        stemmer: "snowball (rust-stemmers 1.2)".to_owned(),
        keywords: keywords::VERSION.to_owned(),
        sensory_lexicon: sensory::VERSION.to_owned(),
        feature_lexicon: features::VERSION.to_owned(),
        archetype_rules: archetypes::VERSION.to_owned(),
    }
}

/// The analysis of one entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Analysis {
    pub versions: Versions,
    /// o200k_base tokens.
    pub token_count: u32,
    /// Words (runs of letters and digits), saturating.
    pub word_count: u32,
    pub language: LanguageDetection,
    /// Best first; empty when the language is unknown.
    pub keywords: Vec<Keyword>,
    pub sensory: SensoryProfile,
    pub archetype_signals: ArchetypeSignals,
    /// The counts behind `sensory` and `archetype_signals`, to be summed by [`profile`].
    pub features: Features,
}

/// Words of a text (runs of letters and digits), as [`Analysis::word_count`] counts them,
/// without the rest of the analysis: cheap enough for every read-model write.
pub fn count_words(text: &str) -> u32 {
    u32::try_from(text::segment(text).words.len()).unwrap_or(u32::MAX)
}

/// Analyses one entry.
pub fn analyze(text: &str) -> Analysis {
    let seg = text::segment(text);
    let language = language::detect(text);
    let keywords = match language.language {
        Some(lang) => keywords::extract_segmented(&seg, lang, KEYWORDS_PER_ENTRY),
        None => Vec::new(),
    };
    let mut features = Features {
        words: seg.words.len() as u64,
        ..Features::default()
    };
    if language.language == Some(Language::En) {
        features::tally_english(&seg, &mut features);
    }
    Analysis {
        versions: versions(),
        token_count: count_tokens(text),
        word_count: u32::try_from(seg.words.len()).unwrap_or(u32::MAX),
        language,
        keywords,
        sensory: SensoryProfile::from_features(&features),
        archetype_signals: ArchetypeSignals::from_features(&features),
        features,
    }
}

/// A keyword that recurs across entries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Theme {
    pub phrase: String,
    /// Entries among whose keywords it is.
    pub entries: u32,
}

/// A user-level profile inferred from many entries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub versions: Versions,
    /// Entries combined.
    pub entries: u32,
    /// Entries left out because another analyzer version produced them (recompute those).
    pub skipped_entries: u32,
    pub word_count: u64,
    pub sensory: SensoryProfile,
    pub archetype_signals: ArchetypeSignals,
    /// Keywords found in at least two entries, most widespread first.
    pub themes: Vec<Theme>,
    /// The summed features.
    pub features: Features,
}

/// Combines entries' analyses: their features are summed, then scored as one text would be, so
/// many short entries together can pass the minimums that each alone does not.
pub fn profile<'a>(analyses: impl IntoIterator<Item = &'a Analysis>) -> Profile {
    let mut features = Features::default();
    let (mut entries, mut skipped) = (0u32, 0u32);
    let mut themes: BTreeMap<&str, u32> = BTreeMap::new();
    for a in analyses {
        if a.versions.analyzer != ANALYZER_VERSION {
            skipped = skipped.saturating_add(1);
            continue;
        }
        entries = entries.saturating_add(1);
        features.add(&a.features);
        for k in &a.keywords {
            let n = themes.entry(k.phrase.as_str()).or_default();
            *n = n.saturating_add(1);
        }
    }
    let mut themes: Vec<Theme> = themes
        .into_iter()
        .filter(|(_, n)| *n >= 2)
        .map(|(phrase, entries)| Theme {
            phrase: phrase.to_owned(),
            entries,
        })
        .collect();
    // Stable over the alphabetical order of the map.
    themes.sort_by_key(|t| std::cmp::Reverse(t.entries));
    themes.truncate(THEMES_PER_PROFILE);
    Profile {
        versions: versions(),
        entries,
        skipped_entries: skipped,
        word_count: features.words,
        sensory: SensoryProfile::from_features(&features),
        archetype_signals: ArchetypeSignals::from_features(&features),
        themes,
        features,
    }
}

/// Rounds to 6 decimals: results are stored and compared, and the last bits of a logarithm may
/// differ between platforms' maths libraries.
pub(crate) fn round(x: f64) -> f64 {
    if x.is_finite() {
        (x * 1e6).round() / 1e6
    } else {
        0.0
    }
}

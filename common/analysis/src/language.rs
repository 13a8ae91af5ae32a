//! Language identification (whatlang's trigram model), limited to the languages whose stop
//! words and stemmers this crate has.

use std::sync::LazyLock;

use rust_stemmers::{Algorithm, Stemmer};
use serde::{Deserialize, Serialize};

/// Only the start of a text is looked at: a diary entry does not change language half-way often
/// enough to pay for reading a megabyte, and it bounds the cost.
pub const DETECTION_PREFIX_BYTES: usize = 16 * 1024;

/// Below this whatlang confidence the language counts as unknown (and the text gets no
/// keywords): a wrong stop-word list produces keywords made of function words.
pub const MIN_CONFIDENCE: f64 = 0.5;

/// Fewer letters than this and no language is guessed at all: trigram statistics over a few
/// words are noise.
pub const MIN_LETTERS: usize = 12;

/// A language this crate analyses (stop words and a Snowball stemmer for each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    En,
    De,
    Fr,
    Es,
    It,
    Pt,
    Nl,
}

impl Language {
    pub const ALL: [Language; 7] = [
        Language::En,
        Language::De,
        Language::Fr,
        Language::Es,
        Language::It,
        Language::Pt,
        Language::Nl,
    ];

    /// ISO 639-1 code.
    pub fn code(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::De => "de",
            Language::Fr => "fr",
            Language::Es => "es",
            Language::It => "it",
            Language::Pt => "pt",
            Language::Nl => "nl",
        }
    }

    fn from_whatlang(lang: whatlang::Lang) -> Option<Self> {
        Some(match lang {
            whatlang::Lang::Eng => Language::En,
            whatlang::Lang::Deu => Language::De,
            whatlang::Lang::Fra => Language::Fr,
            whatlang::Lang::Spa => Language::Es,
            whatlang::Lang::Ita => Language::It,
            whatlang::Lang::Por => Language::Pt,
            whatlang::Lang::Nld => Language::Nl,
            _ => return None,
        })
    }

    fn algorithm(self) -> Algorithm {
        match self {
            Language::En => Algorithm::English,
            Language::De => Algorithm::German,
            Language::Fr => Algorithm::French,
            Language::Es => Algorithm::Spanish,
            Language::It => Algorithm::Italian,
            Language::Pt => Algorithm::Portuguese,
            Language::Nl => Algorithm::Dutch,
        }
    }

    /// The Snowball stemmer for this language (built once).
    pub(crate) fn stemmer(self) -> &'static Stemmer {
        static STEMMERS: LazyLock<Vec<Stemmer>> = LazyLock::new(|| {
            Language::ALL
                .iter()
                .map(|l| Stemmer::create(l.algorithm()))
                .collect()
        });
        // ALL lists every variant in declaration order, so the index is in range.
        &STEMMERS[self as usize]
    }
}

/// What the detector said about a text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LanguageDetection {
    /// The language the text was analysed as; `None` when unknown or not supported.
    pub language: Option<Language>,
    /// The detector's best guess as an ISO 639-3 code, supported or not (`None`: no guess).
    pub detected: Option<String>,
    /// The detector's confidence in its guess, in [0, 1].
    pub confidence: f64,
}

/// Guesses the language of `text` from its first [`DETECTION_PREFIX_BYTES`].
pub fn detect(text: &str) -> LanguageDetection {
    let mut end = text.len().min(DETECTION_PREFIX_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let prefix = &text[..end];
    let letters = prefix
        .chars()
        .filter(|c| c.is_alphabetic())
        .take(MIN_LETTERS)
        .count();
    let unknown = LanguageDetection {
        language: None,
        detected: None,
        confidence: 0.0,
    };
    if letters < MIN_LETTERS {
        return unknown;
    }
    let Some(info) = whatlang::detect(prefix) else {
        return unknown;
    };
    let confidence = crate::round(info.confidence());
    let language = Language::from_whatlang(info.lang()).filter(|_| confidence >= MIN_CONFIDENCE);
    LanguageDetection {
        language,
        detected: Some(info.lang().code().to_owned()),
        confidence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_supported_languages() {
        let cases = [
            (
                "Today I walked along the river and thought about my grandmother and the summers we spent together.",
                Language::En,
            ),
            (
                "Heute bin ich am Fluss entlang gelaufen und habe an meine Großmutter gedacht, an die Sommer mit ihr.",
                Language::De,
            ),
            (
                "Aujourd'hui j'ai marché le long de la rivière et j'ai pensé à ma grand-mère et aux étés passés ensemble.",
                Language::Fr,
            ),
            (
                "Hoy caminé por la orilla del río y pensé en mi abuela y en los veranos que pasamos juntas.",
                Language::Es,
            ),
        ];
        for (text, lang) in cases {
            assert_eq!(detect(text).language, Some(lang), "{text}");
        }
    }

    #[test]
    fn short_or_unsupported_text_is_unknown() {
        assert_eq!(detect("ok fine").language, None);
        assert_eq!(detect("").detected, None);
        let russian = detect("Сегодня я долго гулял вдоль реки и думал о своей бабушке.");
        assert_eq!(russian.language, None);
        assert_eq!(russian.detected.as_deref(), Some("rus"));
    }

    #[test]
    fn stemmers_match_their_language() {
        assert_eq!(Language::En.stemmer().stem("walking"), "walk");
        assert_eq!(Language::De.stemmer().stem("gelaufen"), "gelauf");
    }
}

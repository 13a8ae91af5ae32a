//! The words a text is searched by: its lexical words, stop words left out, each reduced to
//! its Snowball stem in the text's language, with how often each occurs. Keyword search
//! matches a query's terms against an entry's, so both sides go through [`terms`].

use std::collections::BTreeMap;

use crate::keywords::is_stop_word;
use crate::language::{self, Language};
use crate::text;

/// A text's search terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Terms {
    /// Each distinct stem with its number of occurrences, in stem order.
    pub counts: Vec<(String, u32)>,
    /// Words of the text, stop words included: the document length BM25 normalises by.
    pub length: u32,
}

/// The version of the term extraction: stored terms from another version are re-extracted.
pub const VERSION: &str = "terms-1";

/// The search terms of `text`, stemmed as `language` or, when `None`, as the language
/// detected in the text (English when it cannot be told, as for a short query).
pub fn terms(text: &str, language: Option<Language>) -> Terms {
    let language = language
        .or_else(|| language::detect(text).language)
        .unwrap_or(Language::En);
    let segmented = text::segment(text);
    let stemmer = language.stemmer();
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    for word in segmented.words.iter().filter(|w| w.is_lexical()) {
        let form = word.lower.as_str();
        if is_stop_word(language, form) || form.chars().nth(1).is_none() {
            continue;
        }
        let n = counts.entry(stemmer.stem(form).into_owned()).or_default();
        *n = n.saturating_add(1);
    }
    Terms {
        counts: counts.into_iter().collect(),
        length: u32::try_from(segmented.words.len()).unwrap_or(u32::MAX),
    }
}

/// One word of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryWord {
    /// The stems it may have been written with, English first.
    pub stems: Vec<String>,
    /// It is a stop word in one of the languages considered ("die", "war"): when no entry
    /// holds any of its stems, it is better left out of the query than counted as missing.
    pub stop_word_somewhere: bool,
}

/// A query's words, each with the stems it may have been written with: its stem in the
/// query's language when that can be told; else (a query is often too short to tell) its stem
/// in each language in which it is not a stop word, so the search can take the one the
/// writer's entries use. A word that is a stop word in every language considered is left out.
pub fn query_terms(text: &str) -> Vec<QueryWord> {
    let detected = language::detect(text).language;
    let languages: Vec<Language> = match detected {
        Some(language) => vec![language],
        None => Language::ALL.to_vec(),
    };
    let segmented = text::segment(text);
    let mut words: Vec<QueryWord> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for word in segmented.words.iter().filter(|w| w.is_lexical()) {
        let form = word.lower.as_str();
        if form.chars().nth(1).is_none() || !seen.insert(form.to_owned()) {
            continue;
        }
        let mut stems: Vec<String> = Vec::new();
        let mut stop_word_somewhere = false;
        for language in &languages {
            if is_stop_word(*language, form) {
                stop_word_somewhere = true;
                continue;
            }
            let stem = language.stemmer().stem(form).into_owned();
            if !stems.contains(&stem) {
                stems.push(stem);
            }
        }
        if !stems.is_empty() {
            words.push(QueryWord {
                stems,
                stop_word_somewhere,
            });
        }
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_count_and_leave_out_stop_words() {
        let t = terms(
            "I walked to the hospital; walking there again. The hospitals smell.",
            None,
        );
        let map: BTreeMap<_, _> = t.counts.iter().cloned().collect();
        assert_eq!(map.get("walk"), Some(&2));
        assert_eq!(map.get("hospit"), Some(&2));
        assert!(!map.contains_key("the") && !map.contains_key("i"));
        assert_eq!(t.length, 11);
    }

    #[test]
    fn a_query_is_stemmed_like_the_entries_it_should_find() {
        let entry = terms("Long runs by the river before work.", None);
        let query = terms("running", None);
        assert_eq!(query.counts, vec![("run".to_owned(), 1)]);
        assert!(entry.counts.iter().any(|(t, _)| t == "run"));
    }

    #[test]
    fn a_short_query_offers_each_language_stem() {
        let words = query_terms("Freunden");
        assert_eq!(words.len(), 1);
        assert!(words[0].stems.contains(&"freund".to_owned()), "{words:?}");
        assert_eq!(words[0].stems[0], "freunden", "English first: {words:?}");
        assert!(!words[0].stop_word_somewhere);
        // A detected language gives one stem per word, its stop words left out.
        let long = query_terms("Heute bin ich mit meinen Freunden in den Bergen gewandert");
        assert!(long.iter().all(|w| w.stems.len() == 1), "{long:?}");
        assert!(long.iter().any(|w| w.stems[0] == "freund"), "{long:?}");
        assert!(!long.iter().any(|w| w.stems[0] == "mit"), "{long:?}");
        // An English stop word of a short query is one somewhere.
        let the = query_terms("the");
        assert!(the.iter().all(|w| w.stop_word_somewhere), "{the:?}");
    }

    #[test]
    fn the_language_given_is_used() {
        let t = terms("Ich laufe jeden Morgen", Some(Language::De));
        assert!(t.counts.iter().any(|(t, _)| t == "lauf"), "{t:?}");
        assert!(terms("", None).counts.is_empty());
    }
}

//! Keywords: YAKE (Campos et al., "YAKE! Keyword extraction from single documents using
//! multiple local features", Information Sciences 509, 2020), implemented here.
//!
//! YAKE scores each term from five statistics of the document alone (casing, position,
//! frequency, relatedness to context, spread over sentences), then scores 1–3-word candidate
//! phrases that neither start nor end with a stop word. Lower scores are better. Two changes
//! from the reference implementation, both for diaries:
//! - terms are grouped by their Snowball stem, so "walk", "walked" and "walking" are one term
//!   (the phrase is shown in its most frequent written form);
//! - a phrase is dropped when a better one holds it or is held by it ("tag" after "langer
//!   tag"), or is at least [`DEDUP_SIMILARITY`] similar by edit distance (the reference only
//!   has the similarity test), so that ten keywords name more than three ideas.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use crate::language::Language;
use crate::text::{Segmented, Word};

/// Version of the keyword extractor and its stop-word lists.
pub const VERSION: &str = "yake-stem-1+stopwords-1";

/// Longest candidate phrase, in words.
pub const MAX_NGRAM: usize = 3;

/// Candidates at least this similar to a better one are dropped.
pub const DEDUP_SIMILARITY: f64 = 0.8;

/// YAKE's co-occurrence window (words on each side).
const WINDOW: usize = 1;

/// A keyword or key phrase of a text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Keyword {
    /// Lower-cased, as most often written.
    pub phrase: String,
    /// YAKE score: lower is more relevant (always > 0).
    pub score: f64,
    /// How often the phrase (by stems) occurs.
    pub occurrences: u32,
}

static STOP_WORDS: LazyLock<Vec<std::collections::HashSet<&'static str>>> = LazyLock::new(|| {
    Language::ALL
        .iter()
        .map(|l| {
            let text = match l {
                Language::En => include_str!("../data/stopwords/en.txt"),
                Language::De => include_str!("../data/stopwords/de.txt"),
                Language::Fr => include_str!("../data/stopwords/fr.txt"),
                Language::Es => include_str!("../data/stopwords/es.txt"),
                Language::It => include_str!("../data/stopwords/it.txt"),
                Language::Pt => include_str!("../data/stopwords/pt.txt"),
                Language::Nl => include_str!("../data/stopwords/nl.txt"),
            };
            crate::lexicon::words(text).collect()
        })
        .collect()
});

pub(crate) fn is_stop_word(language: Language, word: &str) -> bool {
    STOP_WORDS[language as usize].contains(word)
}

/// Whether `word` (lower-cased) is a stop word in any supported language.
pub fn is_stop_word_anywhere(word: &str) -> bool {
    Language::ALL.iter().any(|l| is_stop_word(*l, word))
}

/// A term: a word as the extractor sees it.
struct Term<'a> {
    /// The written form, lower-cased ("l'ami" becomes "ami" outside English).
    form: &'a str,
    stem: String,
    stop: bool,
    /// Cannot be part of a keyword (numbers, over-long words); breaks candidates like punctuation.
    blocked: bool,
}

#[derive(Default)]
struct TermStats {
    tf: f64,
    /// Occurrences capitalised mid-sentence.
    upper: f64,
    /// Occurrences written in capitals (acronyms).
    acronym: f64,
    sentences: Vec<u32>,
    left: HashMap<usize, f64>,
    right: HashMap<usize, f64>,
    stop: bool,
    score: f64,
}

fn term_of<'a>(
    word: &'a Word<'_>,
    language: Language,
    memo: &mut HashMap<&'a str, (String, bool)>,
) -> Term<'a> {
    if !word.is_lexical() {
        return Term {
            form: &word.lower,
            stem: String::new(),
            stop: false,
            blocked: true,
        };
    }
    let mut form = word.lower.as_str();
    // French and Italian elide articles ("l'ami", "dell'anno"): the word is after the apostrophe,
    // unless the whole is itself a stop word ("aujourd'hui").
    if language != Language::En
        && !is_stop_word(language, form)
        && let Some((_, rest)) = form.rsplit_once('\'')
        && !rest.is_empty()
    {
        form = rest;
    }
    // Diaries repeat words: stem each distinct form once.
    let (stem, stop) = memo
        .entry(form)
        .or_insert_with(|| {
            // As in the reference, words under three letters count as stop words.
            let stop = is_stop_word(language, form) || form.chars().nth(2).is_none();
            (language.stemmer().stem(form).into_owned(), stop)
        })
        .clone();
    Term {
        form,
        stem,
        stop,
        blocked: false,
    }
}

/// The top `max` keywords of `text`, best first; empty for an unsupported language.
pub fn extract(text: &str, language: Option<Language>, max: usize) -> Vec<Keyword> {
    match language {
        Some(language) => extract_segmented(&crate::text::segment(text), language, max),
        None => Vec::new(),
    }
}

pub(crate) fn extract_segmented(
    seg: &Segmented<'_>,
    language: Language,
    max: usize,
) -> Vec<Keyword> {
    if max == 0 || seg.words.is_empty() {
        return Vec::new();
    }
    let mut memo = HashMap::new();
    let terms: Vec<Term<'_>> = seg
        .words
        .iter()
        .map(|w| term_of(w, language, &mut memo))
        .collect();

    // Term ids by stem, in order of first appearance (keeps every tie-break deterministic).
    let mut ids: HashMap<&str, usize> = HashMap::new();
    let mut stats: Vec<TermStats> = Vec::new();
    let mut term_ids: Vec<Option<usize>> = Vec::with_capacity(terms.len());
    for (term, word) in terms.iter().zip(&seg.words) {
        if term.blocked {
            term_ids.push(None);
            continue;
        }
        let next = stats.len();
        let id = *ids.entry(term.stem.as_str()).or_insert(next);
        if id == next {
            stats.push(TermStats {
                stop: term.stop,
                ..TermStats::default()
            });
        }
        let s = &mut stats[id];
        s.tf += 1.0;
        if s.sentences.last() != Some(&word.sentence) {
            s.sentences.push(word.sentence);
        }
        let mut letters = word.raw.chars().filter(|c| c.is_alphabetic());
        if let Some(first) = letters.next() {
            let (mut rest, mut rest_upper) = (0, true);
            for c in letters {
                rest += 1;
                rest_upper &= c.is_uppercase();
            }
            if first.is_uppercase() && rest > 0 && rest_upper {
                s.acronym += 1.0;
            } else if first.is_uppercase() && !word.starts_sentence {
                s.upper += 1.0;
            }
        }
        term_ids.push(Some(id));
    }

    // Co-occurrence within a chunk, WINDOW words apart.
    for (i, a) in term_ids.iter().enumerate() {
        let Some(a) = *a else { continue };
        let ahead = term_ids.iter().zip(&seg.words).skip(i + 1).take(WINDOW);
        for (b, word) in ahead {
            if word.chunk != seg.words[i].chunk {
                break;
            }
            let Some(b) = *b else { break };
            *stats[a].right.entry(b).or_default() += 1.0;
            *stats[b].left.entry(a).or_default() += 1.0;
        }
    }

    score_terms(&mut stats, seg.sentences.max(1));

    // Candidates: runs of 1..=MAX_NGRAM terms in one chunk, not starting or ending in a stop word.
    struct Candidate {
        ids: Vec<usize>,
        forms: HashMap<String, u32>,
        tf: f64,
        first: usize,
    }
    let mut candidates: HashMap<Vec<usize>, Candidate> = HashMap::new();
    for start in 0..term_ids.len() {
        let Some(first_id) = term_ids[start] else {
            continue;
        };
        if stats[first_id].stop {
            continue;
        }
        let mut key = Vec::with_capacity(MAX_NGRAM);
        for end in start..(start + MAX_NGRAM).min(term_ids.len()) {
            if seg.words[end].chunk != seg.words[start].chunk {
                break;
            }
            let Some(id) = term_ids[end] else { break };
            key.push(id);
            if stats[id].stop {
                continue;
            }
            let form = terms[start..=end]
                .iter()
                .map(|t| t.form)
                .collect::<Vec<_>>()
                .join(" ");
            let next_first = candidates.len();
            let c = candidates.entry(key.clone()).or_insert_with(|| Candidate {
                ids: key.clone(),
                forms: HashMap::new(),
                tf: 0.0,
                first: next_first,
            });
            c.tf += 1.0;
            *c.forms.entry(form).or_default() += 1;
        }
    }

    let mut scored: Vec<(f64, usize, String, u32)> = candidates
        .into_values()
        .map(|c| {
            let mut prod = 1.0;
            let mut sum = 0.0;
            for (k, &id) in c.ids.iter().enumerate() {
                let t = &stats[id];
                if !t.stop {
                    prod *= t.score;
                    sum += t.score;
                } else if k > 0 && k + 1 < c.ids.len() {
                    // A stop word inside a phrase ("cup of tea"): YAKE weighs it by how likely
                    // its neighbours are to be followed / preceded by it.
                    let (l, r) = (c.ids[k - 1], c.ids[k + 1]);
                    let p_left = t.left.get(&l).copied().unwrap_or(0.0) / stats[l].tf.max(1.0);
                    let p_right =
                        stats[r].left.get(&id).copied().unwrap_or(0.0) / stats[r].tf.max(1.0);
                    let p = p_left * p_right;
                    prod *= 1.0 + (1.0 - p);
                    sum -= 1.0 - p;
                }
            }
            let score = prod / (c.tf * (1.0 + sum)).max(f64::MIN_POSITIVE);
            // The most frequent written form; ties go to the alphabetically first.
            let form = c
                .forms
                .iter()
                .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
                .map(|(f, _)| f.clone())
                .unwrap_or_default();
            (score, c.first, form, c.tf as u32)
        })
        .filter(|(score, ..)| score.is_finite() && *score > 0.0)
        .collect();
    scored.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));

    let mut out: Vec<Keyword> = Vec::with_capacity(max);
    for (score, _, phrase, occurrences) in scored {
        if out.len() >= max {
            break;
        }
        if out.iter().any(|k| {
            contains_phrase(&k.phrase, &phrase)
                || similarity(&k.phrase, &phrase) >= DEDUP_SIMILARITY
        }) {
            continue;
        }
        out.push(Keyword {
            phrase,
            score: crate::round(score),
            occurrences,
        });
    }
    out
}

/// YAKE's term score: S = (rel · pos) / (case + freq/rel + sent/rel).
fn score_terms(stats: &mut [TermStats], sentences: u32) {
    let valid: Vec<f64> = stats.iter().filter(|s| !s.stop).map(|s| s.tf).collect();
    let n = valid.len().max(1) as f64;
    let mean = valid.iter().sum::<f64>() / n;
    let std = (valid.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    let max_tf = stats.iter().map(|s| s.tf).fold(1.0, f64::max);
    for s in stats.iter_mut() {
        let case = s.upper.max(s.acronym) / (1.0 + s.tf.ln());
        let median = median(&s.sentences);
        let pos = (3.0 + median).ln().ln();
        let freq = s.tf / (mean + std).max(f64::MIN_POSITIVE);
        let dl = distinct_ratio(&s.left);
        let dr = distinct_ratio(&s.right);
        let rel = 1.0 + (dl + dr) * (s.tf / max_tf);
        let sent = f64::from(s.sentences.len() as u32) / f64::from(sentences);
        s.score = (rel * pos) / (case + freq / rel + sent / rel);
    }
}

/// Distinct neighbours over co-occurrences: 1 for a term seen beside many different words,
/// small for one stuck to the same neighbour.
fn distinct_ratio(m: &HashMap<usize, f64>) -> f64 {
    let total: f64 = m.values().sum();
    if total > 0.0 {
        m.len() as f64 / total
    } else {
        0.0
    }
}

fn median(sorted: &[u32]) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => f64::from(sorted[n / 2]),
        n => (f64::from(sorted[n / 2 - 1]) + f64::from(sorted[n / 2])) / 2.0,
    }
}

/// Whether one phrase is the other or holds it as whole words ("tag" in "langer tag").
fn contains_phrase(a: &str, b: &str) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    long.split(' ')
        .collect::<Vec<_>>()
        .windows(short.split(' ').count())
        .any(|w| w.join(" ") == short)
}

/// 1 − Levenshtein distance / longer length, over chars. Phrases are at most
/// MAX_NGRAM × MAX_WORD_CHARS chars, so the quadratic cost is bounded.
fn similarity(a: &str, b: &str) -> f64 {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let longest = a.len().max(b.len());
    if longest == 0 {
        return 1.0;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    1.0 - prev[b.len()] as f64 / longest as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phrases(text: &str, lang: Language) -> Vec<String> {
        extract(text, Some(lang), 5)
            .into_iter()
            .map(|k| k.phrase)
            .collect()
    }

    #[test]
    fn finds_the_theme_of_a_text() {
        let text = "The garden was full of roses this morning. I pruned the roses and watered the \
                    vegetable garden before work. My neighbour says the roses need more sun, but the \
                    garden gets sun all afternoon.";
        let got = phrases(text, Language::En);
        assert!(got.iter().any(|p| p == "roses"), "{got:?}");
        assert!(got.iter().any(|p| p.contains("garden")), "{got:?}");
        // No keyword starts or ends with a stop word.
        for p in &got {
            let first = p.split(' ').next().unwrap_or_default();
            let last = p.split(' ').next_back().unwrap_or_default();
            assert!(
                !is_stop_word(Language::En, first) && !is_stop_word(Language::En, last),
                "{p}"
            );
        }
    }

    #[test]
    fn stems_group_inflections() {
        let text = "Walking, again. I walked, slowly, to the lake. Walking, always walking.";
        let kws = extract(text, Some(Language::En), 10);
        let walk: Vec<&Keyword> = kws
            .iter()
            .filter(|k| k.phrase.starts_with("walk") && !k.phrase.contains(' '))
            .collect();
        assert_eq!(walk.len(), 1, "{kws:?}");
        assert_eq!(walk[0].phrase, "walking");
        assert_eq!(walk[0].occurrences, 4);
    }

    #[test]
    fn elided_articles_are_split_off() {
        let text = "L'océan me manque. J'aime l'océan et la plage, l'océan est loin.";
        let got = phrases(text, Language::Fr);
        assert!(got.iter().any(|p| p == "océan"), "{got:?}");
        assert!(!got.iter().any(|p| p.contains('\'')), "{got:?}");
    }

    #[test]
    fn unknown_language_and_limits() {
        assert!(extract("some words here", None, 10).is_empty());
        assert!(extract("some words here", Some(Language::En), 0).is_empty());
        assert!(extract("", Some(Language::En), 10).is_empty());
        assert!(extract("the and of", Some(Language::En), 10).is_empty());
    }

    #[test]
    fn similarity_bounds() {
        assert_eq!(similarity("abc", "abc"), 1.0);
        assert_eq!(similarity("abc", "xyz"), 0.0);
        assert!(similarity("rose garden", "roses garden") > DEDUP_SIMILARITY);
        assert!(contains_phrase("langer tag", "tag"));
        assert!(contains_phrase("tag", "tag im büro"));
        assert!(!contains_phrase("tag", "tagung"));
        assert!(!contains_phrase("day in lisbon", "first full day"));
    }
}

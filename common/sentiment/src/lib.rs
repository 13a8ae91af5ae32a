//! Sentiment of diary text with VADER, offline, deterministic and explainable.
//!
//! VADER (Valence Aware Dictionary and sEntiment Reasoner; Hutto & Gilbert, ICWSM 2014) scores
//! how positive or negative the *language* of a text is. It looks each word up in a lexicon of
//! about 7,500 English words, emoticons, slang and acronyms that human raters scored from −4
//! (most negative) to +4 (most positive), then adjusts those valences with a handful of rules:
//! negation ("not good", "never good"), boosters and dampeners ("very good", "kind of good"),
//! ALL CAPS emphasis among lowercase words, exclamation and question marks, a contrastive "but"
//! (what follows it weighs more), "least", a few idioms ("the bomb", "yeah right"), and emoji,
//! which it reads through their English descriptions.
//!
//! [`polarity_scores`] returns four numbers:
//! - `neg`, `neu`, `pos`: the proportions of the text that read negative, neutral and positive
//!   (they add up to about 1; all 0 for a text without words);
//! - `compound`: the sum of the valences, normalised to −1..=1. The usual reading is positive
//!   at ≥ 0.05, negative at ≤ −0.05, neutral between.
//!
//! [`analyze`] adds the words that carried the score, each with its lexicon valence, the
//! valence after the rules, and its byte span in the text, so that every score can be
//! explained.
//!
//! # Limits
//!
//! - A description of language, not of a person. A negative score says that the words of a text
//!   lean negative; it says nothing certain about how the writer feels, and it is never a
//!   diagnosis.
//! - English only. Text in other languages mostly finds no lexicon words and scores 0 (all
//!   zeros, or `neu` 1): that means "no evidence", not "neutral".
//! - The lexicon is tuned to short social-media text. Sarcasm, irony, domain words ("the tumour
//!   is negative") and reported speech fool it. The compound is a sum, so it saturates towards
//!   ±1 as a text grows: compare long entries by their sentences or paragraphs, or by
//!   `neg`/`pos`, rather than by the compound of the whole.
//!
//! # Conformance
//!
//! This is a port of the reference Python package `vaderSentiment` 3.3.2 (PyPI), with its
//! lexicons vendored ([`LEXICON`], [`EMOJI_LEXICON`]). It reproduces the reference's scores,
//! quirks included, rather than "fixing" them: whitespace tokenisation with Python's
//! definition of whitespace, punctuation stripped only when more than two characters remain,
//! emoji replaced by their descriptions without a space after them, the three-word negation
//! window and its precedence slip ("so"/"this" right before a word boosts it), idioms checked
//! only when the third word back exists and is not a lexicon word, the `list.index` lookup in
//! the "but" rule, Python's `isupper`, and Python's `round`. `tests/conformance.rs` checks the
//! scores of a corpus of diary-style text against the PyPI package
//! (`scripts/vader-reference.sh`). The only expected differences are characters new in
//! Unicode after Python 3.11's Unicode 14 tables.
//!
//! # Throughput
//!
//! `cargo bench -p metachat-sentiment --bench throughput` prints MB of diary text per second:
//! about 30 MB/s on one core of a small CI machine, some 35 times the reference's rate. The
//! lexicons are parsed once, on first use or by [`preload`].

mod lexicon;
mod pystr;

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::ops::Range;

use lexicon::{C_INCR, N_SCALAR};

/// The version of this analyzer. Change it whenever a score can change, so that stored results
/// can be told apart and recomputed.
pub const ANALYZER_VERSION: &str = "vader-rs 1 (vaderSentiment 3.3.2)";

/// The word lexicon the scores come from.
pub const LEXICON: &str = "vader_lexicon 3.3.2";

/// The emoji lexicon that turns emoji into words.
pub const EMOJI_LEXICON: &str = "emoji_utf8_lexicon 3.3.2";

/// VADER's scores for a text, rounded as the reference rounds them (3 decimals, compound 4).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Scores {
    /// Proportion of the text that reads negative, 0..=1.
    pub neg: f64,
    /// Proportion of the text that reads neutral, 0..=1.
    pub neu: f64,
    /// Proportion of the text that reads positive, 0..=1.
    pub pos: f64,
    /// Normalised sum of the valences, −1..=1.
    pub compound: f64,
}

/// A word of the text found in the lexicon, and what became of its valence.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenValence {
    /// The word as VADER read it: split at whitespace, outer punctuation stripped. For an
    /// emoji, a word of its description.
    pub token: String,
    /// Byte range in the analysed text (for an emoji's word, the emoji).
    pub span: Range<usize>,
    /// The emoji whose description the word comes from.
    pub emoji: Option<char>,
    /// The word's valence in the lexicon, −4..=4.
    pub lexicon_valence: f64,
    /// Its valence after negation, boosters, caps, idioms and "but": what it added to the
    /// score (0 when a rule cancelled it, e.g. "no" negating the next word).
    pub valence: f64,
}

/// Scores plus the words behind them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Analysis {
    /// The same scores as [`polarity_scores`].
    pub scores: Scores,
    /// Every lexicon word of the text, in order.
    pub tokens: Vec<TokenValence>,
}

/// VADER's `polarity_scores`: the sentiment of `text`. Pure; never panics.
pub fn polarity_scores(text: &str) -> Scores {
    let (scores, _) = run(text, false);
    scores
}

/// [`polarity_scores`] plus the words that carried the score.
pub fn analyze(text: &str) -> Analysis {
    let (scores, tokens) = run(text, true);
    Analysis { scores, tokens }
}

/// Parses the lexicons now (a few milliseconds), instead of on the first call.
pub fn preload() {
    lexicon::load();
}

/// An emoji replaced by its description: where the description is in the rewritten text and
/// where the emoji was in the original.
struct EmojiSpan {
    rewritten: Range<usize>,
    original: Range<usize>,
    emoji: char,
}

/// The reference's first step: each emoji becomes its description, preceded by a space unless
/// a space precedes it, and followed by nothing (so "😁x" reads "…smiling eyesx").
fn substitute_emoji(text: &str) -> (Cow<'_, str>, Vec<EmojiSpan>) {
    if !text.chars().any(|c| lexicon::emoji(c).is_some()) {
        return (Cow::Borrowed(text), Vec::new());
    }
    let mut out = String::with_capacity(text.len() + 64);
    let mut spans = Vec::new();
    let mut prev_space = true;
    for (at, c) in text.char_indices() {
        if let Some(description) = lexicon::emoji(c) {
            if !prev_space {
                out.push(' ');
            }
            let start = out.len();
            out.push_str(description);
            spans.push(EmojiSpan {
                rewritten: start..out.len(),
                original: at..at + c.len_utf8(),
                emoji: c,
            });
            prev_space = false;
        } else {
            out.push(c);
            // Only U+0020 counts here, as in the reference.
            prev_space = c == ' ';
        }
    }
    (Cow::Owned(out), spans)
}

/// A token of the (emoji-rewritten) text.
struct Word<'t> {
    text: &'t str,
    lower: Cow<'t, str>,
    upper: bool,
    valence: Option<f64>,
    range: Range<usize>,
}

/// `SentiText._words_and_emoticons`: split at Python whitespace, then strip leading and
/// trailing ASCII punctuation unless at most two characters would remain (an emoticon).
fn words(text: &str) -> Vec<Word<'_>> {
    let mut words = Vec::new();
    let mut start = None;
    for (at, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        if pystr::is_space(c) {
            if let Some(start) = start.take() {
                words.push(word(text, start..at));
            }
        } else if start.is_none() {
            start = Some(at);
        }
    }
    words
}

fn word(text: &str, range: Range<usize>) -> Word<'_> {
    let raw = &text[range.clone()];
    let stripped = raw.trim_matches(|c: char| c.is_ascii_punctuation());
    let (token, range) = if stripped.chars().nth(2).is_none() {
        (raw, range)
    } else {
        let lead = raw.len()
            - raw
                .trim_start_matches(|c: char| c.is_ascii_punctuation())
                .len();
        let start = range.start + lead;
        (stripped, start..start + stripped.len())
    };
    let lower = lowercase(token);
    Word {
        text: token,
        upper: pystr::is_upper(token),
        valence: lexicon::valence(&lower),
        lower,
        range,
    }
}

fn lowercase(s: &str) -> Cow<'_, str> {
    if !s.is_ascii() {
        Cow::Owned(s.to_lowercase())
    } else if s.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

fn run(text: &str, explain: bool) -> (Scores, Vec<TokenValence>) {
    let (rewritten, emoji) = substitute_emoji(text);
    let words = words(&rewritten);
    let cap_diff = allcap_differential(&words);

    let mut sentiments = Vec::with_capacity(words.len());
    for (i, w) in words.iter().enumerate() {
        // Modifiers carry no valence of their own.
        let modifier = lexicon::booster(&w.lower).is_some()
            || (w.lower == "kind" && words.get(i + 1).is_some_and(|next| next.lower == "of"));
        sentiments.push(if modifier {
            0.0
        } else {
            sentiment_valence(&words, i, cap_diff)
        });
    }
    but_check(&words, &mut sentiments);
    let scores = score_valence(&sentiments, &rewritten);

    let tokens = if explain {
        words
            .iter()
            .zip(&sentiments)
            .filter_map(|(w, &valence)| {
                let lexicon_valence = w.valence?;
                let (span, emoji) = original_span(&emoji, w.range.clone());
                Some(TokenValence {
                    token: w.text.to_owned(),
                    span,
                    emoji,
                    lexicon_valence,
                    valence,
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    (scores, tokens)
}

/// Maps a byte range of the rewritten text back to the original text.
fn original_span(spans: &[EmojiSpan], range: Range<usize>) -> (Range<usize>, Option<char>) {
    let before = spans.partition_point(|e| e.rewritten.start <= range.start);
    let (start, emoji) = match before.checked_sub(1).and_then(|k| spans.get(k)) {
        None => (range.start, None),
        Some(e) if range.start < e.rewritten.end => (e.original.start, Some(e.emoji)),
        Some(e) => (e.original.end + (range.start - e.rewritten.end), None),
    };
    let before = spans.partition_point(|e| e.rewritten.start < range.end);
    let end = match before.checked_sub(1).and_then(|k| spans.get(k)) {
        None => range.end,
        Some(e) if range.end <= e.rewritten.end => e.original.end,
        Some(e) => e.original.end + (range.end - e.rewritten.end),
    };
    (start..end, emoji)
}

/// True when some, but not all, words are ALL CAPS: only then does caps mean emphasis.
fn allcap_differential(words: &[Word]) -> bool {
    let upper = words.iter().filter(|w| w.upper).count();
    let differential = words.len() - upper;
    0 < differential && differential < words.len()
}

/// `scalar_inc_dec`: how much a preceding booster or dampener changes a valence.
fn scalar_inc_dec(word: &Word, valence: f64, cap_diff: bool) -> f64 {
    let Some(mut scalar) = lexicon::booster(&word.lower) else {
        return 0.0;
    };
    if valence < 0.0 {
        scalar *= -1.0;
    }
    if word.upper && cap_diff {
        if valence > 0.0 {
            scalar += C_INCR;
        } else {
            scalar -= C_INCR;
        }
    }
    scalar
}

/// `sentiment_valence`: the valence of word `i` after the rules that look at its neighbours.
fn sentiment_valence(words: &[Word], i: usize, cap_diff: bool) -> f64 {
    let item = &words[i];
    let Some(base) = item.valence else {
        return 0.0;
    };
    let lower = |k: usize| words[k].lower.as_ref();
    let mut valence = base;

    // "no" right before a lexicon word negates that word instead of counting itself.
    if lower(i) == "no" && words.get(i + 1).is_some_and(|next| next.valence.is_some()) {
        valence = 0.0;
    }
    if (i > 0 && lower(i - 1) == "no")
        || (i > 1 && lower(i - 2) == "no")
        || (i > 2 && lower(i - 3) == "no" && matches!(lower(i - 1), "or" | "nor"))
    {
        valence = base * N_SCALAR;
    }

    if item.upper && cap_diff {
        if valence > 0.0 {
            valence += C_INCR;
        } else {
            valence -= C_INCR;
        }
    }

    // Up to three preceding words that are not lexicon words, the farther ones weaker.
    for start_i in 0..3 {
        if i > start_i && words[i - (start_i + 1)].valence.is_none() {
            let mut s = scalar_inc_dec(&words[i - (start_i + 1)], valence, cap_diff);
            if start_i == 1 && s != 0.0 {
                s *= 0.95;
            }
            if start_i == 2 && s != 0.0 {
                s *= 0.9;
            }
            valence += s;
            valence = negation_check(valence, words, start_i, i);
            if start_i == 2 {
                valence = special_idioms_check(valence, words, i);
            }
        }
    }

    least_check(valence, words, i)
}

/// `negated` for one word: a negation word, or any word containing "n't".
fn negated(word: &str) -> bool {
    lexicon::is_negation_word(word) || word.contains("n't")
}

/// `_negation_check`. Callers guarantee `i > start_i`.
fn negation_check(valence: f64, words: &[Word], start_i: usize, i: usize) -> f64 {
    let lower = |k: usize| words[k].lower.as_ref();
    match start_i {
        0 if negated(lower(i - 1)) => valence * N_SCALAR,
        1 if lower(i - 2) == "never" && matches!(lower(i - 1), "so" | "this") => valence * 1.25,
        1 if lower(i - 2) == "without" && lower(i - 1) == "doubt" => valence,
        1 if negated(lower(i - 2)) => valence * N_SCALAR,
        // The reference's `A and B or C`: "so" or "this" right before the word boosts it
        // whatever comes three words before.
        2 if (lower(i - 3) == "never" && matches!(lower(i - 2), "so" | "this"))
            || matches!(lower(i - 1), "so" | "this") =>
        {
            valence * 1.25
        }
        2 if lower(i - 3) == "without" && (lower(i - 2) == "doubt" || lower(i - 1) == "doubt") => {
            valence
        }
        2 if negated(lower(i - 3)) => valence * N_SCALAR,
        _ => valence,
    }
}

/// True when `words` joined by single spaces equal `phrase`.
fn phrase_is(words: &[&str], phrase: &str) -> bool {
    let mut parts = phrase.split(' ');
    words.iter().all(|w| parts.next() == Some(*w)) && parts.next().is_none()
}

fn special_case(words: &[&str]) -> Option<f64> {
    lexicon::SPECIAL_CASES
        .iter()
        .find(|(phrase, _)| phrase_is(words, phrase))
        .map(|&(_, valence)| valence)
}

/// `_special_idioms_check`, reached only for `i >= 3`.
fn special_idioms_check(mut valence: f64, words: &[Word], i: usize) -> f64 {
    let lower = |k: usize| words[k].lower.as_ref();
    let (w3, w2, w1, w0) = (lower(i - 3), lower(i - 2), lower(i - 1), lower(i));
    let sequences: [&[&str]; 5] = [
        &[w1, w0],
        &[w2, w1, w0],
        &[w2, w1],
        &[w3, w2, w1],
        &[w3, w2],
    ];
    if let Some(v) = sequences.iter().find_map(|seq| special_case(seq)) {
        valence = v;
    }
    if let Some(next) = words.get(i + 1) {
        if let Some(v) = special_case(&[w0, &next.lower]) {
            valence = v;
        }
        if let Some(after) = words.get(i + 2)
            && let Some(v) = special_case(&[w0, &next.lower, &after.lower])
        {
            valence = v;
        }
    }
    // Multi-word dampeners such as "kind of" before the word.
    for n_gram in [&[w3, w2, w1][..], &[w3, w2], &[w2, w1]] {
        for (phrase, scalar) in lexicon::BOOSTER_PHRASES {
            if phrase_is(n_gram, phrase) {
                valence += scalar;
            }
        }
    }
    valence
}

/// `_least_check`: "least good" negates, "at least good" and "very least good" do not.
fn least_check(valence: f64, words: &[Word], i: usize) -> f64 {
    let lower = |k: usize| words[k].lower.as_ref();
    if i > 1 && words[i - 1].valence.is_none() && lower(i - 1) == "least" {
        if lower(i - 2) != "at" && lower(i - 2) != "very" {
            return valence * N_SCALAR;
        }
    } else if i > 0 && words[i - 1].valence.is_none() && lower(i - 1) == "least" {
        return valence * N_SCALAR;
    }
    valence
}

/// `_but_check`: valences before the first "but" halve, those after grow by half.
///
/// The reference finds each value's position with `list.index`, so it rescales the *first*
/// element equal to the current one, which may not be the current one (two equal valences
/// after "but" make the first one grow twice and the second not at all). Kept as is, with an
/// index of first positions per value so that long texts stay linear-ish.
fn but_check(words: &[Word], sentiments: &mut [f64]) {
    let Some(bi) = words.iter().position(|w| w.lower == "but") else {
        return;
    };
    // Zeros are skipped: rescaling a zero leaves a zero, whichever zero it is.
    let mut positions: HashMap<u64, BTreeSet<usize>> = HashMap::new();
    for (k, &s) in sentiments.iter().enumerate() {
        if s != 0.0 {
            positions.entry(s.to_bits()).or_default().insert(k);
        }
    }
    for k in 0..sentiments.len() {
        let value = sentiments[k];
        if value == 0.0 {
            continue;
        }
        let Some(first) = positions
            .get_mut(&value.to_bits())
            .and_then(|set| set.pop_first())
        else {
            continue;
        };
        let factor = if first < bi {
            0.5
        } else if first > bi {
            1.5
        } else {
            1.0
        };
        let scaled = value * factor;
        if scaled != 0.0 {
            positions.entry(scaled.to_bits()).or_default().insert(first);
        }
        sentiments[first] = scaled;
    }
}

/// `_punctuation_emphasis`: up to four "!" and, from two on, "?" add emphasis.
fn punctuation_emphasis(text: &str) -> f64 {
    let ep_count = text.bytes().filter(|&b| b == b'!').count().min(4);
    let ep_amplifier = ep_count as f64 * 0.292;
    let qm_count = text.bytes().filter(|&b| b == b'?').count();
    let qm_amplifier = match qm_count {
        0 | 1 => 0.0,
        2 | 3 => qm_count as f64 * 0.18,
        _ => 0.96,
    };
    ep_amplifier + qm_amplifier
}

/// `normalize` with alpha 15, which approximates the maximum expected sum.
fn normalize(score: f64) -> f64 {
    (score / (score * score + 15.0).sqrt()).clamp(-1.0, 1.0)
}

/// `score_valence`.
fn score_valence(sentiments: &[f64], text: &str) -> Scores {
    if sentiments.is_empty() {
        return Scores::default();
    }
    // Left to right, as Python 3.11's sum() adds.
    let mut sum_s = sentiments.iter().fold(0.0, |sum, s| sum + s);
    let punct = punctuation_emphasis(text);
    if sum_s > 0.0 {
        sum_s += punct;
    } else if sum_s < 0.0 {
        sum_s -= punct;
    }
    let compound = normalize(sum_s);

    let (mut pos_sum, mut neg_sum, mut neu_count) = (0.0, 0.0, 0_usize);
    for &s in sentiments {
        // +1 / −1 compensate for the neutral words, which count 1 each.
        if s > 0.0 {
            pos_sum += s + 1.0;
        }
        if s < 0.0 {
            neg_sum += s - 1.0;
        }
        if s == 0.0 {
            neu_count += 1;
        }
    }
    if pos_sum > f64::abs(neg_sum) {
        pos_sum += punct;
    } else if pos_sum < f64::abs(neg_sum) {
        neg_sum -= punct;
    }
    let total = pos_sum + f64::abs(neg_sum) + neu_count as f64;
    Scores {
        neg: pystr::round(f64::abs(neg_sum / total), 3),
        neu: pystr::round(f64::abs(neu_count as f64 / total), 3),
        pos: pystr::round(f64::abs(pos_sum / total), 3),
        compound: pystr::round(compound, 4),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores(neg: f64, neu: f64, pos: f64, compound: f64) -> Scores {
        Scores {
            neg,
            neu,
            pos,
            compound,
        }
    }

    #[test]
    fn reference_examples() {
        // The reference module's own demo sentences, with the scores vaderSentiment 3.3.2
        // prints for them.
        for (text, expected) in [
            (
                "VADER is smart, handsome, and funny.",
                scores(0.0, 0.254, 0.746, 0.8316),
            ),
            (
                "VADER is VERY SMART, handsome, and FUNNY!!!",
                scores(0.0, 0.233, 0.767, 0.9342),
            ),
            (
                "The book was only kind of good.",
                scores(0.0, 0.697, 0.303, 0.3832),
            ),
            ("Today SUX!", scores(0.779, 0.221, 0.0, -0.5461)),
            ("Not bad at all", scores(0.0, 0.513, 0.487, 0.431)),
            ("", scores(0.0, 0.0, 0.0, 0.0)),
        ] {
            assert_eq!(polarity_scores(text), expected, "{text:?}");
        }
    }

    #[test]
    fn but_rescales_the_first_equal_value() {
        // After halving, the valence before "but" equals the one after it, so list.index()
        // finds the first and halves it again; the one after "but" never grows.
        let words = words("great but good");
        let mut sentiments = vec![3.8, 0.0, 1.9];
        but_check(&words, &mut sentiments);
        assert_eq!(sentiments, vec![0.95, 0.0, 1.9]);

        let mut sentiments = vec![1.9, 0.0, 1.9, 1.9];
        but_check(&words, &mut sentiments);
        assert_eq!(sentiments, vec![0.95, 0.0, 1.9 * 1.5, 1.9 * 1.5]);
    }

    #[test]
    fn explains_words_and_emoji() {
        let text = "I am NOT happy 😁!";
        let analysis = analyze(text);
        let found: Vec<(&str, &str, Option<char>)> = analysis
            .tokens
            .iter()
            .map(|t| (t.token.as_str(), &text[t.span.clone()], t.emoji))
            .collect();
        assert_eq!(
            found,
            vec![
                ("happy", "happy", None),
                // "beaming face with smiling eyes": only "smiling" is a lexicon word.
                ("smiling", "😁", Some('😁')),
            ]
        );
        assert!(analysis.tokens[0].valence < 0.0, "NOT negates happy");
        assert_eq!(analysis.scores, polarity_scores(text));
    }

    #[test]
    fn spans_cover_text_glued_to_an_emoji() {
        let text = "a😁b";
        let analysis = analyze(text);
        // "…smiling eyesb": the last word runs from the emoji into "b".
        let spans: Vec<&str> = analysis
            .tokens
            .iter()
            .map(|t| &text[t.span.clone()])
            .collect();
        assert_eq!(spans, vec!["😁"]);
        let (rewritten, emoji) = substitute_emoji(text);
        assert_eq!(rewritten, "a beaming face with smiling eyesb");
        let words = words(&rewritten);
        let mapped: Vec<(&str, Option<char>)> = words
            .iter()
            .map(|w| {
                let (span, emoji) = original_span(&emoji, w.range.clone());
                (&text[span], emoji)
            })
            .collect();
        assert_eq!(
            mapped,
            vec![
                ("a", None),
                ("😁", Some('😁')),
                ("😁", Some('😁')),
                ("😁", Some('😁')),
                ("😁", Some('😁')),
                ("😁b", Some('😁')),
            ]
        );
    }
}

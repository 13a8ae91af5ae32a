//! The vendored lexicons and the reference's built-in word lists (vaderSentiment 3.3.2).

use std::collections::HashMap;
use std::sync::LazyLock;

use crate::pystr;

/// Empirically derived increase for a booster word (the reference's `B_INCR`).
pub(crate) const B_INCR: f64 = 0.293;
/// Empirically derived decrease for a dampener word (`B_DECR`).
pub(crate) const B_DECR: f64 = -0.293;
/// Increase for an ALL CAPS word among others that are not (`C_INCR`).
pub(crate) const C_INCR: f64 = 0.733;
/// Factor applied to a negated valence (`N_SCALAR`).
pub(crate) const N_SCALAR: f64 = -0.74;

const VADER_LEXICON: &str = include_str!("../lexicon/vader_lexicon.txt");
const EMOJI_LEXICON: &str = include_str!("../lexicon/emoji_utf8_lexicon.txt");

/// Word (or emoticon) → mean valence, parsed once.
static WORDS: LazyLock<HashMap<&'static str, f64>> = LazyLock::new(|| parse_words(VADER_LEXICON));

/// Emoji → its textual description, parsed once. Only single characters: the reference looks
/// the text up one code point at a time, so longer keys (skin tones, ZWJ sequences) never match.
static EMOJI: LazyLock<HashMap<char, &'static str>> = LazyLock::new(|| parse_emoji(EMOJI_LEXICON));

/// The reference's `make_lex_dict`: lines split on `\n` (its `codecs.open` keeps the `\r`,
/// which `strip()` removes), first two tab-separated fields, later duplicates win.
fn parse_words(file: &'static str) -> HashMap<&'static str, f64> {
    let mut words = HashMap::with_capacity(7600);
    for line in file.trim_end_matches('\n').split('\n') {
        let mut fields = line.trim_matches(pystr::is_space).split('\t');
        if let (Some(word), Some(Ok(measure))) = (fields.next(), fields.next().map(str::parse)) {
            words.insert(word, measure);
        }
    }
    words
}

/// The reference's `make_emoji_dict`, kept to single-character keys.
fn parse_emoji(file: &'static str) -> HashMap<char, &'static str> {
    let mut emoji = HashMap::with_capacity(1300);
    for line in file.trim_end_matches('\n').split('\n') {
        let mut fields = line.trim_matches(pystr::is_space).split('\t');
        if let (Some(key), Some(description)) = (fields.next(), fields.next()) {
            let mut chars = key.chars();
            if let (Some(c), None) = (chars.next(), chars.next()) {
                emoji.insert(c, description);
            }
        }
    }
    emoji
}

/// The valence of a lowercased token, if the lexicon has it.
pub(crate) fn valence(word: &str) -> Option<f64> {
    WORDS.get(word).copied()
}

/// The description the reference substitutes for an emoji.
pub(crate) fn emoji(c: char) -> Option<&'static str> {
    // Every emoji key is outside ASCII; skip the lookup for the common case.
    if c.is_ascii() {
        return None;
    }
    EMOJI.get(&c).copied()
}

/// Forces both lexicons to be parsed, so a caller can pay that cost up front.
pub(crate) fn load() {
    LazyLock::force(&WORDS);
    LazyLock::force(&EMOJI);
}

/// `NEGATE`: words that negate the valence of the words after them.
pub(crate) fn is_negation_word(word: &str) -> bool {
    matches!(
        word,
        "aint"
            | "arent"
            | "cannot"
            | "cant"
            | "couldnt"
            | "darent"
            | "didnt"
            | "doesnt"
            | "ain't"
            | "aren't"
            | "can't"
            | "couldn't"
            | "daren't"
            | "didn't"
            | "doesn't"
            | "dont"
            | "hadnt"
            | "hasnt"
            | "havent"
            | "isnt"
            | "mightnt"
            | "mustnt"
            | "neither"
            | "don't"
            | "hadn't"
            | "hasn't"
            | "haven't"
            | "isn't"
            | "mightn't"
            | "mustn't"
            | "neednt"
            | "needn't"
            | "never"
            | "none"
            | "nope"
            | "nor"
            | "not"
            | "nothing"
            | "nowhere"
            | "oughtnt"
            | "shant"
            | "shouldnt"
            | "uhuh"
            | "wasnt"
            | "werent"
            | "oughtn't"
            | "shan't"
            | "shouldn't"
            | "uh-uh"
            | "wasn't"
            | "weren't"
            | "without"
            | "wont"
            | "wouldnt"
            | "won't"
            | "wouldn't"
            | "rarely"
            | "seldom"
            | "despite"
    )
}

/// `BOOSTER_DICT`: degree adverbs that raise (boosters) or lower (dampeners) the intensity of
/// the word they precede.
pub(crate) fn booster(word: &str) -> Option<f64> {
    Some(match word {
        "absolutely" | "amazingly" | "awfully" | "completely" | "considerable" | "considerably"
        | "decidedly" | "deeply" | "effing" | "enormous" | "enormously" | "entirely"
        | "especially" | "exceptional" | "exceptionally" | "extreme" | "extremely"
        | "fabulously" | "flipping" | "flippin" | "frackin" | "fracking" | "fricking"
        | "frickin" | "frigging" | "friggin" | "fully" | "fuckin" | "fucking" | "fuggin"
        | "fugging" | "greatly" | "hella" | "highly" | "hugely" | "incredible" | "incredibly"
        | "intensely" | "major" | "majorly" | "more" | "most" | "particularly" | "purely"
        | "quite" | "really" | "remarkably" | "so" | "substantially" | "thoroughly" | "total"
        | "totally" | "tremendous" | "tremendously" | "uber" | "unbelievably" | "unusually"
        | "utter" | "utterly" | "very" => B_INCR,
        "almost" | "barely" | "hardly" | "just enough" | "kind of" | "kinda" | "kindof"
        | "kind-of" | "less" | "little" | "marginal" | "marginally" | "occasional"
        | "occasionally" | "partly" | "scarce" | "scarcely" | "slight" | "slightly"
        | "somewhat" | "sort of" | "sorta" | "sortof" | "sort-of" => B_DECR,
        _ => return None,
    })
}

/// The multi-word keys of `BOOSTER_DICT`, which only the idiom check can match.
pub(crate) const BOOSTER_PHRASES: [(&str, f64); 3] = [
    ("just enough", B_DECR),
    ("kind of", B_DECR),
    ("sort of", B_DECR),
];

/// `SPECIAL_CASES`: idioms and phrases whose valence replaces that of their lexicon word.
pub(crate) const SPECIAL_CASES: [(&str, f64); 9] = [
    ("the shit", 3.0),
    ("the bomb", 3.0),
    ("bad ass", 1.5),
    ("badass", 1.5),
    ("bus stop", 0.0),
    ("yeah right", -2.0),
    ("kiss of death", -1.5),
    ("to die for", 3.0),
    ("beating heart", 3.5),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexicons_parse_completely() {
        // 7520 lines with 14 duplicated words; 3570 emoji lines, 1212 of them single characters.
        assert_eq!(WORDS.len(), 7506);
        assert_eq!(EMOJI.len(), 1212);
        assert_eq!(valence("good"), Some(1.9));
        assert_eq!(valence(":)"), Some(2.0));
        assert_eq!(valence("}:-)"), Some(0.3));
        assert_eq!(valence("can't stand"), Some(-2.0));
        assert_eq!(emoji('😁'), Some("beaming face with smiling eyes"));
        assert_eq!(emoji('a'), None);
    }

    #[test]
    fn duplicated_words_keep_the_last_value() {
        // `lol` appears twice in the file; Python's dict keeps the second value.
        let lines: Vec<&str> = VADER_LEXICON
            .split('\n')
            .filter(|line| line.starts_with("lol\t"))
            .collect();
        assert_eq!(lines.len(), 2);
        let last: f64 = lines[1]
            .split('\t')
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN);
        assert_eq!(valence("lol"), Some(last));
    }
}

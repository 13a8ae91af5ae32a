//! Arbitrary input: random texts from a fixed-seed generator (so a failure reproduces), empty
//! and whitespace-only texts, and huge ones. Scoring must never panic, stay in range, be
//! deterministic, and explain with spans that point into the text.

use sentiment::{Scores, analyze, polarity_scores};

/// xorshift64*: small, deterministic, good enough to mix test input.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// Words and pieces that drive VADER's rules, so random texts exercise them.
const WORDS: &[&str] = &[
    "good",
    "bad",
    "happy",
    "sad",
    "love",
    "hate",
    "no",
    "not",
    "never",
    "n't",
    "isn't",
    "but",
    "BUT",
    "least",
    "at",
    "very",
    "kind",
    "of",
    "sort",
    "so",
    "this",
    "without",
    "doubt",
    "the",
    "shit",
    "bomb",
    "bad",
    "ass",
    "yeah",
    "right",
    "kiss",
    "death",
    "to",
    "die",
    "for",
    "bus",
    "stop",
    "beating",
    "heart",
    "just",
    "enough",
    "or",
    "nor",
    "GREAT",
    "TERRIBLE",
    "kinda",
    "EXTREMELY",
    "extremely",
    "barely",
    ":)",
    ":(",
    ":D",
    "<3",
    "lol",
    "İ",
    "ΣΟΦΙΑΣ",
    "ǅ",
    "é",
];
const PUNCTUATION: &[&str] = &[
    "!", "?", "!!!!!", "???", ".", ",", "...", "'", "\"", "-", "(", ")",
];
const SPACES: &[&str] = &[
    " ", " ", " ", "  ", "\t", "\n", "\r\n", "\u{a0}", "\u{1c}", "\u{1f}", "\u{85}", "\u{2028}",
    "\u{3000}", "\u{200b}", "\u{feff}",
];
const EMOJI: &[&str] = &[
    "😊",
    "😢",
    "❤️",
    "👍🏽",
    "👨‍👩‍👧",
    "🏴󠁧󠁢󠁳󠁣󠁴󠁿",
    "🇫🇷",
    "😂",
    "💔",
    "🙃",
    "\u{fe0f}",
    "\u{200d}",
    "🏽",
];

fn random_char(rng: &mut Rng) -> char {
    loop {
        // Favour the BMP, reach the whole range.
        let cp = if rng.below(4) == 0 {
            rng.below(0x11_0000) as u32
        } else {
            rng.below(0x1_0000) as u32
        };
        if let Some(c) = char::from_u32(cp) {
            return c;
        }
    }
}

fn random_text(rng: &mut Rng) -> String {
    let pieces = rng.below(40);
    let mut text = String::new();
    for _ in 0..pieces {
        match rng.below(10) {
            0..=3 => text.push_str(rng.pick(WORDS)),
            4 => text.push_str(rng.pick(PUNCTUATION)),
            5 => text.push_str(rng.pick(EMOJI)),
            6 => text.push(random_char(rng)),
            _ => text.push_str(rng.pick(SPACES)),
        }
        if rng.below(3) > 0 {
            text.push(' ');
        }
    }
    text
}

fn check(text: &str) {
    let scores = polarity_scores(text);
    let Scores {
        neg,
        neu,
        pos,
        compound,
    } = scores;
    for (name, value) in [("neg", neg), ("neu", neu), ("pos", pos)] {
        assert!((0.0..=1.0).contains(&value), "{name} {value} for {text:?}");
    }
    assert!(
        (-1.0..=1.0).contains(&compound),
        "compound {compound} for {text:?}"
    );
    let total = neg + neu + pos;
    assert!(
        total == 0.0 || (total - 1.0).abs() <= 0.002,
        "proportions add up to {total} for {text:?}"
    );

    assert_eq!(
        polarity_scores(text),
        scores,
        "not deterministic for {text:?}"
    );
    let analysis = analyze(text);
    assert_eq!(analysis.scores, scores, "analyze disagrees for {text:?}");
    for token in &analysis.tokens {
        assert!(
            token.span.start < token.span.end && text.get(token.span.clone()).is_some(),
            "span {:?} of {:?} outside {text:?}",
            token.span,
            token.token
        );
    }
}

#[test]
fn random_texts_never_panic_and_stay_in_range() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20_000 {
        check(&random_text(&mut rng));
    }
}

#[test]
fn empty_and_blank_texts_score_zero() {
    for text in ["", " ", "\n\t ", "\u{1c}\u{3000}\u{85}"] {
        check(text);
        assert_eq!(polarity_scores(text), Scores::default(), "{text:?}");
    }
}

#[test]
fn huge_texts_are_scored() {
    // 2 MB of diary text with "but" and many equal valences: the "but" rule must stay
    // near-linear (the reference's is quadratic).
    let entry = "I was happy but tired. Good day, good food, bad sleep! ";
    let huge = entry.repeat(2_000_000 / entry.len());
    check(&huge);
    assert!(polarity_scores(&huge).compound > 0.99);

    // One 1 MB token, and 100 KB of emoji.
    check(&"a".repeat(1_000_000));
    check(&"😊".repeat(25_000));
}

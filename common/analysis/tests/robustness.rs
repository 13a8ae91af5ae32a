//! The analyzers never panic and keep their invariants on arbitrary Unicode, empty text and
//! huge text. A fixed-seed generator keeps every run the same.

use analysis::{ArchetypeSignals, SensoryProfile, analyze, count_tokens, profile};

/// xorshift64*: small, deterministic, good enough to mix inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Pieces that stress the segmenter, the stemmers and the lexicons.
const PIECES: &[&str] = &[
    "I",
    "didn't",
    "see",
    "heard",
    "felt",
    "the",
    "sky",
    "?",
    "!",
    "...",
    ".",
    ",",
    "\n",
    "\n\n",
    " ",
    "\t",
    "'",
    "’",
    "-",
    "--",
    "3.5",
    "1,000",
    "l'été",
    "Straße",
    "ÉTÉ",
    "e\u{301}",
    "日本語",
    "😀",
    "👩‍👩‍👧",
    "\u{200d}",
    "\u{feff}",
    "\u{0}",
    "\u{10FFFF}",
    "ﬁ",
    "İ",
    "ß",
    "مرحبا",
    "שלום",
    "Привет",
    "walking",
    "n't",
    "''",
    "?!",
    "\r\n",
    "Mum",
    "NASA",
];

fn random_text(rng: &mut Rng, max_len: usize) -> String {
    let mut s = String::new();
    let len = rng.below(max_len as u64) as usize;
    while s.len() < len {
        match rng.below(3) {
            0 => {
                // Any scalar value.
                let c = char::from_u32(rng.below(0x11_0000) as u32).unwrap_or('\u{FFFD}');
                s.push(c);
            }
            1 => {
                let c = char::from_u32(0x20 + rng.below(0x250) as u32).unwrap_or(' ');
                s.push(c);
            }
            _ => {
                s.push_str(PIECES[rng.below(PIECES.len() as u64) as usize]);
                if rng.below(2) == 0 {
                    s.push(' ');
                }
            }
        }
    }
    s
}

fn check_invariants(text: &str) {
    let a = analyze(text);
    assert_eq!(a.token_count, count_tokens(text));
    assert!(text.is_empty() == (a.token_count == 0));
    assert!(u64::from(a.word_count) <= text.len() as u64);
    assert!((0.0..=1.0).contains(&a.language.confidence));
    for k in &a.keywords {
        assert!(k.score.is_finite() && k.score > 0.0, "{k:?}");
        assert!(!k.phrase.is_empty() && k.occurrences > 0);
    }
    match &a.sensory {
        SensoryProfile::Measured(m) => {
            assert!((0.0..=1.0).contains(&m.coverage));
            let sum = m.visual + m.auditory + m.kinesthetic;
            if m.sensory_words > 0 {
                assert!((sum - 1.0).abs() < 1e-5, "{m:?}");
            } else {
                assert_eq!(sum, 0.0);
            }
        }
        SensoryProfile::InsufficientText { words, minimum } => assert!(words < minimum),
        SensoryProfile::UnsupportedLanguage => {}
    }
    if let ArchetypeSignals::Measured { signals } = &a.archetype_signals {
        assert_eq!(signals.len(), analysis::archetypes::CATALOGUE.len());
        for s in signals {
            assert!((0.0..=1.0).contains(&s.confidence), "{s:?}");
        }
    }
    // Deterministic.
    assert_eq!(analyze(text), a);
}

#[test]
fn arbitrary_unicode_never_panics() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..300 {
        let text = random_text(&mut rng, 2_000);
        check_invariants(&text);
    }
}

#[test]
fn empty_and_degenerate_text() {
    for text in [
        "",
        " ",
        "\n\n\n",
        "?",
        "'",
        "’’’",
        "-",
        "\u{0}",
        "😀",
        "e\u{301}",
        "...",
    ] {
        check_invariants(text);
        let a = analyze(text);
        assert!(a.keywords.is_empty(), "{text:?}");
        assert!(matches!(a.sensory, SensoryProfile::InsufficientText { .. }));
    }
    let p = profile([]);
    assert_eq!(p.entries, 0);
    assert!(matches!(
        p.sensory,
        SensoryProfile::InsufficientText { words: 0, .. }
    ));
}

#[test]
fn huge_texts_are_analysed() {
    const MB: usize = 1 << 20;
    let prose = "I walked along the cold beach and heard the waves, and I didn't see anyone. \
                 Why do I feel so calm here? Tomorrow I will plan the trip with my sister.\n";
    let english: String = prose.repeat(MB / prose.len() + 1);
    let a = analyze(&english);
    assert!(!a.keywords.is_empty());
    assert!(matches!(a.sensory, SensoryProfile::Measured(_)));
    assert!(a.token_count > 200_000);

    // One megabyte-long "word", a megabyte of one punctuation mark, a megabyte of emoji.
    for text in ["a".repeat(MB), "?".repeat(MB), "😀".repeat(MB / 4)] {
        let a = analyze(&text);
        assert!(a.keywords.is_empty());
        assert!(a.token_count > 0);
    }

    let mut rng = Rng(42);
    let random = random_text(&mut rng, MB);
    let _ = analyze(&random);
}

#[test]
fn profiles_skip_other_analyzer_versions() {
    let text = "I walked to the lake and watched the light on the water, and I felt calm and \
                warm. I listened to the birds and the wind. Tomorrow I will walk there again \
                with my sister, because I think it helps us both to talk.";
    let mut old = analyze(text);
    old.versions.analyzer = "0".to_owned();
    let current = analyze(text);
    let p = profile([&old, &current, &current]);
    assert_eq!((p.entries, p.skipped_entries), (2, 1));
    assert_eq!(p.word_count, 2 * u64::from(current.word_count));
    // Summed entries: many short ones reach the minimums that one alone does not.
    let short = analyze("I saw the red sky and heard the rain on the roof tonight.");
    assert!(matches!(
        short.sensory,
        SensoryProfile::InsufficientText { .. }
    ));
    let p = profile(std::iter::repeat_n(&short, 5));
    assert!(
        matches!(p.sensory, SensoryProfile::Measured(_)),
        "{:?}",
        p.sensory
    );
}

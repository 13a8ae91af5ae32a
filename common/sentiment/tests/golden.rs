//! Golden scores of realistic diary entries, pinned to what the reference vaderSentiment 3.3.2
//! returns for them. They guard against regressions without needing the reference installed.

use sentiment::{Scores, analyze, polarity_scores};

struct Golden {
    name: &'static str,
    text: &'static str,
    expected: Scores,
}

const fn scores(neg: f64, neu: f64, pos: f64, compound: f64) -> Scores {
    Scores {
        neg,
        neu,
        pos,
        compound,
    }
}

const ENTRIES: &[Golden] = &[
    // What follows "but" weighs more than what precedes it.
    Golden {
        name: "first_day_at_the_new_job",
        text: "First day at the new job. I was so nervous I barely ate breakfast, but everyone was friendly and my manager took me to lunch. I think I'm going to like it here!",
        expected: scores(0.047, 0.755, 0.197, 0.7889),
    },
    Golden {
        name: "a_hard_anniversary",
        text: "Two years since Dad died. I went to the cemetery with Mum. We didn't say much. I miss him every day, and today it hurt more than usual.",
        expected: scores(0.256, 0.744, 0.0, -0.8225),
    },
    // Emoji count through their descriptions (🧩 has none; 😊 is "smiling face with smiling eyes").
    Golden {
        name: "grateful_list",
        text: "Three good things today:\n1. Coffee on the balcony in the sun.\n2. A long call with Jess, we laughed so much.\n3. Finished the puzzle with the kids 🧩😊",
        expected: scores(0.0, 0.723, 0.277, 0.8979),
    },
    Golden {
        name: "burnout",
        text: "I'm exhausted. Another 12-hour day, another angry email from the client. I can't keep doing this. I don't even remember the last time I felt rested.",
        expected: scores(0.195, 0.805, 0.0, -0.7003),
    },
    Golden {
        name: "therapy_breakthrough",
        text: "Therapy today was hard but important. I finally said out loud that I'm afraid of being abandoned. She didn't judge me. I feel lighter, and a little hopeful.",
        expected: scores(0.147, 0.678, 0.175, 0.2525),
    },
    Golden {
        name: "rainy_sunday",
        text: "Rainy Sunday. Stayed in pajamas, made soup, watched old movies. Nothing happened and it was perfect.",
        expected: scores(0.068, 0.737, 0.195, 0.5267),
    },
    // ALL CAPS "HATE" among lowercase words weighs more.
    Golden {
        name: "argument",
        text: "Huge fight with Alex about the wedding budget. He said I never listen. I said he never helps. We're both wrong and both tired. Going to bed angry, which I HATE.",
        expected: scores(0.413, 0.536, 0.051, -0.9452),
    },
    Golden {
        name: "small_win",
        text: "Ran 5 km without stopping for the first time!!! Six weeks ago I couldn't run for two minutes. Proud of myself 💪",
        expected: scores(0.0, 0.795, 0.205, 0.6619),
    },
    Golden {
        name: "mixed_feelings",
        text: "Moving day. The flat is empty and echoing. Excited for the new place, sad to leave the neighbours, stressed about the boxes. Kind of everything at once.",
        expected: scores(0.258, 0.669, 0.073, -0.6249),
    },
    // VADER reads "not sad" as positive and has no entry for "numb": a limit, pinned on purpose.
    Golden {
        name: "numb",
        text: "Not sad, not happy. Just numb. Went to work, came home, scrolled. Is this what getting better looks like? I don't know.",
        expected: scores(0.0, 0.577, 0.423, 0.8877),
    },
];

#[test]
fn diary_entries_keep_their_scores() {
    let changed: Vec<String> = ENTRIES
        .iter()
        .filter_map(|entry| {
            let actual = polarity_scores(entry.text);
            (actual != entry.expected).then(|| {
                format!(
                    "{}: expected {:?}, got {actual:?}",
                    entry.name, entry.expected
                )
            })
        })
        .collect();
    assert!(
        changed.is_empty(),
        "scores changed:\n{}",
        changed.join("\n")
    );
}

#[test]
fn explanations_add_up_to_the_scores() {
    for entry in ENTRIES {
        let analysis = analyze(entry.text);
        assert_eq!(analysis.scores, entry.expected, "{}", entry.name);
        for token in &analysis.tokens {
            let covered = entry.text.get(token.span.clone());
            assert!(
                covered.is_some(),
                "{}: span {:?} of {:?}",
                entry.name,
                token.span,
                token.token
            );
            if token.emoji.is_none() {
                assert_eq!(covered, Some(token.token.as_str()), "{}", entry.name);
            }
        }
        // A text that leans one way has words leaning that way.
        if entry.expected.pos > 0.0 {
            assert!(
                analysis.tokens.iter().any(|t| t.valence > 0.0),
                "{}",
                entry.name
            );
        }
        if entry.expected.neg > 0.0 {
            assert!(
                analysis.tokens.iter().any(|t| t.valence < 0.0),
                "{}",
                entry.name
            );
        }
    }
}

#[test]
fn the_argument_is_explained_word_by_word() {
    let text = ENTRIES
        .iter()
        .find(|e| e.name == "argument")
        .map(|e| e.text)
        .unwrap_or_default();
    let analysis = analyze(text);
    let rounded: Vec<(&str, f64, f64)> = analysis
        .tokens
        .iter()
        .map(|t| {
            let valence = (t.valence * 1000.0).round() / 1000.0;
            (t.token.as_str(), t.lexicon_valence, valence)
        })
        .collect();
    assert_eq!(
        rounded,
        vec![
            // The lexicon rates "huge" positive, whatever it qualifies.
            ("Huge", 1.3, 1.3),
            ("fight", -1.6, -1.6),
            // "he never helps": negated, 1.6 * -0.74.
            ("helps", 1.6, -1.184),
            ("wrong", -2.1, -2.1),
            ("tired", -1.9, -1.9),
            ("angry", -2.3, -2.3),
            // ALL CAPS among lowercase words: -2.7 - 0.733.
            ("HATE", -2.7, -3.433),
        ]
    );
}

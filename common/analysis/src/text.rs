//! Splitting text into words, chunks and sentences: the one segmentation every analyzer uses,
//! so that word counts agree between them.

/// Words longer than this (in chars) are counted but never looked up, stemmed or offered as
/// keywords: no real word is this long, and it keeps the cost of a pathological input linear.
pub(crate) const MAX_WORD_CHARS: usize = 48;

/// One word of the text.
#[derive(Debug, Clone)]
pub(crate) struct Word<'a> {
    /// As written (apostrophes included).
    pub raw: &'a str,
    /// Lower-cased, typographic apostrophes folded to `'`; empty when the word is too long.
    pub lower: String,
    /// Index of the sentence the word is in.
    pub sentence: u32,
    /// Index of the chunk (a run of words not broken by punctuation) the word is in.
    pub chunk: u32,
    /// The first word of its sentence (YAKE's casing feature ignores those).
    pub starts_sentence: bool,
    /// Contains a digit: never a keyword, never in a lexicon.
    pub numeric: bool,
}

impl Word<'_> {
    /// Whether the word can be looked up in a lexicon or be part of a keyword.
    pub fn is_lexical(&self) -> bool {
        !self.numeric && !self.lower.is_empty()
    }
}

/// A segmented text.
#[derive(Debug, Default)]
pub(crate) struct Segmented<'a> {
    pub words: Vec<Word<'a>>,
    /// Sentences that hold at least one word.
    pub sentences: u32,
    /// Sentences that end with a question mark.
    pub questions: u32,
}

fn is_apostrophe(c: char) -> bool {
    matches!(c, '\'' | '\u{2019}' | '\u{02BC}')
}

fn is_word_char(c: char) -> bool {
    // Combining marks keep decomposed (NFD) letters in one word.
    c.is_alphanumeric() || ('\u{0300}'..='\u{036F}').contains(&c)
}

/// Splits `text` into words. An apostrophe between two letters stays in the word ("didn't",
/// "l'amour"); a hyphen separates words without breaking the chunk ("well-being"); `. ! ? …`
/// and a blank line end a sentence; other punctuation and a line break end a chunk.
pub(crate) fn segment(text: &str) -> Segmented<'_> {
    let mut out = Segmented::default();
    let mut sentence: u32 = 0;
    let mut chunk: u32 = 0;
    // Whether the current sentence / chunk already has a word: boundaries only advance the
    // indices after a word, so runs of punctuation do not create empty sentences.
    let mut sentence_has_words = false;
    let mut chunk_has_words = false;
    let mut newlines = 0u32;
    let mut question = false;

    let end_sentence = |out: &mut Segmented<'_>,
                        sentence: &mut u32,
                        chunk: &mut u32,
                        has_words: &mut bool,
                        chunk_has: &mut bool,
                        question: bool| {
        if *has_words {
            out.sentences = out.sentences.saturating_add(1);
            if question {
                out.questions = out.questions.saturating_add(1);
            }
            *sentence = sentence.saturating_add(1);
            *has_words = false;
        }
        if *chunk_has {
            *chunk = chunk.saturating_add(1);
            *chunk_has = false;
        }
    };

    let mut chars = text.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if is_word_char(c) {
            let mut end = start + c.len_utf8();
            let mut numeric = c.is_numeric();
            while let Some(&(i, d)) = chars.peek() {
                if is_word_char(d) {
                    numeric |= d.is_numeric();
                    chars.next();
                    end = i + d.len_utf8();
                } else if is_apostrophe(d) || ((d == '.' || d == ',') && numeric) {
                    // Keep "didn't" and "3.5" whole: only when a word char follows.
                    let mut ahead = chars.clone();
                    ahead.next();
                    match ahead.peek() {
                        Some(&(_, e))
                            if is_word_char(e) && (is_apostrophe(d) || e.is_numeric()) =>
                        {
                            chars.next();
                        }
                        _ => break,
                    }
                } else {
                    break;
                }
            }
            let raw = &text[start..end];
            let lower = if raw.chars().nth(MAX_WORD_CHARS).is_some() {
                String::new()
            } else {
                raw.chars()
                    .map(|c| if is_apostrophe(c) { '\'' } else { c })
                    .flat_map(char::to_lowercase)
                    .collect()
            };
            if newlines > 0 {
                // A single line break ends a chunk; a blank line ends a sentence.
                if newlines >= 2 {
                    end_sentence(
                        &mut out,
                        &mut sentence,
                        &mut chunk,
                        &mut sentence_has_words,
                        &mut chunk_has_words,
                        false,
                    );
                } else if chunk_has_words {
                    // (chunk_has_words is set again just below.)
                    chunk = chunk.saturating_add(1);
                }
                newlines = 0;
            }
            question = false;
            out.words.push(Word {
                raw,
                lower,
                sentence,
                chunk,
                starts_sentence: !sentence_has_words,
                numeric,
            });
            sentence_has_words = true;
            chunk_has_words = true;
            continue;
        }
        match c {
            '\n' => newlines = newlines.saturating_add(1),
            c if c.is_whitespace() => {}
            '-' | '\u{2010}' | '\u{2011}' => {}
            '.' | '!' | '?' | '\u{2026}' | '\u{3002}' | '\u{FF01}' | '\u{FF1F}' => {
                question |= matches!(c, '?' | '\u{FF1F}');
                // Wait for the whole run ("?!", "...") before closing the sentence.
                if !matches!(chars.peek(), Some(&(_, '.' | '!' | '?' | '\u{2026}'))) {
                    end_sentence(
                        &mut out,
                        &mut sentence,
                        &mut chunk,
                        &mut sentence_has_words,
                        &mut chunk_has_words,
                        question,
                    );
                    question = false;
                }
            }
            _ => {
                if chunk_has_words {
                    chunk = chunk.saturating_add(1);
                    chunk_has_words = false;
                }
            }
        }
    }
    end_sentence(
        &mut out,
        &mut sentence,
        &mut chunk,
        &mut sentence_has_words,
        &mut chunk_has_words,
        question,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lowers(text: &str) -> Vec<String> {
        segment(text).words.into_iter().map(|w| w.lower).collect()
    }

    #[test]
    fn words_keep_inner_apostrophes_and_numbers() {
        assert_eq!(
            lowers("I didn’t run 3.5 km, well-being!"),
            ["i", "didn't", "run", "3.5", "km", "well", "being"]
        );
        assert_eq!(lowers("'quoted' end."), ["quoted", "end"]);
    }

    #[test]
    fn sentences_questions_and_chunks() {
        let s = segment("Why now?! I know... Maybe, later\n\nNew line");
        assert_eq!(s.sentences, 4);
        assert_eq!(s.questions, 1);
        let chunks: Vec<u32> = s.words.iter().map(|w| w.chunk).collect();
        // "Why now" | "I know" | "Maybe" | "later" | "New line"
        assert_eq!(chunks, [0, 0, 1, 1, 2, 3, 4, 4]);
        let starts: Vec<bool> = s.words.iter().map(|w| w.starts_sentence).collect();
        assert_eq!(starts, [true, false, true, false, true, false, true, false]);
    }

    #[test]
    fn empty_and_punctuation_only_text() {
        let s = segment("");
        assert_eq!((s.words.len(), s.sentences, s.questions), (0, 0, 0));
        let s = segment("?!... ,,, \n\n --");
        assert_eq!((s.words.len(), s.sentences, s.questions), (0, 0, 0));
    }

    #[test]
    fn overlong_words_are_counted_but_not_lexical() {
        let long = "a".repeat(MAX_WORD_CHARS + 1);
        let text = format!("{long} ok");
        let s = segment(&text);
        assert_eq!(s.words.len(), 2);
        assert!(!s.words[0].is_lexical());
        assert!(s.words[1].is_lexical());
    }
}

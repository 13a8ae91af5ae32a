//! Token counts with OpenAI's o200k_base byte-pair encoding (the GPT-4o family's), from the
//! `bpe-openai` crate: the ranks are compiled into the binary, its encoder is linear in the
//! input (tiktoken's merge loop is quadratic in the length of one pre-token, which a 1 MB word
//! makes matter), and it matches tiktoken token for token.

/// The encoding and the crate that implements it.
pub const VERSION: &str = "o200k_base (bpe-openai 0.3)";

/// Tokens of `text` under o200k_base, saturating at `u32::MAX`.
pub fn count_tokens(text: &str) -> u32 {
    if text.is_empty() {
        return 0;
    }
    u32::try_from(bpe_openai::o200k_base().count(text)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_match_tiktoken() {
        // Reference counts from tiktoken's o200k_base.
        assert_eq!(count_tokens(""), 0);
        assert_eq!(count_tokens("hello world"), 2);
        assert_eq!(
            count_tokens("The quick brown fox jumps over the lazy dog."),
            10
        );
    }
}

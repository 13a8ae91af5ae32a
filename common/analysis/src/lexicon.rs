//! The embedded word lists' format: `#` starts a comment, `[name]` starts a section, words are
//! separated by white space.

/// Every word of a list without sections.
pub(crate) fn words(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(|line| line.split('#').next().unwrap_or_default())
        .flat_map(str::split_whitespace)
}

/// Every (section, word) of a list with sections; words before the first section are skipped.
pub(crate) fn sections(text: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut section = None;
    text.lines()
        .map(|line| line.split('#').next().unwrap_or_default().trim())
        .filter_map(move |line| {
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = Some(name);
                return None;
            }
            section.map(|s| (s, line))
        })
        .flat_map(|(s, line)| line.split_whitespace().map(move |w| (s, w)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_comments_and_sections() {
        let text = "# head\nignored\n[a]\nx y # z\n\n[b]\nw\n";
        assert_eq!(words("a b # c\n d").collect::<Vec<_>>(), ["a", "b", "d"]);
        assert_eq!(
            sections(text).collect::<Vec<_>>(),
            [("a", "x"), ("a", "y"), ("b", "w")]
        );
    }
}

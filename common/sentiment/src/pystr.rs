//! The few Python `str` behaviours the reference depends on, where Rust's differ.

/// Python's `str.isspace()`, which `str.split()` splits on: Unicode `White_Space` plus the ASCII
/// separators U+001C..U+001F, which Rust does not count as whitespace.
pub(crate) fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.isupper()`: at least one uppercase character and no lowercase or titlecase
/// one. `ALL CAPS` emphasis hinges on it.
pub(crate) fn is_upper(s: &str) -> bool {
    let mut cased = false;
    for c in s.chars() {
        if c.is_lowercase() || is_titlecase(c) {
            return false;
        }
        cased |= c.is_uppercase();
    }
    cased
}

/// General category Lt (titlecase letters), which Rust's `char` has no predicate for.
fn is_titlecase(c: char) -> bool {
    matches!(
        c,
        '\u{1c5}'
            | '\u{1c8}'
            | '\u{1cb}'
            | '\u{1f2}'
            | '\u{1f88}'..='\u{1f8f}'
            | '\u{1f98}'..='\u{1f9f}'
            | '\u{1fa8}'..='\u{1faf}'
            | '\u{1fbc}'
            | '\u{1fcc}'
            | '\u{1ffc}'
    )
}

/// Python's `round(x, digits)`: the correctly rounded decimal (ties to even on the exact binary
/// value), which Rust's fixed-precision formatting also computes; parsing it back gives the
/// nearest double, as Python does.
pub(crate) fn round(x: f64, digits: usize) -> f64 {
    if !x.is_finite() {
        return x;
    }
    format!("{x:.digits$}").parse().unwrap_or(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_is_pythons() {
        // Every character that Python 3.11's str.isspace() accepts, and nothing else.
        let python: Vec<u32> = [
            0x9, 0xa, 0xb, 0xc, 0xd, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680,
        ]
        .into_iter()
        .chain(0x2000..=0x200a)
        .chain([0x2028, 0x2029, 0x202f, 0x205f, 0x3000])
        .collect();
        let ours: Vec<u32> = (0..=0x10ffff_u32)
            .filter_map(char::from_u32)
            .filter(|&c| is_space(c))
            .map(u32::from)
            .collect();
        assert_eq!(ours, python);
    }

    #[test]
    fn isupper_is_pythons() {
        for (s, upper) in [
            ("GOOD", true),
            ("Good", false),
            (":D", true),
            ("XD", true),
            ("123", false),
            ("!!!", false),
            ("", false),
            ("ÉTÉ", true),
            ("ǅ", false),
            ("Aǅ", false),
            ("ΣΟΦΙΑ", true),
            ("I'M", true),
        ] {
            assert_eq!(is_upper(s), upper, "{s:?}");
        }
    }

    #[test]
    fn round_is_pythons() {
        // Values from Python 3.11's round(); exact binary ties go to the even digit.
        assert_eq!(round(0.0625, 3), 0.062);
        assert_eq!(round(0.9375, 3), 0.938);
        assert_eq!(round(0.125, 2), 0.12);
        assert_eq!(round(2.675, 2), 2.67);
        assert_eq!(round(0.4404499999, 4), 0.4404);
        assert_eq!(round(-0.57195, 4), -0.5719);
        assert_eq!(round(1.0, 4), 1.0);
    }
}

//! Text from the wire (or from a shared recording) is untrusted: before it is
//! kept, shown or printed, control characters are escaped, so that a hostile
//! stream cannot drive the terminal (set its title, move the cursor, clear the
//! screen), and its length is bounded.

/// Most characters kept of a name from the wire (model id, source, daemon version).
pub const MAX_NAME: usize = 200;
/// Most characters kept of a message (a decode error, why a connection ended).
pub const MAX_MESSAGE: usize = 400;

/// Characters that reorder the text around them (bidirectional overrides and isolates).
fn reorders(c: char) -> bool {
    matches!(
        c,
        '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

/// `text` with control characters written as `\u{1b}` escapes, cut to at
/// most `max_chars` characters of output (then ending in `…`).
pub fn clean(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(4 * max_chars));
    let mut written = 0;
    for c in text.chars() {
        let escape = c.is_control() || reorders(c);
        let width = if escape {
            c.escape_unicode().count()
        } else {
            1
        };
        if written + width > max_chars {
            out.push('…');
            break;
        }
        if escape {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
        written += width;
    }
    out
}

/// Cleans `text` in place, leaving it untouched (no allocation) when it is already clean.
pub fn clean_in_place(text: &mut String, max_chars: usize) {
    let short = text.len() <= max_chars; // bytes >= chars
    if short && !text.chars().any(|c| c.is_control() || reorders(c)) {
        return;
    }
    *text = clean(text, max_chars);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        let title = "edge\u{1b}]0;pwned\u{7}v4";
        assert_eq!(clean(title, 100), "edge\\u{1b}]0;pwned\\u{7}v4");
        assert_eq!(
            clean("a\nb\rc\td\u{9b}e\u{7f}", 100),
            "a\\u{a}b\\u{d}c\\u{9}d\\u{9b}e\\u{7f}"
        );
        assert_eq!(clean("abc\u{202e}fed", 100), "abc\\u{202e}fed");
        assert_eq!(clean("Café ♪ edge-v4", 100), "Café ♪ edge-v4");
    }

    #[test]
    fn length_is_bounded_in_characters() {
        assert_eq!(clean("abcdef", 3), "abc…");
        assert_eq!(clean("abc", 3), "abc");
        assert_eq!(clean(&"é".repeat(10_000), 5), "ééééé…");
        let mut s = "x".repeat(1 << 20);
        clean_in_place(&mut s, MAX_NAME);
        assert_eq!(s.chars().count(), MAX_NAME + 1);
        let mut s = String::from("edge-v4");
        clean_in_place(&mut s, MAX_NAME);
        assert_eq!(s, "edge-v4");
    }
}

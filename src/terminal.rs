//! Text that others wrote — links, inputs, Docker Hub names, pages' titles, errors that echo
//! them — shown to a person. A terminal obeys control characters in what it prints: `ESC ]0;`
//! retitles it, `ESC [2J` clears it, a carriage return overwrites the line, and the bidi
//! controls reorder what a line seems to say. [`Shown`] writes each of them as an escape
//! (`\u{1b}`), so every human-readable output goes through it. JSON needs none of this: its
//! encoder escapes control characters already.

use std::borrow::Cow;
use std::fmt;

/// Characters written as escapes: C0 controls (tab and newline too: a value is one field of
/// a line), DEL, C1 controls, and the bidi embeddings, overrides, isolates and marks.
pub fn unsafe_char(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}'
        | '\u{7f}'..='\u{9f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}'
        | '\u{200e}' | '\u{200f}' | '\u{61c}')
}

/// `text` with every [`unsafe_char`] written as an escape: `\t`, `\n`, `\r`, else `\u{hex}`.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.contains(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if unsafe_char(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A value as a person is shown it: its `Display` (`{:#}` passed on, as an error's chain of
/// causes asks), [`escape`]d, then padded as the format asks (`{:<13}`).
pub struct Shown<T>(pub T);

impl<T: fmt::Display> fmt::Display for Shown<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match f.alternate() {
            true => format!("{:#}", self.0),
            false => self.0.to_string(),
        };
        f.pad(&escape(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_bidi_are_escaped_the_rest_kept() {
        let hostile = "a\u{1b}]0;owned\u{7}b\u{1b}[2Jc\r\n\td\u{9b}e\u{202e}f\u{2066}g\u{7f}";
        let shown = Shown(hostile).to_string();
        assert_eq!(
            shown,
            "a\\u{1b}]0;owned\\u{7}b\\u{1b}[2Jc\\r\\n\\td\\u{9b}e\\u{202e}f\\u{2066}g\\u{7f}"
        );
        assert!(!shown.contains(unsafe_char));
        assert_eq!(
            Shown("bücher.example/日本").to_string(),
            "bücher.example/日本"
        );
        assert_eq!(format!("[{:<6}]", Shown("a\u{1b}")), "[a\\u{1b}]");
        assert_eq!(format!("[{:<4}]", Shown("ab")), "[ab  ]");
        let e = anyhow::anyhow!("bad \u{1b}[2J").context("outer");
        assert_eq!(format!("{:#}", Shown(&e)), "outer: bad \\u{1b}[2J");
    }
}

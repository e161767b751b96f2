//! The links `hoptrace resolve` reads: its arguments, with `-` replaced by stdin's lines
//! (blank lines and `#` comments skipped). A line that cannot be a link — not UTF-8 text, or
//! longer than [`LINE_MAX`] — is answered as an input error and the rest are read on, as a
//! link that does not parse is.

use std::io::BufRead;

use super::read_ahead;

/// The longest line taken as a link (browsers stop near 2 MB; this bounds the memory one
/// line can take whatever is piped in).
pub const LINE_MAX: usize = 1 << 20;

/// Why a line is not a link to resolve.
#[derive(Debug, thiserror::Error)]
pub enum Unreadable {
    /// Reading stdin failed: the run stops.
    #[error("reading URLs from stdin: {0}")]
    Io(#[from] std::io::Error),
    /// Answered as an input error, with `line` (its text, bad bytes replaced, cut to 200
    /// characters) as its input.
    #[error("{why}")]
    Line { line: String, why: &'static str },
}

/// The URLs named on the command line, with `-` replaced by stdin's lines, read about `ahead`
/// lines ahead of the work.
pub fn read_inputs(
    args: Vec<String>,
    ahead: usize,
) -> impl futures_util::Stream<Item = Result<String, Unreadable>> {
    // One batch of up to `ahead` lines waits while the next is read.
    read_ahead(1, move || {
        args.into_iter()
            .flat_map(move |arg| -> Box<dyn Iterator<Item = _>> {
                if arg != "-" {
                    return Box::new(std::iter::once(vec![Ok(arg)]));
                }
                Box::new(LineBatches {
                    reader: std::io::BufReader::with_capacity(64 << 10, std::io::stdin()),
                    max: ahead.max(1),
                    done: false,
                })
            })
    })
}

/// The links on the lines of `reader`, in batches of at most `max`. A batch ends early where
/// the next line needs a read that may block (a person typing, `tail -f`), so a line never
/// waits for the one after it.
pub struct LineBatches<R> {
    pub reader: std::io::BufReader<R>,
    pub max: usize,
    pub done: bool,
}

impl<R: std::io::Read> Iterator for LineBatches<R> {
    type Item = Vec<Result<String, Unreadable>>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut batch = Vec::new();
        let mut line = Vec::new();
        while !self.done {
            match read_line(&mut self.reader, &mut line) {
                Ok(None) => self.done = true,
                Ok(Some(whole)) => {
                    if let Some(link) = link_of(&line, whole) {
                        batch.push(link);
                    }
                }
                Err(e) => {
                    batch.push(Err(e.into()));
                    self.done = true;
                }
            }
            let would_read = self.reader.buffer().is_empty();
            if batch.len() >= self.max || (would_read && !batch.is_empty()) {
                break;
            }
        }
        (!batch.is_empty()).then_some(batch)
    }
}

/// Reads the next line into `line` (at most [`LINE_MAX`] bytes of it; the rest of a longer
/// one is read past): `None` at the end, else whether the line was whole.
fn read_line(reader: &mut impl BufRead, line: &mut Vec<u8>) -> std::io::Result<Option<bool>> {
    use std::io::Read;
    line.clear();
    let n = reader
        .by_ref()
        .take(LINE_MAX as u64 + 1)
        .read_until(b'\n', line)?;
    if n == 0 {
        return Ok(None);
    }
    if line.len() <= LINE_MAX || line.ends_with(b"\n") {
        return Ok(Some(true));
    }
    // Past the cap: the rest of the line is read past, nothing more of it kept.
    reader.skip_until(b'\n')?;
    Ok(Some(false))
}

/// The link on a line, `None` for a blank line or a comment.
fn link_of(line: &[u8], whole: bool) -> Option<Result<String, Unreadable>> {
    let text = String::from_utf8_lossy(line);
    let link = text.trim();
    if link.is_empty() || link.starts_with('#') {
        return None;
    }
    let why = match (whole, &text) {
        (false, _) => "the line is longer than 1 MiB",
        (true, std::borrow::Cow::Owned(_)) => "the line is not UTF-8 text",
        (true, std::borrow::Cow::Borrowed(_)) => return Some(Ok(link.to_string())),
    };
    let line = link.chars().take(200).collect();
    Some(Err(Unreadable::Line { line, why }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links(input: &[u8]) -> Vec<Result<String, String>> {
        LineBatches {
            reader: std::io::BufReader::with_capacity(64, input),
            max: 3,
            done: false,
        }
        .flatten()
        .map(|r| {
            r.map_err(|e| match e {
                Unreadable::Line { line, why } => format!("{why}: {line}"),
                Unreadable::Io(e) => e.to_string(),
            })
        })
        .collect()
    }

    #[test]
    fn a_line_that_cannot_be_a_link_is_an_error_of_its_own() {
        let mut input = b"# comment\n\nhttp://a.example/1\r\nhttp://b.example/\xff\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', LINE_MAX + 10));
        input.extend(b"\n\xfe# not a comment once replaced\nhttp://c.example/last");
        assert_eq!(
            links(&input),
            vec![
                Ok("http://a.example/1".into()),
                Err("the line is not UTF-8 text: http://b.example/\u{fffd}".into()),
                Err(format!(
                    "the line is longer than 1 MiB: {}",
                    "x".repeat(200)
                )),
                Err("the line is not UTF-8 text: \u{fffd}# not a comment once replaced".into()),
                Ok("http://c.example/last".into()),
            ]
        );
    }

    #[test]
    fn a_line_of_exactly_the_cap_is_whole() {
        let mut input = vec![b'y'; LINE_MAX];
        input.extend(b"\nhttp://d.example/\n");
        let got = links(&input);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].as_ref().map(String::len), Ok(LINE_MAX));
        assert_eq!(got[1], Ok("http://d.example/".into()));
    }
}

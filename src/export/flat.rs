//! One indicator a line: CSV with a header (`indicator,type,first_seen,last_seen,labels,
//! inputs`), or text — the value, then a `#` comment with the rest, so a text export of names
//! is itself a list `labels.extra_files` reads back.
//!
//! A CSV export is opened in spreadsheets, and its cells come from links attackers wrote (a
//! host `=1+1.evil.example`, an input `=HYPERLINK(...)`): every cell is quoted, and a cell
//! that a spreadsheet would take for a formula is written after a `'` (OWASP's advice on CSV
//! injection), by the one writer of every row ([`Rows`]).

use std::borrow::Cow;

use std::io::Write;

use super::indicator::Indicator;
use super::{time, Filter, Format, Kind};
use crate::defang::defang;
use crate::terminal::Shown;
use crate::trace::Label;

/// What a spreadsheet takes a cell starting with as a formula (or a formula's start after it
/// trims the cell): ASCII and the full-width forms some spreadsheets read alike.
const FORMULA_START: &[char] = &[
    '=', '+', '-', '@', '\t', '\r', '\u{ff1d}', '\u{ff0b}', '\u{ff0d}', '\u{ff20}',
];

/// `value` as a cell no spreadsheet runs: after a `'` when it could start a formula.
fn inert(value: &str) -> Cow<'_, str> {
    match value.starts_with(FORMULA_START) {
        true => Cow::Owned(format!("'{value}")),
        false => Cow::Borrowed(value),
    }
}

/// The rows of a CSV or text export, written to `out` one indicator at a time: CSV cells
/// every one quoted and made [`inert`].
pub struct Rows<'a> {
    csv: Option<csv::Writer<&'a mut dyn Write>>,
    text: Option<&'a mut dyn Write>,
    filter: &'a Filter,
}

impl<'a> Rows<'a> {
    /// The header (CSV's column names, text's comment line) written.
    pub fn new(
        format: Format,
        filter: &'a Filter,
        now_ms: u64,
        out: &'a mut dyn Write,
    ) -> std::io::Result<Rows<'a>> {
        let mut rows = Rows {
            csv: None,
            text: None,
            filter,
        };
        match format {
            Format::Csv => {
                let w = csv::WriterBuilder::new()
                    .quote_style(csv::QuoteStyle::Always)
                    .from_writer(out);
                rows.csv = Some(w);
                rows.cells(&[
                    "indicator",
                    "type",
                    "first_seen",
                    "last_seen",
                    "labels",
                    "inputs",
                ])?;
            }
            _ => {
                writeln!(
                    out,
                    "# hoptrace export, {}: one indicator a line, then what is known of it",
                    time(now_ms)
                )?;
                rows.text = Some(out);
            }
        }
        Ok(rows)
    }

    fn cells(&mut self, cells: &[&str]) -> std::io::Result<()> {
        let cells: Vec<Cow<str>> = cells.iter().map(|c| inert(c)).collect();
        if let Some(w) = &mut self.csv {
            w.write_record(cells.iter().map(|c| c.as_bytes()))?;
        }
        Ok(())
    }

    /// One indicator's row (none when a label was asked for and it does not carry it).
    pub fn row(&mut self, i: &Indicator) -> std::io::Result<()> {
        let filter = self.filter;
        if filter
            .label
            .as_ref()
            .is_some_and(|l| !i.labels.iter().any(|x| x == l))
        {
            return Ok(());
        }
        let labels: Vec<&str> = i.labels.iter().map(Label::as_str).collect();
        let fanged = |u: &String| match filter.defang {
            true => defang(u),
            false => u.clone(),
        };
        let more = i.inputs.len().saturating_sub(1) + i.more_inputs;
        if let Some(out) = &mut self.text {
            // Read in terminals too: what links put in a line is escaped (see crate::terminal).
            return writeln!(
                out,
                "{}  # {} {}..{} [{}] from {}{}",
                Shown(shown(i, filter)),
                i.kind.as_str(),
                time(i.first_ms),
                time(i.last_ms),
                Shown(labels.join(" ")),
                Shown(i.inputs.first().map(fanged).unwrap_or_default()),
                match more {
                    0 => String::new(),
                    n => format!(" and {n} more"),
                }
            );
        }
        let mut inputs: Vec<String> = i.inputs.iter().map(fanged).collect();
        if i.more_inputs > 0 {
            inputs.push(format!("(and {} more)", i.more_inputs));
        }
        self.cells(&[
            shown(i, filter).as_str(),
            i.kind.as_str(),
            &time(i.first_ms),
            &time(i.last_ms),
            &labels.join(" "),
            &inputs.join(" "),
        ])
    }

    pub fn finish(self) -> std::io::Result<()> {
        match (self.csv, self.text) {
            (Some(mut w), _) => w.flush(),
            (None, Some(out)) => out.flush(),
            (None, None) => Ok(()),
        }
    }
}

fn shown(i: &Indicator, filter: &Filter) -> String {
    match (filter.defang, i.kind) {
        (false, _) | (true, Kind::Ip) => i.value.clone(),
        (true, _) => defang(&i.value),
    }
}

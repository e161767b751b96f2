//! One indicator a line: CSV with a header (`indicator,type,first_seen,last_seen,labels,
//! inputs`), or text — the value, then a `#` comment with the rest, so a text export of names
//! is itself a list `labels.extra_files` reads back.
//!
//! A CSV export is opened in spreadsheets, and its cells come from links attackers wrote (a
//! host `=1+1.evil.example`, an input `=HYPERLINK(...)`): every cell is quoted, and a cell
//! that a spreadsheet would take for a formula is written after a `'` (OWASP's advice on CSV
//! injection), by the one writer of every row ([`Csv`]).

use std::borrow::Cow;

use super::{time, Filter, Found, Indicator, Kind};
use crate::defang::defang;
use crate::terminal::Shown;

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

/// CSV rows in memory, every cell quoted and made [`inert`].
struct Csv(csv::Writer<Vec<u8>>);

impl Csv {
    fn new() -> Csv {
        let w = csv::WriterBuilder::new()
            .quote_style(csv::QuoteStyle::Always)
            .from_writer(Vec::new());
        Csv(w)
    }

    fn row(&mut self, cells: &[&str]) {
        // Written to memory: a record cannot fail to be written.
        let cells: Vec<Cow<str>> = cells.iter().map(|c| inert(c)).collect();
        let _ = self.0.write_record(cells.iter().map(|c| c.as_bytes()));
    }

    fn into_bytes(self) -> Vec<u8> {
        self.0.into_inner().unwrap_or_default()
    }
}

fn shown(i: &Indicator, filter: &Filter) -> String {
    match (filter.defang, i.kind) {
        (false, _) | (true, Kind::Ip) => i.value.clone(),
        (true, _) => defang(&i.value),
    }
}

/// With a label asked for, only the indicators that carry it.
fn selected<'a>(found: &'a Found, filter: &'a Filter) -> impl Iterator<Item = Indicator> + 'a {
    found
        .indicators()
        .into_iter()
        .filter(move |i| filter.label.as_ref().is_none_or(|l| i.labels.contains(l)))
}

pub fn csv(found: &Found, filter: &Filter) -> Vec<u8> {
    let mut w = Csv::new();
    w.row(&[
        "indicator",
        "type",
        "first_seen",
        "last_seen",
        "labels",
        "inputs",
    ]);
    for i in selected(found, filter) {
        let labels: Vec<&str> = i.labels.iter().map(String::as_str).collect();
        let inputs: Vec<String> = i
            .inputs
            .iter()
            .map(|u| match filter.defang {
                true => defang(u),
                false => u.clone(),
            })
            .collect();
        w.row(&[
            shown(&i, filter).as_str(),
            i.kind.as_str(),
            &time(i.first_ms),
            &time(i.last_ms),
            &labels.join(" "),
            &inputs.join(" "),
        ]);
    }
    w.into_bytes()
}

pub fn txt(found: &Found, filter: &Filter) -> Vec<u8> {
    let mut out = format!(
        "# hoptrace export, {}: one indicator a line, then what is known of it\n",
        time(found.now_ms)
    );
    for i in selected(found, filter) {
        let labels: Vec<&str> = i.labels.iter().map(String::as_str).collect();
        let input = i.inputs.first().map(|u| match filter.defang {
            true => defang(u),
            false => u.clone(),
        });
        // Read in terminals too: what links put in a line is escaped (see crate::terminal).
        out.push_str(&format!(
            "{}  # {} {}..{} [{}] from {}{}\n",
            Shown(shown(&i, filter)),
            i.kind.as_str(),
            time(i.first_ms),
            time(i.last_ms),
            Shown(labels.join(" ")),
            Shown(input.unwrap_or_default()),
            match i.inputs.len() {
                0 | 1 => String::new(),
                n => format!(" and {} more", n - 1),
            }
        ));
    }
    out.into_bytes()
}

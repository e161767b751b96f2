//! One indicator a line: CSV with a header (`indicator,type,first_seen,last_seen,labels,
//! inputs`), or text — the value, then a `#` comment with the rest, so a text export of names
//! is itself a list `labels.extra_files` reads back.

use super::{time, Filter, Found, Indicator, Kind};
use crate::extract::defang;

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
    // Written to memory: a record cannot fail to be written.
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record([
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
        let _ = w.write_record([
            shown(&i, filter).as_str(),
            i.kind.as_str(),
            &time(i.first_ms),
            &time(i.last_ms),
            &labels.join(" "),
            &inputs.join(" "),
        ]);
    }
    w.into_inner().unwrap_or_default()
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
        out.push_str(&format!(
            "{}  # {} {}..{} [{}] from {}{}\n",
            shown(&i, filter),
            i.kind.as_str(),
            time(i.first_ms),
            time(i.last_ms),
            labels.join(" "),
            input.unwrap_or_default(),
            match i.inputs.len() {
                0 | 1 => String::new(),
                n => format!(" and {} more", n - 1),
            }
        ));
    }
    out.into_bytes()
}

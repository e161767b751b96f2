//! Indicators tallied in bounded memory, whatever the store holds: each hop's values are
//! appended to a run in memory; a full run is sorted by indicator and written to a temporary
//! file; at the end the runs are merged (one line of each in memory at a time) and each
//! indicator is handed out whole, in the order [`super::Tally`] gives, its inputs capped at
//! [`INPUTS_KEPT`] (the rest counted). Memory: one run ([`RUN_BYTES`]) plus a reader per run.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{hop_values, Indicator, Kind};
use crate::trace::{Label, Trace};

/// What a run holds in memory before it is sorted and written out.
const RUN_BYTES: usize = 32 << 20;

/// Inputs an indicator names at most (the rest are counted in `more_inputs`).
pub const INPUTS_KEPT: usize = 100;

/// One value a hop showed: a line of a run file.
#[derive(Serialize, Deserialize)]
struct Entry {
    kind: u8,
    value: String,
    ms: u64,
    labels: Vec<Label>,
    input: String,
}

impl Entry {
    fn key(&self) -> (u8, &str) {
        (self.kind, &self.value)
    }
}

const KINDS: [Kind; 3] = [Kind::Url, Kind::Domain, Kind::Ip];

/// A folder of run files, removed with it.
struct Folder(PathBuf);

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct Spill {
    /// A run is written out when it holds this much.
    run_limit: usize,
    run: Vec<Entry>,
    run_bytes: usize,
    runs: Vec<PathBuf>,
    folder: Option<Folder>,
}

impl Spill {
    pub fn new() -> Spill {
        Spill {
            run_limit: RUN_BYTES,
            run: Vec::new(),
            run_bytes: 0,
            runs: Vec::new(),
            folder: None,
        }
    }

    pub fn add(&mut self, trace: &Trace, stored_ms: u64) -> std::io::Result<()> {
        // A value a chain shows twice is one entry (its labels joined), so past the cap an
        // input is not counted once per hop.
        let mut values: BTreeMap<(Kind, String), BTreeSet<Label>> = BTreeMap::new();
        for (kind, value, labels) in hop_values(trace) {
            values
                .entry((kind, value))
                .or_default()
                .extend(labels.iter().cloned());
        }
        for ((kind, value), labels) in values {
            self.run_bytes += value.len() + trace.input.len() + 64;
            self.run.push(Entry {
                kind: KINDS.iter().position(|k| *k == kind).unwrap_or(0) as u8,
                value,
                ms: stored_ms,
                labels: labels.into_iter().collect(),
                input: trace.input.clone(),
            });
        }
        if self.run_bytes >= self.run_limit {
            self.write_run()?;
        }
        Ok(())
    }

    /// The run in memory, sorted (stably: chains keep their order), to a file of its own.
    fn write_run(&mut self) -> std::io::Result<()> {
        if self.folder.is_none() {
            let at = std::env::temp_dir().join(format!(
                "hoptrace-export-{}-{}",
                std::process::id(),
                crate::now_ms()
            ));
            std::fs::create_dir_all(&at)?;
            self.folder = Some(Folder(at));
        }
        let dir = &self
            .folder
            .as_ref()
            .map(|f| f.0.clone())
            .unwrap_or_default();
        let path = dir.join(format!("run{}", self.runs.len()));
        let mut run = std::mem::take(&mut self.run);
        run.sort_by(|a, b| a.key().cmp(&b.key()));
        let mut w = BufWriter::new(File::create(&path)?);
        for e in &run {
            serde_json::to_writer(&mut w, e)?;
            w.write_all(b"\n")?;
        }
        w.flush()?;
        self.runs.push(path);
        self.run_bytes = 0;
        Ok(())
    }

    /// Every indicator, merged from the runs, in (kind, value) order.
    pub fn finish(
        mut self,
        mut each: impl FnMut(Indicator) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        if !self.run.is_empty() {
            self.write_run()?;
        }
        let mut readers = Vec::new();
        for p in &self.runs {
            readers.push(BufReader::new(File::open(p)?).lines());
        }
        let next = |r: &mut std::io::Lines<BufReader<File>>| -> std::io::Result<Option<Entry>> {
            match r.next().transpose()? {
                Some(line) => Ok(Some(serde_json::from_str(&line)?)),
                None => Ok(None),
            }
        };
        // Heads of the runs: (kind, value, run) orders ties by run, so chains stay in order.
        let mut heads: Vec<Option<Entry>> = Vec::new();
        let mut heap = BinaryHeap::new();
        for (i, r) in readers.iter_mut().enumerate() {
            let e = next(r)?;
            if let Some(e) = &e {
                heap.push(Reverse((e.kind, e.value.clone(), i)));
            }
            heads.push(e);
        }
        let mut open: Option<(Indicator, HashSet<String>)> = None;
        while let Some(Reverse((_, _, i))) = heap.pop() {
            let Some(e) = heads[i].take() else { continue };
            heads[i] = next(&mut readers[i])?;
            if let Some(n) = &heads[i] {
                heap.push(Reverse((n.kind, n.value.clone(), i)));
            }
            let kind = KINDS[(e.kind as usize).min(2)];
            if open
                .as_ref()
                .is_some_and(|(o, _)| o.kind != kind || o.value != e.value)
            {
                if let Some((done, _)) = open.take() {
                    each(done)?;
                }
            }
            let (ind, inputs) = open.get_or_insert_with(|| {
                let ind = Indicator {
                    kind,
                    value: e.value.clone(),
                    first_ms: e.ms,
                    last_ms: e.ms,
                    labels: BTreeSet::new(),
                    inputs: Vec::new(),
                    more_inputs: 0,
                };
                (ind, HashSet::new())
            });
            ind.first_ms = ind.first_ms.min(e.ms);
            ind.last_ms = ind.last_ms.max(e.ms);
            ind.labels.extend(e.labels);
            if !inputs.contains(&e.input) {
                if inputs.len() < INPUTS_KEPT {
                    inputs.insert(e.input.clone());
                    ind.inputs.push(e.input);
                } else {
                    // Past the cap an input is counted each time it is met, not told apart.
                    ind.more_inputs += 1;
                }
            }
        }
        if let Some((done, _)) = open {
            each(done)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{Hop, Via};

    fn trace(input: &str, urls: &[&str]) -> Trace {
        let mut t = Trace::input_error(input, String::new());
        t.error = None;
        t.hops = urls
            .iter()
            .map(|u| {
                let host = url::Url::parse(u).unwrap().host_str().unwrap().to_string();
                let mut hop = Hop::new(u.to_string(), host, Via::HttpRedirect);
                hop.ip = Some("203.0.113.9".into());
                hop
            })
            .collect();
        t
    }

    /// Runs of one chain each, merged: the indicators the in-memory tally gives (same order,
    /// times, inputs in order of first sight), an indicator's inputs past the cap counted.
    #[test]
    fn runs_on_disk_merge_into_the_tallys_indicators() {
        let chains: Vec<(Trace, u64)> = (0..INPUTS_KEPT + 5)
            .map(|i| {
                let t = trace(
                    &format!("http://in{i}.test/"),
                    &[&format!("http://s.test/{}", i % 7), "http://land.test/pay"],
                );
                (t, 1000 - i as u64)
            })
            .collect();
        let mut tally = super::super::Tally::default();
        let mut spill = Spill::new();
        spill.run_limit = 1;
        for (t, ms) in &chains {
            tally.add(t, *ms);
            spill.add(t, *ms).unwrap();
        }
        assert!(spill.runs.len() > 1, "written out in runs");
        let folder = spill.folder.as_ref().unwrap().0.clone();
        let want = tally.into_indicators();
        let mut got = Vec::new();
        spill
            .finish(|i| {
                got.push(i);
                Ok(())
            })
            .unwrap();
        assert!(!folder.exists(), "the runs are removed");
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!((g.kind, &g.value), (w.kind, &w.value));
            assert_eq!((g.first_ms, g.last_ms), (w.first_ms, w.last_ms));
            let kept = w.inputs.len().min(INPUTS_KEPT);
            assert_eq!(g.inputs, w.inputs[..kept]);
            assert_eq!(g.more_inputs, w.inputs.len() - kept);
        }
        let land = got.iter().find(|i| i.value == "land.test").unwrap();
        assert_eq!(land.more_inputs, 5);
    }
}

//! Sorting on disk, so an export's memory stays bounded whatever the store holds: entries are
//! appended to a run in memory; a full run is sorted by key and written to a temporary file;
//! at the end the runs are merged (one entry of each in memory at a time) and handed out in
//! key order, ties in the order they were added. Memory: one run ([`RUN_BYTES`]) plus a
//! reader per run. [`Spill`] tallies indicators through it; the STIX and MISP renderers sort
//! their objects and chains through it too.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Lines, Write};
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::indicator::{hop_values, Indicator};
use super::Kind;
use crate::trace::{Label, Trace};

/// What a run holds in memory before it is sorted and written out.
pub const RUN_BYTES: usize = 32 << 20;

/// Inputs an indicator names at most (the other distinct ones are counted in `more_inputs`).
pub const INPUTS_KEPT: usize = 100;

/// What can be sorted on disk: a line of a run file, with the key it is sorted by and about
/// how much memory it takes.
pub trait Sortable: Serialize + DeserializeOwned {
    type Key: Ord;
    fn key(&self) -> Self::Key;
    fn bytes(&self) -> usize;
}

/// A folder of run files, removed with it.
struct Folder(PathBuf);

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Entries sorted on disk in runs of at most `run_limit` bytes.
pub struct Runs<E: Sortable> {
    run_limit: usize,
    run: Vec<E>,
    run_bytes: usize,
    files: Vec<PathBuf>,
    folder: Option<Folder>,
}

impl<E: Sortable> Default for Runs<E> {
    fn default() -> Runs<E> {
        Runs::with_limit(RUN_BYTES)
    }
}

impl<E: Sortable> Runs<E> {
    pub fn with_limit(run_limit: usize) -> Runs<E> {
        Runs {
            run_limit,
            run: Vec::new(),
            run_bytes: 0,
            files: Vec::new(),
            folder: None,
        }
    }

    pub fn push(&mut self, e: E) -> std::io::Result<()> {
        self.run_bytes += e.bytes();
        self.run.push(e);
        if self.run_bytes >= self.run_limit {
            self.write_run()?;
        }
        Ok(())
    }

    /// Run files written so far.
    pub fn written(&self) -> usize {
        self.files.len()
    }

    /// The run in memory, sorted (stably: ties keep their order), to a file of its own.
    fn write_run(&mut self) -> std::io::Result<()> {
        let dir = match &self.folder {
            Some(f) => f.0.clone(),
            None => {
                let at = std::env::temp_dir().join(format!(
                    "hoptrace-export-{}-{}-{}",
                    std::process::id(),
                    crate::now_ms(),
                    FOLDERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&at)?;
                self.folder = Some(Folder(at.clone()));
                at
            }
        };
        let path = dir.join(format!("run{}", self.files.len()));
        let mut run = std::mem::take(&mut self.run);
        run.sort_by_key(|e| e.key());
        let mut w = BufWriter::new(File::create(&path)?);
        for e in &run {
            serde_json::to_writer(&mut w, e)?;
            w.write_all(b"\n")?;
        }
        w.flush()?;
        self.files.push(path);
        self.run_bytes = 0;
        Ok(())
    }

    /// Every entry, in key order (ties in the order added).
    pub fn merged(mut self) -> std::io::Result<Merged<E>> {
        if !self.run.is_empty() || self.files.is_empty() {
            self.write_run()?;
        }
        let mut m: Merged<E> = Merged {
            readers: Vec::new(),
            heads: Vec::new(),
            heap: BinaryHeap::new(),
            _folder: self.folder.take(),
        };
        for p in &self.files {
            m.readers.push(BufReader::new(File::open(p)?).lines());
        }
        for i in 0..m.readers.len() {
            let e = m.read(i)?;
            if let Some(e) = &e {
                m.heap.push(Reverse((e.key(), i)));
            }
            m.heads.push(e);
        }
        Ok(m)
    }
}

/// Folders made by this process, so two exports at once never share one.
static FOLDERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The runs merged: an iterator of entries in key order.
pub struct Merged<E: Sortable> {
    readers: Vec<Lines<BufReader<File>>>,
    heads: Vec<Option<E>>,
    /// Heads of the runs: (key, run) orders ties by run, so entries keep their order.
    heap: BinaryHeap<Reverse<(E::Key, usize)>>,
    _folder: Option<Folder>,
}

impl<E: Sortable> Merged<E> {
    fn read(&mut self, run: usize) -> std::io::Result<Option<E>> {
        match self.readers[run].next().transpose()? {
            Some(line) => Ok(Some(serde_json::from_str(&line)?)),
            None => Ok(None),
        }
    }

    fn next_entry(&mut self) -> std::io::Result<Option<E>> {
        while let Some(Reverse((_, i))) = self.heap.pop() {
            let Some(e) = self.heads[i].take() else {
                continue;
            };
            self.heads[i] = self.read(i)?;
            if let Some(n) = &self.heads[i] {
                self.heap.push(Reverse((n.key(), i)));
            }
            return Ok(Some(e));
        }
        Ok(None)
    }
}

impl<E: Sortable> Iterator for Merged<E> {
    type Item = std::io::Result<E>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_entry().transpose()
    }
}

/// One value a hop showed: a line of an indicator run.
#[derive(Serialize, Deserialize)]
struct Entry {
    kind: u8,
    value: String,
    input: String,
    /// Which chain (in walk order) showed it: inputs are named in order of first sight.
    seq: u64,
    ms: u64,
    labels: Vec<Label>,
}

impl Sortable for Entry {
    type Key = (u8, String, String, u64);
    // By input within an indicator, so repeats of one input are neighbours and each distinct
    // input is counted once, whatever the count.
    fn key(&self) -> Self::Key {
        (self.kind, self.value.clone(), self.input.clone(), self.seq)
    }
    fn bytes(&self) -> usize {
        self.value.len() + self.input.len() + 64
    }
}

/// Indicators tallied in bounded memory: each indicator handed out whole, in (kind, value)
/// order, its first [`INPUTS_KEPT`] inputs (in order of first sight) named and the other
/// distinct ones counted exactly.
#[derive(Default)]
pub struct Spill {
    runs: Runs<Entry>,
    chains: u64,
}

impl Spill {
    pub fn new() -> Spill {
        Spill::default()
    }

    pub fn add(&mut self, trace: &Trace, stored_ms: u64) -> std::io::Result<()> {
        // A value a chain shows twice is one entry (its labels joined).
        let mut values: BTreeMap<(Kind, String), BTreeSet<Label>> = BTreeMap::new();
        for (kind, value, labels) in hop_values(trace) {
            values
                .entry((kind, value))
                .or_default()
                .extend(labels.iter().cloned());
        }
        let seq = self.chains;
        self.chains += 1;
        for ((kind, value), labels) in values {
            self.runs.push(Entry {
                kind: Kind::ALL.iter().position(|k| *k == kind).unwrap_or(0) as u8,
                value,
                input: trace.input.clone(),
                seq,
                ms: stored_ms,
                labels: labels.into_iter().collect(),
            })?;
        }
        Ok(())
    }

    /// Run files written so far.
    pub fn runs(&self) -> usize {
        self.runs.written()
    }

    /// Every indicator, merged from the runs, in (kind, value) order.
    pub fn finish(
        self,
        mut each: impl FnMut(Indicator) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let mut open: Option<Open> = None;
        for e in self.runs.merged()? {
            let e = e?;
            let kind = Kind::ALL[usize::from(e.kind).min(Kind::ALL.len() - 1)];
            if open
                .as_ref()
                .is_some_and(|o| o.ind.kind != kind || o.ind.value != e.value)
            {
                if let Some(done) = open.take() {
                    each(done.close())?;
                }
            }
            open.get_or_insert_with(|| Open::new(kind, &e)).add(e);
        }
        if let Some(done) = open {
            each(done.close())?;
        }
        Ok(())
    }
}

/// The indicator being merged: its entries arrive grouped by input.
struct Open {
    ind: Indicator,
    /// The input being read and the first chain that showed it.
    input: Option<(String, u64)>,
    /// The [`INPUTS_KEPT`] inputs seen first so far (largest `seq` on top, to be let go).
    first: BinaryHeap<(u64, String)>,
    distinct: usize,
}

impl Open {
    fn new(kind: Kind, e: &Entry) -> Open {
        Open {
            ind: Indicator {
                kind,
                value: e.value.clone(),
                first_ms: e.ms,
                last_ms: e.ms,
                labels: BTreeSet::new(),
                inputs: Vec::new(),
                more_inputs: 0,
            },
            input: None,
            first: BinaryHeap::new(),
            distinct: 0,
        }
    }

    fn add(&mut self, e: Entry) {
        self.ind.first_ms = self.ind.first_ms.min(e.ms);
        self.ind.last_ms = self.ind.last_ms.max(e.ms);
        self.ind.labels.extend(e.labels);
        if self.input.as_ref().is_none_or(|(i, _)| *i != e.input) {
            self.close_input();
            // Sorted by seq within an input: this is its first sight.
            self.input = Some((e.input, e.seq));
        }
    }

    fn close_input(&mut self) {
        if let Some((input, seq)) = self.input.take() {
            self.distinct += 1;
            self.first.push((seq, input));
            if self.first.len() > INPUTS_KEPT {
                self.first.pop();
            }
        }
    }

    fn close(mut self) -> Indicator {
        self.close_input();
        let kept = self.first.into_sorted_vec();
        self.ind.more_inputs = self.distinct - kept.len();
        self.ind.inputs = kept.into_iter().map(|(_, i)| i).collect();
        self.ind
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

    fn indicators(spill: Spill) -> Vec<Indicator> {
        let mut got = Vec::new();
        spill
            .finish(|i| {
                got.push(i);
                Ok(())
            })
            .unwrap();
        got
    }

    /// Runs of one chain each, merged: every indicator once, in (kind, value) order, with its
    /// span, inputs in order of first sight, those past the cap counted; the runs removed.
    #[test]
    fn runs_on_disk_merge_into_whole_indicators() {
        let mut spill = Spill::new();
        spill.runs.run_limit = 1;
        for i in 0..INPUTS_KEPT + 5 {
            let t = trace(
                &format!("http://in{:03}.test/", 200 - i),
                &[&format!("http://s.test/{}", i % 7), "http://land.test/pay"],
            );
            spill.add(&t, 1000 - i as u64).unwrap();
        }
        assert!(spill.runs.written() > 1, "written out in runs");
        let folder = spill.runs.folder.as_ref().unwrap().0.clone();
        let got = indicators(spill);
        assert!(!folder.exists(), "the runs are removed");
        let keys: Vec<(Kind, &str)> = got.iter().map(|i| (i.kind, i.value.as_str())).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(keys, sorted, "each once, in order");
        let land = got.iter().find(|i| i.value == "land.test").unwrap();
        assert_eq!((land.first_ms, land.last_ms), (1000 - 104, 1000));
        let first: Vec<String> = (0..INPUTS_KEPT)
            .map(|i| format!("http://in{:03}.test/", 200 - i))
            .collect();
        assert_eq!(land.inputs, first, "in order of first sight");
        assert_eq!(land.more_inputs, 5);
        let s3 = got.iter().find(|i| i.value == "http://s.test/3").unwrap();
        assert_eq!(s3.inputs.len(), 15);
        assert_eq!(s3.more_inputs, 0);
    }

    /// Past the cap, an input shown by several chains is one more input, not one per chain.
    #[test]
    fn more_inputs_counts_distinct_inputs() {
        let mut spill = Spill::new();
        spill.runs.run_limit = 1;
        for round in 0..3 {
            for i in 0..INPUTS_KEPT + 10 {
                let t = trace(&format!("http://in{i}.test/"), &["http://land.test/"]);
                spill.add(&t, round).unwrap();
            }
        }
        let got = indicators(spill);
        let land = got.iter().find(|i| i.value == "land.test").unwrap();
        assert_eq!(land.inputs.len(), INPUTS_KEPT);
        assert_eq!(
            land.more_inputs, 10,
            "10 inputs past the cap, each seen 3 times"
        );
    }
}

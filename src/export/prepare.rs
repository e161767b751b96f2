//! An export's one walk of the store: the chains a filter selects, each with its campaign,
//! handed to the format's stage (an indicator tally, a STIX bundle, MISP groups), which sorts
//! what it needs on disk; [`Prepared::write`] then writes the document from there.

use crate::campaigns::Campaign;
use crate::store::Store;
use crate::trace::{Outcome, Trace};

use super::flat::Rows;
use super::misp::Groups;
use super::spill::Spill;
use super::stix::Bundle;
use super::{ExportError, Filter, Format, Summary};

/// Traces read from the store per call while walking it.
const PAGE: usize = 1000;

/// Every stored chain `filter` selects, with its campaign (if any) and that campaign's index
/// among the store's campaigns.
async fn selected_chains(
    store: &Store,
    filter: &Filter,
    mut each: impl FnMut(Trace, u64, Option<(usize, &Campaign)>) -> Result<(), ExportError>,
) -> Result<(), ExportError> {
    // A chain is a campaign's when it passed the campaign's infrastructure: found from the
    // chain itself, so no campaign's inputs are ever gathered.
    let mut clusters = crate::campaigns::Clusters::build(store, 2).await?;
    let only = match &filter.campaign {
        None => None,
        Some(id) => Some(
            clusters
                .find(id)
                .ok_or_else(|| ExportError::Campaign(id.clone()))?,
        ),
    };
    let mut after: Option<String> = None;
    loop {
        let page = store.traces_after(after.as_deref(), PAGE).await?;
        let Some((last, _, _)) = page.last() else {
            break;
        };
        after = Some(last.clone());
        for (_, trace, stored_ms) in page {
            let wanted = filter.since_ms.is_none_or(|s| stored_ms >= s)
                && filter
                    .label
                    .as_ref()
                    .is_none_or(|l| trace.labels.iter().any(|t| t == l));
            if !wanted || trace.hops.is_empty() {
                continue;
            }
            let campaign = clusters.of_trace(&trace);
            if only.is_some_and(|o| campaign != Some(o)) {
                continue;
            }
            let campaign = campaign.map(|i| (i, &clusters.campaigns[i]));
            each(trace, stored_ms, campaign)?;
        }
    }
    Ok(())
}

/// An export of the chains `filter` selects, its store walk done: what it needs is sorted on
/// disk (`spill.rs`), ready to be written by [`Prepared::write`] in bounded memory whatever
/// the store holds.
pub struct Prepared {
    stage: Stage,
    summary: Summary,
    filter: Filter,
    now_ms: u64,
}

enum Stage {
    Flat(Format, Spill),
    Stix(Bundle),
    Misp(Groups),
}

/// Walks the store once for an export in `format` of the chains `filter` selects. Nothing is
/// written yet: a bad filter (a campaign that does not exist, `defang` with MISP or STIX) is
/// refused here, before any of the document is sent.
pub async fn prepare(
    store: &Store,
    filter: &Filter,
    format: Format,
    now_ms: u64,
) -> Result<Prepared, ExportError> {
    if filter.defang && matches!(format, Format::Misp | Format::Stix) {
        return Err(ExportError::Defang);
    }
    let mut stage = match format {
        Format::Csv | Format::Txt => Stage::Flat(format, Spill::new()),
        Format::Stix => Stage::Stix(Bundle::new(now_ms)),
        Format::Misp => Stage::Misp(Groups::default()),
    };
    let mut chains = 0;
    selected_chains(store, filter, |trace, stored_ms, campaign| {
        chains += 1;
        match &mut stage {
            Stage::Flat(_, spill) => spill.add(&trace, stored_ms)?,
            Stage::Stix(bundle) => bundle.add(&trace, stored_ms, campaign)?,
            Stage::Misp(groups) => groups.add(slim(trace), stored_ms, campaign)?,
        }
        Ok(())
    })
    .await?;
    Ok(Prepared {
        stage,
        summary: Summary {
            chains,
            ..Summary::default()
        },
        filter: filter.clone(),
        now_ms,
    })
}

impl Prepared {
    /// The export written to `out`, one indicator, object or event at a time.
    pub fn write(self, out: &mut dyn std::io::Write) -> Result<Summary, ExportError> {
        let Prepared {
            stage,
            mut summary,
            filter,
            now_ms,
        } = self;
        match stage {
            Stage::Flat(format, spill) => {
                summary.runs = spill.runs();
                let mut rows = Rows::new(format, &filter, now_ms, out)?;
                spill.finish(|i| {
                    summary.indicators += 1;
                    rows.row(&i)
                })?;
                rows.finish()?;
            }
            Stage::Stix(bundle) => {
                summary.runs = bundle.runs();
                summary.indicators = bundle.write(out)?;
            }
            Stage::Misp(groups) => {
                summary.runs = groups.runs();
                summary.events = groups.write(now_ms, out)?;
            }
        }
        Ok(summary)
    }
}

/// `trace` with only what an export reads: the HTTP records (1-2 KB a hop), evidence and
/// browser notes dropped, but a download's last record (its file's name and size), so a
/// store of many chains is held in a fraction of the memory.
pub(super) fn slim(mut trace: Trace) -> Trace {
    let download = trace.outcome == Outcome::Download;
    let last = trace.hops.len().saturating_sub(1);
    for (i, hop) in trace.hops.iter_mut().enumerate() {
        if !(download && i == last) {
            hop.http = None;
        }
        hop.blocked_requests = Vec::new();
        hop.reason.clear();
    }
    trace.evidence = None;
    trace.screenshot = None;
    trace
}

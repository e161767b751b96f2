//! The landing-domain index in each order `/v1/domains` pages by, kept as keys so that a page
//! is read off the tree: no call loads, decodes or sorts the whole index. Name order is the
//! `domains` tree's own key order; the `domain_order` tree holds, per domain, one key for each
//! other order (inputs, last seen, first seen) whose value is the domain, and the number of
//! domains under [`COUNT`]. A key is a tag byte, the value (a big-endian count, or the time's
//! text and a 0 byte), then the domain's bytes inverted and 0xFF: ties fall in name order Z
//! to A going up and A to Z going down, as [`DomainQuery::page_of`] orders them.

use ::sled::transaction::{ConflictableTransactionError, TransactionalTree};
use ::sled::Tree;

use super::{decode, StoreError};
use crate::store::model::{DomainPage, DomainQuery, DomainRecord, DomainSort};

/// The number of domains in the index (a big-endian u64).
const COUNT: &[u8] = b"#";

fn tag(sort: DomainSort) -> Option<u8> {
    match sort {
        DomainSort::Inputs => Some(b'i'),
        DomainSort::LastSeen => Some(b'l'),
        DomainSort::FirstSeen => Some(b'f'),
        DomainSort::Domain => None,
    }
}

/// `rec`'s key in each order the tree keeps.
fn keys(rec: &DomainRecord) -> [Vec<u8>; 3] {
    let key = |tag: u8, value: &[u8], text: bool| {
        let mut k = Vec::with_capacity(2 + value.len() + rec.domain.len() + 1);
        k.push(tag);
        k.extend_from_slice(value);
        if text {
            k.push(0);
        }
        k.extend(rec.domain.bytes().map(|b| !b));
        k.push(0xff);
        k
    };
    [
        key(b'i', &rec.inputs.to_be_bytes(), false),
        key(b'l', rec.last_seen.as_bytes(), true),
        key(b'f', rec.first_seen.as_bytes(), true),
    ]
}

fn count_of(v: Option<impl AsRef<[u8]>>) -> u64 {
    v.and_then(|v| v.as_ref().try_into().ok())
        .map_or(0, u64::from_be_bytes)
}

/// In a batch's transaction: `new` replaces `old` (`None`: a domain new to the index).
pub(super) fn update(
    order: &TransactionalTree,
    old: Option<&DomainRecord>,
    new: &DomainRecord,
) -> Result<(), ConflictableTransactionError<String>> {
    match old {
        Some(old) => {
            for k in keys(old) {
                order.remove(k)?;
            }
        }
        None => {
            let n = count_of(order.get(COUNT)?) + 1;
            order.insert(COUNT, &n.to_be_bytes()[..])?;
        }
    }
    for k in keys(new) {
        order.insert(k, new.domain.as_bytes())?;
    }
    Ok(())
}

/// Writes the order keys of every domain of a store written before they were kept (once).
pub(super) fn rebuild(order: &Tree, domains: &Tree) -> Result<(), StoreError> {
    order.clear()?;
    let mut n = 0u64;
    for kv in domains.iter() {
        let (k, v) = kv?;
        let rec: DomainRecord = match decode(&v, "domain") {
            Ok(rec) => rec,
            // Left out of the orders; a page of names, or reading it, still names it.
            Err(e) => {
                tracing::warn!("domain {}: {e}", String::from_utf8_lossy(&k));
                continue;
            }
        };
        for k in keys(&rec) {
            order.insert(k, rec.domain.as_bytes())?;
        }
        n += 1;
    }
    order.insert(COUNT, &n.to_be_bytes()[..])?;
    Ok(())
}

/// The page `q` asks for: its keys walked from the right end of the order, the records read
/// for that page alone.
pub(super) fn page(
    order: &Tree,
    domains: &Tree,
    q: &DomainQuery,
) -> Result<DomainPage, StoreError> {
    let total = count_of(order.get(COUNT)?) as usize;
    let names: Box<dyn DoubleEndedIterator<Item = ::sled::Result<::sled::IVec>>> = match tag(q.sort)
    {
        Some(t) => Box::new(order.scan_prefix([t]).values()),
        None => Box::new(domains.iter().keys()),
    };
    let names: Box<dyn Iterator<Item = _>> = match q.descending {
        true => Box::new(names.rev()),
        false => names,
    };
    let mut page = Vec::with_capacity(q.limit.min(total));
    for name in names.skip(q.offset).take(q.limit) {
        let name = name?;
        let what = || format!("domain {}", String::from_utf8_lossy(&name));
        let bytes = domains.get(&name)?.ok_or_else(|| {
            StoreError::Corrupt(format!("{}: in an order, not in the index", what()))
        })?;
        page.push(decode(&bytes, &what())?);
    }
    Ok(DomainPage {
        domains: page,
        total,
    })
}

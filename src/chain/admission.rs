//! The process-wide admission: at most `limits.concurrency` visits run at once, whoever asked
//! for them (API calls, a comparison's cells, watch runs and each of their visitors, scans, the
//! CLI). One semaphore held by the one resolver, taken by every visit where it starts, so no
//! caller's fan-out can add to it; answers from the cache or from another caller's visit of
//! the same link take no slot.

use std::sync::atomic::{AtomicI64, Ordering};

use tokio::sync::{Semaphore, SemaphorePermit};

pub struct Admission {
    slots: Semaphore,
    capacity: usize,
    waiting: AtomicI64,
    running: AtomicI64,
}

/// One visit's slot, given back when dropped (also when the visit is cancelled).
pub struct Slot<'a> {
    _permit: SemaphorePermit<'a>,
    _running: Count<'a>,
}

impl Admission {
    pub fn new(concurrency: u32) -> Admission {
        let capacity = concurrency.max(1) as usize;
        Admission {
            slots: Semaphore::new(capacity),
            capacity,
            waiting: AtomicI64::new(0),
            running: AtomicI64::new(0),
        }
    }

    /// Waits for a free slot.
    pub async fn enter(&self) -> Slot<'_> {
        let waiting = Count::up(&self.waiting);
        let permit = self
            .slots
            .acquire()
            .await
            .expect("the admission semaphore is never closed");
        drop(waiting);
        Slot {
            _permit: permit,
            _running: Count::up(&self.running),
        }
    }

    /// Visits that may run at once (`limits.concurrency`).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Visits waiting for a slot.
    pub fn waiting(&self) -> i64 {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Visits running.
    pub fn running(&self) -> i64 {
        self.running.load(Ordering::Relaxed)
    }
}

/// Holds a count up by one while it lives (a waiter cancelled mid-wait is not left counted).
struct Count<'a>(&'a AtomicI64);

impl<'a> Count<'a> {
    fn up(n: &'a AtomicI64) -> Count<'a> {
        n.fetch_add(1, Ordering::Relaxed);
        Count(n)
    }
}

impl Drop for Count<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

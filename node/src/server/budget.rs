//! A shard's budget for request bytes being read and handled: its share of
//! `queued.max.request.bytes` (Kafka's memory pool for requests).
//!
//! A request body larger than [`super::conn::FIRST_READ_BYTES`] is charged before its full
//! buffer is allocated, and the charge is given back once the request is handled (before its
//! response is written). While the shard's requests hold the whole budget, a new large request
//! waits; one request is always admitted when nothing else is held, so a request above the
//! budget is slow, never refused. Small requests are not charged: their buffers are bounded by
//! the connection limit instead.
//!
//! Shard-local (`Cell`s on one thread): no lock, no atomics.

use std::cell::Cell;

use event_listener::Event;

/// Request bytes a shard's connections hold, and how many they may.
#[derive(Debug)]
pub struct RequestBudget {
    limit: usize,
    held: Cell<usize>,
    freed: Event,
}

impl Default for RequestBudget {
    fn default() -> Self {
        Self::new(usize::MAX)
    }
}

impl RequestBudget {
    pub fn new(limit: usize) -> Self {
        Self { limit: limit.max(1), held: Cell::new(0), freed: Event::new() }
    }

    /// Bytes charged now.
    pub fn held(&self) -> usize {
        self.held.get()
    }

    fn fits(&self, bytes: usize) -> bool {
        let held = self.held.get();
        held == 0 || held.saturating_add(bytes) <= self.limit
    }

    /// Charges `bytes`, waiting until they fit (or nothing else is held).
    pub async fn charge(&self, bytes: usize) -> Charge<'_> {
        loop {
            if self.fits(bytes) {
                break;
            }
            let freed = self.freed.listen();
            if self.fits(bytes) {
                break;
            }
            freed.await;
        }
        self.held.set(self.held.get() + bytes);
        Charge { budget: self, bytes }
    }
}

/// Bytes charged to a [`RequestBudget`], given back when dropped.
#[derive(Debug)]
pub struct Charge<'a> {
    budget: &'a RequestBudget,
    bytes: usize,
}

impl Drop for Charge<'_> {
    fn drop(&mut self) {
        let b = self.budget;
        b.held.set(b.held.get().saturating_sub(self.bytes));
        b.freed.notify(usize::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    #[test]
    fn charges_wait_for_room_and_one_request_always_fits() {
        let budget = RequestBudget::new(100);
        let big = budget.charge(250).now_or_never().expect("alone, any size is admitted");
        assert_eq!(budget.held(), 250);
        let mut waiting = Box::pin(budget.charge(10));
        assert!(waiting.as_mut().now_or_never().is_none(), "waits while the budget is spent");
        drop(big);
        assert_eq!(budget.held(), 0);
        let small = waiting.now_or_never().expect("admitted once room was freed");
        let second = budget.charge(90).now_or_never().expect("fits beside the first");
        assert_eq!(budget.held(), 100);
        assert!(Box::pin(budget.charge(1)).as_mut().now_or_never().is_none(), "full");
        drop((small, second));
        assert_eq!(budget.held(), 0);
    }
}

//! What keeps a query from hurting the process: the concurrency gate, the deadline and the
//! cancellation token.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::error::EvalError;

/// Lets the caller stop a running query, e.g. when the HTTP client disconnects. Cloning shares the
/// token: tripping any clone cancels the query. The engine checks it between series and steps, so
/// a canceled query stops within milliseconds and releases its concurrency slot.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token that has not been tripped.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels every query holding this token.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_canceled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// When a query must stop: its deadline and its cancellation token.
#[derive(Debug, Clone)]
pub(crate) struct Interrupt {
    deadline: Option<Instant>,
    cancel: CancelToken,
}

impl Interrupt {
    pub(crate) fn new(timeout: Option<Duration>, cancel: CancelToken) -> Self {
        Interrupt { deadline: timeout.and_then(|t| Instant::now().checked_add(t)), cancel }
    }

    /// Fails if the query was canceled or ran past its deadline; `phase` names where, as
    /// Prometheus does ("query timed out in expression evaluation").
    pub(crate) fn check(&self, phase: &'static str) -> Result<(), EvalError> {
        if self.cancel.is_canceled() {
            return Err(EvalError::Canceled(phase));
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(EvalError::Timeout(phase));
        }
        Ok(())
    }
}

/// A counting semaphore for `--query.max-concurrency`: queries beyond the limit wait in the queue
/// (their timeout keeps running, as in Prometheus) instead of failing at once.
#[derive(Debug)]
pub(crate) struct Gate {
    max: usize,
    running: Mutex<usize>,
    freed: Condvar,
}

/// A held concurrency slot; dropping it frees the slot.
pub(crate) struct Slot<'a>(&'a Gate);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut running = self.0.running.lock();
        *running = running.saturating_sub(1);
        drop(running);
        self.0.freed.notify_one();
    }
}

impl Gate {
    pub(crate) fn new(max: usize) -> Self {
        Gate { max: max.max(1), running: Mutex::new(0), freed: Condvar::new() }
    }

    /// Waits for a free slot until the query's deadline or cancellation.
    pub(crate) fn acquire(&self, interrupt: &Interrupt) -> Result<Slot<'_>, EvalError> {
        // Wake up regularly to notice a tripped cancellation token, which has no way to notify us.
        const POLL: Duration = Duration::from_millis(20);
        let mut running = self.running.lock();
        loop {
            if *running < self.max {
                *running += 1;
                return Ok(Slot(self));
            }
            interrupt.check("query queue")?;
            let wait =
                interrupt.deadline.map_or(POLL, |d| d.saturating_duration_since(Instant::now()).min(POLL));
            self.freed.wait_for(&mut running, wait);
        }
    }

    /// Queries running now.
    pub(crate) fn running(&self) -> usize {
        *self.running.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_queues_beyond_its_limit_and_times_out_in_the_queue() {
        let gate = Gate::new(1);
        let forever = Interrupt::new(None, CancelToken::new());
        let held = gate.acquire(&forever).unwrap();
        let short = Interrupt::new(Some(Duration::from_millis(30)), CancelToken::new());
        let err = gate.acquire(&short).err().unwrap();
        assert_eq!(err.to_string(), "query timed out in query queue");
        drop(held);
        assert_eq!(gate.running(), 0);
        let _again = gate.acquire(&short).unwrap();
        assert_eq!(gate.running(), 1);
    }

    #[test]
    fn canceled_token_stops_a_waiting_query() {
        let gate = Gate::new(1);
        let _held = gate.acquire(&Interrupt::new(None, CancelToken::new())).unwrap();
        let token = CancelToken::new();
        token.cancel();
        let err = gate.acquire(&Interrupt::new(None, token)).err().unwrap();
        assert_eq!(err.to_string(), "query was canceled in query queue");
    }
}

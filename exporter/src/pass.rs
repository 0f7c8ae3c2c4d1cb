//! One collection pass over every collector, with a time budget per collector, plus kahu's own
//! metrics and the bookkeeping for stale markers.
//!
//! Each collector lives on its own thread. A pass sends every idle collector the pass time and
//! waits for the answers until the budget runs out; a collector that has not answered by then
//! (a hung NFS mount, a slow `/proc` read) is left out of this pass and counted in
//! `kahu_collector_timeouts_total`, and it is not asked again until it has answered. So one stuck
//! read can cost at most one budget, never the whole scrape (node_exporter has no such limit).

use std::collections::HashSet;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use kahu_tsdb::model::Labels;

use crate::collector::{Batch, CollectError, Collector, MetricType};

struct Done {
    batch: Batch,
    result: Result<(), CollectError>,
    elapsed: Duration,
}

struct Worker {
    name: &'static str,
    tx: Option<Sender<i64>>,
    rx: Receiver<Done>,
    busy: bool,
    last_error: Option<String>,
    errors: u64,
    timeouts: u64,
    last_duration: f64,
    last_success: bool,
}

/// Runs collection passes.
pub struct PassRunner {
    workers: Vec<Worker>,
    budget: Duration,
    passes: u64,
    last_pass_seconds: f64,
}

impl std::fmt::Debug for PassRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PassRunner")
            .field("collectors", &self.workers.iter().map(|w| w.name).collect::<Vec<_>>())
            .field("budget", &self.budget)
            .finish()
    }
}

impl PassRunner {
    /// Starts one thread per collector; each collector gets at most `budget` per pass.
    pub fn new(collectors: Vec<Box<dyn Collector>>, budget: Duration) -> std::io::Result<PassRunner> {
        let mut workers = Vec::with_capacity(collectors.len());
        for mut c in collectors {
            let name = c.name();
            let (job_tx, job_rx) = mpsc::channel::<i64>();
            let (done_tx, done_rx) = mpsc::channel::<Done>();
            std::thread::Builder::new().name(format!("kahu-{name}")).spawn(move || {
                for now_ms in job_rx {
                    let start = Instant::now();
                    let mut batch = Batch::new();
                    let result = c.collect(&mut batch, now_ms);
                    if done_tx.send(Done { batch, result, elapsed: start.elapsed() }).is_err() {
                        return;
                    }
                }
            })?;
            workers.push(Worker {
                name,
                tx: Some(job_tx),
                rx: done_rx,
                busy: false,
                last_error: None,
                errors: 0,
                timeouts: 0,
                last_duration: 0.0,
                last_success: false,
            });
        }
        Ok(PassRunner { workers, budget, passes: 0, last_pass_seconds: 0.0 })
    }

    /// Runs one pass at time `now_ms` and returns what the collectors produced plus the
    /// `kahu_*` and `process_*` self-metrics.
    pub fn run(&mut self, now_ms: i64) -> Batch {
        let start = Instant::now();
        let mut pending = Vec::new();
        for (i, w) in self.workers.iter_mut().enumerate() {
            // A collector that missed an earlier budget may have finished since: its late
            // result is dropped (its time has passed) and it is idle again.
            if w.busy && w.rx.try_recv().is_ok() {
                w.busy = false;
            }
            if w.busy {
                w.last_success = false;
                tracing::debug!(collector = w.name, "skipped: previous pass still running");
                continue;
            }
            match &w.tx {
                Some(tx) if tx.send(now_ms).is_ok() => {
                    w.busy = true;
                    pending.push(i);
                }
                _ => {
                    w.tx = None;
                    w.last_success = false;
                }
            }
        }
        let deadline = start + self.budget;
        let mut batch = Batch::new();
        for i in pending {
            let Some(w) = self.workers.get_mut(i) else { continue };
            match w.rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(done) => {
                    w.busy = false;
                    w.last_duration = done.elapsed.as_secs_f64();
                    w.last_success = done.result.is_ok();
                    w.last_error = done.result.as_ref().err().map(|e| format!("{}: {e}", w.name));
                    if let Err(e) = &done.result {
                        w.errors += 1;
                        tracing::warn!(collector = w.name, error = %e, "collector failed");
                    }
                    batch.merge(done.batch);
                }
                Err(RecvTimeoutError::Timeout) => {
                    w.last_error = Some(format!("{}: did not finish within {:?}", w.name, self.budget));
                    w.timeouts += 1;
                    w.last_success = false;
                    w.last_duration = self.budget.as_secs_f64();
                    tracing::warn!(collector = w.name, budget = ?self.budget, "collector did not finish within its time budget; left out of this pass");
                }
                Err(RecvTimeoutError::Disconnected) => {
                    // The collector's thread ended (a panic): never ask it again.
                    w.tx = None;
                    w.busy = false;
                    w.errors += 1;
                    w.last_success = false;
                    tracing::error!(collector = w.name, "collector thread ended; collector disabled");
                }
            }
        }
        self.passes += 1;
        self.add_self_metrics(&mut batch);
        self.last_pass_seconds = start.elapsed().as_secs_f64();
        batch
    }

    /// The first collector error of the last pass (`collector: reason`), if any.
    pub fn last_error(&self) -> Option<String> {
        self.workers.iter().filter(|w| !w.last_success).find_map(|w| w.last_error.clone())
    }

    fn add_self_metrics(&self, batch: &mut Batch) {
        let fam = batch.family(
            "kahu_collector_duration_seconds",
            "Time the collector took in the last pass.",
            MetricType::Gauge,
        );
        for w in &self.workers {
            fam.sample([("collector", w.name)], w.last_duration);
        }
        let fam = batch.family(
            "kahu_collector_success",
            "Whether the collector succeeded in the last pass.",
            MetricType::Gauge,
        );
        for w in &self.workers {
            fam.sample([("collector", w.name)], if w.last_success { 1.0 } else { 0.0 });
        }
        let fam = batch.family(
            "kahu_collector_errors_total",
            "Passes in which the collector returned an error.",
            MetricType::Counter,
        );
        for w in &self.workers {
            fam.sample([("collector", w.name)], w.errors as f64);
        }
        let fam = batch.family(
            "kahu_collector_timeouts_total",
            "Passes the collector missed because it exceeded its time budget or was still running.",
            MetricType::Counter,
        );
        for w in &self.workers {
            fam.sample([("collector", w.name)], w.timeouts as f64);
        }
        let none: [(&str, &str); 0] = [];
        batch
            .family("kahu_collection_passes_total", "Collection passes run.", MetricType::Counter)
            .sample(none, self.passes as f64);
        batch
            .family(
                "kahu_collection_duration_seconds",
                "Wall-clock time of the previous collection pass.",
                MetricType::Gauge,
            )
            .sample(none, self.last_pass_seconds);
        batch
            .family(
                "kahu_build_info",
                "A metric with a constant '1' value labeled by kahu's version.",
                MetricType::Gauge,
            )
            .sample([("version", env!("CARGO_PKG_VERSION"))], 1.0);
        add_process_metrics(batch);
    }
}

/// `process_*` metrics of kahu itself, as Prometheus client libraries name them.
pub fn add_process_metrics(batch: &mut Batch) {
    let Ok(me) = procfs::process::Process::myself() else { return };
    let none: [(&str, &str); 0] = [];
    let tps = procfs::ticks_per_second() as f64;
    if let Ok(stat) = me.stat() {
        batch
            .family(
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds.",
                MetricType::Counter,
            )
            .sample(none, (stat.utime + stat.stime) as f64 / tps);
        batch
            .family("process_virtual_memory_bytes", "Virtual memory size in bytes.", MetricType::Gauge)
            .sample(none, stat.vsize as f64);
        batch
            .family("process_resident_memory_bytes", "Resident memory size in bytes.", MetricType::Gauge)
            .sample(none, (stat.rss * procfs::page_size()) as f64);
        if let Ok(boot) = procfs::boot_time_secs() {
            batch
                .family(
                    "process_start_time_seconds",
                    "Start time of the process since unix epoch in seconds.",
                    MetricType::Gauge,
                )
                .sample(none, boot as f64 + stat.starttime as f64 / tps);
        }
        batch
            .family("process_threads", "Number of OS threads in the process.", MetricType::Gauge)
            .sample(none, stat.num_threads as f64);
    }
    if let Ok(n) = me.fd_count() {
        batch
            .family("process_open_fds", "Number of open file descriptors.", MetricType::Gauge)
            .sample(none, n as f64);
    }
    if let Ok(limits) = me.limits()
        && let procfs::process::LimitValue::Value(v) = limits.max_open_files.soft_limit
    {
        batch
            .family("process_max_fds", "Maximum number of open file descriptors.", MetricType::Gauge)
            .sample(none, v as f64);
    }
}

/// Remembers the series of the previous pass, so that the series of containers that went away
/// get a stale marker in the TSDB, as a Prometheus scrape writes one for a series that
/// disappears from a target.
#[derive(Debug, Default)]
pub struct StaleTracker {
    last: HashSet<Labels>,
}

impl StaleTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records this pass's series and returns those of the previous pass that are gone.
    pub fn update(&mut self, current: HashSet<Labels>) -> Vec<Labels> {
        let gone = self.last.difference(&current).cloned().collect();
        self.last = current;
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Slow(Duration);
    impl Collector for Slow {
        fn name(&self) -> &'static str {
            "slow"
        }
        fn collect(&mut self, batch: &mut Batch, _now: i64) -> Result<(), CollectError> {
            std::thread::sleep(self.0);
            batch.family("slow_metric", "h", MetricType::Gauge).sample::<&str, &str>([], 1.0);
            Ok(())
        }
    }

    struct Fast;
    impl Collector for Fast {
        fn name(&self) -> &'static str {
            "fast"
        }
        fn collect(&mut self, batch: &mut Batch, now: i64) -> Result<(), CollectError> {
            batch.family("fast_metric", "h", MetricType::Gauge).sample::<&str, &str>([], now as f64);
            Ok(())
        }
    }

    fn value(b: &Batch, name: &str, collector: &str) -> Option<f64> {
        b.get(name)?
            .samples
            .iter()
            .find(|s| s.labels.iter().any(|(_, v)| v.as_ref() == collector))
            .map(|s| s.value)
    }

    #[test]
    fn a_hung_collector_costs_one_budget_and_is_skipped_until_it_answers() {
        let mut r = PassRunner::new(
            vec![Box::new(Slow(Duration::from_millis(600))), Box::new(Fast)],
            Duration::from_millis(100),
        )
        .unwrap();
        let t0 = Instant::now();
        let b = r.run(1);
        assert!(t0.elapsed() < Duration::from_millis(500), "pass waited for the hung collector");
        assert!(b.get("slow_metric").is_none());
        assert_eq!(b.get("fast_metric").map(|f| f.samples[0].value), Some(1.0));
        assert_eq!(value(&b, "kahu_collector_timeouts_total", "slow"), Some(1.0));
        assert_eq!(value(&b, "kahu_collector_success", "slow"), Some(0.0));
        // Still running: skipped, not asked twice.
        let b = r.run(2);
        assert!(b.get("slow_metric").is_none());
        assert_eq!(value(&b, "kahu_collector_success", "fast"), Some(1.0));
        std::thread::sleep(Duration::from_millis(700));
        // Answered meanwhile: asked again (and times out again, since it always takes 600ms).
        let b = r.run(3);
        assert_eq!(value(&b, "kahu_collector_timeouts_total", "slow"), Some(2.0));
        assert!(b.get("process_resident_memory_bytes").is_some_and(|f| f.samples[0].value > 0.0));
    }

    #[test]
    fn series_that_disappear_are_reported_once() {
        let l = |v: &str| Labels::from_pairs([("__name__", "m"), ("id", v)]);
        let mut t = StaleTracker::new();
        assert!(t.update(HashSet::from([l("a"), l("b")])).is_empty());
        assert_eq!(t.update(HashSet::from([l("a")])), vec![l("b")]);
        assert!(t.update(HashSet::from([l("a")])).is_empty());
    }
}

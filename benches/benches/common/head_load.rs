//! The two loads the head memory benchmarks measure, generated before the measured window (the
//! arena stays alive, as a sender's request buffers would; the head copies what it keeps).

use kahu_benches::workload::{Config, Workload};
use kahu_tsdb::model::Labels;

#[path = "labels.rs"]
mod labels;

/// One scrape's samples: timestamp and `(series index, value)` pairs.
pub struct Round {
    pub samples: Vec<(u32, i64, f64)>,
}

/// Series labels and the 120 rounds of samples to append, in order.
pub struct Load {
    pub name: &'static str,
    pub labels: Vec<Labels>,
    pub rounds: Vec<Round>,
}

impl Load {
    /// Mean label bytes (name + value of every pair) per series.
    pub fn label_bytes(&self) -> usize {
        self.labels
            .iter()
            .map(|l| l.iter().map(|x| x.name.len() + x.value.len()).sum::<usize>())
            .sum::<usize>()
            / self.labels.len().max(1)
    }
}

/// The node workload of `benches/src/workload.rs` (cAdvisor + node_exporter series, the values
/// the remote-write and compression benches use), pods added until `n` series, no churn,
/// 120 scrapes of each target.
pub fn realistic(n: usize) -> Load {
    let cfg = Config { series: n, duration_ms: 120 * 15_000, churn_per_day: 0.0, ..Config::default() };
    let mut w = Workload::new(cfg);
    let mut rounds = Vec::new();
    for scrape in w.by_ref() {
        rounds.push(Round { samples: scrape.samples.iter().map(|&(id, v)| (id, scrape.t, v)).collect() });
    }
    let labels = (0..w.series_created() as u32).map(|id| w.labels(id).cloned().unwrap()).collect();
    Load { name: "node workload", labels, rounds }
}

/// The older synthetic load: one label set shape (~440 bytes), timestamps with 0-4 ms jitter,
/// values that are running sums of `k * 0.01` (so full of float rounding noise, e.g.
/// 12.340000000000002, which no exposition text or remote-write sender produces).
pub fn synthetic(n: usize) -> Load {
    let labels: Vec<Labels> = (0..n).map(labels::k8s_labels).collect();
    let mut t = 1_700_000_000_000i64;
    let mut x = 88172645463325252u64;
    let mut values = vec![0f64; n];
    let mut rounds = Vec::new();
    for _round in 0..120 {
        let mut samples = Vec::with_capacity(n);
        for (i, value) in values.iter_mut().enumerate() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *value += (x % 1000) as f64 * 0.01;
            samples.push((i as u32, t + (x % 5) as i64, *value));
        }
        rounds.push(Round { samples });
        t += 15_000;
    }
    Load { name: "synthetic sums", labels, rounds }
}

/// The load `KAHU_LOAD` names (`realistic` or `synthetic`). When it is unset, runs this
/// benchmark once per load, each in a fresh process so that one load's freed memory cannot hide
/// in the other's RSS, and returns `None`.
pub fn selected(n: usize) -> Option<Load> {
    match std::env::var("KAHU_LOAD").as_deref() {
        Ok("realistic") => Some(realistic(n)),
        Ok("synthetic") => Some(synthetic(n)),
        Ok(other) => panic!("KAHU_LOAD={other}: expected realistic or synthetic"),
        Err(_) => {
            let exe = std::env::current_exe().unwrap();
            for load in ["realistic", "synthetic"] {
                let st = std::process::Command::new(&exe)
                    .args(std::env::args().skip(1))
                    .env("KAHU_LOAD", load)
                    .status()
                    .unwrap();
                assert!(st.success(), "{load}: {st}");
            }
            None
        }
    }
}

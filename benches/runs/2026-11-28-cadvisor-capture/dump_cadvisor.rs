//! Writes the generated workload's cAdvisor scrapes as `<t>.prom` files, for analyze.py.
//! Run as an example of kahu-benches: dump_cadvisor DIR SERIES HOURS.
use kahu_benches::capture::format_value;
use kahu_benches::workload::{Config, Target, Workload};
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(&a[1]);
    let series: usize = a[2].parse().unwrap();
    let hours: i64 = a[3].parse().unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = Config { series, duration_ms: hours * 3_600_000, ..Config::default() };
    let mut w = Workload::new(cfg);
    while let Some(s) = w.next() {
        if s.target != Target::Cadvisor {
            continue;
        }
        let mut out = String::new();
        for (id, v) in &s.samples {
            if v.to_bits() == 0x7ff0_0000_0000_0002 || v.is_nan() {
                continue;
            }
            out.push_str(&format!("{} {}\n", w.labels(*id).unwrap(), format_value(*v)));
        }
        std::fs::write(dir.join(format!("{}.prom", s.t)), out).unwrap();
    }
}

//! Node collectors with node_exporter's metric names.

mod cpu;
mod meminfo;

pub use cpu::CpuCollector;
pub use meminfo::{MeminfoCollector, parse_meminfo};

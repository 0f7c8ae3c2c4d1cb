//! Container metrics from cgroups (v1, v2 and hybrid), with cAdvisor's names, types and labels.
//!
//! - [`layout`] finds the hierarchies from mountinfo under `--path.procfs`/`--path.sysfs`/`--path.rootfs`;
//! - [`path`] parses a cgroup path into pod UID, QoS class and container id for every runtime and
//!   cgroup driver;
//! - [`parse`] holds pure parsers of the cgroup and `/proc` files, and [`stats`] reads one cgroup;
//! - [`CgroupCollector`] walks the hierarchy once per pass, names each container through the
//!   runtime [`Resolver`](crate::runtime::Resolver), and emits the `container_*` families;
//!   [`MachineCollector`] emits `machine_*`.

mod collector;
pub mod layout;
pub mod parse;
pub mod path;
pub mod stats;

pub use collector::{CgroupCollector, CgroupOptions, MachineCollector};

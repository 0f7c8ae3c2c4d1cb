//! Node collectors with node_exporter's metric names, types, labels and HELP texts: `cpu` and
//! `stat` (`/proc/stat`), `meminfo`, `loadavg`, `filesystem`, `diskstats`, `netdev`, `pressure`,
//! `uname`, `time`, `vmstat`, `filefd`, `netstat` and `conntrack`.

mod diskstats;
mod filesystem;
mod meminfo;
mod netdev;
mod stat;
mod system;

pub use diskstats::{DEFAULT_DEVICE_EXCLUDE, DiskstatsCollector, parse_diskstats};
pub use filesystem::{
    DEFAULT_FS_TYPES_EXCLUDE, DEFAULT_MOUNT_POINTS_EXCLUDE, FilesystemCollector, FilesystemOptions,
};
pub use meminfo::{MeminfoCollector, parse_meminfo};
pub use netdev::NetdevCollector;
pub use stat::{CpuTimes, ProcStat, StatCollector, parse_stat};
pub use system::{
    ConntrackCollector, DEFAULT_NETSTAT_FIELDS, FilefdCollector, LoadavgCollector, NetstatCollector,
    PressureCollector, TimeCollector, UnameCollector, VmstatCollector, parse_netstat,
};

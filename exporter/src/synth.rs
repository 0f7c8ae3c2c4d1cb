//! Synthetic node trees for benchmarks: a cgroup v2 node (systemd driver, containerd) with any
//! number of pods, written as the kernel lays the files out, plus the `/proc` files the
//! collectors read. Not used at run time.

use std::io;
use std::path::Path;

fn w(path: &Path, text: &str) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text)
}

fn cgroup(dir: &Path, seed: u64, quota: bool, pid: Option<u32>) -> io::Result<()> {
    let cpu = 1_000_000 + seed * 7919;
    w(
        &dir.join("cpu.stat"),
        &format!(
            "usage_usec {cpu}\nuser_usec {}\nsystem_usec {}\nnr_periods {}\nnr_throttled {}\nthrottled_usec {}\nnr_bursts 0\nburst_usec 0\n",
            cpu * 4 / 5,
            cpu / 5,
            if quota { 4000 } else { 0 },
            if quota { 31 } else { 0 },
            if quota { 123_456 } else { 0 }
        ),
    )?;
    w(&dir.join("cpu.max"), if quota { "50000 100000\n" } else { "max 100000\n" })?;
    w(&dir.join("cpu.weight"), "79\n")?;
    let anon = (20 + seed % 200) << 20;
    let file = (10 + seed % 50) << 20;
    w(&dir.join("memory.current"), &format!("{}\n", anon + file))?;
    w(&dir.join("memory.peak"), &format!("{}\n", (anon + file) * 2))?;
    w(
        &dir.join("memory.stat"),
        &format!(
            "anon {anon}\nfile {file}\nkernel 122880\nkernel_stack 65536\npagetables 139264\nsec_pagetables 0\npercpu 1232\nsock 0\nvmalloc 0\nshmem 0\n\
         zswap 0\nzswapped 0\nfile_mapped {}\nfile_dirty 0\nfile_writeback 0\nswapcached 0\nanon_thp 0\nfile_thp 0\nshmem_thp 0\n\
         inactive_anon {anon}\nactive_anon 4096\ninactive_file {}\nactive_file {}\nunevictable 0\nslab_reclaimable 40960\n\
         slab_unreclaimable 61440\nslab 102400\nworkingset_refault_anon 0\nworkingset_refault_file 12\nworkingset_activate_anon 0\n\
         workingset_activate_file 3\nworkingset_restore_anon 0\nworkingset_restore_file 0\nworkingset_nodereclaim 0\npgscan 0\n\
         pgsteal 0\npgscan_kswapd 0\npgscan_direct 0\npgsteal_kswapd 0\npgsteal_direct 0\npgfault {}\npgmajfault 3\npgrefill 0\n\
         pgactivate 5\npgdeactivate 0\npglazyfree 0\npglazyfreed 0\nthp_fault_alloc 0\nthp_collapse_alloc 0\n",
            file / 4,
            file / 2,
            file / 2,
            anon / 4096
        ),
    )?;
    w(&dir.join("memory.events"), "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n")?;
    w(&dir.join("memory.max"), if quota { "536870912\n" } else { "max\n" })?;
    w(&dir.join("memory.min"), "0\n")?;
    w(&dir.join("memory.swap.current"), "0\n")?;
    w(&dir.join("memory.swap.max"), "max\n")?;
    w(
        &dir.join("io.stat"),
        &format!(
            "8:0 rbytes={} wbytes={} rios={} wios={} dbytes=0 dios=0\n",
            seed * 4096,
            seed * 8192,
            seed,
            seed * 2
        ),
    )?;
    w(&dir.join("pids.current"), "3\n")?;
    w(&dir.join("pids.max"), "4096\n")?;
    for f in ["cpu.pressure", "memory.pressure", "io.pressure"] {
        w(
            &dir.join(f),
            &format!(
                "some avg10=0.00 avg60=0.00 avg300=0.00 total={}\nfull avg10=0.00 avg60=0.00 avg300=0.00 total={}\n",
                seed * 10,
                seed * 5
            ),
        )?;
    }
    w(&dir.join("cgroup.procs"), &pid.map(|p| format!("{p}\n")).unwrap_or_default())
}

/// Writes a node with `pods` pods of `containers_per_pod` app containers each (plus one sandbox
/// per pod) under `root` (`root/proc`, `root/sys`, `root/root`). Every pod has its own network
/// namespace. Returns the number of container cgroups.
pub fn write_node(root: &Path, pods: usize, containers_per_pod: usize) -> io::Result<usize> {
    let proc = root.join("proc");
    w(&proc.join("1/mountinfo"), "26 1 0:24 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n")?;
    std::fs::create_dir_all(proc.join("1/ns"))?;
    let _ = std::fs::remove_file(proc.join("1/ns/net"));
    std::os::unix::fs::symlink("net:[4026531840]", proc.join("1/ns/net"))?;
    let netdev = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo: 1 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0\n  eth0: 1416 16 1 2 0 0 0 0 878 9 0 3 0 0 0 0\n";
    w(&proc.join("1/net/dev"), netdev)?;
    w(&proc.join("stat"), "cpu  1 0 1 1 0 0 0 0 0 0\ncpu0 1 0 1 1 0 0 0 0 0 0\nbtime 1795818150\n")?;
    w(&proc.join("meminfo"), "MemTotal: 8039148 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n")?;
    w(&proc.join("cpuinfo"), "processor\t: 0\n")?;
    let cg = root.join("sys/fs/cgroup");
    w(&cg.join("cgroup.controllers"), "cpuset cpu io memory hugetlb pids rdma misc\n")?;
    cgroup(&cg, 1, false, Some(1))?;
    let qos = cg.join("kubepods.slice/kubepods-burstable.slice");
    cgroup(&cg.join("kubepods.slice"), 2, false, None)?;
    cgroup(&qos, 3, false, None)?;
    let mut containers = 0;
    let mut pid = 1000u32;
    for p in 0..pods {
        let uid = format!("{:08x}_2009_4eef_9311_{:012x}", p, p);
        let pod = qos.join(format!("kubepods-burstable-pod{uid}.slice"));
        cgroup(&pod, 10 + p as u64, true, None)?;
        for c in 0..=containers_per_pod {
            let id = format!("{:016x}{:048x}", p, c);
            pid += 1;
            cgroup(&pod.join(format!("cri-containerd-{id}.scope")), (p * 31 + c) as u64, c > 0, Some(pid))?;
            let pdir = proc.join(pid.to_string());
            std::fs::create_dir_all(pdir.join("ns"))?;
            let _ = std::fs::remove_file(pdir.join("ns/net"));
            std::os::unix::fs::symlink(
                format!("net:[{}]", 4_026_532_000u64 + p as u64),
                pdir.join("ns/net"),
            )?;
            w(&pdir.join("net/dev"), netdev)?;
            containers += 1;
        }
    }
    Ok(containers)
}

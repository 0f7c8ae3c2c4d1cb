//! Writes a synthetic cgroup v2 node (for `kahu serve --path.procfs DIR/proc --path.sysfs DIR/sys
//! --path.rootfs DIR/root`): `kahu-synth-node DIR PODS CONTAINERS_PER_POD`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = match args.as_slice() {
        [dir, pods, per_pod] => {
            pods.parse::<usize>().ok().zip(per_pod.parse::<usize>().ok()).map(|(p, c)| (dir.clone(), p, c))
        }
        _ => None,
    };
    let Some((dir, pods, per_pod)) = parsed else {
        eprintln!("usage: kahu-synth-node DIR PODS CONTAINERS_PER_POD");
        return ExitCode::from(2);
    };
    match kahu_exporter::synth::write_node(std::path::Path::new(&dir), pods, per_pod) {
        Ok(n) => {
            println!("{n} containers written under {dir}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kahu-synth-node: {e}");
            ExitCode::FAILURE
        }
    }
}

//! `kahu_tsdb_*` self-metrics: the storage engine's figures ([`kahu_tsdb::TsdbStats`]) as metric
//! families of the `/metrics` snapshot, named after Prometheus' `prometheus_tsdb_*`.

use kahu_exporter::{Batch, MetricType};
use kahu_tsdb::TsdbStats;

const NO_LABELS: [(&str, &str); 0] = [];

/// Adds the families for `st` to `batch`.
pub fn add(batch: &mut Batch, st: &TsdbStats) {
    let h = &st.head;
    let w = &st.wal;
    let gauge = |b: &mut Batch, name: &str, help: &'static str, v: f64| {
        b.family(name, help, MetricType::Gauge).sample(NO_LABELS, v);
    };
    let counter = |b: &mut Batch, name: &str, help: &'static str, v: u64| {
        b.family(name, help, MetricType::Counter).sample(NO_LABELS, v as f64);
    };
    gauge(batch, "kahu_tsdb_head_series", "Series in the head.", h.series as f64);
    counter(
        batch,
        "kahu_tsdb_head_series_created_total",
        "Series created in the head (WAL replay included).",
        h.series_created,
    );
    counter(
        batch,
        "kahu_tsdb_head_samples_appended_total",
        "Samples committed to the head.",
        h.samples_appended,
    );
    counter(
        batch,
        "kahu_tsdb_head_samples_replayed_total",
        "Samples replayed from the WAL at start.",
        h.samples_replayed,
    );
    let rejected = batch.family(
        "kahu_tsdb_head_samples_rejected_total",
        "Samples the head rejected, by reason.",
        MetricType::Counter,
    );
    for (reason, v) in [
        ("out_of_order", h.rejected.out_of_order),
        ("duplicate", h.rejected.duplicate),
        ("out_of_bounds", h.rejected.out_of_bounds),
        ("invalid_labels", h.rejected.invalid_labels),
    ] {
        rejected.sample([("reason", reason)], v as f64);
    }
    counter(batch, "kahu_tsdb_head_chunks_created_total", "Head chunks cut.", h.chunks_created);
    if let (Some(min), Some(max)) = (h.min_time, h.max_time) {
        gauge(
            batch,
            "kahu_tsdb_head_min_time",
            "Oldest timestamp in the head, in ms since the epoch.",
            min as f64,
        );
        gauge(
            batch,
            "kahu_tsdb_head_max_time",
            "Newest timestamp in the head, in ms since the epoch.",
            max as f64,
        );
    }
    gauge(
        batch,
        "kahu_tsdb_head_memory_bytes",
        "Estimated heap bytes of head series, chunks, index and symbols.",
        h.heap_bytes as f64,
    );
    gauge(
        batch,
        "kahu_tsdb_head_bytes_per_series",
        "Estimated heap bytes per head series.",
        h.bytes_per_series as f64,
    );
    gauge(batch, "kahu_tsdb_wal_segments", "WAL segment files.", w.segments as f64);
    gauge(batch, "kahu_tsdb_wal_storage_size_bytes", "Bytes in WAL segment files.", w.bytes as f64);
    counter(
        batch,
        "kahu_tsdb_wal_corruptions_total",
        "Damaged WAL places found (and repaired) by replay.",
        w.corruptions,
    );
    counter(batch, "kahu_tsdb_wal_writes_failed_total", "Failed WAL writes and fsyncs.", w.write_failures);
    counter(batch, "kahu_tsdb_wal_fsyncs_total", "WAL fsyncs.", w.fsyncs);
    gauge(
        batch,
        "kahu_tsdb_wal_poisoned",
        "1 when a failed fsync stopped the WAL; restart kahu.",
        f64::from(u8::from(w.poisoned)),
    );
    gauge(
        batch,
        "kahu_tsdb_wal_replay_duration_seconds",
        "Time the WAL replay at start took.",
        w.replay_seconds,
    );
    let b = &st.blocks;
    gauge(batch, "kahu_tsdb_blocks_loaded", "Blocks loaded.", b.loaded as f64);
    gauge(batch, "kahu_tsdb_storage_blocks_bytes", "Bytes of the loaded blocks on disk.", b.bytes as f64);
    gauge(
        batch,
        "kahu_tsdb_storage_bytes",
        "Bytes on disk: blocks and WAL segments.",
        (b.bytes + w.bytes) as f64,
    );
    if b.samples > 0 {
        gauge(
            batch,
            "kahu_tsdb_blocks_bytes_per_sample",
            "Bytes on disk per sample of the loaded blocks.",
            b.bytes as f64 / b.samples as f64,
        );
    }
    if let Some(min) = b.min_time {
        gauge(batch, "kahu_tsdb_lowest_timestamp", "Oldest block time, in ms since the epoch.", min as f64);
    }
    counter(batch, "kahu_tsdb_head_persisted_total", "Head block ranges persisted into blocks.", b.persisted);
    counter(
        batch,
        "kahu_tsdb_head_persist_failed_total",
        "Failed attempts to persist the head.",
        b.persist_failed,
    );
    counter(batch, "kahu_tsdb_compactions_total", "Block compactions done.", b.compactions);
    counter(
        batch,
        "kahu_tsdb_compactions_failed_total",
        "Block compactions that failed.",
        b.compactions_failed,
    );
    counter(
        batch,
        "kahu_tsdb_compaction_samples_total",
        "Samples written by block compactions.",
        b.samples_compacted,
    );
    batch
        .family(
            "kahu_tsdb_compaction_seconds_total",
            "Time spent in block compactions, from the plan to the new block in place.",
            MetricType::Counter,
        )
        .sample(NO_LABELS, b.compaction_seconds);
    counter(
        batch,
        "kahu_tsdb_blocks_quarantined_total",
        "Damaged blocks moved into the quarantine directory.",
        b.quarantined,
    );
    counter(
        batch,
        "kahu_tsdb_retention_deleted_blocks_total",
        "Blocks deleted by retention (time or size).",
        b.retention_deleted,
    );
    counter(batch, "kahu_tsdb_checkpoints_total", "WAL checkpoints written.", b.checkpoints);
}

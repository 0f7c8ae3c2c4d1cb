//! Shared workload generators for kahu benchmarks.

//! Compaction and retention planning: pure functions of block metadata (no disk), as in
//! Prometheus' `LeveledCompactor.plan` and `DB.beyond{Time,Size}Retention`. Executing the plans
//! (merging blocks, deleting them) is the caller's job.

/// What the planners need to know about a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockInfo {
    /// The block's id.
    pub ulid: String,
    /// Start of its range (inclusive).
    pub min_time: i64,
    /// End of its range (exclusive).
    pub max_time: i64,
    /// Bytes on disk.
    pub size: u64,
}

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

/// The leveled compaction ranges for a base block range: each level 3× the previous (2 h →
/// 6 h → 18 h → 54 h …, as Prometheus' `ExponentialBlockRanges(2h, 10, 3)`), never larger than
/// 10% of the retention time nor 31 days.
pub fn ranges(block_range: i64, retention: Option<i64>) -> Vec<i64> {
    let cap = retention.map_or(31 * DAY, |r| (r / 10).min(31 * DAY));
    let mut out = vec![block_range];
    let mut r = block_range;
    for _ in 0..9 {
        r = r.saturating_mul(3);
        if r > cap {
            break;
        }
        out.push(r);
    }
    out
}

/// The blocks to compact next into one, or empty when there is nothing to do.
///
/// - Overlapping blocks (from backfill) are merged first, whatever their sizes.
/// - The newest block is left alone, so it can be backed up before it is merged away.
/// - Otherwise, for each range above the base one, the first aligned window
///   `[k·range, (k+1)·range)` holding more than one block that is complete — it spans the
///   whole window, or newer blocks exist after it — is merged.
pub fn plan(blocks: &[BlockInfo], ranges: &[i64]) -> Vec<String> {
    let mut sorted: Vec<&BlockInfo> = blocks.iter().collect();
    sorted.sort_by_key(|b| (b.min_time, b.max_time));
    let overlapping = overlapping_group(&sorted);
    if !overlapping.is_empty() {
        return overlapping;
    }
    let Some((_newest, rest)) = sorted.split_last() else { return Vec::new() };
    let highest = rest.iter().map(|b| b.max_time).max().unwrap_or(i64::MIN);
    for &range in ranges.iter().skip(1) {
        for group in split_by_range(rest, range) {
            let (Some(first), Some(last)) = (group.first(), group.last()) else { continue };
            let window_end = first.min_time.div_euclid(range) * range + range;
            let spans_window = last.max_time - first.min_time == range;
            if group.len() > 1 && (spans_window || window_end <= highest) {
                return group.iter().map(|b| b.ulid.clone()).collect();
            }
        }
    }
    Vec::new()
}

/// The first run of blocks that overlap in time, if any.
fn overlapping_group(sorted: &[&BlockInfo]) -> Vec<String> {
    let mut group: Vec<String> = Vec::new();
    let mut group_max = i64::MIN;
    for b in sorted {
        if !group.is_empty() && b.min_time < group_max {
            group.push(b.ulid.clone());
            group_max = group_max.max(b.max_time);
            continue;
        }
        if group.len() > 1 {
            return group;
        }
        group = vec![b.ulid.clone()];
        group_max = b.max_time;
    }
    if group.len() > 1 { group } else { Vec::new() }
}

/// Blocks grouped by the aligned window of `range` they fall in entirely; blocks larger than
/// the window or crossing its edge are left out.
fn split_by_range<'a>(sorted: &[&'a BlockInfo], range: i64) -> Vec<Vec<&'a BlockInfo>> {
    let mut groups: Vec<Vec<&BlockInfo>> = Vec::new();
    let mut current: Option<i64> = None;
    for b in sorted {
        let start = b.min_time.div_euclid(range) * range;
        if b.max_time > start + range {
            current = None;
            continue;
        }
        if current == Some(start) {
            if let Some(g) = groups.last_mut() {
                g.push(b);
            }
        } else {
            groups.push(vec![b]);
            current = Some(start);
        }
    }
    groups
}

/// Retention limits. `None` disables a limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Keep blocks whose data ends within this many milliseconds of the newest data.
    pub time: Option<i64>,
    /// Keep the newest blocks whose sizes (plus `other_bytes`) add up to at most this.
    pub size: Option<u64>,
}

/// Blocks that retention deletes, newest data first considered.
///
/// - By time, measured from the newest block's end as Prometheus does (not from the clock), so
///   that backfilled history is not deleted the moment it arrives: a block is deleted when
///   `newest.max_time - block.max_time > time`.
/// - By size: walking from the newest block back, once the running total (starting at
///   `other_bytes`, the head and WAL) exceeds the limit, that block and every older one go.
pub fn retention_plan(blocks: &[BlockInfo], limits: Retention, other_bytes: u64) -> Vec<String> {
    let mut newest_first: Vec<&BlockInfo> = blocks.iter().collect();
    newest_first.sort_by_key(|b| std::cmp::Reverse((b.max_time, b.min_time)));
    let Some(newest) = newest_first.first() else { return Vec::new() };
    let newest_max = newest.max_time;
    let mut total = other_bytes;
    let mut over_size = false;
    let mut out = Vec::new();
    for b in &newest_first {
        let too_old = limits.time.is_some_and(|t| newest_max.saturating_sub(b.max_time) > t);
        total = total.saturating_add(b.size);
        over_size |= limits.size.is_some_and(|s| total > s);
        if too_old || over_size {
            out.push(b.ulid.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(id: &str, min_h: i64, max_h: i64) -> BlockInfo {
        BlockInfo { ulid: id.into(), min_time: min_h * HOUR, max_time: max_h * HOUR, size: 100 }
    }

    #[test]
    fn ranges_grow_threefold_and_stop_at_a_tenth_of_retention() {
        let cases: &[(&str, Option<i64>, Vec<i64>)] = &[
            (
                "With 15 days of retention the largest block is 1.5 days or less: 2h, 6h, 18h.",
                Some(15 * DAY),
                vec![2, 6, 18],
            ),
            ("With no retention limit ranges stop at 31 days.", None, vec![2, 6, 18, 54, 162, 486]),
            ("With 10 hours of retention no compaction level fits above 2h.", Some(10 * HOUR), vec![2]),
        ];
        for (name, retention, want) in cases {
            let got: Vec<i64> = ranges(2 * HOUR, *retention).into_iter().map(|r| r / HOUR).collect();
            assert_eq!(&got, want, "{name}");
        }
    }

    #[test]
    fn compaction_plans() {
        let r = [2 * HOUR, 6 * HOUR, 18 * HOUR];
        let cases: Vec<(&str, Vec<BlockInfo>, Vec<&str>)> = vec![
            ("No blocks, nothing to do.", vec![], vec![]),
            ("A single block is never compacted.", vec![b("a", 0, 2)], vec![]),
            (
                "Three 2h blocks filling a 6h window are not merged while the newest of them is the newest block.",
                vec![b("a", 0, 2), b("b", 2, 4), b("c", 4, 6)],
                vec![],
            ),
            (
                "Once a newer block exists, a full 6h window of three 2h blocks is merged.",
                vec![b("a", 0, 2), b("b", 2, 4), b("c", 4, 6), b("d", 6, 8)],
                vec!["a", "b", "c"],
            ),
            (
                "A window with a gap is merged once newer data has moved past it.",
                vec![b("a", 0, 2), b("c", 4, 6), b("d", 6, 8), b("e", 8, 10)],
                vec!["a", "c"],
            ),
            (
                "Blocks in an unfinished window wait for the window to complete.",
                vec![b("a", 6, 8), b("b", 8, 10), b("c", 10, 12)],
                vec![],
            ),
            (
                "Overlapping blocks from a backfill are merged first, whatever their sizes.",
                vec![b("a", 0, 6), b("b", 6, 8), b("x", 1, 3), b("c", 8, 10)],
                vec!["a", "x"],
            ),
            (
                "Three 6h blocks filling an 18h window are merged into the next level.",
                vec![b("a", 0, 6), b("b", 6, 12), b("c", 12, 18), b("d", 18, 20)],
                vec!["a", "b", "c"],
            ),
            (
                "A block already as large as the window is not merged again on its own.",
                vec![b("a", 0, 6), b("d", 6, 8), b("e", 8, 10)],
                vec![],
            ),
        ];
        for (name, blocks, want) in cases {
            assert_eq!(plan(&blocks, &r), want, "{name}");
        }
    }

    #[test]
    fn retention_plans() {
        let sized = |id: &str, min_h, max_h, size| BlockInfo { size, ..b(id, min_h, max_h) };
        type Case<'a> = (&'a str, Vec<BlockInfo>, Retention, u64, Vec<&'a str>);
        let cases: Vec<Case<'_>> = vec![
            (
                "Without limits nothing is deleted.",
                vec![b("a", 0, 2), b("b", 2, 4)],
                Retention::default(),
                0,
                vec![],
            ),
            (
                "Time is measured from the newest block, not the clock: old data that is all there is stays.",
                vec![b("a", 0, 2), b("b", 2, 4)],
                Retention { time: Some(3 * HOUR), size: None },
                0,
                vec![],
            ),
            (
                "A block ending more than the retention before the newest data is deleted.",
                vec![b("a", 0, 2), b("b", 2, 4), b("c", 4, 6)],
                Retention { time: Some(3 * HOUR), size: None },
                0,
                vec!["a"],
            ),
            (
                "A block ending exactly the retention before the newest data is kept.",
                vec![b("a", 0, 2), b("b", 2, 5)],
                Retention { time: Some(3 * HOUR), size: None },
                0,
                vec![],
            ),
            (
                "By size the oldest blocks go until the rest fits.",
                vec![sized("a", 0, 2, 50), sized("b", 2, 4, 50), sized("c", 4, 6, 50)],
                Retention { time: None, size: Some(120) },
                0,
                vec!["a"],
            ),
            (
                "The head and WAL count against the size limit.",
                vec![sized("a", 0, 2, 50), sized("b", 2, 4, 50), sized("c", 4, 6, 50)],
                Retention { time: None, size: Some(120) },
                30,
                vec!["b", "a"],
            ),
            (
                "Both limits apply; each deletes what it would alone.",
                vec![sized("a", 0, 2, 10), sized("b", 2, 4, 500), sized("c", 30, 32, 10)],
                Retention { time: Some(24 * HOUR), size: Some(100) },
                0,
                vec!["b", "a"],
            ),
        ];
        for (name, blocks, limits, other, want) in cases {
            assert_eq!(retention_plan(&blocks, limits, other), want, "{name}");
        }
    }
}

//! `/api/v1/admin/tsdb/*` (behind `--web.enable-admin-api`) on the `Db`: delete_series,
//! clean_tombstones and snapshot, as Prometheus' API does them.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use kahu_query::api::{Admin, AdminError};
use kahu_tsdb::Db;
use kahu_tsdb::model::Matcher;

/// The admin operations of the database.
pub struct DbAdmin(pub Arc<Db>);

/// The error with its causes, `outer: inner: …`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cur = c.source();
    }
    out
}

/// A snapshot directory name as Prometheus makes it: `20060102T150405Z` (UTC) and 16 hex digits
/// of a random 63-bit number.
pub fn snapshot_name(now: chrono::DateTime<chrono::Utc>) -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_i64(now.timestamp_nanos_opt().unwrap_or(0));
    let r = h.finish() & (i64::MAX as u64);
    format!("{}-{r:016x}", now.format("%Y%m%dT%H%M%SZ"))
}

impl Admin for DbAdmin {
    fn delete_series(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<(), AdminError> {
        self.0.delete_series(matchers, mint, maxt).map_err(|e| AdminError(chain(&e)))
    }

    fn clean_tombstones(&self) -> Result<(), AdminError> {
        self.0.clean_tombstones().map_err(|e| AdminError(chain(&e)))
    }

    fn snapshot(&self, skip_head: bool) -> Result<String, AdminError> {
        let name = snapshot_name(chrono::Utc::now());
        let dir = self.0.dir().join("snapshots").join(&name);
        std::fs::create_dir_all(&dir)
            .map_err(|e| AdminError(format!("create snapshot directory: {}", chain(&e))))?;
        self.0.snapshot(&dir, !skip_head).map_err(|e| AdminError(chain(&e)))?;
        tracing::info!(dir = %dir.display(), with_head = !skip_head, "snapshot written");
        Ok(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_names_look_like_prometheus_ones() {
        let t = chrono::DateTime::parse_from_rfc3339("2026-11-28T05:04:09Z").unwrap().to_utc();
        let a = snapshot_name(t);
        let (stamp, hex) = a.split_once('-').unwrap();
        assert_eq!(stamp, "20261128T050409Z");
        assert_eq!(hex.len(), 16);
        assert!(hex.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert!(u64::from_str_radix(hex, 16).unwrap() <= i64::MAX as u64);
        assert_ne!(a, snapshot_name(t), "random part");
    }
}

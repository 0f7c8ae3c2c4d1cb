//! `kahu serve`: opens the data directory, runs the collection loop, serves HTTP, and shuts down
//! gracefully on SIGINT or SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kahu_exporter::exposition::{self, Format};
use kahu_exporter::node::{CpuCollector, MeminfoCollector};
use kahu_exporter::{Batch, Collector};
use kahu_query::Engine;
use kahu_query::api;
use kahu_tsdb::{Appendable, Db};
use tokio::sync::{RwLock, watch};

use crate::cli::ServeArgs;

/// What the HTTP handlers and the collection loop share.
struct Shared {
    db: Arc<Db>,
    /// The last collection pass, served by /metrics without re-reading the kernel.
    snapshot: RwLock<Arc<Batch>>,
    ready: AtomicBool,
    /// Each collection pass, for /api/v1/targets.
    collection: Arc<crate::web::CollectionStatus>,
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    crate::logging::init(args.log_format, &args.log_level)?;
    let db = Db::open(&args.data_dir, kahu_tsdb::Options::default()).context("open data directory")?;
    let db = Arc::new(db);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("kahu")
        .build()
        .context("start async runtime")?;
    runtime.block_on(serve(args, db))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(args: ServeArgs, db: Arc<Db>) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listen on {}", args.listen))?;
    let local = listener.local_addr().context("read listen address")?;
    let collection = Arc::new(crate::web::CollectionStatus::new(local.to_string(), args.collect_interval));
    let shared = Arc::new(Shared {
        db,
        snapshot: RwLock::new(Arc::new(Batch::new())),
        ready: AtomicBool::new(false),
        collection: Arc::clone(&collection),
    });
    tracing::info!(address = %local, data_dir = %args.data_dir.display(), "kahu listening");

    let (stop_tx, stop_rx) = watch::channel(false);
    let collectors: Vec<Box<dyn Collector>> =
        vec![Box::new(CpuCollector::new(&args.procfs)), Box::new(MeminfoCollector::new(&args.procfs))];
    let collect_task = tokio::spawn(collection_loop(
        Arc::clone(&shared),
        collectors,
        args.collect_interval,
        stop_rx.clone(),
    ));

    let api_state = Arc::new(crate::web::api_state(
        &args,
        &shared.db,
        Engine::new(args.query.engine_options()),
        collection,
    )?);
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(|| async { "kahu is Healthy.\n" }).head(|| async {}))
        .route("/-/ready", get(ready).head(ready))
        .with_state(Arc::clone(&shared))
        .merge(api::router(api_state))
        .fallback(|| async { (StatusCode::NOT_FOUND, "404 page not found\n") });

    let mut stop_http = stop_rx;
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = stop_http.wait_for(|stop| *stop).await;
    });
    let signals = tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("received shutdown signal, stopping");
        let _ = stop_tx.send(true);
    });
    server.await.context("serve HTTP")?;
    signals.abort();
    let _ = collect_task.await;
    tracing::info!("kahu stopped");
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(err) => {
            tracing::warn!(error = %err, "cannot listen for SIGTERM; only SIGINT stops kahu");
            let _ = ctrl_c.await;
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Runs one pass at start, then one at every multiple of `interval` (aligned to the wall clock,
/// so that all kahu instances sample at the same instants).
async fn collection_loop(
    shared: Arc<Shared>,
    collectors: Vec<Box<dyn Collector>>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let interval_ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX).max(1);
    let collectors = Arc::new(std::sync::Mutex::new(collectors));
    let mut t = now_ms();
    loop {
        let pass_shared = Arc::clone(&shared);
        let pass_collectors = Arc::clone(&collectors);
        let pass = tokio::task::spawn_blocking(move || collect_once(&pass_shared, &pass_collectors, t));
        match pass.await {
            Ok(batch) => {
                *shared.snapshot.write().await = Arc::new(batch);
                shared.ready.store(true, Ordering::Release);
            }
            Err(err) => tracing::error!(error = %err, "collection pass failed"),
        }
        let next = (t.div_euclid(interval_ms) + 1).saturating_mul(interval_ms);
        let wait = Duration::from_millis(u64::try_from(next - now_ms()).unwrap_or(0));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        t = next;
    }
}

fn collect_once(shared: &Shared, collectors: &std::sync::Mutex<Vec<Box<dyn Collector>>>, t: i64) -> Batch {
    let mut batch = Batch::new();
    let (started, clock) = (SystemTime::now(), std::time::Instant::now());
    let mut first_error = None;
    match collectors.lock() {
        Ok(mut collectors) => {
            for c in collectors.iter_mut() {
                if let Err(err) = c.collect(&mut batch) {
                    tracing::warn!(collector = c.name(), error = %err, "collector failed");
                    first_error.get_or_insert_with(|| format!("{}: {err}", c.name()));
                }
            }
        }
        Err(_) => tracing::error!("collector state poisoned by an earlier panic"),
    }
    crate::web::record_metadata(shared.db.metadata(), &batch);
    shared.collection.record(started, clock.elapsed(), first_error);
    let mut app = shared.db.appender();
    let mut rejected = 0u64;
    for (labels, v) in batch.series() {
        if let Err(err) = app.append(&labels, t, v) {
            rejected += 1;
            tracing::debug!(error = %err, "sample rejected");
        }
    }
    match app.commit() {
        Ok(summary) => tracing::debug!(samples = summary.samples, rejected, "collection pass stored"),
        Err(err) => tracing::error!(error = %err, "store collection pass"),
    }
    batch
}

async fn metrics(
    axum::extract::State(shared): axum::extract::State<Arc<Shared>>,
    headers: HeaderMap,
) -> Response {
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let batch = Arc::clone(&*shared.snapshot.read().await);
    match exposition::encode(batch, format) {
        Ok(body) => ([(header::CONTENT_TYPE, format.content_type())], body).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "encode metrics\n").into_response(),
    }
}

async fn ready(axum::extract::State(shared): axum::extract::State<Arc<Shared>>) -> Response {
    if shared.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "kahu is Ready.\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable\n").into_response()
    }
}

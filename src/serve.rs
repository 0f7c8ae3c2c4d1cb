//! `kahu serve`: opens the data directory, runs the collection loop, serves HTTP, and shuts down
//! gracefully on SIGINT or SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kahu_query::Engine;
use kahu_query::api;
use kahu_tsdb::{Appendable, Db};
use tokio::sync::watch;

use crate::cli::ServeArgs;
use crate::exporter::{self, Exporter};

/// What the HTTP handlers and the collection loop share.
struct Shared {
    db: Arc<Db>,
    ready: AtomicBool,
    /// Each collection pass, for /api/v1/targets.
    collection: Arc<crate::web::CollectionStatus>,
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    crate::logging::init(args.log_format, &args.log_level)?;
    let db = Db::open(&args.data_dir, args.storage.tsdb_options()).context("open data directory")?;
    let db = Arc::new(db);
    // Persists the head into blocks, compacts them and applies retention, every minute (as
    // Prometheus does); stopped and joined when `run` returns.
    let _maintenance =
        db.start_maintenance(std::time::Duration::from_secs(60)).context("start storage maintenance")?;
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
    let shared = Arc::new(Shared { db, ready: AtomicBool::new(false), collection: Arc::clone(&collection) });
    let exporter = Arc::new(Exporter::new(&args.exporter)?);
    let stats_db = Arc::clone(&shared.db);
    exporter.set_self_metrics(Box::new(move |batch| crate::tsdb_metrics::add(batch, &stats_db.stats())));
    tracing::info!(address = %local, data_dir = %args.data_dir.display(), "kahu listening");

    let (stop_tx, stop_rx) = watch::channel(false);
    let pass_shared = Arc::clone(&shared);
    let collect_task = tokio::spawn(exporter::collection_loop(
        Arc::clone(&exporter),
        Arc::clone(&shared.db) as Arc<dyn Appendable>,
        args.collect_interval,
        stop_rx.clone(),
        move |batch, pass| {
            crate::web::record_metadata(pass_shared.db.metadata(), batch);
            pass_shared.collection.record(pass.started, pass.took, pass.error.clone());
            pass_shared.ready.store(true, Ordering::Release);
        },
    ));

    let api_state = Arc::new(crate::web::api_state(
        &args,
        &shared.db,
        Engine::new(args.query.engine_options()),
        collection,
    )?);
    let remote_write = Arc::new(api::remote_write::RemoteWriteState {
        appendable: Arc::clone(&shared.db) as Arc<dyn Appendable>,
        metadata: Some(Arc::clone(shared.db.metadata())),
        max_request_bytes: usize::try_from(args.storage.remote_write_max_request_bytes).unwrap_or(usize::MAX),
        series_cache: Default::default(),
    });
    let app = Router::new()
        .route("/-/healthy", get(|| async { "kahu is Healthy.\n" }).head(|| async {}))
        .route("/-/ready", get(ready).head(ready))
        .with_state(Arc::clone(&shared))
        .merge(exporter::routes(exporter))
        .merge(api::router(api_state))
        .merge(api::remote_write::router(remote_write))
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

async fn ready(axum::extract::State(shared): axum::extract::State<Arc<Shared>>) -> Response {
    if shared.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "kahu is Ready.\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable\n").into_response()
    }
}

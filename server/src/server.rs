//! Running the server: open the store, start the hub, bind HTTP and the
//! control socket, tick the clock, and drain on SIGTERM. Owns process
//! lifetime; no request handling lives here.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

use crate::app::App;
use crate::clock::Knobs;
use crate::config::SiteConfig;
use crate::config::store::{Postgres, StoreKind};
use crate::engine::Command;
use crate::http::router;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::store::StoreError;
use crate::store::postgres::PgStore;
use crate::store::sled::SledStore;

/// The control socket in the data directory (backup while running).
pub fn control_socket(data_dir: &Path) -> PathBuf {
    data_dir.join("control.sock")
}

/// Runs until SIGTERM or SIGINT. `announce` is called with the bound address.
pub async fn serve(
    config: SiteConfig,
    knobs: Knobs,
    announce: impl FnOnce(SocketAddr),
) -> anyhow::Result<()> {
    // Thousands of screens need thousands of sockets.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::debug!(limit = n, "open file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open file limit"),
    }
    let data_dir = config.server.data_dir.clone();
    // With sled the store makes it; with PostgreSQL it still holds the
    // control socket.
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let addr = listener.local_addr()?;
    let config = Arc::new(config);
    let metrics = Arc::new(Metrics::new());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let hub = start_hub(&config, &metrics, knobs, &shutdown_rx).await?;
    if hub.role().borrow().is_primary() {
        crate::notify::ensure_vapid(&hub, &config).await?;
    } else {
        // A PostgreSQL server writes nothing before it takes the store over.
        let (hub, config) = (hub.clone(), config.clone());
        tokio::spawn(async move {
            let mut role = hub.role();
            while !role.borrow_and_update().is_primary() {
                if role.changed().await.is_err() {
                    return;
                }
            }
            if let Err(e) = crate::notify::ensure_vapid(&hub, &config).await {
                tracing::error!(error = %e, "cannot make the Web Push key pair");
            }
        });
    }
    crate::notify::start(&hub, &config)?;
    let screens = ScreensRuntime::start()?;
    let hooks = crate::hooks::Hooks::start(&hub, &config, knobs.clock)
        .await
        .context("cannot start webhook delivery")?;
    let app = Arc::new(
        App::new(
            hub.clone(),
            config.clone(),
            metrics.clone(),
            screens.handle(),
            crate::fanout::Fanout::start(&screens.handle(), &hub, screens.cores),
            shutdown_rx.clone(),
        )
        .with_hooks(hooks),
    );
    let ticker = spawn_ticker(hub.clone(), shutdown_rx.clone()).await;
    let control = spawn_control_socket(&data_dir, hub.clone(), shutdown_rx.clone())?;

    tracing::info!(%addr, site = %config.site.name, "luot-server listening");
    announce(addr);
    // Under systemd (Type=notify): ready once the state is loaded and the port is open.
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    let server = tokio::spawn(accept_loop(listener, router(app), shutdown_rx));

    wait_for_signal().await;
    let _ = shutdown_tx.send(true);
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    drain(server, &metrics).await;
    drop(screens);
    ticker.abort();
    control.abort();
    hub.shutdown().await;
    let _ = std::fs::remove_file(control_socket(&data_dir));
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Opens the store and loads the queue state into a running hub: sled, or
/// PostgreSQL with its controller (the server serves once it has taken the
/// store over, rule 104) and its beat.
async fn start_hub(
    config: &Arc<SiteConfig>,
    metrics: &Arc<Metrics>,
    knobs: Knobs,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<Hub> {
    if !knobs.clock.is_real() {
        tracing::warn!("the queue clock is shifted or runs faster (tests only)");
    }
    let t0 = std::time::Instant::now();
    let hub = match &config.store {
        StoreKind::Sled => {
            let data_dir = &config.server.data_dir;
            let store = SledStore::open(data_dir).with_context(|| {
                format!(
                    "cannot open the data directory {} (if it is damaged, restore a backup with `luot-server restore --from FILE`)",
                    data_dir.display()
                )
            })?;
            Hub::start(config.clone(), Arc::new(store), metrics.clone(), knobs).with_context(|| {
                format!(
                    "cannot load the queue state from {} (restore a backup with `luot-server restore --from FILE`)",
                    data_dir.display()
                )
            })?
        }
        StoreKind::Postgres(pg) => {
            let store = Arc::new(open_postgres(config, pg).await?);
            let (c, s, m) = (config.clone(), store.clone(), metrics.clone());
            let hub = tokio::task::spawn_blocking(move || Hub::start_standby(c, s, m, knobs))
                .await?
                .context("cannot start the hub")?;
            let node = node_name(config);
            let controller =
                crate::ha::Controller::new(store, config.ha.clone(), node, hub.clone());
            tokio::spawn(controller.run(stop.clone()));
            let beating = hub.clone();
            let mut stop = stop.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tokio::select! {
                        _ = every.tick() => beating.beat(),
                        _ = stop.changed() => break,
                    }
                }
            });
            hub
        }
    };
    let seq = hub.seq().await;
    let took_ms = t0.elapsed().as_millis() as u64;
    tracing::info!(seq, took_ms, "state loaded");
    Ok(hub)
}

/// This server's node name (rule 104): `[ha] node`, else the host's.
pub fn node_name(config: &SiteConfig) -> String {
    config
        .ha
        .as_ref()
        .map_or_else(crate::config::store::host_node, |h| h.node.clone())
}

/// Connects to the site's PostgreSQL, trying again every second while it
/// cannot be reached (it may be starting too); a database that would not
/// wait for the disk stops the server (rule 100).
async fn open_postgres(config: &SiteConfig, pg: &Postgres) -> anyhow::Result<PgStore> {
    let node = node_name(config);
    let url = config.ha.as_ref().and_then(|h| h.url.clone());
    let mut said = false;
    loop {
        let (site, pg2, node2, url2) = (
            config.site.id.clone(),
            pg.clone(),
            node.clone(),
            url.clone(),
        );
        let opened = tokio::task::spawn_blocking(move || {
            PgStore::open(&site, &pg2, &node2, url2.as_deref())
        })
        .await?;
        match opened {
            Ok(s) => return Ok(s),
            Err(e @ (StoreError::Unsafe(_) | StoreError::TooNew(_) | StoreError::Io(_))) => {
                return Err(anyhow::anyhow!(e));
            }
            Err(e) => {
                if !said {
                    tracing::warn!(error = %e, "cannot open the store in PostgreSQL yet; trying again every second");
                    said = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// The day rolls over even when nobody presses a button: a tick now and
/// every 2 s.
async fn spawn_ticker(hub: Hub, mut stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    hub.command(Command::Tick).await.ok();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(2));
        loop {
            tokio::select! {
                _ = every.tick() => { let _ = hub.command(Command::Tick).await; }
                _ = stop.changed() => break,
            }
        }
    })
}

async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: draining"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: draining"),
    }
}

/// Gives connections a bounded time to finish once `shutdown` is set.
async fn drain(
    server: tokio::task::JoinHandle<tokio::sync::mpsc::Receiver<()>>,
    metrics: &Metrics,
) {
    if let Ok(mut open) = server.await
        && tokio::time::timeout(Duration::from_secs(10), async {
            while open.recv().await.is_some() {}
        })
        .await
        .is_err()
    {
        tracing::warn!("connections did not close within 10 s");
    }
    // Screens close with 1001 on their own once `shutdown` is set.
    let t0 = std::time::Instant::now();
    while metrics.ws_clients.get() > 0 && t0.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The screens' runtime; stopped without blocking when dropped (a runtime
/// dropped the ordinary way inside another runtime panics). Screens get
/// threads of their own, with one fan-out shard per core (see ws.rs and
/// fanout.rs): the OS then shares the cores between screen fan-out and the
/// kiosks' and staff's requests instead of queueing those behind thousands
/// of screen writes.
struct ScreensRuntime {
    rt: Option<tokio::runtime::Runtime>,
    cores: usize,
}

impl ScreensRuntime {
    fn start() -> anyhow::Result<ScreensRuntime> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cores)
            .thread_name("luot-screens")
            .enable_all()
            .build()
            .context("cannot start the screens' runtime")?;
        Ok(ScreensRuntime {
            rt: Some(rt),
            cores,
        })
    }

    fn handle(&self) -> tokio::runtime::Handle {
        match &self.rt {
            Some(rt) => rt.handle().clone(),
            None => tokio::runtime::Handle::current(),
        }
    }
}

impl Drop for ScreensRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// How long a client may take to send a request's headers: a client that
/// trickles bytes (slow-loris) cannot hold connections open for long.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts HTTP connections until `stop` is set; returns a receiver that
/// ends once every open HTTP connection has finished (each is asked to finish
/// its request in flight and close). Each connection: TCP_NODELAY (screens
/// and kiosks exchange small frames), a header read timeout, websocket
/// upgrades, and the peer address for `ConnectInfo`. HTTP/1.1 only, served
/// by hyper directly so that an upgraded websocket is still a `TcpStream`
/// (see `wire.rs`).
pub(crate) async fn accept_loop(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    mut stop: watch::Receiver<bool>,
) -> tokio::sync::mpsc::Receiver<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let (open_tx, open_rx) = tokio::sync::mpsc::channel::<()>(1);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, say: wait a little, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let router = router.clone();
        let service =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                let router = router.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(
                        tower::ServiceExt::oneshot(router, req.map(axum::body::Body::new))
                            .await
                            .unwrap_or_else(|e| match e {}),
                    )
                }
            });
        let conn = http
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let open = open_tx.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let _open = open;
            let mut conn = std::pin::pin!(conn);
            let r = tokio::select! {
                r = conn.as_mut() => r,
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = r {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    open_rx
}

fn spawn_control_socket(
    data_dir: &Path,
    hub: Hub,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let path = control_socket(data_dir);
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)
        .with_context(|| format!("cannot create the control socket {}", path.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                conn = listener.accept() => {
                    if let Ok((stream, _)) = conn {
                        let hub = hub.clone();
                        tokio::spawn(async move { let _ = control(stream, hub).await; });
                    }
                }
                _ = stop.changed() => break,
            }
        }
    }))
}

async fn control(stream: UnixStream, hub: Hub) -> anyhow::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut line = String::new();
    BufReader::new(r).read_line(&mut line).await?;
    match line.trim() {
        "ping" => w.write_all(b"pong\n").await?,
        "backup" => {
            let bytes = hub.backup().await?;
            tracing::info!(bytes = bytes.len(), "backup taken over the control socket");
            w.write_all(&bytes).await?;
        }
        other => {
            w.write_all(format!("unknown command {other}\n").as_bytes())
                .await?
        }
    }
    w.shutdown().await?;
    Ok(())
}

/// Asks a running server for a backup; `None` when no server answers.
pub fn backup_from_running(data_dir: &Path) -> Option<anyhow::Result<Vec<u8>>> {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(control_socket(data_dir)).ok()?;
    Some((|| {
        s.write_all(b"backup\n")?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf)?;
        Ok(buf)
    })())
}

/// Whether a server is running on this data directory.
pub fn is_running(data_dir: &Path) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(control_socket(data_dir)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 5];
    s.write_all(b"ping\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"pong\n"
}

//! Process lifetime of `luot-central serve`: connect to the database and
//! create the schema, bind, accept connections (HTTPS with `tls_cert` and
//! `tls_key`, else plain HTTP on a loopback address), each served by hyper's
//! HTTP/1.1 with the peer's address for `/metrics`, and stop on SIGTERM or
//! Ctrl-C (no new connections; those in flight get 5 s).
//!
//! Owns sockets and certificates; decides nothing about requests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tower::ServiceExt;

use crate::config::{CentralConfig, Tls};
use crate::db::Db;
use crate::http::{self, Central};

/// Loads the certificate chain and key (PEM).
pub fn tls_acceptor(tls: &Tls) -> anyhow::Result<TlsAcceptor> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .with_context(|| format!("cannot read central.tls_cert {}", tls.cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("central.tls_cert {} is not PEM", tls.cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!(
            "central.tls_cert {} holds no certificate",
            tls.cert.display()
        );
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key)
        .with_context(|| format!("cannot read central.tls_key {} (PEM)", tls.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("central.tls_cert and central.tls_key do not make a certificate")?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// Runs the service until SIGTERM or Ctrl-C.
pub async fn serve(cfg: CentralConfig) -> anyhow::Result<()> {
    let acceptor = cfg.tls.as_ref().map(tls_acceptor).transpose()?;
    let db = Db::new(&cfg.store)?;
    db.init(&cfg.sites)
        .await
        .context("cannot reach central's database ([store] url)")?;
    let listener = TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let app = Central::new(cfg, db);
    if let Err(e) = app.load_metrics().await {
        tracing::warn!(error = %e, "metrics not loaded from the database");
    }
    let router = http::router(app);
    tracing::info!(%addr, tls = acceptor.is_some(), "luot-central listening");
    // Tests and scripts read the bound address from this line.
    eprintln!(
        "luot-central listening on {}://{addr}",
        if acceptor.is_some() { "https" } else { "http" }
    );
    run(listener, acceptor, router, shutdown()).await;
    Ok(())
}

async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Accepts connections until `stop` resolves.
pub async fn run(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    stop: impl std::future::Future<Output = ()>,
) {
    let mut conns = tokio::task::JoinSet::new();
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut stop => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let tls = tls.clone();
        conns.spawn(async move {
            let svc = router.map_request(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                req
            });
            let svc = TowerToHyperService::new(svc);
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.header_read_timeout(Duration::from_secs(10));
            builder.timer(hyper_util::rt::TokioTimer::new());
            let result = match tls {
                Some(acc) => {
                    match tokio::time::timeout(Duration::from_secs(10), acc.accept(stream)).await {
                        Ok(Ok(s)) => builder.serve_connection(TokioIo::new(s), svc).await,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    }
                }
                None => builder.serve_connection(TokioIo::new(stream), svc).await,
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
        });
        while conns.try_join_next().is_some() {}
    }
    tracing::info!("stopping: draining connections");
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while conns.join_next().await.is_some() {}
    })
    .await;
}

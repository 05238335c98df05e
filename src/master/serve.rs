//! `master serve`: the API over HTTPS (rustls with the ring provider) or,
//! on loopback or with `allow_plain_http`, plain HTTP, as a systemd
//! `Type=notify` service.
//!
//! Signals are installed first. READY=1 follows the bind; SIGHUP re-reads
//! the key file (it is also watched, so `rotate-key` is followed without
//! one); SIGTERM/SIGINT send STOPPING=1 and drain the connections. The
//! reconciliation runs every `reconcile_interval_secs`.

use super::api::{self, AppState};
use super::crypto::Vault;
use super::repo::Repo;
use super::rotate::PidFile;
use super::{MasterError, MasterResult};
use crate::config::MasterServerConfig;
use crate::daemon::notify;
use crate::signals::{Signal, SignalStream};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How often the key file is checked for a change.
const KEY_POLL: Duration = Duration::from_secs(1);
/// How long open connections get to finish on stop.
const DRAIN: Duration = Duration::from_secs(10);

/// A rustls server configuration from PEM files, with the ring provider.
pub fn tls_config(cert: &Path, key: &Path) -> MasterResult<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let setup = |what: &str, path: &Path, e: &dyn std::fmt::Display| {
        MasterError::Setup(format!("{what} {}: {e}", path.display()))
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| setup("tls_cert", cert, &e))?;
    if certs.is_empty() {
        return Err(setup("tls_cert", cert, &"no certificate in the file"));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| setup("tls_key", key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| MasterError::Setup(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| setup("tls_cert/tls_key", cert, &e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Run until SIGTERM or SIGINT.
pub async fn serve(cfg: &MasterServerConfig) -> MasterResult<()> {
    let mut signals = SignalStream::install(&[Signal::Hangup, Signal::Terminate, Signal::Interrupt])
        .map_err(|e| MasterError::Setup(format!("cannot install signal handlers: {e}")))?;
    let repo = Arc::new(Repo::open(&cfg.state_dir)?);
    let vault = Arc::new(Vault::open(&cfg.key_file)?);
    if let Some(id) = repo.primary_key_id()?
        && !vault.ring().ids().contains(&id)
    {
        return Err(MasterError::Crypto(format!(
            "{} does not hold key {id}, which the database was sealed with",
            cfg.key_file.display()
        )));
    }
    let tls = cfg.tls.as_ref().map(|(c, k)| tls_config(c, k)).transpose()?;
    let listener = std::net::TcpListener::bind(cfg.listen)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| MasterError::Setup(format!("cannot listen on {} (master_server.listen): {e}", cfg.listen)))?;
    let addr: SocketAddr = listener.local_addr().unwrap_or(cfg.listen);
    let state = Arc::new(AppState::new(
        repo.clone(),
        vault.clone(),
        Duration::from_secs(cfg.lease_ttl_secs),
    ));
    let app = api::router(state.clone()).into_make_service();
    let handle = axum_server::Handle::new();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let server = match tls {
        Some(config) => {
            let rustls = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(config));
            let server = axum_server::from_tcp_rustls(listener, rustls)
                .map_err(|e| MasterError::Setup(format!("cannot listen on {addr}: {e}")))?
                .handle(handle.clone());
            tokio::spawn(async move { server.serve(app).await })
        }
        None => {
            let server = axum_server::from_tcp(listener)
                .map_err(|e| MasterError::Setup(format!("cannot listen on {addr}: {e}")))?
                .handle(handle.clone());
            tokio::spawn(async move { server.serve(app).await })
        }
    };
    let _pid = PidFile::create(&cfg.state_dir)
        .map_err(|e| MasterError::Setup(format!("cannot write the pid file in {}: {e}", cfg.state_dir.display())))?;
    tracing::info!(%addr, scheme, database = %repo.path().display(), "Master listening.");
    notify::ready();
    notify::status(&format!("Serving {scheme}://{addr}"));

    let mut key_poll = tokio::time::interval(KEY_POLL);
    let every = Duration::from_secs(cfg.reconcile_interval_secs);
    let mut reconcile = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    reconcile.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut server = server;
    let outcome = loop {
        tokio::select! {
            s = signals.recv() => match s {
                Some(Signal::Hangup) => reload_keys(&vault, "SIGHUP"),
                Some(sig) => {
                    tracing::info!(signal = sig.name(), "Stopping.");
                    break Ok(());
                }
                None => break Ok(()),
            },
            _ = key_poll.tick() => {
                if let Err(e) = vault.reload_if_changed().map(|c| c.map(|ids| log_keys(&ids, "the key file changed"))) {
                    tracing::error!(error = %e, "Cannot re-read the key file; keeping the keys in use.");
                }
            }
            _ = reconcile.tick() => {
                if state.reconcile_lock.try_lock().is_err() {
                    tracing::warn!("The previous reconciliation still runs; this one is skipped.");
                    continue;
                }
                let state = state.clone();
                tokio::spawn(async move {
                    if let Err(e) = super::reconcile::run(&state, false, state.stale_upload_after).await {
                        tracing::error!(error = %e, "Scheduled reconciliation failed.");
                    }
                });
            }
            r = &mut server => {
                break match r {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(MasterError::Setup(format!("the server stopped: {e}"))),
                    Err(e) => Err(MasterError::Setup(format!("the server task failed: {e}"))),
                };
            }
        }
    };
    notify::stopping();
    handle.graceful_shutdown(Some(DRAIN));
    if !server.is_finished() {
        let _ = tokio::time::timeout(DRAIN + Duration::from_secs(1), &mut server).await;
    }
    outcome
}

fn log_keys(ids: &[String], why: &str) {
    tracing::info!(keys = ?ids, "Key ring re-read ({why}).");
}

fn reload_keys(vault: &Vault, why: &str) {
    match vault.reload() {
        Ok(Some(ids)) => log_keys(&ids, why),
        Ok(None) => tracing::info!("Key file re-read ({why}); no change."),
        Err(e) => tracing::error!(error = %e, "Cannot re-read the key file; keeping the keys in use."),
    }
}

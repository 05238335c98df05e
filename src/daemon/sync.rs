//! Node mode: the periodic sync with the master (see [`crate::node`]),
//! every `[master] sync_interval_secs` and on SIGHUP. A failed sync is
//! logged and retried with backoff; it never stops local scheduling.

use super::{Shared, lock};
use crate::catalog::Catalog;
use crate::config::Config;
use crate::node::{self, MasterClient};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// The first retry after a failed sync; doubled up to the interval.
const FIRST_RETRY: Duration = Duration::from_secs(10);

pub(super) async fn sync_loop(
    mut config_rx: watch::Receiver<Arc<Config>>,
    catalog: Arc<Catalog>,
    shared: Arc<Shared>,
    now: Arc<Notify>,
    stop: CancellationToken,
) {
    let mut retry = FIRST_RETRY;
    loop {
        let config = config_rx.borrow_and_update().clone();
        let wait = match config.node().map(MasterClient::new) {
            None => None,
            Some(Err(e)) => {
                warn!("Cannot sync with the master: {e}");
                Some(Duration::from_secs(60))
            }
            Some(Ok(client)) => {
                let interval = Duration::from_secs(config.node().map_or(300, |n| n.sync_interval_secs));
                match node::sync(&config, &catalog, &client).await {
                    Ok(resp) => {
                        info!(sites = resp.sites.len(), "Synced with the master.");
                        *lock(&shared.last_sync) = Some(crate::catalog::now_rfc3339());
                        retry = FIRST_RETRY;
                        Some(interval)
                    }
                    Err(e) => {
                        warn!("Sync with the master failed (retrying in {retry:?}; backups go on): {e}");
                        let wait = retry.min(interval);
                        retry = (retry * 2).min(interval);
                        Some(wait)
                    }
                }
            }
        };
        tokio::select! {
            _ = stop.cancelled() => break,
            changed = config_rx.changed() => if changed.is_err() { break },
            () = now.notified() => {}
            () = async {
                match wait {
                    Some(w) => tokio::time::sleep(w).await,
                    None => std::future::pending().await,
                }
            } => {}
        }
    }
}

//! [`LeaseSource`]: the servers of a node's job, from a credentials lease
//! of the master, through the same [`ServerSource`] abstraction the
//! configured servers use, so failover is one code path for both.
//!
//! One lease per source, fetched at the first [`ServerSource::servers`]
//! call (for a backup: just before its first upload, with the archive
//! estimate) and kept for the job's failovers; it lives in memory only and
//! is dropped with the source when the job ends. A new job makes a new
//! source, so a provider or default changed on the master counts from the
//! next run.

use super::client::{MasterClient, MasterError};
use crate::config::{Endpoint, NetworkConfig, S3Server, Secret, ServerConfig, ServerKind};
use crate::layout::{Placement, ServerRef};
use crate::protocol::{LeasePurpose, LeaseRequest, LeaseResponse};
use crate::storage::{Purpose, ServerSource, SourceError, Target};
use async_trait::async_trait;
use std::sync::Mutex;

/// The servers a lease names.
pub struct LeaseSource {
    client: MasterClient,
    /// The site the job is for (required for an upload lease).
    site_uuid: Option<uuid::Uuid>,
    /// The site's name, for messages.
    site: Option<String>,
    leased: tokio::sync::Mutex<Option<Leased>>,
    placement: Mutex<Option<Placement>>,
    network: NetworkConfig,
}

struct Leased {
    targets: Vec<Target>,
    /// The master's provider id of each target, by location.
    providers: Vec<(ServerRef, i64)>,
}

impl LeaseSource {
    /// A source for a job of `site` (`None`: a read lease over the whole
    /// node prefix, for restore by key, reconcile).
    pub fn new(client: MasterClient, site: Option<(&str, uuid::Uuid)>, network: NetworkConfig) -> Self {
        Self {
            network,
            client,
            site_uuid: site.map(|(_, u)| u),
            site: site.map(|(n, _)| n.to_string()),
            leased: tokio::sync::Mutex::new(None),
            placement: Mutex::new(None),
        }
    }

    /// The master's id of the provider at `location`, once leased.
    pub async fn provider_id(&self, location: &ServerRef) -> Option<i64> {
        let leased = self.leased.lock().await;
        leased
            .as_ref()?
            .providers
            .iter()
            .find(|(l, _)| l == location)
            .map(|(_, id)| *id)
    }

    fn refusal(&self, e: MasterError, estimate: u64) -> SourceError {
        if let MasterError::Refused { body, .. } = &e
            && let Some(q) = body.quota()
        {
            let gb = |b: u64| b as f64 / 1e9;
            let site = self.site.as_deref().unwrap_or("?");
            let scope = match q.scope {
                crate::protocol::QuotaScope::Site => format!("site {site}"),
                crate::protocol::QuotaScope::Node => "this node".to_string(),
            };
            return SourceError::Master(format!(
                "quota exceeded for {scope}: {:.1} GB used + {:.1} GB estimated > {:.1} GB (estimate {estimate} bytes)",
                gb(q.used_bytes),
                gb(q.estimated_bytes),
                gb(q.quota_bytes)
            ));
        }
        SourceError::Master(e.to_string())
    }
}

/// The targets of a lease, in the master's order of trial. The effective
/// limit of a provider is its soft limit, lowered to what the quotas still
/// allow so that crossing a quota mid-upload aborts it like a full server.
fn targets_of(lease: &LeaseResponse, network: &NetworkConfig) -> Result<Leased, SourceError> {
    let quota_left = match (lease.site_quota_remaining_bytes, lease.node_quota_remaining_bytes) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let mut targets = Vec::new();
    let mut providers = Vec::new();
    for (n, p) in lease.providers.iter().enumerate() {
        let endpoint = Endpoint::parse(&p.endpoint)
            .map_err(|e| SourceError::Master(format!("the lease's provider {} has a bad endpoint: {e}", p.id)))?;
        let server = ServerConfig {
            id: u32::try_from(n + 1).unwrap_or(u32::MAX),
            storage_limit_bytes: p.storage_limit_bytes,
            kind: ServerKind::S3(S3Server {
                endpoint,
                region: p.region.clone(),
                bucket: p.bucket.clone(),
                access_key: Secret::new(p.access_key.expose()),
                secret_key: Secret::new(p.secret_key.expose()),
                path_style: p.path_style,
            }),
        };
        let mut target = Target::from_config(&server, network, p.used_bytes);
        target.name = format!("provider {} {:?} ({})", p.id, p.name, target.location);
        if let Some(left) = quota_left {
            target.limit_bytes = target.limit_bytes.min(p.used_bytes.saturating_add(left));
        }
        providers.push((target.location.clone(), p.id));
        targets.push(target);
    }
    Ok(Leased { targets, providers })
}

#[async_trait]
impl ServerSource for LeaseSource {
    fn placement(&self) -> Option<Placement> {
        self.placement.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    async fn servers(&self, purpose: Purpose) -> Result<Vec<Target>, SourceError> {
        let mut leased = self.leased.lock().await;
        if let Some(l) = leased.as_ref() {
            return Ok(l.targets.clone());
        }
        let (purpose, estimated_bytes) = match purpose {
            Purpose::Upload { estimated_bytes } => (LeasePurpose::Upload, estimated_bytes),
            Purpose::Read => (LeasePurpose::Read, 0),
        };
        let req = LeaseRequest {
            site_uuid: self.site_uuid,
            purpose,
            estimated_bytes,
        };
        let lease = self
            .client
            .with_retry(|| self.client.lease(&req))
            .await
            .map_err(|e| self.refusal(e, estimated_bytes))?;
        if lease.providers.is_empty() {
            return Err(SourceError::Master(
                "the master has no storage provider configured".into(),
            ));
        }
        let Leased { targets, providers } = targets_of(&lease, &self.network)?;
        if let Some(site_uuid) = lease.site_uuid.or(self.site_uuid) {
            *self.placement.lock().unwrap_or_else(|p| p.into_inner()) = Some(Placement::Node {
                node_uuid: lease.node_uuid.to_string(),
                site_uuid: site_uuid.to_string(),
            });
        }
        *leased = Some(Leased {
            targets: targets.clone(),
            providers,
        });
        Ok(targets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{LeaseProvider, SecretString};

    fn provider(id: i64, used: u64, limit: u64) -> LeaseProvider {
        LeaseProvider {
            id,
            name: format!("p{id}"),
            endpoint: format!("http://127.0.0.1:{}", 9000 + id),
            region: "r".into(),
            bucket: format!("bucket-{id}"),
            path_style: true,
            access_key: SecretString::new("AK"),
            secret_key: SecretString::new("SK"),
            storage_limit_bytes: limit,
            used_bytes: used,
            is_default: id == 7,
        }
    }

    #[test]
    fn lease_order_limits_and_quota() {
        let lease = LeaseResponse {
            purpose: LeasePurpose::Upload,
            node_uuid: uuid::Uuid::nil(),
            site_uuid: Some(uuid::Uuid::nil()),
            prefix: format!("{}/", uuid::Uuid::nil()),
            expires_at: chrono::Utc::now(),
            providers: vec![provider(7, 100, 1_000), provider(2, 0, 5_000)],
            site_quota_remaining_bytes: Some(300),
            node_quota_remaining_bytes: Some(2_000),
        };
        let Leased { targets, providers } = targets_of(&lease, &NetworkConfig::default()).unwrap();
        // The master's order is the order of trial.
        assert_eq!(targets.iter().map(|t| t.id).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(providers.iter().map(|(_, id)| *id).collect::<Vec<_>>(), vec![7, 2]);
        // Limits: the provider's, lowered to used + what the quotas leave.
        assert_eq!((targets[0].usage_bytes, targets[0].limit_bytes), (100, 400));
        assert_eq!((targets[1].usage_bytes, targets[1].limit_bytes), (0, 300));
        assert!(!format!("{targets:?}").contains("SK"));
    }
}

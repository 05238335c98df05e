//! Storage providers: keys sealed with the current key (`meta`), exactly one
//! default (the same transaction unsets the old one; a partial unique index
//! enforces it).

use super::{Repo, fmt_time, parse_time, to_i64, to_u64};
use crate::master::crypto::Vault;
use crate::master::{MasterError, MasterResult};
use crate::protocol::SecretString;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, Transaction, params};

/// A provider row. The keys are sealed Fernet tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderRow {
    pub id: i64,
    pub name: String,
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub path_style: bool,
    pub access_key_enc: String,
    pub secret_key_enc: String,
    pub key_id: String,
    pub storage_limit_bytes: u64,
    pub used_bytes: u64,
    pub archive_count: u64,
    pub is_default: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A validated new provider.
#[derive(Debug, Clone)]
pub struct NewProvider {
    pub name: String,
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub path_style: bool,
    pub access_key: SecretString,
    pub secret_key: SecretString,
    pub storage_limit_bytes: u64,
    pub is_default: bool,
}

/// Validated changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ProviderUpdate {
    pub name: Option<String>,
    pub endpoint: Option<String>,
    pub bucket: Option<String>,
    pub region: Option<String>,
    pub path_style: Option<bool>,
    pub access_key: Option<SecretString>,
    pub secret_key: Option<SecretString>,
    pub storage_limit_bytes: Option<u64>,
    pub is_default: Option<bool>,
}

const COLUMNS: &str = "id, name, endpoint, bucket, region, path_style, access_key_enc, secret_key_enc, key_id,
    storage_limit_bytes, storage_used_bytes,
    (SELECT count(*) FROM archives a WHERE a.provider_id = providers.id AND a.missing_at IS NULL),
    is_default, created_at, updated_at";

/// The same columns without the archive count: what a lease needs, cheap.
const LEASE_COLUMNS: &str = "id, name, endpoint, bucket, region, path_style, access_key_enc, secret_key_enc, key_id,
    storage_limit_bytes, storage_used_bytes, 0, is_default, created_at, updated_at";

/// Providers in the order of trial, for a lease.
pub(super) fn lease_providers(c: &rusqlite::Connection) -> rusqlite::Result<Vec<ProviderRow>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {LEASE_COLUMNS} FROM providers ORDER BY is_default DESC, id"
    ))?;
    let rows = st.query_map([], row)?;
    rows.collect()
}

fn row(r: &Row<'_>) -> rusqlite::Result<ProviderRow> {
    Ok(ProviderRow {
        id: r.get(0)?,
        name: r.get(1)?,
        endpoint: r.get(2)?,
        bucket: r.get(3)?,
        region: r.get(4)?,
        path_style: r.get(5)?,
        access_key_enc: r.get(6)?,
        secret_key_enc: r.get(7)?,
        key_id: r.get(8)?,
        storage_limit_bytes: to_u64(r.get(9)?),
        used_bytes: to_u64(r.get(10)?),
        archive_count: to_u64(r.get(11)?),
        is_default: r.get(12)?,
        created_at: parse_time(&r.get::<_, String>(13)?)?,
        updated_at: parse_time(&r.get::<_, String>(14)?)?,
    })
}

/// A unique-constraint failure names the column it was on.
fn unique_violation(e: &rusqlite::Error) -> Option<&str> {
    match e {
        rusqlite::Error::SqliteFailure(f, Some(msg)) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
            msg.strip_prefix("UNIQUE constraint failed: ")
        }
        _ => None,
    }
}

impl Repo {
    /// Every provider in the order of trial: the default first, then by id.
    pub fn list_providers(&self) -> MasterResult<Vec<ProviderRow>> {
        self.read(|c| {
            let mut st = c.prepare_cached(&format!("SELECT {COLUMNS} FROM providers ORDER BY is_default DESC, id"))?;
            let rows = st.query_map([], row)?;
            rows.collect()
        })
    }

    pub fn get_provider(&self, id: i64) -> MasterResult<Option<ProviderRow>> {
        self.read(|c| {
            c.query_row(&format!("SELECT {COLUMNS} FROM providers WHERE id = ?1"), [id], row)
                .optional()
        })
    }

    fn get_provider_tx(&self, tx: &Transaction<'_>, id: i64) -> MasterResult<ProviderRow> {
        tx.query_row(&format!("SELECT {COLUMNS} FROM providers WHERE id = ?1"), [id], row)
            .optional()
            .map_err(self.sql())?
            .ok_or_else(|| MasterError::NotFound(format!("no provider {id}")))
    }

    fn map_unique(&self, e: rusqlite::Error) -> MasterError {
        match unique_violation(&e) {
            Some("providers.name") => MasterError::conflict(Some("name"), "a provider of this name exists"),
            Some("providers.is_default") => {
                MasterError::conflict(Some("is_default"), "another provider is the default")
            }
            _ => self.sql()(e),
        }
    }

    fn unset_default_tx(&self, tx: &Transaction<'_>, except: i64) -> MasterResult<()> {
        tx.execute(
            "UPDATE providers SET is_default = 0 WHERE is_default = 1 AND id <> ?1",
            [except],
        )
        .map_err(self.sql())?;
        Ok(())
    }

    /// Insert a provider, its keys sealed with the current key.
    pub fn insert_provider(&self, p: &NewProvider, vault: &Vault) -> MasterResult<ProviderRow> {
        self.write(|tx| {
            let key_id = self.primary_key_id_tx(tx)?;
            let access = vault.seal(&key_id, p.access_key.expose())?;
            let secret = vault.seal(&key_id, p.secret_key.expose())?;
            if p.is_default {
                self.unset_default_tx(tx, -1)?;
            }
            let now = fmt_time(Utc::now());
            tx.execute(
                "INSERT INTO providers (name, kind, endpoint, bucket, region, path_style, access_key_enc,
                    secret_key_enc, key_id, storage_limit_bytes, is_default, created_at, updated_at)
                 VALUES (?1, 's3', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)",
                params![
                    p.name,
                    p.endpoint,
                    p.bucket,
                    p.region,
                    p.path_style,
                    access,
                    secret,
                    key_id,
                    to_i64(p.storage_limit_bytes),
                    p.is_default,
                    now
                ],
            )
            .map_err(|e| self.map_unique(e))?;
            self.get_provider_tx(tx, tx.last_insert_rowid())
        })
    }

    /// Change a provider. New keys are sealed with the current key; when
    /// one key changes and the row was sealed with an older key, the other
    /// is sealed again too, so a row has one key id.
    pub fn update_provider(&self, id: i64, u: &ProviderUpdate, vault: &Vault) -> MasterResult<ProviderRow> {
        self.write(|tx| {
            let old = self.get_provider_tx(tx, id)?;
            let now = fmt_time(Utc::now());
            if u.access_key.is_some() || u.secret_key.is_some() {
                let key_id = self.primary_key_id_tx(tx)?;
                let access = match &u.access_key {
                    Some(a) => a.clone(),
                    None => vault.open_secret(&old.access_key_enc)?,
                };
                let secret = match &u.secret_key {
                    Some(s) => s.clone(),
                    None => vault.open_secret(&old.secret_key_enc)?,
                };
                tx.execute(
                    "UPDATE providers SET access_key_enc = ?2, secret_key_enc = ?3, key_id = ?4 WHERE id = ?1",
                    params![
                        id,
                        vault.seal(&key_id, access.expose())?,
                        vault.seal(&key_id, secret.expose())?,
                        key_id
                    ],
                )
                .map_err(self.sql())?;
            }
            if u.is_default == Some(true) {
                self.unset_default_tx(tx, id)?;
            }
            tx.execute(
                "UPDATE providers SET name = ?2, endpoint = ?3, bucket = ?4, region = ?5, path_style = ?6,
                    storage_limit_bytes = ?7, is_default = ?8, updated_at = ?9 WHERE id = ?1",
                params![
                    id,
                    u.name.as_ref().unwrap_or(&old.name),
                    u.endpoint.as_ref().unwrap_or(&old.endpoint),
                    u.bucket.as_ref().unwrap_or(&old.bucket),
                    u.region.as_ref().unwrap_or(&old.region),
                    u.path_style.unwrap_or(old.path_style),
                    to_i64(u.storage_limit_bytes.unwrap_or(old.storage_limit_bytes)),
                    u.is_default.unwrap_or(old.is_default),
                    now
                ],
            )
            .map_err(|e| self.map_unique(e))?;
            self.get_provider_tx(tx, id)
        })
    }

    /// Remove a provider. With archives recorded on it, only with `force`
    /// (their rows go with it, and node and site usage is recomputed).
    pub fn delete_provider(&self, id: i64, force: bool) -> MasterResult<u64> {
        self.write(|tx| {
            let p = self.get_provider_tx(tx, id)?;
            let rows: i64 = tx
                .query_row("SELECT count(*) FROM archives WHERE provider_id = ?1", [id], |r| r.get(0))
                .map_err(self.sql())?;
            if rows > 0 && !force {
                return Err(MasterError::conflict(
                    None,
                    format!(
                        "provider {id} ({}) holds {rows} archives: delete with ?force=true to remove it and forget them",
                        p.name
                    ),
                ));
            }
            tx.execute("DELETE FROM archives WHERE provider_id = ?1", [id])
                .map_err(self.sql())?;
            tx.execute("DELETE FROM providers WHERE id = ?1", [id])
                .map_err(self.sql())?;
            self.recompute_usage_tx(tx)?;
            Ok(to_u64(rows))
        })
    }

    /// Every sealed value with its row, for key rotation.
    pub(crate) fn sealed_rows_tx(&self, tx: &Transaction<'_>) -> MasterResult<Vec<(i64, String, String, String)>> {
        let mut st = tx
            .prepare("SELECT id, access_key_enc, secret_key_enc, key_id FROM providers ORDER BY id")
            .map_err(self.sql())?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .map_err(self.sql())?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(self.sql())
    }

    pub(crate) fn reseal_row_tx(
        &self,
        tx: &Transaction<'_>,
        id: i64,
        access: &str,
        secret: &str,
        key_id: &str,
    ) -> MasterResult<()> {
        tx.execute(
            "UPDATE providers SET access_key_enc = ?2, secret_key_enc = ?3, key_id = ?4 WHERE id = ?1",
            params![id, access, secret, key_id],
        )
        .map_err(self.sql())?;
        Ok(())
    }

    /// Step 2 of a key rotation (`master::rotate`): in one transaction,
    /// make `new_id` current and re-seal every row with `reseal`. Returns
    /// the number of rows.
    pub fn reseal_all(&self, new_id: &str, reseal: impl Fn(&str) -> MasterResult<String>) -> MasterResult<usize> {
        self.write(|tx| {
            self.set_primary_key_id_tx(tx, new_id)?;
            let rows = self.sealed_rows_tx(tx)?;
            for (id, access, secret, _) in &rows {
                self.reseal_row_tx(tx, *id, &reseal(access)?, &reseal(secret)?, new_id)?;
            }
            let stragglers = self
                .sealed_rows_tx(tx)?
                .into_iter()
                .filter(|(_, _, _, k)| k != new_id)
                .count();
            if stragglers > 0 {
                return Err(MasterError::Crypto(format!(
                    "{stragglers} providers still name an old key; nothing was changed"
                )));
            }
            Ok(rows.len())
        })
    }
}

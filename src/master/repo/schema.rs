//! The master database's numbered migrations (append only; applied by
//! [`crate::sqlite::migrate`]).
//!
//! Times are RFC 3339 UTC text, uuids hyphenated lower-case text, sizes
//! bytes. Provider keys are Fernet tokens (`*_enc`) with the id of the key
//! that sealed them (`key_id`); `meta.primary_key_id` names the key new
//! values must be sealed with (see `master::rotate`).

pub const MIGRATIONS: &[&str] = &[
    // 1: the whole first schema.
    r#"
    CREATE TABLE meta (
        name  TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );

    CREATE TABLE providers (
        id                  INTEGER PRIMARY KEY AUTOINCREMENT,
        name                TEXT NOT NULL UNIQUE,
        kind                TEXT NOT NULL CHECK (kind IN ('s3')),
        endpoint            TEXT NOT NULL,
        bucket              TEXT NOT NULL,
        region              TEXT NOT NULL,
        path_style          INTEGER NOT NULL CHECK (path_style IN (0, 1)),
        access_key_enc      TEXT NOT NULL,
        secret_key_enc      TEXT NOT NULL,
        key_id              TEXT NOT NULL,
        storage_limit_bytes INTEGER NOT NULL CHECK (storage_limit_bytes >= 0),
        storage_used_bytes  INTEGER NOT NULL DEFAULT 0,
        is_default          INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)),
        created_at          TEXT NOT NULL,
        updated_at          TEXT NOT NULL
    );
    -- At most one default provider, whatever the writer.
    CREATE UNIQUE INDEX providers_one_default ON providers(is_default) WHERE is_default = 1;

    CREATE TABLE nodes (
        node_uuid          TEXT PRIMARY KEY,
        name               TEXT NOT NULL UNIQUE,
        quota_bytes        INTEGER CHECK (quota_bytes >= 0),
        storage_used_bytes INTEGER NOT NULL DEFAULT 0,
        created_at         TEXT NOT NULL,
        last_seen          TEXT,
        version            TEXT,
        free_space_bytes   INTEGER
    );

    CREATE TABLE sites (
        site_uuid          TEXT PRIMARY KEY,
        node_uuid          TEXT NOT NULL REFERENCES nodes(node_uuid) ON DELETE CASCADE,
        name               TEXT NOT NULL,
        period_secs        INTEGER NOT NULL CHECK (period_secs > 0),
        quota_bytes        INTEGER CHECK (quota_bytes >= 0),
        storage_used_bytes INTEGER NOT NULL DEFAULT 0,
        registered_at      TEXT NOT NULL,
        last_success       TEXT,
        last_outcome       TEXT CHECK (last_outcome IN ('success', 'failed')),
        last_run_at        TEXT,
        last_error         TEXT,
        UNIQUE (node_uuid, name)
    );

    CREATE TABLE tokens (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        hash         BLOB NOT NULL UNIQUE,
        role         TEXT NOT NULL CHECK (role IN ('super_admin', 'node')),
        node_uuid    TEXT REFERENCES nodes(node_uuid) ON DELETE CASCADE,
        label        TEXT NOT NULL DEFAULT '',
        created_at   TEXT NOT NULL,
        revoked_at   TEXT,
        CHECK ((role = 'node') = (node_uuid IS NOT NULL))
    );

    CREATE TABLE archives (
        key         TEXT PRIMARY KEY,
        provider_id INTEGER NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
        node_uuid   TEXT NOT NULL REFERENCES nodes(node_uuid) ON DELETE CASCADE,
        site_uuid   TEXT NOT NULL REFERENCES sites(site_uuid) ON DELETE CASCADE,
        size_bytes  INTEGER NOT NULL CHECK (size_bytes >= 0),
        sha256      TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        reported_at TEXT NOT NULL,
        -- Set by a reconciliation that did not find the object; cleared
        -- when a later one does. Missing archives count in no usage.
        missing_at  TEXT
    );
    CREATE INDEX archives_provider ON archives(provider_id);
    CREATE INDEX archives_site ON archives(site_uuid);
    CREATE INDEX archives_node ON archives(node_uuid);
    "#,
];

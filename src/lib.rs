//! sitebackup: streamed, failover-aware backups of web sites to
//! S3-compatible storage.
//!
//! Data flow of one backup ([`pipeline::BackupJob`]): a blocking thread walks
//! the site and writes a tar stream (`files/…`, then `manifest.json`) into a
//! zstd encoder, whose output is hashed (SHA-256) and cut into parts. Parts
//! cross into async code through a bounded channel, and up to K of them are
//! uploaded at once as an S3 multipart upload ([`storage`]). Memory is thus
//! bounded by `part_size × (queue depth + uploads in flight + 1)` plus
//! zstd's workers.
//!
//! Servers are tried in order of their number. A server is skipped when its
//! catalog usage plus the archive estimate exceeds its limit; the limit is
//! also enforced while uploading. On a failure the multipart upload is
//! aborted and the archive is streamed again, from the source, to the next
//! server. Every archive and every attempt is recorded in the SQLite
//! [`catalog`]; a row becomes `complete` only after the server confirmed the
//! upload.
//!
//! A site with a database (`[sites.database]` or a `wp-config.php`) is
//! dumped once per run, before the first server is tried, into a spool file
//! under `{state_dir}/spool/` ([`database`]); every attempt appends it as
//! `database/{name}.sql` after `files/…`, and the file is removed when the
//! run ends. Per-site [`hooks`] run before the backup, after it succeeded,
//! or after it failed.
//!
//! Getting data back ([`restore`]) is the same idea in reverse: one
//! streaming pass downloads the object, hashes it, and feeds it through a
//! bounded channel to a blocking thread that decodes zstd and extracts tar
//! safely ([`archive::extract`]) into a staging directory, published only
//! when the checksum matches. [`reconcile`] compares the catalog with the
//! bucket listings and corrects it.
//!
//! The [`daemon`] schedules backups (a [`schedule::Schedule`] per site, run
//! by tokio-cron-scheduler; one runner), applies [`retention`], reloads on
//! SIGHUP and drains on SIGTERM under systemd ([`signals`]).
//!
//! [`config`] turns TOML + environment into a validated [`config::Config`]
//! and is the only module that knows env var names.

pub mod archive;
pub mod catalog;
pub mod cli;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod database;
pub mod hooks;
pub mod install;
pub mod layout;
pub mod lock;
pub mod master;
pub mod node;
pub mod pipeline;
pub mod private;
pub mod process;
pub mod protocol;
pub mod reconcile;
pub mod restore;
pub mod retention;
pub mod schedule;
pub mod signals;
pub mod sqlite;
pub mod storage;
pub mod telemetry;

/// Exit status for a failed job.
pub const EXIT_FAILED: u8 = 1;
/// Exit status for a usage or configuration error.
pub const EXIT_CONFIG: u8 = 2;
/// `backup`: every site was stored, but some with warnings (files that
/// could not be read or changed while they were read), as restic does.
pub const EXIT_WARNINGS: u8 = 3;

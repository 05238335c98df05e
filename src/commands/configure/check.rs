//! The live test of a server before it is saved: the check `servers` runs
//! ([`crate::commands::servers::check_target`]), on the server as the
//! draft would configure it, and the original tool's troubleshooting
//! advice for each kind of failure.

use super::files::Draft;
use crate::commands::servers::check_target;
use crate::config::{self, Problem};
use crate::storage::{StorageError, Target};
use std::fmt;
use std::time::Duration;

/// Longest a live test may take (a silent endpoint).
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a server did not pass its live test.
#[derive(Debug)]
pub enum TestFailure {
    /// Its settings are not valid (no request was made).
    Invalid(Vec<Problem>),
    /// The server's answer (or silence).
    Storage(StorageError),
    TimedOut,
}

impl fmt::Display for TestFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TestFailure::Invalid(problems) => {
                f.write_str("invalid settings:")?;
                for p in problems {
                    write!(f, "\n  - {p}")?;
                }
                Ok(())
            }
            TestFailure::Storage(e) => write!(f, "{e}"),
            TestFailure::TimedOut => write!(f, "no answer within {} s", TEST_TIMEOUT.as_secs()),
        }
    }
}

impl TestFailure {
    /// What to check, in the words of the original tool's troubleshooting
    /// section.
    pub fn advice(&self) -> &'static [&'static str] {
        const CREDENTIALS: &[&str] = &[
            "Verify access key and secret key are correct",
            "Check that the key has read/write permissions to the bucket",
            "Ensure the bucket name is correct",
        ];
        const CONNECTION: &[&str] = &[
            "Verify endpoint URL is correct (no `https://` prefix)",
            "Check region code matches the bucket location",
            "Ensure firewall allows outbound HTTPS (port 443)",
        ];
        const BUCKET: &[&str] = &[
            "Ensure the bucket name is correct (create the bucket in the provider's console first)",
            "Check region code matches the bucket location",
            "Check that the key has read/write permissions to the bucket",
        ];
        const SPACE: &[&str] = &[
            "Increase the storage limit (S3_SERVER_N_STORAGE_LIMIT_GB)",
            "Add another S3 server as overflow",
            "Enable retention cleanup",
        ];
        const INVALID: &[&str] = &["Fix the values named above"];
        match self {
            TestFailure::Invalid(_) => INVALID,
            TestFailure::TimedOut => CONNECTION,
            TestFailure::Storage(e) => match e.kind() {
                "credentials" => CREDENTIALS,
                "bucket_not_found" => BUCKET,
                "no_space" => SPACE,
                "http" => CREDENTIALS,
                _ => CONNECTION,
            },
        }
    }
}

/// Test server `id` as the draft configures it. Other servers, the sites
/// and node mode are left out, so that only this server's settings count.
/// Returns the server's name (`S3Server(N: endpoint/bucket)`).
pub async fn test_server(draft: &Draft, id: u32) -> Result<String, TestFailure> {
    let mut doc = draft.doc.clone();
    for key in ["sites", "mode", "master", "master_server"] {
        doc.remove(key);
    }
    super::doc::remove_tables(&mut doc, "servers", |t| {
        super::doc::int_of(t, "id") != Some(i64::from(id))
    });
    let own = format!("S3_SERVER_{id}_");
    let mut env = draft.environment().map_err(|e| TestFailure::Invalid(e.problems()))?;
    env.retain(|k, _| {
        (!k.starts_with("S3_SERVER_") || k.starts_with(&own))
            && k != "SITEBACKUP_MODE"
            && !k.starts_with("SITEBACKUP_MASTER_")
    });
    let config = config::build_from_toml(&doc.to_string(), &draft.paths.toml, &env)
        .map_err(|e| TestFailure::Invalid(e.problems()))?;
    let Some(server) = config.servers.iter().find(|s| s.id == id) else {
        return Err(TestFailure::Invalid(vec![Problem {
            key: format!("servers[id={id}]"),
            env: None,
            message: "not configured".into(),
        }]));
    };
    let target = Target::from_config(server, &config.network, 0);
    match tokio::time::timeout(TEST_TIMEOUT, check_target(&target, &config.owner().prefix())).await {
        Ok(Ok(())) => Ok(target.name.clone()),
        Ok(Err(e)) => Err(TestFailure::Storage(e)),
        Err(_) => Err(TestFailure::TimedOut),
    }
}

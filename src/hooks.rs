//! Per-site hook commands: `before` a backup, `after` a successful one and
//! `on_error` after a failed one (`[sites.hooks]`, see [`HooksConfig`]).
//!
//! Each command is a script handed to `/bin/sh` **on its standard input**
//! (never as an argument: `/proc/PID/cmdline` is readable by every local
//! user, and a command may hold a token), wrapped as `{ SCRIPT\n} </dev/null`
//! so the shell reads it whole before running it and the script's own
//! commands read nothing from it. It runs in the site directory, in its
//! own process group, with its stdout/stderr logged line by line.
//!
//! Its environment is allow-listed: `PATH`, `HOME` and `LANG` from
//! sitebackup's ([`crate::process::inherited_env`]), and the hook variables
//! `SITEBACKUP_SITE`, `SITEBACKUP_SITE_PATH`, `SITEBACKUP_HOOK` (`before`,
//! `after`, `on_error`), `SITEBACKUP_OUTCOME` (`running`, `success`,
//! `warning`, `failed`), `SITEBACKUP_ARCHIVE_KEY` (empty until an archive is
//! stored) and, for `on_error`, `SITEBACKUP_ERROR`. Nothing else — no
//! storage credential, no database password — is inherited.
//!
//! A command that outlives `timeout_secs` (or a cancelled job) gets SIGTERM
//! on its whole process group, then SIGKILL after a grace period. Errors
//! name a hook by stage, position and program name, never by its full
//! command line, which may hold a token.

use crate::config::{HooksConfig, Secret};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How long to wait for output after a hook exited (a background process
/// it started may hold its pipes open).
const OUTPUT_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookStage {
    Before,
    After,
    OnError,
}

impl HookStage {
    pub fn as_str(self) -> &'static str {
        match self {
            HookStage::Before => "before",
            HookStage::After => "after",
            HookStage::OnError => "on_error",
        }
    }

    fn commands(self, config: &HooksConfig) -> &[Secret] {
        match self {
            HookStage::Before => &config.before,
            HookStage::After => &config.after,
            HookStage::OnError => &config.on_error,
        }
    }
}

/// What hooks are told about the run.
#[derive(Debug, Clone, Copy)]
pub struct HookContext<'a> {
    pub site: &'a str,
    pub site_path: &'a Path,
    /// `running`, `success`, `warning` or `failed`.
    pub outcome: &'a str,
    pub archive_key: Option<&'a str>,
    /// The run's error, for `on_error`.
    pub error: Option<&'a str>,
}

/// Why a hook failed. Names the hook, never its full command line.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{stage} hook #{number} ({program}) failed: {status}")]
    Failed {
        stage: &'static str,
        number: usize,
        program: String,
        status: String,
    },
    #[error("{stage} hook #{number} ({program}) timed out after {secs} s; its process group was killed")]
    TimedOut {
        stage: &'static str,
        number: usize,
        program: String,
        secs: u64,
    },
    #[error("{stage} hook #{number} ({program}) was stopped because the job was cancelled")]
    Cancelled {
        stage: &'static str,
        number: usize,
        program: String,
    },
    #[error("{stage} hook #{number} ({program}) could not be started: {source}")]
    Spawn {
        stage: &'static str,
        number: usize,
        program: String,
        #[source]
        source: std::io::Error,
    },
}

/// Run the commands of `stage` one after another; stop at the first that
/// fails. `Ok` when there are none.
pub async fn run_stage(
    config: &HooksConfig,
    stage: HookStage,
    ctx: &HookContext<'_>,
    cancel: &CancellationToken,
) -> Result<(), HookError> {
    let timeout = Duration::from_secs(config.timeout_secs);
    for (i, command) in stage.commands(config).iter().enumerate() {
        run_one(command.expose(), stage, i + 1, timeout, ctx, cancel).await?;
    }
    Ok(())
}

/// The program a command runs, for messages: its first word that is not a
/// `VAR=value` assignment, at most 40 characters.
fn program_of(command: &str) -> String {
    let word = command.split_whitespace().find(|w| !w.contains('=')).unwrap_or("sh");
    let mut p: String = word.chars().take(40).collect();
    if word.chars().count() > 40 {
        p.push('…');
    }
    p
}

async fn run_one(
    command: &str,
    stage: HookStage,
    number: usize,
    timeout: Duration,
    ctx: &HookContext<'_>,
    cancel: &CancellationToken,
) -> Result<(), HookError> {
    let program = program_of(command);
    let (stage_name, site) = (stage.as_str(), ctx.site);
    let mut cmd = tokio::process::Command::new("/bin/sh");
    cmd
        // In the site directory; in `/` when it is missing (an on_error
        // hook of a site whose volume is not mounted must still run).
        .current_dir(if ctx.site_path.is_dir() {
            ctx.site_path
        } else {
            std::path::Path::new("/")
        })
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .env_clear()
        .envs(crate::process::inherited_env());
    cmd.env("SITEBACKUP_SITE", ctx.site)
        .env("SITEBACKUP_SITE_PATH", ctx.site_path)
        .env("SITEBACKUP_HOOK", stage_name)
        .env("SITEBACKUP_OUTCOME", ctx.outcome)
        .env("SITEBACKUP_ARCHIVE_KEY", ctx.archive_key.unwrap_or(""));
    if let (HookStage::OnError, Some(e)) = (stage, ctx.error) {
        cmd.env("SITEBACKUP_ERROR", e);
    }

    info!(site, hook = stage_name, number, program = %program, "Running hook.");
    let mut child = cmd.spawn().map_err(|source| HookError::Spawn {
        stage: stage_name,
        number,
        program: program.clone(),
        source,
    })?;
    let pgid = crate::process::group_of(&child);
    let mut output = tokio::task::JoinSet::new();
    if let Some(mut stdin) = child.stdin.take() {
        let script = script_of(command);
        // A shell that exits early closes the pipe: nothing to report.
        output.spawn(async move {
            use tokio::io::AsyncWriteExt;
            let _ = stdin.write_all(script.as_bytes()).await;
        });
    }
    if let Some(out) = child.stdout.take() {
        output.spawn(log_lines(out, site.to_string(), stage_name, number, "stdout"));
    }
    if let Some(err) = child.stderr.take() {
        output.spawn(log_lines(err, site.to_string(), stage_name, number, "stderr"));
    }

    enum End {
        Exited(std::io::Result<std::process::ExitStatus>),
        TimedOut,
        Cancelled,
    }
    let end = tokio::select! {
        r = tokio::time::timeout(timeout, child.wait()) => match r {
            Ok(status) => End::Exited(status),
            Err(_) => End::TimedOut,
        },
        () = cancel.cancelled() => End::Cancelled,
    };
    let result = match end {
        End::Exited(Ok(status)) if status.success() => Ok(()),
        End::Exited(Ok(status)) => Err(HookError::Failed {
            stage: stage_name,
            number,
            program,
            status: status.to_string(),
        }),
        End::Exited(Err(e)) => Err(HookError::Failed {
            stage: stage_name,
            number,
            program,
            status: format!("cannot wait for it: {e}"),
        }),
        End::TimedOut | End::Cancelled => {
            crate::process::stop_group(pgid, &mut child).await;
            Err(if matches!(end, End::TimedOut) {
                HookError::TimedOut {
                    stage: stage_name,
                    number,
                    program,
                    secs: timeout.as_secs(),
                }
            } else {
                HookError::Cancelled {
                    stage: stage_name,
                    number,
                    program,
                }
            })
        }
    };
    // Let the output drain, but do not wait on a background process that
    // keeps the pipes open.
    let drained = tokio::time::timeout(OUTPUT_GRACE, async { while output.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        output.abort_all();
    }
    match &result {
        Ok(()) => info!(site, hook = stage_name, number, "Hook finished."),
        Err(e) => warn!(site, "{e}"),
    }
    result
}

/// The text `/bin/sh` reads on its stdin: the command as a brace group
/// with stdin from `/dev/null`. The shell parses the whole group before
/// running any of it, so nothing in it can read the rest of the script.
fn script_of(command: &str) -> String {
    format!("{{\n{command}\n}} </dev/null\n")
}

async fn log_lines(
    stream: impl AsyncRead + Unpin,
    site: String,
    hook: &'static str,
    number: usize,
    which: &'static str,
) {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end();
                if !text.is_empty() {
                    info!(site = %site, hook, number, stream = which, "{text}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn hooks(before: &[&str], timeout_secs: u64) -> HooksConfig {
        HooksConfig {
            before: before.iter().map(|s| Secret::new(*s)).collect(),
            timeout_secs,
            ..HooksConfig::default()
        }
    }

    fn ctx(path: &Path) -> HookContext<'_> {
        HookContext {
            site: "blog",
            site_path: path,
            outcome: "running",
            archive_key: None,
            error: None,
        }
    }

    #[tokio::test]
    async fn hooks_run_in_order_in_the_site_dir_with_the_documented_env() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = HooksConfig {
            on_error: vec![
                Secret::new(
                    "echo \"$SITEBACKUP_SITE|$SITEBACKUP_HOOK|$SITEBACKUP_OUTCOME|$SITEBACKUP_ARCHIVE_KEY|$SITEBACKUP_ERROR|$PWD\" > env.txt",
                ),
                Secret::new("echo second >> env.txt"),
            ],
            ..HooksConfig::default()
        };
        let c = HookContext {
            outcome: "failed",
            archive_key: Some("h/2024/blog.tar.zst"),
            error: Some("boom"),
            ..ctx(dir.path())
        };
        run_stage(&cfg, HookStage::OnError, &c, &CancellationToken::new())
            .await
            .unwrap();
        let text = std::fs::read_to_string(dir.path().join("env.txt")).unwrap();
        let pwd = dir.path().canonicalize().unwrap();
        assert_eq!(
            text,
            format!(
                "blog|on_error|failed|h/2024/blog.tar.zst|boom|{}\nsecond\n",
                pwd.display()
            )
        );
    }

    #[tokio::test]
    async fn first_failure_stops_the_stage_and_names_the_hook_not_its_command() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = hooks(&["true", "TOKEN=abc123 false --secret-arg", "touch never"], 10);
        let err = run_stage(&cfg, HookStage::Before, &ctx(dir.path()), &CancellationToken::new())
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, HookError::Failed { number: 2, .. }), "{msg}");
        assert!(msg.contains("before hook #2 (false) failed: exit status: 1"), "{msg}");
        assert!(!msg.contains("abc123") && !msg.contains("secret-arg"), "{msg}");
        assert!(!dir.path().join("never").exists());
    }

    #[tokio::test]
    async fn a_hanging_hook_and_its_children_are_killed_at_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        // A grandchild in the background, and the shell waiting on it.
        let cfg = hooks(&["sleep 600 & echo $! > bg.pid; wait"], 1);
        let started = Instant::now();
        let err = run_stage(&cfg, HookStage::Before, &ctx(dir.path()), &CancellationToken::new())
            .await
            .unwrap_err();
        assert!(matches!(err, HookError::TimedOut { secs: 1, .. }), "{err}");
        assert!(err.to_string().contains("timed out after 1 s"), "{err}");
        // `sleep` ends at the SIGTERM; the kill grace is never reached.
        let took = started.elapsed();
        assert!(
            took >= Duration::from_secs(1) && took < Duration::from_secs(1) + crate::process::KILL_GRACE,
            "{took:?}"
        );
        let pid = std::fs::read_to_string(dir.path().join("bg.pid")).unwrap();
        let proc_dir = Path::new("/proc").join(pid.trim());
        // Killed and reaped by init, or at worst a zombie: never still sleeping.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let state = std::fs::read_to_string(proc_dir.join("stat")).ok();
            let alive = state.as_deref().is_some_and(|s| !s.contains(") Z "));
            if !alive {
                break;
            }
            assert!(Instant::now() < deadline, "background sleep survived: {state:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test]
    async fn cancelling_the_job_stops_a_running_hook() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = hooks(&["sleep 600"], 600);
        let cancel = CancellationToken::new();
        let c2 = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            c2.cancel();
        });
        let started = Instant::now();
        let err = run_stage(&cfg, HookStage::Before, &ctx(dir.path()), &cancel)
            .await
            .unwrap_err();
        assert!(matches!(err, HookError::Cancelled { .. }), "{err}");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(200) && took < crate::process::KILL_GRACE,
            "{took:?}"
        );
    }

    #[tokio::test]
    async fn a_hook_script_is_not_on_any_command_line_and_reads_nothing_of_itself() {
        let dir = tempfile::tempdir().unwrap();
        // The token is only in the script. `ps` and the shell's own
        // cmdline must not show it; `cat` reading stdin must not eat the
        // rest of the script.
        let script = "TOKEN=tok-7f3a9c1e\nps -eo args > ps.txt\ncat /proc/$$/cmdline > self.txt\ncat > stdin.txt\necho \"$TOKEN\" > done.txt";
        let cfg = hooks(&[script], 30);
        run_stage(&cfg, HookStage::Before, &ctx(dir.path()), &CancellationToken::new())
            .await
            .unwrap();
        let read = |n: &str| std::fs::read_to_string(dir.path().join(n)).unwrap();
        assert!(read("ps.txt").contains("ps -eo args"), "{}", read("ps.txt"));
        assert!(!read("ps.txt").contains("tok-7f3a9c1e"), "{}", read("ps.txt"));
        assert!(!read("self.txt").contains("tok-7f3a9c1e"), "{}", read("self.txt"));
        assert_eq!(read("stdin.txt"), "");
        assert_eq!(read("done.txt"), "tok-7f3a9c1e\n");
    }

    #[tokio::test]
    async fn a_hook_inherits_only_the_allow_listed_environment() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = hooks(&["env > env.txt"], 30);
        run_stage(&cfg, HookStage::Before, &ctx(dir.path()), &CancellationToken::new())
            .await
            .unwrap();
        let text = std::fs::read_to_string(dir.path().join("env.txt")).unwrap();
        // What the shell adds itself, besides the allow-list.
        let shell = ["PWD", "OLDPWD", "SHLVL", "_"];
        for line in text.lines() {
            let name = line.split('=').next().unwrap();
            assert!(
                crate::process::INHERITED_ENV.contains(&name)
                    || shell.contains(&name)
                    || name.starts_with("SITEBACKUP_"),
                "{name} reached the hook:\n{text}"
            );
        }
        assert!(text.contains("SITEBACKUP_HOOK=before\n"), "{text}");
        assert!(text.contains("PATH="), "{text}");
    }

    #[test]
    fn program_names_skip_assignments_and_are_short() {
        assert_eq!(program_of("PW=x wp db export"), "wp");
        assert_eq!(program_of("  /usr/local/bin/notify --to ops"), "/usr/local/bin/notify");
        assert_eq!(program_of(&"a".repeat(50)).chars().count(), 41);
    }
}

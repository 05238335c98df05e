//! The scriptable twin of the wizard: `configure s3|site|node …`. The same
//! draft operations, live tests and save as the wizard; secrets come from
//! files (not world-readable) or stdin (`-`, one per line, in the order of
//! the options: access key, then secret key).

use super::check::{self, TestFailure};
use super::files::{Draft, Paths};
use super::node::{self, NodeSpec};
use super::servers::{self, ServerSpec};
use super::sites::{self, Detection, SiteSpec};
use super::{presets, saved_lines};
use crate::EXIT_FAILED;
use crate::cli::{
    ConfigureCommand, NodeSetArgs, NodeSetupCommand, S3AddArgs, S3Command, S3EditArgs, SiteAddArgs, SiteCommand,
    TestArgs,
};
use crate::commands::UsageError;
use crate::config::Secret;

const EXIT_OK: u8 = 0;
use std::collections::VecDeque;
use std::io::Read;
use std::path::Path;

pub async fn run(paths: Paths, command: &ConfigureCommand, json: bool) -> anyhow::Result<u8> {
    let mut draft = Draft::load(paths)?;
    let mut stdin = StdinSecrets::default();
    match command {
        ConfigureCommand::S3(S3Command::List) => {
            let list = servers::list(&draft);
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                println!("Configured S3 servers: {}", list.len());
                for s in &list {
                    println!(
                        "  - {} region {} limit {} GB [{}]",
                        s.label(),
                        s.region.as_deref().unwrap_or("?"),
                        s.storage_limit_gb.unwrap_or(crate::config::DEFAULT_STORAGE_LIMIT_GB),
                        s.sources.join(", ")
                    );
                }
            }
            Ok(EXIT_OK)
        }
        ConfigureCommand::S3(S3Command::Add(args)) => {
            let spec = add_spec(args, &mut stdin)?;
            let id = servers::add(&mut draft, args.id, &spec)?;
            test_and_save(draft, Some(id), args.test, json).await
        }
        ConfigureCommand::S3(S3Command::Edit(args)) => {
            let spec = edit_spec(args, &mut stdin)?;
            servers::edit(&mut draft, args.id, &spec)?;
            test_and_save(draft, Some(args.id), args.test, json).await
        }
        ConfigureCommand::S3(S3Command::Remove { id }) => {
            servers::remove(&mut draft, *id)?;
            save(draft, json)
        }
        ConfigureCommand::S3(S3Command::Move { id, to }) => {
            let plan = servers::move_to(&mut draft, *id, *to)?;
            for (old, new) in &plan {
                eprintln!("server {old} becomes server {new}");
            }
            save(draft, json)
        }
        ConfigureCommand::Site(SiteCommand::List) => {
            let list = sites::list(&draft);
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for s in &list {
                    println!(
                        "{}: {} (schedule {})",
                        s.name,
                        s.path.as_deref().unwrap_or("?"),
                        s.schedule.as_deref().unwrap_or(crate::config::DEFAULT_SCHEDULE)
                    );
                }
            }
            Ok(EXIT_OK)
        }
        ConfigureCommand::Site(SiteCommand::Add(args)) => {
            let spec = site_spec(args)?;
            sites::add(&mut draft, &spec)?;
            save(draft, json)
        }
        ConfigureCommand::Site(SiteCommand::Remove { name }) => {
            sites::remove(&mut draft, name)?;
            save(draft, json)
        }
        ConfigureCommand::Node(NodeSetupCommand::Show) => {
            let view = node::show(&draft);
            if json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                println!("mode: {}", view.mode);
                for (k, v) in [
                    ("url", &view.url),
                    ("node_uuid", &view.node_uuid),
                    ("token_file", &view.token_file),
                    ("ca_file", &view.ca_file),
                ] {
                    if let Some(v) = v {
                        println!("{k}: {v}");
                    }
                }
            }
            Ok(EXIT_OK)
        }
        ConfigureCommand::Node(NodeSetupCommand::Set(args)) => node_set(draft, args, &mut stdin, json).await,
        ConfigureCommand::Node(NodeSetupCommand::Disable) => {
            node::disable(&mut draft)?;
            save(draft, json)
        }
    }
}

fn add_spec(args: &S3AddArgs, stdin: &mut StdinSecrets) -> anyhow::Result<ServerSpec> {
    let preset = presets::provider(args.provider.unwrap_or(crate::cli::Provider::Other));
    let region = args
        .region
        .clone()
        .or_else(|| preset.region.map(str::to_string))
        .ok_or_else(|| UsageError(format!("--region is required ({})", preset.region_hint)))?;
    let endpoint = args
        .endpoint
        .clone()
        .or_else(|| preset.endpoint.map(|f| f(&region)))
        .ok_or_else(|| UsageError(format!("--endpoint is required ({})", preset.endpoint_hint)))?;
    Ok(ServerSpec {
        endpoint: Some(endpoint),
        region: Some(region),
        bucket: Some(args.bucket.clone()),
        storage_limit_gb: args.storage_limit_gb,
        path_style: args.path_style,
        access_key: Some(stdin.secret(&args.access_key_file, "--access-key-file")?),
        secret_key: Some(stdin.secret(&args.secret_key_file, "--secret-key-file")?),
    })
}

fn edit_spec(args: &S3EditArgs, stdin: &mut StdinSecrets) -> anyhow::Result<ServerSpec> {
    let access_key = match &args.access_key_file {
        Some(p) => Some(stdin.secret(p, "--access-key-file")?),
        None => None,
    };
    let secret_key = match &args.secret_key_file {
        Some(p) => Some(stdin.secret(p, "--secret-key-file")?),
        None => None,
    };
    Ok(ServerSpec {
        endpoint: args.endpoint.clone(),
        region: args.region.clone(),
        bucket: args.bucket.clone(),
        storage_limit_gb: args.storage_limit_gb,
        path_style: args.path_style,
        access_key,
        secret_key,
    })
}

fn site_spec(args: &SiteAddArgs) -> anyhow::Result<SiteSpec> {
    let path = sites::check_path(&args.path).map_err(|e| UsageError(format!("--path: {e}")))?;
    let schedule = presets::schedule(args.schedule.as_deref().unwrap_or("daily"))
        .map_err(|e| UsageError(format!("--schedule: {e}")))?;
    let retention = presets::retention(args.retention.as_deref().unwrap_or("standard"))
        .map_err(|e| UsageError(format!("--retention: {e}")))?;
    match sites::detect(&path) {
        _ if args.no_database => eprintln!("Database dump: off (--no-database)"),
        Detection::WordPress(what) => eprintln!("WordPress detected: {what}"),
        Detection::None => eprintln!("No wp-config.php in {}: files only", path.display()),
        Detection::Unusable(why) => {
            return Err(UsageError(format!(
                "{why}; fix wp-config.php, add a [sites.database] section by hand, or pass --no-database"
            ))
            .into());
        }
    }
    Ok(SiteSpec {
        name: args.name.clone().unwrap_or_else(|| sites::default_name(&path)),
        path,
        schedule,
        retention: (retention.policy)(),
        no_database: args.no_database,
        exclude: args.exclude.clone(),
    })
}

async fn node_set(mut draft: Draft, args: &NodeSetArgs, stdin: &mut StdinSecrets, json: bool) -> anyhow::Result<u8> {
    let spec = NodeSpec {
        url: args.url.clone(),
        node_uuid: args.node_uuid.clone(),
        token: stdin.secret(&args.token_file, "--token-file")?,
        token_file: args
            .save_token_to
            .clone()
            .unwrap_or_else(|| draft.paths.default_token_file()),
        ca_file: args.ca_file.clone(),
    };
    node::set(&mut draft, &spec)?;
    // Invalid settings are a usage error before any request.
    draft.validate()?;
    if !args.test.no_test {
        match node::test_master(&spec).await {
            Ok(()) => eprintln!("Master {}: OK (reachable, token accepted for this node)", spec.url),
            Err(e) => {
                eprintln!("Master test FAILED: {e}");
                if !args.test.save_anyway {
                    eprintln!("Nothing was written (--save-anyway saves all the same).");
                    return Ok(EXIT_FAILED);
                }
            }
        }
    }
    save(draft, json)
}

/// Test server `id` as the draft has it, then save (or not).
async fn test_and_save(draft: Draft, id: Option<u32>, test: TestArgs, json: bool) -> anyhow::Result<u8> {
    // Problems of the whole configuration first: exit 2, nothing written.
    draft.validate()?;
    if let (Some(id), false) = (id, test.no_test) {
        match check::test_server(&draft, id).await {
            Ok(name) => eprintln!("{name}: OK (reachable, credentials valid, bucket exists)"),
            Err(failure) => {
                report_failure(id, &failure);
                if let TestFailure::Invalid(_) = failure {
                    return Ok(crate::EXIT_CONFIG);
                }
                if !test.save_anyway {
                    eprintln!("Nothing was written (--save-anyway saves all the same).");
                    return Ok(EXIT_FAILED);
                }
            }
        }
    }
    save(draft, json)
}

fn report_failure(id: u32, failure: &TestFailure) {
    eprintln!("Server {id} test FAILED: {failure}");
    for line in failure.advice() {
        eprintln!("  - {line}");
    }
}

fn save(mut draft: Draft, json: bool) -> anyhow::Result<u8> {
    if !draft.changed() {
        eprintln!("Nothing changed.");
        return Ok(EXIT_OK);
    }
    let report = draft.save()?;
    for line in saved_lines(&report) {
        eprintln!("{line}");
    }
    let verb = super::apply_verb(&report);
    let running = super::daemon_running(&report);
    if let (Some(verb), true) = (verb, running) {
        eprintln!("The daemon is running: apply with `systemctl {verb} sitebackup`.");
    }
    if json {
        let written: Vec<String> = report.written.iter().map(|(p, _)| p.display().to_string()).collect();
        println!(
            "{}",
            serde_json::json!({ "saved": written, "daemon_running": running, "apply": verb })
        );
    }
    Ok(EXIT_OK)
}

/// Secrets named on the command line: a file, or `-` for the next line of
/// stdin.
#[derive(Default)]
struct StdinSecrets {
    lines: Option<VecDeque<String>>,
}

impl StdinSecrets {
    fn secret(&mut self, path: &Path, flag: &str) -> anyhow::Result<Secret> {
        if path != Path::new("-") {
            return crate::config::read_secret_file(path).map_err(|e| UsageError(format!("{flag}: {e}")).into());
        }
        let lines = match &mut self.lines {
            Some(lines) => lines,
            None => {
                let mut text = String::new();
                std::io::stdin()
                    .take(64 * 1024)
                    .read_to_string(&mut text)
                    .map_err(|e| UsageError(format!("{flag}: cannot read stdin: {e}")))?;
                self.lines
                    .insert(text.lines().map(|l| l.trim_end_matches('\r').to_string()).collect())
            }
        };
        match lines.pop_front() {
            Some(line) if !line.is_empty() => Ok(Secret::new(line)),
            _ => Err(UsageError(format!("{flag} -: no (non-empty) line left on stdin")).into()),
        }
    }
}

//! Generates the files the Debian package ships beside the binary, from the
//! same clap types the binary parses (`sitebackup::cli::Cli`), so that they
//! cannot drift from the real command line:
//!
//! - `man/sitebackup.1` and one page per subcommand (`sitebackup-backup.1` …),
//!   with clap_mangen, plus ENVIRONMENT, FILES and EXIT STATUS sections;
//! - `completions/sitebackup.bash` and `completions/_sitebackup` (zsh), with
//!   clap_complete;
//! - `config.toml`: `config.example.toml` with every setting commented out,
//!   installed as `/etc/sitebackup/config.toml`, so that a fresh install
//!   configures nothing (no example server, no example site) until the
//!   operator uncomments and edits.
//!
//! Run by `scripts/build-deb.sh`: `cargo run --example gen_assets -- OUT_DIR`.
//! Not part of the installed program.

use anyhow::{Context, Result, bail};
use clap::CommandFactory;
use clap_complete::Shell;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, italic, roman};
use std::fs;
use std::path::{Path, PathBuf};

const CONFIG_EXAMPLE: &str = include_str!("../config.example.toml");

const CONFIG_HEADER: &str = "\
# /etc/sitebackup/config.toml: sitebackup configuration.
#
# Installed with every setting commented out: nothing is configured until you
# uncomment and edit. sitebackup needs at least one storage server (a
# [[servers]] entry here, or S3_SERVER_1_* in /etc/sitebackup/sitebackup.env)
# and the sites to back up ([[sites]] entries). Then check and start:
#   sitebackup --env-file /etc/sitebackup/sitebackup.env config check
#   systemctl enable --now sitebackup
# After editing this file: systemctl reload sitebackup
#
";

fn main() -> Result<()> {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        bail!("usage: gen_assets OUT_DIR");
    };
    let out = PathBuf::from(out);

    let man_dir = out.join("man");
    let completions_dir = out.join("completions");
    for dir in [&man_dir, &completions_dir] {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }

    write_man_pages(&man_dir)?;
    write_config_page(&man_dir)?;
    write_completions(&completions_dir)?;
    let config = out.join("config.toml");
    fs::write(&config, commented_config(CONFIG_EXAMPLE))
        .with_context(|| format!("cannot write {}", config.display()))?;
    println!("assets written to {}", out.display());
    Ok(())
}

/// `sitebackup.1` with the sections an operator looks for, and a plain page
/// for every visible subcommand, named as the main page's SUBCOMMANDS section
/// refers to them (`sitebackup-config-check.1`).
fn write_man_pages(dir: &Path) -> Result<()> {
    let mut cmd = sitebackup::cli::Cli::command().disable_help_subcommand(true);
    cmd.build();

    let date = man_date()?;
    let path = dir.join("sitebackup.1");
    let man = Man::new(cmd.clone()).date(&date).manual("System Administration");
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    man.render_subcommands_section(&mut page)?;
    page.extend_from_slice(extra_sections().render().as_bytes());
    man.render_version_section(&mut page)?;
    fs::write(&path, page).with_context(|| format!("cannot write {}", path.display()))?;

    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_subcommand_pages(sub, dir, &date)?;
    }
    Ok(())
}

/// `sitebackup.toml(5)`: the configuration file, from `config.example.toml`
/// (the same text that becomes `/etc/sitebackup/config.toml`): one
/// subsection per table, with its keys and their comments as written.
fn write_config_page(dir: &Path) -> Result<()> {
    let date = man_date()?;
    let mut r = Roff::new();
    r.control("TH", ["SITEBACKUP.TOML", "5", &date, "sitebackup", "File Formats"]);
    r.control("SH", ["NAME"]);
    r.text([roman("sitebackup.toml - configuration file of sitebackup")]);
    r.control("SH", ["SYNOPSIS"]);
    r.text([italic("/etc/sitebackup/config.toml")]);
    r.control("SH", ["DESCRIPTION"]);
    r.text([roman(
        "A TOML file. Every key is optional unless marked required. Environment variables override it field by \
         field; the environment spelling of each key is given beside it. Secrets are better kept in \
         /etc/sitebackup/sitebackup.env (mode 0600) or in *_file files. `sitebackup config check` validates \
         the file and prints the effective settings, and every unknown key is reported with the key it \
         probably meant. The sections below are the example configuration shipped in \
         /usr/share/doc/sitebackup/config.example.toml.",
    )]);
    for (title, lines) in config_sections(CONFIG_EXAMPLE) {
        r.control("SS", [title.as_str()]);
        r.control("nf", []);
        for line in lines {
            r.text([roman(line)]);
            r.control("br", []);
        }
        r.control("fi", []);
    }
    r.control("SH", ["SEE ALSO"]);
    r.text([bold("sitebackup"), roman("(1)")]);
    let path = dir.join("sitebackup.toml.5");
    fs::write(&path, r.render()).with_context(|| format!("cannot write {}", path.display()))
}

/// The example cut at its table headers (`[upload]`, `[[servers]]`, and
/// commented-out ones such as `# [master]`); the top-level keys come first
/// as "Top level".
fn config_sections(example: &str) -> Vec<(String, Vec<&str>)> {
    let mut sections: Vec<(String, Vec<&str>)> = vec![("Top level".to_string(), Vec::new())];
    for line in example.lines() {
        let bare = line.trim_start_matches('#').trim();
        let is_header = bare.starts_with('[') && bare.ends_with(']') && !bare.contains(' ');
        if is_header && sections.last().is_some_and(|(t, _)| t != bare) {
            sections.push((bare.to_string(), Vec::new()));
        }
        if let Some((_, lines)) = sections.last_mut() {
            lines.push(line);
        }
    }
    sections.retain(|(_, lines)| lines.iter().any(|l| !l.trim().is_empty()));
    sections
}

/// The date in the pages' title line: `$SOURCE_DATE_EPOCH` (set by
/// scripts/build-deb.sh to the last commit's time, so that rebuilding the
/// same commit gives the same pages), else today.
fn man_date() -> Result<String> {
    let when = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) => {
            let secs: i64 = s
                .trim()
                .parse()
                .with_context(|| format!("SOURCE_DATE_EPOCH={s:?} is not a number"))?;
            chrono::DateTime::from_timestamp(secs, 0)
                .with_context(|| format!("SOURCE_DATE_EPOCH={s} is out of range"))?
        }
        Err(_) => chrono::Utc::now(),
    };
    Ok(when.format("%Y-%m-%d").to_string())
}

fn write_subcommand_pages(cmd: &clap::Command, dir: &Path, date: &str) -> Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_subcommand_pages(sub, dir, date)?;
    }
    Man::new(cmd.clone())
        .date(date)
        .manual("System Administration")
        .generate_to(dir)
        .with_context(|| format!("cannot write the man page of {}", cmd.get_name()))?;
    Ok(())
}

/// ENVIRONMENT, FILES, EXIT STATUS and SEE ALSO of `sitebackup.1`.
fn extra_sections() -> Roff {
    let mut r = Roff::new();
    let entry = |r: &mut Roff, term: &str, text: &str| {
        r.control("TP", []).text([bold(term)]).text([roman(text)]);
    };

    r.control("SH", ["ENVIRONMENT"]);
    r.text([roman(
        "Settings from the environment override the TOML file, field by field. Under systemd they come from ",
    )]);
    r.text([italic("/etc/sitebackup/sitebackup.env"), roman(".")]);
    entry(
        &mut r,
        "S3_SERVER_N_ENDPOINT, S3_SERVER_N_REGION, S3_SERVER_N_BUCKET, S3_SERVER_N_ACCESS_KEY, S3_SERVER_N_SECRET_KEY",
        "Storage server N (N = 1, 2, 3 ..., gaps allowed); servers are tried in this order. \
         The keys may also come from files: S3_SERVER_N_ACCESS_KEY_FILE, S3_SERVER_N_SECRET_KEY_FILE.",
    );
    entry(
        &mut r,
        "S3_SERVER_N_STORAGE_LIMIT_GB",
        "Storage limit of server N in GB (10^9 bytes); default 100.",
    );
    entry(
        &mut r,
        "SITEBACKUP_CONFIG",
        "The TOML file to read when --config is not given.",
    );
    entry(
        &mut r,
        "SITEBACKUP_HOST_ID, SITEBACKUP_STATE_DIR",
        "First path segment of object keys; directory of the catalog. \
         Every TOML key has such a spelling, given beside it in the configuration file.",
    );
    entry(&mut r, "RUST_LOG", "Log filter, for example sitebackup=debug.");

    r.control("SH", ["FILES"]);
    entry(
        &mut r,
        "/etc/sitebackup/config.toml",
        "The configuration; every key is documented there, with its environment spelling.",
    );
    entry(
        &mut r,
        "/etc/sitebackup/sitebackup.env",
        "Environment for the systemd unit, mode 0600: storage credentials.",
    );
    entry(
        &mut r,
        "/var/lib/sitebackup/catalog.db",
        "The catalog of archives (SQLite). The state directory also holds lock files and the database dump spool.",
    );
    entry(
        &mut r,
        "/usr/lib/systemd/system/sitebackup.service",
        "The systemd unit running sitebackup daemon.",
    );

    r.control("SH", ["EXAMPLES"]);
    for (command, what) in sitebackup::cli::EXAMPLES {
        entry(&mut r, command, what);
    }

    r.control("SH", ["EXIT STATUS"]);
    for (code, what) in sitebackup::cli::EXIT_CODES {
        entry(&mut r, &code.to_string(), what);
    }

    r.control("SH", ["SEE ALSO"]);
    r.text([
        bold("systemctl"),
        roman("(1), "),
        bold("journalctl"),
        roman("(1), "),
        bold("systemd.exec"),
        roman("(5)"),
    ]);
    r
}

fn write_completions(dir: &Path) -> Result<()> {
    for (shell, name) in [(Shell::Bash, "sitebackup.bash"), (Shell::Zsh, "_sitebackup")] {
        let path = dir.join(name);
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut sitebackup::cli::Cli::command(), "sitebackup", &mut buf);
        fs::write(&path, buf).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Comment out every setting of the example (prose comments stay as they
/// are; a setting becomes `#key = value`, ready to uncomment).
fn commented_config(example: &str) -> String {
    let mut out = String::from(CONFIG_HEADER);
    for line in example.lines() {
        let trimmed = line.trim_start();
        if !trimmed.is_empty() && !trimmed.starts_with('#') {
            out.push('#');
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

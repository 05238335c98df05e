//! `servers` and `config check` against the real Garage rig.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

#[test]
fn servers_reports_live_and_dead_servers() {
    let rig = Rig::get();
    let mut ws = Workspace::new("servers");
    ws.write_config("");
    ws.set_env(rig.server_env(1, &rig.buckets[0]));
    ws.set_env([
        ("S3_SERVER_7_ENDPOINT".to_string(), "http://127.0.0.1:1".to_string()),
        ("S3_SERVER_7_REGION".to_string(), "garage".to_string()),
        (
            "S3_SERVER_7_ACCESS_KEY".to_string(),
            "GKdeadbeefdeadbeefdeadbeef".to_string(),
        ),
        ("S3_SERVER_7_SECRET_KEY".to_string(), "dead-secret-value".to_string()),
        ("S3_SERVER_7_BUCKET".to_string(), "nowhere".to_string()),
    ]);
    let out = ws.cmd().arg("servers").output().unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "a failing server means exit 1\n{text}");
    assert!(text.starts_with("Configured S3 servers: 2\n"), "{text}");
    let line1 = format!("- S3Server(1: {}/{})", rig.endpoint_display(), rig.buckets[0]);
    assert!(text.contains(&line1), "missing {line1:?} in\n{text}");
    assert!(text.contains("Usage: 0.00 MB"), "{text}");
    assert!(text.contains("- S3Server(7: 127.0.0.1:1/nowhere)"), "{text}");
    let server7 = text.split("S3Server(7").nth(1).unwrap();
    assert!(server7.contains("FAILED (unreachable)"), "{text}");
    let server1 = text
        .split("S3Server(1")
        .nth(1)
        .unwrap()
        .split("S3Server(7")
        .next()
        .unwrap();
    assert!(server1.contains("Status: OK"), "{text}");
    assert!(!text.contains(&rig.secret_key) && !stderr(&out).contains(&rig.secret_key));

    // --json carries the same facts.
    let out = ws.cmd().args(["--json", "servers"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let servers = v["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 2);
    assert_eq!(servers[0]["ok"], true);
    assert_eq!(servers[1]["status"], "unreachable");
}

#[test]
fn servers_says_invalid_credentials_for_a_wrong_secret() {
    let rig = Rig::get();
    let mut ws = Workspace::new("badcreds");
    ws.write_config("");
    ws.set_env(rig.server_env(1, &rig.buckets[0]));
    ws.set_env([(
        "S3_SERVER_1_SECRET_KEY".to_string(),
        "0000wrong-secret-value-0000".to_string(),
    )]);
    let out = ws.cmd().arg("servers").output().unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("Invalid S3 credentials"), "{text}");
    assert!(!text.contains("0000wrong-secret-value-0000"), "{text}");
}

#[test]
fn servers_reports_a_missing_bucket() {
    let rig = Rig::get();
    let mut ws = Workspace::new("nobucket");
    ws.write_config("");
    ws.set_env(rig.server_env(1, "sb-does-not-exist"));
    let out = ws.cmd().arg("servers").output().unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("Bucket not found"), "{text}");
}

#[test]
fn no_servers_is_a_configuration_error() {
    let ws = Workspace::new("noservers");
    ws.write_config("");
    let out = ws.cmd().arg("servers").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("No S3 servers configured"), "{}", stderr(&out));
}

#[test]
fn config_check_lists_every_problem_without_secrets() {
    let rig = Rig::get();
    let mut ws = Workspace::new("cfgcheck");
    let site = ws.make_site("site", 10);
    ws.write_config(&format!(
        "[[sites]]\nname = \"blog\"\npath = \"{}\"\nschedule = \"at dawn\"\n",
        site.display()
    ));
    ws.set_env(rig.server_env(1, &rig.buckets[0]));
    let mut two = rig.server_env(2, &rig.buckets[1]);
    two.retain(|(k, _)| k != "S3_SERVER_2_BUCKET");
    ws.set_env(two);
    let out = ws.cmd().args(["config", "check"]).output().unwrap();
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(all.contains("S3_SERVER_2_BUCKET"), "{all}");
    assert!(all.contains("sites[name=blog].schedule"), "{all}");
    assert!(!all.contains(&rig.secret_key), "secret leaked:\n{all}");

    // Fixed, it prints the effective config, redacted, and exits 0.
    ws.set_env([("S3_SERVER_2_BUCKET".to_string(), rig.buckets[1].clone())]);
    ws.write_config(&format!("[[sites]]\nname = \"blog\"\npath = \"{}\"\n", site.display()));
    let out = ws.cmd().args(["config", "check"]).output().unwrap();
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(all.contains("<redacted>"), "{all}");
    assert!(!all.contains(&rig.secret_key), "secret leaked:\n{all}");
}

/// One missing site does not block the others: a warning at load time
/// (`config check` exits 0 and names it, `list` works), an error only for a
/// backup of that site, whose on_error hook runs while the other site is
/// stored. (Before: every command exited 2.)
#[test]
fn a_missing_site_fails_only_its_own_backup() {
    let rig = Rig::get();
    let mut ws = Workspace::new("missing-site");
    let good = ws.make_site("good", 1000);
    let gone = ws.path().join("unmounted");
    let marker = ws.path().join("on-error-ran");
    ws.write_config(&format!(
        "[[sites]]\nname = \"good\"\npath = \"{}\"\n\n[[sites]]\nname = \"gone\"\npath = \"{}\"\n[sites.hooks]\non_error = [\"touch {}\"]\n",
        good.display(),
        gone.display(),
        marker.display()
    ));
    ws.set_env(rig.server_env(1, &rig.buckets[0]));

    let out = ws.cmd().args(["config", "check"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("sites[name=gone].path") && stderr(&out).contains("not a readable directory"),
        "{}",
        stderr(&out)
    );
    let out = ws.cmd().args(["list"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    let out = ws.cmd().args(["--json", "backup", "--all"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout(&out), stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "{v}");
    let by = |name: &str| results.iter().find(|r| r["site"] == name).unwrap();
    assert_eq!(by("good")["outcome"], "success", "{v}");
    let error = by("gone")["error"].as_str().unwrap();
    assert!(
        error.contains("is missing or not a directory — is the volume mounted?"),
        "{error}"
    );
    assert!(marker.exists(), "the on_error hook of the missing site did not run");
}

/// Usage errors say what is wrong and exit 2; they are not configuration
/// errors. (Before: "error: invalid configuration", and `list --site
/// nosuch` exited 0 with "No archives".)
#[test]
fn usage_errors_name_the_problem() {
    let rig = Rig::get();
    let mut ws = Workspace::new("usage");
    let a = ws.make_site("a", 100);
    ws.write_config(&format!(
        "[[sites]]\nname = \"a\"\npath = \"{}\"\n\n[[sites]]\nname = \"b\"\npath = \"{}\"\n",
        a.display(),
        a.display()
    ));
    ws.set_env(rig.server_env(1, &rig.buckets[0]));
    for (args, needle) in [
        (
            vec!["prune", "--site", "nosuch"],
            "unknown site \"nosuch\"; configured: a, b",
        ),
        (vec!["backup", "nosuch"], "unknown site \"nosuch\"; configured: a, b"),
        (vec!["verify"], "name the archives to verify"),
        (vec!["list", "--site", "nosuch"], "unknown site \"nosuch\""),
    ] {
        let out = ws.cmd().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("error: {needle}")),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(
            !stderr(&out).contains("invalid configuration"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

use super::*;
use crate::archive::walk::walk;
use rstest::rstest;
use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::process::{Command, Stdio};

/// A site with the shapes the patterns below care about: directories and
/// files of the same name at several depths, dotfiles, logs, a symlink to
/// a directory.
fn make_tree(root: &Path) {
    for file in [
        "index.php",
        ".htaccess",
        "debug.log",
        "cache/a.html",
        "wp-content/debug.log",
        "wp-content/cache/page.html",
        "wp-content/cache/sub/deep.html",
        "wp-content/uploads/2024/photo.jpg",
        "wp-content/uploads/2024/photo.png",
        "wp-content/uploads/cache",
        "wp-content/plugins/x/cache/y.txt",
        "wp-content/plugins/x/Cache.php",
        "logs/error.log",
        "logs/keep.log",
        "logs/old/keep.log",
        "a/b/c/d.txt",
        "a/d.txt",
        "node_modules/pkg/index.js",
        "!important",
        "#hash",
    ] {
        let p = root.join(file);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, file.as_bytes()).unwrap();
    }
    symlink("wp-content/cache", root.join("cache-link")).unwrap();
}

/// Paths (relative, without `.git`) that the backup walk keeps.
fn walked(root: &Path, excludes: &Excludes) -> BTreeSet<String> {
    walk(root, excludes)
        .map(Result::unwrap)
        .filter_map(|e| {
            let rel = e.path().strip_prefix(root).unwrap().to_str().unwrap().to_string();
            (!rel.is_empty() && rel != ".git" && !rel.starts_with(".git/")).then_some(rel)
        })
        .collect()
}

/// Paths that `git check-ignore` does not call ignored, with `patterns` in
/// `.git/info/exclude`.
fn git_kept(root: &Path, patterns: &[&str]) -> BTreeSet<String> {
    let git = |args: &[&str]| Command::new("git").current_dir(root).args(args).output().unwrap();
    assert!(
        git(&["init", "-q", "."]).status.success(),
        "git init failed (is git installed?)"
    );
    std::fs::write(root.join(".git/info/exclude"), patterns.join("\n") + "\n").unwrap();
    let all = walked(root, &Excludes::none());
    let mut child = Command::new("git")
        .current_dir(root)
        .args(["check-ignore", "--no-index", "--stdin", "-z"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = Vec::new();
    for p in &all {
        input.extend_from_slice(p.as_bytes());
        input.push(0);
    }
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    // 0: some ignored, 1: none ignored; anything else is an error.
    assert!(matches!(out.status.code(), Some(0 | 1)), "git check-ignore: {out:?}");
    let ignored: BTreeSet<String> = out
        .stdout
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8(s.to_vec()).unwrap())
        .collect();
    all.difference(&ignored).cloned().collect()
}

#[rstest]
#[case::trailing_slash_matches_the_directory(&["wp-content/cache/"], true)]
#[case::bare_name_at_any_depth(&["cache"], true)]
#[case::bare_name_with_slash_only_directories(&["cache/"], true)]
#[case::leading_slash_anchors(&["/cache"], true)]
#[case::anchored_file(&["/debug.log"], true)]
#[case::doublestar_prefix(&["**/debug.log"], true)]
#[case::doublestar_middle(&["a/**/d.txt"], true)]
#[case::doublestar_suffix_keeps_the_directory(&["wp-content/cache/**"], true)]
#[case::negation(&["*.log", "!keep.log"], true)]
#[case::negation_cannot_reach_into_an_excluded_directory(&["logs/", "!logs/keep.log"], true)]
#[case::negation_then_exclude_again(&["*.log", "!keep.log", "logs/old/*"], true)]
#[case::star_does_not_cross_slashes(&["wp-content/*.log"], true)]
#[case::question_mark_and_class(&["*.ph?", "wp-content/uploads/*/photo.[jp]*"], true)]
#[case::case_sensitive(&["cache.php"], false)]
#[case::dotfiles(&[".*"], true)]
#[case::symlink_is_not_a_directory(&["cache-link/"], false)]
#[case::symlink_by_name(&["cache-link"], true)]
#[case::escaped_bang_and_hash(&["\\!important", "\\#hash"], true)]
#[case::comments_and_blank_lines(&["# index.php", "", "node_modules"], true)]
#[case::trailing_spaces_are_trimmed(&["index.php   "], true)]
#[case::middle_slash_is_anchored(&["uploads/2024"], false)]
fn walk_agrees_with_git_check_ignore(#[case] patterns: &[&str], #[case] excludes_some: bool) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    make_tree(root);
    let ours = walked(root, &Excludes::from_lines(root, patterns.iter().copied()).unwrap());
    let git = git_kept(root, patterns);
    assert_eq!(ours, git, "patterns {patterns:?}");
    // A case meant to exclude something does (the comparison is not of
    // two empty results), and one meant to exclude nothing does not.
    let all = walked(root, &Excludes::none()).len();
    assert_eq!(
        git.len() < all,
        excludes_some,
        "{patterns:?}: {} of {all} kept",
        git.len()
    );
}

fn rules(exclude: &[&str], file: Option<(&Path, &str)>) -> ExcludeRules {
    let mut r = ExcludeRules::default();
    if let Some((path, text)) = file {
        r.add(RuleSource::ExcludeFile(path.to_path_buf()), text.lines())
            .unwrap();
    }
    r.add(RuleSource::Config, exclude.iter().copied()).unwrap();
    r
}

#[test]
fn the_operator_has_the_last_word_over_the_site_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    make_tree(root);
    // The site's file excludes logs and tries to bring back what the
    // operator excludes; the operator re-includes one of its logs.
    std::fs::write(root.join(SITE_IGNORE_FILE), "*.log\n!node_modules/\n!cache/\n").unwrap();
    let (ex, warnings) = Excludes::for_site(root, &rules(&["node_modules/", "!keep.log"], None));
    assert!(warnings.is_empty(), "{warnings:?}");
    let kept = walked(root, &ex);
    assert!(
        !kept.contains("debug.log") && !kept.contains("logs/error.log"),
        "{kept:?}"
    );
    assert!(kept.contains("logs/keep.log"), "{kept:?}");
    assert!(!kept.iter().any(|p| p.starts_with("node_modules")), "{kept:?}");
    let by = ex.matched(Path::new("debug.log"), false).unwrap();
    assert_eq!(
        (by.pattern, by.file),
        ("*.log", Some(root.join(SITE_IGNORE_FILE).as_path()))
    );
    let by = ex.matched(Path::new("node_modules"), true).unwrap();
    assert_eq!((by.pattern, by.source_label().as_str()), ("node_modules/", "exclude"));
}

#[test]
fn exclude_file_rules_come_before_the_config_list() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    make_tree(root);
    let file = Path::new("/etc/sitebackup/blog.exclude");
    let (ex, _) = Excludes::for_site(root, &rules(&["!debug.log"], Some((file, "*.log\n# comment\n"))));
    let kept = walked(root, &ex);
    assert!(
        kept.contains("debug.log") && !kept.contains("logs/error.log"),
        "{kept:?}"
    );
    assert_eq!(ex.matched(Path::new("x.log"), false).unwrap().file, Some(file));
}

#[test]
fn bad_rules_are_named_with_their_line() {
    let mut r = ExcludeRules::default();
    let err = r
        .add(RuleSource::Config, ["ok/", "a{b", "**/{x"].iter().copied())
        .unwrap_err();
    assert_eq!(err.len(), 2, "{err:?}");
    assert!(
        err[0].starts_with("line 2: \"a{b\": unclosed alternate group"),
        "{err:?}"
    );
    assert!(err[1].starts_with("line 3:"), "{err:?}");
}

#[test]
fn a_site_file_that_is_not_a_plain_small_file_is_skipped_with_a_warning() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("rules"), "*\n").unwrap();
    type Setup<'a> = Box<dyn Fn(&Path) + 'a>;
    let cases: Vec<(&str, Setup<'_>)> = vec![
        (
            "it is a symlink",
            Box::new(|root: &Path| symlink(outside.path().join("rules"), root.join(SITE_IGNORE_FILE)).unwrap()),
        ),
        (
            "it is not a regular file",
            Box::new(|root: &Path| {
                let st = Command::new("mkfifo")
                    .arg(root.join(SITE_IGNORE_FILE))
                    .status()
                    .unwrap();
                assert!(st.success());
            }),
        ),
        (
            "it is not a regular file",
            Box::new(|root: &Path| std::fs::create_dir(root.join(SITE_IGNORE_FILE)).unwrap()),
        ),
        (
            "larger than the limit",
            Box::new(|root: &Path| {
                let big = "x\n".repeat(MAX_SITE_IGNORE_BYTES as usize);
                std::fs::write(root.join(SITE_IGNORE_FILE), format!("*\n{big}")).unwrap()
            }),
        ),
        (
            "not UTF-8",
            Box::new(|root: &Path| std::fs::write(root.join(SITE_IGNORE_FILE), b"*\n\xff\n").unwrap()),
        ),
    ];
    for (why, setup) in cases {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        make_tree(root);
        setup(root);
        let (ex, warnings) = Excludes::for_site(root, &ExcludeRules::default());
        assert_eq!(warnings.len(), 1, "{why}: {warnings:?}");
        assert!(
            warnings[0].contains(why) && warnings[0].contains("the file is ignored"),
            "{warnings:?}"
        );
        // Nothing of it applies (each version would exclude everything).
        assert!(walked(root, &ex).contains("index.php"), "{why}");
    }
}

#[test]
fn bad_lines_of_the_site_file_are_skipped_and_cut_in_the_warning() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    make_tree(root);
    let long = format!("a{{{}", "y".repeat(5000));
    std::fs::write(root.join(SITE_IGNORE_FILE), format!("debug.log\n{long}\n")).unwrap();
    let (ex, warnings) = Excludes::for_site(root, &ExcludeRules::default());
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("line 2 skipped") && warnings[0].len() < 600,
        "{warnings:?}"
    );
    assert!(ex.matched(Path::new("debug.log"), false).is_some());
}

#[test]
fn survey_counts_what_is_kept_and_what_each_rule_leaves_out() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    make_tree(root);
    let ex = Excludes::from_lines(root, ["wp-content/cache/", "*.log", "!keep.log"]).unwrap();
    let s = crate::archive::survey(root, &ex);
    let kept = walked(root, &ex);
    let files: Vec<&String> = kept
        .iter()
        .filter(|p| root.join(p).symlink_metadata().unwrap().is_file())
        .collect();
    assert_eq!(s.files, files.len() as u64);
    assert_eq!(s.file_bytes, files.iter().map(|p| p.len() as u64).sum::<u64>());
    assert_eq!(s.symlinks, 1);
    // cache/ holds two files; *.log matched three.
    let by: Vec<(&str, u64, u64)> = s
        .excluded_by
        .iter()
        .map(|r| (r.pattern.as_str(), r.count.entries, r.count.files))
        .collect();
    assert_eq!(by, vec![("wp-content/cache/", 1, 2), ("*.log", 3, 3)], "{s:?}");
    assert_eq!(s.excluded.files, 5);
    assert_eq!(
        s.excluded.file_bytes,
        [
            "debug.log",
            "wp-content/debug.log",
            "logs/error.log",
            "wp-content/cache/page.html",
            "wp-content/cache/sub/deep.html"
        ]
        .iter()
        .map(|p| p.len() as u64)
        .sum::<u64>()
    );
}

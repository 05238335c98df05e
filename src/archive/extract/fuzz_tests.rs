//! Bounded fuzzing of extraction (a proptest run inside the normal test
//! suite, a few seconds): arbitrary bytes as an archive, and tar streams
//! built from arbitrary headers — names with `..`, `/`, NUL, long names,
//! every entry type byte, link targets, sizes that lie — through `check`
//! and `extract`. Nothing may panic, and nothing may appear outside the
//! target.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// One header of a generated stream.
#[derive(Debug, Clone)]
struct Gen {
    name: Vec<u8>,
    kind: u8,
    link: Vec<u8>,
    /// What the header says the size is.
    size: u64,
    /// What really follows it.
    data: Vec<u8>,
    long_name: bool,
}

fn name_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"..".to_vec()),
        Just(b".".to_vec()),
        Just(b"".to_vec()),
        Just(b"files".to_vec()),
        Just(b"manifest.json".to_vec()),
        Just(b"database".to_vec()),
        Just(b"\0".to_vec()),
        "[a-c]{1,3}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 1..6),
    ];
    (any::<bool>(), proptest::collection::vec(piece, 0..5)).prop_map(|(absolute, parts)| {
        let mut out = if absolute { b"/".to_vec() } else { Vec::new() };
        out.extend(parts.join(&b'/'));
        out
    })
}

fn gen_entry() -> impl Strategy<Value = Gen> {
    let kind = prop_oneof![
        Just(b'0'),
        Just(b'1'),
        Just(b'2'),
        Just(b'3'),
        Just(b'4'),
        Just(b'5'),
        Just(b'6'),
        Just(b'7'),
        Just(b'g'),
        Just(b'x'),
        Just(b'L'),
        Just(b'K'),
        Just(b'S'),
        any::<u8>(),
    ];
    (
        name_bytes(),
        kind,
        name_bytes(),
        0u64..2048,
        proptest::collection::vec(any::<u8>(), 0..1500),
        any::<bool>(),
    )
        .prop_map(|(name, kind, link, size, data, long_name)| Gen {
            name,
            kind,
            link,
            size,
            data,
            long_name,
        })
}

fn header(name: &[u8], kind: u8, link: &[u8], size: u64) -> [u8; 512] {
    let mut h = tar::Header::new_gnu();
    {
        let gnu = h.as_gnu_mut().unwrap();
        let n = name.len().min(100);
        gnu.name[..n].copy_from_slice(&name[..n]);
        let l = link.len().min(100);
        gnu.linkname[..l].copy_from_slice(&link[..l]);
    }
    h.set_entry_type(tar::EntryType::new(kind));
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(1_600_000_000);
    h.set_cksum();
    let mut out = [0u8; 512];
    out.copy_from_slice(h.as_bytes());
    out
}

fn pad(out: &mut Vec<u8>) {
    out.resize(out.len().div_ceil(512) * 512, 0);
}

/// The raw tar stream of `entries`, data padded as the header says or not.
fn stream(entries: &[Gen]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        if e.long_name {
            out.extend(header(b"././@LongLink", b'L', b"", e.name.len() as u64));
            out.extend(&e.name);
            pad(&mut out);
        }
        out.extend(header(&e.name, e.kind, &e.link, e.size));
        out.extend(&e.data);
        pad(&mut out);
    }
    out.extend([0u8; 1024]);
    out
}

/// Every path below `root` (symlinks not followed) stays below it, and
/// the sibling `outside` is untouched.
fn assert_contained(root: &Path, outside: &Path) -> Result<(), TestCaseError> {
    for e in walkdir::WalkDir::new(root).follow_links(false) {
        let e = e.unwrap();
        prop_assert!(e.path().starts_with(root));
    }
    prop_assert_eq!(std::fs::read_dir(outside).unwrap().count(), 0);
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// Arbitrary bytes, raw or as a zstd frame: an error, never a panic.
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..4096), compress in any::<bool>()) {
        let input = if compress { zstd::encode_all(data.as_slice(), 1).unwrap() } else { data };
        let _ = check(input.as_slice(), &ExtractLimits::default());
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("dest");
        let outside = dir.path().join("outside");
        std::fs::create_dir(&dest).unwrap();
        std::fs::create_dir(&outside).unwrap();
        let _ = extract(input.as_slice(), &dest, &ExtractOptions::for_current_user());
        assert_contained(&dest, &outside)?;
    }

    /// Streams of arbitrary headers: `check` and `extract` agree on
    /// refusing or accepting, never panic, and write nothing outside.
    #[test]
    fn arbitrary_headers_stay_inside(entries in proptest::collection::vec(gen_entry(), 1..6)) {
        let raw = stream(&entries);
        let input = zstd::encode_all(raw.as_slice(), 1).unwrap();
        let checked = check(input.as_slice(), &ExtractLimits::default());
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("dest");
        let outside = dir.path().join("outside");
        std::fs::create_dir(&dest).unwrap();
        std::fs::create_dir(&outside).unwrap();
        let limits = ExtractLimits { max_entries: 50, max_bytes: 1 << 20, keep_free_bytes: 0 };
        let extracted = extract(input.as_slice(), &dest, &ExtractOptions::for_current_user().with_limits(limits));
        if let Ok(mut done) = extracted {
            done.finish(&dest).unwrap();
            // Whatever extract accepted, check did not refuse (extract may
            // refuse more: what is already on disk; check also reads the
            // manifest as JSON).
            prop_assert!(!matches!(checked, Err(ExtractError::Refused { .. })), "{:?}", checked.err());
        }
        assert_contained(&dest, &outside)?;
    }
}

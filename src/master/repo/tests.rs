use super::*;
use crate::master::crypto::{KeyRing, Vault};
use crate::protocol::SecretString;
use uuid::Uuid;

pub(crate) struct Fixture {
    pub dir: tempfile::TempDir,
    pub repo: Repo,
    pub vault: Vault,
}

pub(crate) fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::create(dir.path()).unwrap();
    let key_file = dir.path().join("fernet.key");
    let ring = KeyRing::generate().unwrap();
    ring.store(&key_file).unwrap();
    assert!(repo.init_key_id(ring.primary_id()).unwrap());
    let vault = Vault::open(&key_file).unwrap();
    Fixture { dir, repo, vault }
}

pub(crate) fn provider(name: &str, is_default: bool) -> NewProvider {
    NewProvider {
        name: name.into(),
        endpoint: "http://127.0.0.1:1".into(),
        bucket: "b".into(),
        region: "r".into(),
        path_style: true,
        access_key: SecretString::new(format!("AKIA{name}ACCESS")),
        secret_key: SecretString::new(format!("secret-of-{name}")),
        storage_limit_bytes: 1_000,
        is_default,
    }
}

fn defaults(repo: &Repo) -> Vec<i64> {
    repo.list_providers()
        .unwrap()
        .into_iter()
        .filter(|p| p.is_default)
        .map(|p| p.id)
        .collect()
}

#[test]
fn a_new_default_unsets_the_old_one_and_the_index_refuses_two() {
    let f = fixture();
    let a = f.repo.insert_provider(&provider("a", true), &f.vault).unwrap();
    let b = f.repo.insert_provider(&provider("b", true), &f.vault).unwrap();
    assert_eq!(defaults(&f.repo), [b.id]);
    let a2 = f
        .repo
        .update_provider(
            a.id,
            &ProviderUpdate {
                is_default: Some(true),
                ..Default::default()
            },
            &f.vault,
        )
        .unwrap();
    assert!(a2.is_default);
    assert_eq!(defaults(&f.repo), [a.id]);
    // The constraint itself, without the repository's care.
    let err = f
        .repo
        .write(|tx| {
            tx.execute("UPDATE providers SET is_default = 1", [])
                .map_err(f.repo.sql())
        })
        .unwrap_err();
    assert!(err.to_string().contains("UNIQUE"), "{err}");
    assert_eq!(defaults(&f.repo), [a.id]);
}

#[test]
fn keys_are_sealed_and_names_are_unique() {
    let f = fixture();
    let p = f.repo.insert_provider(&provider("a", false), &f.vault).unwrap();
    assert!(!p.secret_key_enc.contains("secret-of-a"));
    assert_eq!(f.vault.open_secret(&p.secret_key_enc).unwrap().expose(), "secret-of-a");
    assert_eq!(p.key_id, f.repo.primary_key_id().unwrap().unwrap());
    let err = f.repo.insert_provider(&provider("a", false), &f.vault).unwrap_err();
    assert!(
        matches!(err, MasterError::Conflict { field: Some(ref f), .. } if f == "name"),
        "{err:?}"
    );
}

fn archive(node: Uuid, site: Uuid, provider: i64, key: &str, size: u64) -> NewArchive {
    NewArchive {
        key: key.into(),
        provider_id: provider,
        node_uuid: node,
        site_uuid: site,
        size_bytes: size,
        sha256: "ab".repeat(32),
        created_at: chrono::Utc::now(),
    }
}

#[test]
fn reports_move_usage_once_per_key_and_deletes_move_it_back() {
    let f = fixture();
    let p = f.repo.insert_provider(&provider("a", true), &f.vault).unwrap();
    let node = f
        .repo
        .create_node("web1", None, &SecretString::new("t".repeat(43)))
        .unwrap();
    let (site, created) = f.repo.register_site(node.node_uuid, "blog", 86_400).unwrap();
    assert!(created);
    let (again, created) = f.repo.register_site(node.node_uuid, "blog", 3600).unwrap();
    assert_eq!(
        (again.site_uuid, again.period_secs, created),
        (site.site_uuid, 3600, false)
    );
    let a = archive(node.node_uuid, site.site_uuid, p.id, "k1", 100);
    assert!(f.repo.record_archive(&a).unwrap());
    assert!(!f.repo.record_archive(&a).unwrap());
    let usage = |repo: &Repo| {
        (
            repo.get_provider(p.id).unwrap().unwrap().used_bytes,
            repo.get_node(node.node_uuid).unwrap().unwrap().used_bytes,
            repo.get_site(site.site_uuid).unwrap().unwrap().used_bytes,
        )
    };
    assert_eq!(usage(&f.repo), (100, 100, 100));
    let other = archive(node.node_uuid, site.site_uuid, p.id, "k1", 101);
    assert!(matches!(
        f.repo.record_archive(&other),
        Err(MasterError::Conflict { .. })
    ));
    let stranger = Uuid::new_v4();
    assert!(matches!(
        f.repo.delete_archive(stranger, "k1"),
        Err(MasterError::Forbidden(_))
    ));
    assert!(f.repo.delete_archive(node.node_uuid, "k1").unwrap());
    assert!(!f.repo.delete_archive(node.node_uuid, "k1").unwrap());
    assert_eq!(usage(&f.repo), (0, 0, 0));
}

#[test]
fn providers_and_nodes_with_archives_need_force() {
    let f = fixture();
    let p = f.repo.insert_provider(&provider("a", true), &f.vault).unwrap();
    let node = f
        .repo
        .create_node("web1", Some(5), &SecretString::new("u".repeat(43)))
        .unwrap();
    let (site, _) = f.repo.register_site(node.node_uuid, "blog", 60).unwrap();
    f.repo
        .record_archive(&archive(node.node_uuid, site.site_uuid, p.id, "k", 7))
        .unwrap();
    assert!(matches!(
        f.repo.delete_provider(p.id, false),
        Err(MasterError::Conflict { .. })
    ));
    assert!(matches!(
        f.repo.delete_node(node.node_uuid, false),
        Err(MasterError::Conflict { .. })
    ));
    assert_eq!(f.repo.delete_provider(p.id, true).unwrap(), 1);
    assert_eq!(f.repo.get_node(node.node_uuid).unwrap().unwrap().used_bytes, 0);
    assert_eq!(f.repo.delete_node(node.node_uuid, false).unwrap(), 0);
    assert!(f.repo.get_site(site.site_uuid).unwrap().is_none());
}

#[test]
fn revoked_tokens_no_longer_authenticate() {
    let f = fixture();
    let hash = crate::master::crypto::hash_token("x".repeat(43).as_str());
    let id = f.repo.create_token(&hash, Role::SuperAdmin, None, "t").unwrap();
    assert_eq!(
        f.repo.authenticate(&hash).unwrap().map(|p| p.role),
        Some(Role::SuperAdmin)
    );
    assert!(f.repo.revoke_token(id).unwrap());
    assert!(!f.repo.revoke_token(id).unwrap());
    assert_eq!(f.repo.authenticate(&hash).unwrap(), None);
    // A node token without a node is refused by the schema.
    assert!(f.repo.create_token(&[1; 32], Role::Node, None, "bad").is_err());
}

#[test]
fn resealing_moves_every_row_to_the_new_key_in_one_transaction() {
    let f = fixture();
    f.repo.insert_provider(&provider("a", true), &f.vault).unwrap();
    f.repo.insert_provider(&provider("b", false), &f.vault).unwrap();
    let key_file = f.dir.path().join("fernet.key");
    let both = KeyRing::load(&key_file)
        .unwrap()
        .with_new_primary(fernet::Fernet::generate_key())
        .unwrap();
    let new_id = both.primary_id().to_string();
    // A failing re-seal changes nothing.
    let err = f
        .repo
        .reseal_all(&new_id, |_| Err(MasterError::Crypto("boom".into())))
        .unwrap_err();
    assert!(err.to_string().contains("boom"));
    assert_ne!(f.repo.primary_key_id().unwrap().unwrap(), new_id);
    let n = f
        .repo
        .reseal_all(&new_id, |c| {
            Ok(both.encrypt_with(&new_id, &both.decrypt(c).unwrap()).unwrap())
        })
        .unwrap();
    assert_eq!(n, 2);
    assert_eq!(f.repo.primary_key_id().unwrap().unwrap(), new_id);
    let only_new = both.primary_only().unwrap();
    for p in f.repo.list_providers().unwrap() {
        assert_eq!(p.key_id, new_id);
        assert!(only_new.decrypt(&p.secret_key_enc).is_some());
    }
}

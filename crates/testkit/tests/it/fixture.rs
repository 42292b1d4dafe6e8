//! kc-fixture's installs: deterministic, consistent with themselves, readable by kc-core, and the
//! committed demo is exactly what the generator writes.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use kc_core::config::Config;
use kc_core::store::{self, folder_map::FolderMap, status_fld::StatusFld};
use kc_testkit::{Options, generate};

/// Every file under `root`: relative path -> bytes. Empty directories are left out (git cannot
/// keep them, so the committed demo has none).
fn tree(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    walkdir(root)
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).expect("read");
            (
                p.strip_prefix(root).expect("under root").to_path_buf(),
                bytes,
            )
        })
        .collect()
}

fn walkdir(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir") {
            let entry = entry.expect("entry");
            if entry.file_type().expect("type").is_dir() {
                stack.push(entry.path());
            } else {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    out
}

fn small() -> Options {
    Options {
        users: 40,
        messages_per_user: 4,
        ..Options::default()
    }
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    let c = tempfile::tempdir().expect("tempdir");
    let sa = generate(&a.path().join("k"), &small()).expect("generate");
    let sb = generate(&b.path().join("k"), &small()).expect("generate");
    generate(&c.path().join("k"), &Options { seed: 2, ..small() }).expect("generate");
    assert_eq!(sa, sb);
    let (ta, tb, tc) = (
        tree(&a.path().join("k")),
        tree(&b.path().join("k")),
        tree(&c.path().join("k")),
    );
    assert_eq!(ta.keys().collect::<Vec<_>>(), tb.keys().collect::<Vec<_>>());
    for (path, bytes) in &ta {
        assert!(
            tb[path] == *bytes,
            "{} differs between two runs",
            path.display()
        );
    }
    assert_ne!(ta, tc, "another seed writes another install");
    // Message files carry their date as mtime, the same in both runs.
    let eml = ta
        .keys()
        .find(|p| p.extension() == Some(OsStr::new("eml")))
        .expect("a message");
    let mtime = |root: &Path| {
        std::fs::metadata(root.join(eml))
            .expect("meta")
            .modified()
            .expect("mtime")
    };
    assert_eq!(mtime(&a.path().join("k")), mtime(&b.path().join("k")));
}

#[test]
fn install_is_consistent_and_plants_what_it_says() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("k");
    let summary = generate(&root, &small()).expect("generate");
    let config = Config::load(&root).expect("kc-core reads both files");
    assert_eq!(config.users().count(), summary.users);
    assert_eq!(config.domains().count(), summary.domains);
    assert!(config.groups().count() > 0 && config.aliases().count() > 0);
    assert!(config.mailing_lists().count() > 0 && config.templates().count() == 2);
    assert!(config.additional_data().count() > 0);
    assert_eq!(config.store_dir(), Some("store"));
    assert_eq!(config.builtin_admin(), Some("Admin"));
    let mapped = summary.mapped_domain.as_deref().expect("a mapped domain");
    assert!(config.domain(mapped).expect("declared").mapped());
    assert!(
        config
            .users()
            .filter(|u| u.domain() == mapped)
            .all(|u| u.mapped())
    );
    // Unknown records survive for the tools to pass through.
    assert!(config.users.section_names().any(|n| n == "Resource"));

    // Message counts and bytes agree with the filesystem.
    let mail = root.join("store/mail");
    let all = store::mailbox_stats(&mail).expect("stats");
    assert_eq!(all.messages, summary.messages);
    let eml_bytes: u64 = walkdir(&mail)
        .iter()
        .filter(|p| p.extension() == Some(OsStr::new("eml")))
        .map(|p| std::fs::metadata(p).expect("meta").len())
        .sum();
    assert_eq!(eml_bytes, summary.message_bytes);

    // Each folder's index.fld and status.fld agree with its messages.
    for status in store::folder_level_files(&mail, &[store::STATUS_FLD]).expect("walk") {
        let folder = status.parent().expect("folder");
        let index = std::fs::read_to_string(folder.join("index.fld")).expect("index.fld");
        let msgs = folder.join(store::MESSAGES_DIR);
        let mut files: Vec<_> = std::fs::read_dir(&msgs)
            .expect("#msgs")
            .map(|e| e.expect("e").path())
            .collect();
        files.sort();
        assert_eq!(index.lines().count(), files.len(), "{}", folder.display());
        for (line, file) in index.lines().zip(&files) {
            let size = std::fs::metadata(file).expect("meta").len();
            assert!(
                line.contains(&format!(" S{size} ")),
                "{line} vs {}",
                file.display()
            );
            let uid = &line[1..9];
            assert_eq!(
                file.file_name().expect("name"),
                OsStr::new(&format!("{uid}.eml"))
            );
        }
        let status = std::fs::read_to_string(&status).expect("status");
        assert!(
            status.contains(&format!(" C{:08x} ", files.len())),
            "{status}"
        );
    }

    // Every share is an ACL entry in the owner's folder and a subscription in the sharee's map.
    let mut acl = BTreeSet::new();
    let mut subscriptions = BTreeSet::new();
    for mb in store::all_mailboxes(&mail).expect("mailboxes") {
        let owner = format!(
            "{}@{}",
            mb.name.to_string_lossy().to_lowercase(),
            mb.domain.to_string_lossy()
        );
        for folder in store::folders(&mb.path).expect("folders") {
            let Ok(bytes) = std::fs::read(mb.path.join(&folder).join(store::STATUS_FLD)) else {
                continue;
            };
            for e in StatusFld::parse(bytes).acl() {
                let sharee = String::from_utf8(e.address.to_vec()).expect("utf-8");
                acl.insert((owner.clone(), folder.display().to_string(), sharee));
            }
        }
        let map_path = mb.path.join(store::FOLDER_MAP);
        let map = FolderMap::parse(&map_path, std::fs::read(&map_path).expect("folder.map"))
            .expect("parses");
        for e in map.entries() {
            subscriptions.insert((e.owner.to_lowercase(), e.path.clone(), owner.clone()));
        }
    }
    assert_eq!(acl.len(), summary.shared_folders);
    assert!(summary.shared_folders > 0);
    assert_eq!(
        acl, subscriptions,
        "ACL entries and folder.map subscriptions match one to one"
    );

    // The planted inconsistencies are there.
    let p = &summary.planted;
    for orphan in &p.orphan_mailboxes {
        let (name, domain) = orphan.split_once('@').expect("address");
        assert!(mail.join(domain).join(name).is_dir());
        assert!(
            config.user(name, domain).is_none(),
            "{orphan} has no account"
        );
    }
    for domain in &p.orphan_domains {
        assert!(mail.join(domain).is_dir() && config.domain(domain).is_none());
    }
    let (account, dir) = &p.case_mismatches[0];
    let (name, domain) = account.split_once('@').expect("address");
    assert!(mail.join(domain).join(dir).is_dir() && !mail.join(domain).join(name).exists());
    assert!(dir.eq_ignore_ascii_case(name) && dir != name);
    for missing in &p.missing_mailboxes {
        let (name, domain) = missing.split_once('@').expect("address");
        assert!(config.user(name, domain).expect("account").enabled());
        assert!(!mail.join(domain).join(name).exists());
    }
    let (owner, folder) = &p.deleted_mailbox_folders[0];
    let (name, domain) = owner.split_once('@').expect("address");
    assert!(
        mail.join(domain)
            .join(name)
            .join(folder)
            .join(store::STATUS_FLD)
            .is_file()
    );
    // Addresses are unique within each domain, as the server requires.
    let mut seen = BTreeSet::new();
    for u in config.users() {
        for a in kc_core::config::list_tokens(u.email_addresses()) {
            assert!(
                seen.insert(format!("{a}@{}", u.domain()).to_lowercase()),
                "{a}@{} twice",
                u.domain()
            );
        }
    }
}

#[test]
fn committed_demo_is_what_the_generator_writes() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/demo");
    let dir = tempfile::tempdir().expect("tempdir");
    let fresh = dir.path().join("demo");
    let summary = generate(&fresh, &Options::demo()).expect("generate");
    assert_eq!((summary.domains, summary.users), (3, 15));
    assert!(
        (250..=400).contains(&summary.messages),
        "{} messages",
        summary.messages
    );
    let (committed, generated) = (tree(&demo), tree(&fresh));
    let only_committed: Vec<_> = committed
        .keys()
        .filter(|k| !generated.contains_key(*k))
        .collect();
    let only_generated: Vec<_> = generated
        .keys()
        .filter(|k| !committed.contains_key(*k))
        .collect();
    assert!(
        only_committed.is_empty() && only_generated.is_empty(),
        "fixtures/demo is stale: run scripts/make-demo.sh\nonly committed: {only_committed:?}\nonly generated: {only_generated:?}"
    );
    for (path, bytes) in &generated {
        assert!(
            committed[path] == *bytes,
            "fixtures/demo/{} is stale: run scripts/make-demo.sh",
            path.display()
        );
    }
}

#[test]
fn kc_fixture_writes_300_users_and_refuses_a_non_empty_target() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("x");
    let assert = Command::cargo_bin("kc-fixture")
        .expect("binary")
        .args(["--out"])
        .arg(&out)
        .args(["--users", "300", "--seed", "3"])
        .assert()
        .success();
    let summary: serde_json::Value =
        serde_json::from_slice(&assert.get_output().stdout).expect("JSON on stdout");
    assert_eq!(summary["users"], 300);
    assert!(
        summary["messages"].as_u64().expect("count") > 1000,
        "{summary}"
    );
    assert!(summary["shared_folders"].as_u64().expect("count") > 0);
    let config = Config::load(&out).expect("loads");
    assert_eq!(config.users().count(), 300);

    let assert = Command::cargo_bin("kc-fixture")
        .expect("binary")
        .arg("--out")
        .arg(&out)
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert_eq!(
        stderr,
        format!(
            "kc-fixture: error: {}: exists and is not empty\n",
            out.display()
        )
    );
    assert!(assert.get_output().stdout.is_empty());
}

#[test]
fn compare_trees_sees_modes_contents_and_extra_paths() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for root in [&a, &b] {
        std::fs::create_dir_all(root.join("sub")).expect("mkdir");
        std::fs::write(root.join("sub/f"), b"same").expect("write");
        std::fs::set_permissions(root.join("sub/f"), std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
        std::fs::write(root.join(".kc.lock"), b"pid").expect("write");
    }
    std::fs::write(b.join(".kc.lock"), b"other pid").expect("write");
    kc_testkit::compare_trees(&a, &b, &[".kc.lock"]).expect("equal but for the excluded lock");
    std::fs::set_permissions(b.join("sub/f"), std::fs::Permissions::from_mode(0o600))
        .expect("chmod");
    let err = kc_testkit::compare_trees(&a, &b, &[".kc.lock"]).expect_err("mode differs");
    assert_eq!(err, "sub/f: mode 644 vs 600");
    std::fs::set_permissions(b.join("sub/f"), std::fs::Permissions::from_mode(0o644))
        .expect("chmod");
    std::fs::write(b.join("sub/f"), b"diff").expect("write");
    std::fs::write(b.join("extra"), b"").expect("write");
    let err = kc_testkit::compare_trees(&a, &b, &[".kc.lock"]).expect_err("differs");
    assert_eq!(
        err,
        format!("only in {}: extra\nsub/f: contents differ", b.display())
    );
    assert_eq!(
        kc_testkit::differences(&a, &b, &[".kc.lock"]),
        [std::path::PathBuf::from("extra"), "sub/f".into()]
    );
}

/// A demo-sized install with `shapes`, in `dir/k` (siblings `dir/k-store`, `dir/k-volume`).
fn shaped(dir: &Path, shapes: kc_testkit::Shapes) -> (PathBuf, kc_testkit::Summary) {
    let root = dir.join("k");
    let summary = generate(
        &root,
        &Options {
            shapes,
            ..Options::demo()
        },
    )
    .expect("generate");
    assert_eq!(summary.shapes, shapes);
    (root, summary)
}

fn mailbox_names(mail: &Path) -> BTreeSet<String> {
    store::all_mailboxes(mail)
        .expect("mailboxes")
        .into_iter()
        .map(|m| {
            format!(
                "{}@{}",
                m.name.to_string_lossy(),
                m.domain.to_string_lossy()
            )
        })
        .collect()
}

#[test]
fn store_outside_puts_the_store_beside_the_root_and_leaves_a_stale_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (root, summary) = shaped(
        dir.path(),
        kc_testkit::Shapes {
            store_outside: true,
            ..Default::default()
        },
    );
    let store = dir.path().join("k-store");
    assert_eq!(summary.paths.store.as_deref(), Some(store.as_path()));
    assert_eq!(
        summary.paths.stale_store.as_deref(),
        Some(root.join("store").as_path())
    );
    assert_eq!(summary.paths.volume, None);
    // mailserver.cfg names the store by its absolute path, and kc-core follows it.
    let config = Config::load(&root).expect("loads");
    assert_eq!(config.store_dir(), store.to_str());
    let install = kc_core::install::Install::locate(Some(&root), None).expect("located");
    assert_eq!(install.store, store);
    assert!(install.store_outside);
    // The real store is the whole install's: the same mailboxes and messages as the plain demo.
    let plain = tempfile::tempdir().expect("tempdir");
    let (plain_root, plain_summary) = shaped(plain.path(), kc_testkit::Shapes::default());
    assert_eq!(
        (summary.mailboxes, summary.messages, summary.message_bytes),
        (
            plain_summary.mailboxes,
            plain_summary.messages,
            plain_summary.message_bytes
        )
    );
    assert_eq!(tree(&store), tree(&plain_root.join("store")));
    // The stale one is smaller and different: mailboxes of real accounts with other mail, and
    // a mailbox and a domain the real store does not have.
    let (real, stale) = (
        mailbox_names(&store.join("mail")),
        mailbox_names(&root.join("store/mail")),
    );
    assert!(stale.len() < real.len(), "{stale:?}");
    let only_stale: Vec<&String> = stale.difference(&real).collect();
    assert_eq!(
        only_stale,
        ["ghost@stale-domain.example", "stale.only@example.com"]
    );
    let shared: Vec<&String> = stale.intersection(&real).collect();
    assert_eq!(shared.len(), 2, "{shared:?}");
    for address in shared {
        let (name, domain) = address.split_once('@').expect("address");
        let rel = Path::new(domain).join(name);
        assert!(
            config.user(name, domain).is_some(),
            "{address} is an account"
        );
        assert_ne!(
            tree(&store.join("mail").join(&rel)),
            tree(&root.join("store/mail").join(&rel)),
            "{address}: the stale mailbox holds other mail"
        );
    }
    // A sibling in the way is refused, by name.
    std::fs::create_dir(dir.path().join("k3")).expect("mkdir");
    std::fs::write(dir.path().join("k3-store"), "").expect("a file in the way");
    let err = generate(
        &dir.path().join("k3"),
        &Options {
            shapes: summary.shapes,
            ..Options::demo()
        },
    )
    .expect_err("k3-store is not a free directory");
    assert!(err.to_string().contains("k3-store"), "{err}");
}

#[test]
fn symlinked_configs_and_store_point_into_the_volume() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (root, summary) = shaped(
        dir.path(),
        kc_testkit::Shapes {
            symlink_configs: true,
            symlink_store: true,
            ..Default::default()
        },
    );
    let volume = dir.path().join("k-volume");
    assert_eq!(summary.paths.volume.as_deref(), Some(volume.as_path()));
    assert_eq!(
        summary.paths.store.as_deref(),
        Some(volume.join("store").as_path())
    );
    for (link, target) in [
        ("users.cfg", volume.join("users.cfg")),
        ("mailserver.cfg", volume.join("mailserver.cfg")),
        ("store", volume.join("store")),
    ] {
        let meta = std::fs::symlink_metadata(root.join(link)).expect("there");
        assert!(meta.file_type().is_symlink(), "{link} is a symlink");
        assert_eq!(std::fs::read_link(root.join(link)).expect("link"), target);
        assert!(
            target.is_absolute() && target.exists(),
            "{}",
            target.display()
        );
    }
    // The server's .bak copies are plain files in the root, with the files' bytes.
    for name in ["users.cfg", "mailserver.cfg"] {
        let bak = root.join(format!("{name}.bak"));
        assert!(std::fs::symlink_metadata(&bak).expect("bak").is_file());
        assert_eq!(
            std::fs::read(&bak).expect("bak"),
            std::fs::read(volume.join(name)).expect("cfg")
        );
    }
    // The same install as the plain demo, seen through the links.
    let plain = tempfile::tempdir().expect("tempdir");
    let (plain_root, _) = shaped(plain.path(), kc_testkit::Shapes::default());
    assert_eq!(tree(&volume.join("store")), tree(&plain_root.join("store")));
    for name in ["users.cfg", "mailserver.cfg"] {
        assert_eq!(
            std::fs::read(root.join(name)).expect("through the link"),
            std::fs::read(plain_root.join(name)).expect("plain")
        );
    }
    let install = kc_core::install::Install::locate(Some(&root), None).expect("located");
    assert!(install.store_outside, "the store is in the volume");
    // Only the configs in the volume, the store in the root.
    let only = tempfile::tempdir().expect("tempdir");
    let (root, summary) = shaped(
        only.path(),
        kc_testkit::Shapes {
            symlink_configs: true,
            ..Default::default()
        },
    );
    assert_eq!(summary.paths.store, None);
    assert!(
        std::fs::symlink_metadata(root.join("users.cfg"))
            .expect("cfg")
            .file_type()
            .is_symlink()
    );
    assert!(
        std::fs::symlink_metadata(root.join("store"))
            .expect("store")
            .is_dir()
    );
}

#[test]
fn bom_crlf_is_the_plain_text_with_a_bom_and_crlf() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (root, _) = shaped(
        dir.path(),
        kc_testkit::Shapes {
            bom_crlf: true,
            ..Default::default()
        },
    );
    let plain = tempfile::tempdir().expect("tempdir");
    let (plain_root, _) = shaped(plain.path(), kc_testkit::Shapes::default());
    for name in ["users.cfg", "mailserver.cfg", "users.cfg.bak"] {
        let bytes = std::fs::read(root.join(name)).expect("read");
        assert_eq!(&bytes[..3], b"\xef\xbb\xbf", "{name} starts with a BOM");
        let lf = bytes.iter().filter(|&&b| b == b'\n').count();
        let crlf = bytes.windows(2).filter(|w| w == b"\r\n").count();
        assert!(lf > 40 && lf == crlf, "{name}: every line ends with CRLF");
        let plain = std::fs::read_to_string(plain_root.join(name)).expect("plain");
        assert_eq!(
            bytes,
            format!("\u{feff}{}", plain.replace('\n', "\r\n")).into_bytes(),
            "{name}"
        );
    }
    // The rest of the install is the plain one.
    assert_eq!(
        std::fs::read(root.join("cluster.cfg")).expect("cluster"),
        std::fs::read(plain_root.join("cluster.cfg")).expect("cluster")
    );
}

#[test]
fn elementtree_writes_as_python_and_xdocument_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (root, _) = shaped(
        dir.path(),
        kc_testkit::Shapes {
            elementtree: true,
            ..Default::default()
        },
    );
    let mailserver = std::fs::read(root.join("mailserver.cfg")).expect("read");
    let text = String::from_utf8(mailserver.clone()).expect("utf-8");
    assert!(
        text.starts_with("<config>\n  <table name=\"Directories\">"),
        "no declaration"
    );
    assert!(text.ends_with("</config>"), "no final newline");
    assert!(!text.contains("<!--"), "ElementTree drops comments");
    assert!(mailserver.is_ascii(), "non-ASCII as references");
    assert!(text.contains("<variable name=\"Description\">Neue Verk&#228;ufer</variable>"));
    assert!(text.contains("      <variable name=\"Aliases\" />\n"));
    assert!(
        !text.contains("></variable>"),
        "every empty element is self-closed"
    );
    let users = std::fs::read_to_string(root.join("users.cfg")).expect("read");
    assert!(users.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<config>\n"));
    assert!(users.contains("\n  <list name=\"Alias\" />\n  <list name=\"UserAdditionalData\">"));
    assert!(users.contains("<variable name=\"ForwardAddress\" />"));
    assert!(!users.contains("></variable>"));
    // kc-core reads both: no aliases, the template's description decoded.
    let config = Config::load(&root).expect("loads");
    assert_eq!(config.aliases().count(), 0);
    assert!(
        config
            .templates()
            .any(|t| t.description() == "Neue Verk\u{e4}ufer")
    );
    assert!(config.users().count() == 15 && config.domains().count() == 3);
}

#[test]
fn global_public_folders_have_an_acl_fld_and_every_sub_fld_names_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (root, summary) = shaped(
        dir.path(),
        kc_testkit::Shapes {
            global_public: true,
            ..Default::default()
        },
    );
    let mail = root.join("store/mail");
    let config = Config::load(&root).expect("loads");
    // The server's #public, never a domain; no domain has its own.
    assert_eq!(
        store::server_dirs(&mail).expect("server dirs"),
        [mail.join("#public")]
    );
    for d in store::domains(&mail).expect("domains") {
        assert!(!d.path.join("#public").exists(), "{}", d.path.display());
    }
    assert_eq!(
        std::fs::read_to_string(mail.join("#public/acl.fld")).expect("acl.fld"),
        "Aanelson@example.com lrswipkxte\nArstewart@example.com lr\nAlhill@example.com lr\nApnelson@example.org lrswipkxte\nAmwood@example.org lr\nAlclark@example.org lr\n"
    );
    // The folders' own ACLs say the same.
    for folder in ["Announcements", "Company Calendar"] {
        let status = std::fs::read(mail.join("#public").join(folder).join(store::STATUS_FLD))
            .expect("status.fld");
        let acl: Vec<String> = StatusFld::parse(status)
            .acl()
            .map(|e| String::from_utf8_lossy(e.address).into_owned())
            .collect();
        assert_eq!(acl.len(), 6, "{folder}");
    }
    // Every mailbox of an account with a colleague subscribes to another account's folder.
    let addresses: BTreeSet<String> = config.users().map(|u| u.address().to_lowercase()).collect();
    for mb in store::all_mailboxes(&mail).expect("mailboxes") {
        let own = format!(
            "{}@{}",
            mb.name.to_string_lossy(),
            mb.domain.to_string_lossy()
        )
        .to_lowercase();
        let sub = std::fs::read(mb.path.join(store::SUB_FLD)).expect("sub.fld");
        let text = String::from_utf8(sub.clone()).expect("utf-8");
        assert!(text.starts_with("INBOX\nINBOX/Projects\n"), "{own}");
        assert!(
            text.contains("\n#public/Announcements\n#public/Company Calendar\n"),
            "{own}"
        );
        let named: Vec<String> = kc_core::store::sub_fld::SubFld::parse(sub)
            .addresses()
            .map(|a| String::from_utf8_lossy(a).to_lowercase())
            .collect();
        if mb.domain == "corp.example.net" || mb.domain == "old-domain.example" {
            continue; // a lone mapped account, and the orphan domain: no colleagues
        }
        assert!(!named.is_empty(), "{own}: {text}");
        for a in &named {
            assert!(*a != own && addresses.contains(a), "{own} names {a}");
        }
    }
    // The planted inconsistencies are the plain demo's.
    let plain = tempfile::tempdir().expect("tempdir");
    let (_, plain_summary) = shaped(plain.path(), kc_testkit::Shapes::default());
    assert_eq!(summary.planted, plain_summary.planted);
}

#[test]
fn kc_fixture_flags_write_the_shapes_and_say_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("x");
    let assert = Command::cargo_bin("kc-fixture")
        .expect("binary")
        .arg("--out")
        .arg(&out)
        .args([
            "--demo",
            "--store-outside",
            "--symlink-configs",
            "--bom-crlf",
            "--elementtree",
            "--global-public",
        ])
        .assert()
        .success();
    let summary: serde_json::Value =
        serde_json::from_slice(&assert.get_output().stdout).expect("JSON on stdout");
    assert_eq!(
        summary["shapes"],
        serde_json::json!({
            "store_outside": true, "symlink_configs": true, "symlink_store": false,
            "bom_crlf": true, "elementtree": true, "global_public": true
        })
    );
    let volume = dir.path().join("x-volume");
    let store = dir.path().join("x-store");
    assert_eq!(
        summary["paths"],
        serde_json::json!({
            "store": store, "stale_store": out.join("store"), "volume": volume
        })
    );
    assert!(
        std::fs::symlink_metadata(out.join("mailserver.cfg"))
            .expect("link")
            .file_type()
            .is_symlink()
    );
    let mailserver = std::fs::read(volume.join("mailserver.cfg")).expect("read");
    assert!(mailserver.starts_with(b"\xef\xbb\xbf<config>\r\n"));
    assert!(store.join("mail/#public/acl.fld").is_file());
    assert!(
        out.join("store/mail/#public/acl.fld").is_file(),
        "the stale store has its own"
    );

    let assert = Command::cargo_bin("kc-fixture")
        .expect("binary")
        .arg("--out")
        .arg(dir.path().join("y"))
        .args(["--store-outside", "--symlink-store"])
        .assert()
        .code(2);
    assert!(assert.get_output().stdout.is_empty());
    assert!(!dir.path().join("y").exists());
}

/// Every attachment of the messages under `root`: its MIME part header, and its bytes decoded.
fn attachments(root: &Path) -> Vec<(String, Vec<u8>)> {
    use base64::Engine;
    let mut out = Vec::new();
    for p in walkdir(root) {
        if p.extension() != Some(OsStr::new("eml")) {
            continue;
        }
        let text = String::from_utf8(std::fs::read(&p).expect("read")).expect("ASCII mail");
        let Some(at) = text.find("Content-Transfer-Encoding: base64") else {
            continue;
        };
        let head_start = text[..at].rfind("--").expect("a part boundary before it");
        let body_start = at + text[at..].find("\r\n\r\n").expect("a blank line") + 4;
        let body_end = body_start + text[body_start..].find("--").expect("the closing boundary");
        let encoded: String = text[body_start..body_end]
            .split("\r\n")
            .inspect(|line| assert!(line.len() <= 76, "{}: line of {}", p.display(), line.len()))
            .collect();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .expect("valid base64");
        out.push((text[head_start..at].to_owned(), decoded));
    }
    out
}

#[test]
fn text_attachments_are_base64_documents_and_the_default_has_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        Command::cargo_bin("kc-fixture")
            .expect("binary")
            .arg("--out")
            .arg(&out)
            .args(["--users", "40", "--messages-per-user", "8"])
            .args(extra)
            .assert()
            .success();
        attachments(&out)
    };
    // The default, and 0 said aloud, write the same: random bytes as PDFs.
    let plain = run("plain", &[]);
    assert!(plain.len() >= 20, "{} attachments", plain.len());
    assert_eq!(plain, run("zero", &["--text-attachments", "0"]));
    for (head, _) in &plain {
        assert!(head.contains("Content-Type: application/pdf;"), "{head}");
    }
    // All text: CSV exports and prose, both, each a printable ASCII document.
    let text = run("text", &["--text-attachments", "100"]);
    assert!(text.len() >= 20, "{} attachments", text.len());
    let (mut csv, mut txt) = (0, 0);
    for (head, doc) in &text {
        assert!(
            doc.iter()
                .all(|b| b.is_ascii_graphic() || b" \r\n".contains(b)),
            "{head}"
        );
        if head.contains("Content-Type: text/csv; charset=utf-8; name=\"export-") {
            assert!(
                doc.starts_with(b"date,customer,invoice,amount,status\r\n2025-"),
                "{head}"
            );
            csv += 1;
        } else {
            assert!(
                head.contains("Content-Type: text/plain; charset=utf-8; name=\"export-"),
                "{head}"
            );
            assert!(head.contains(".txt\""), "{head}");
            txt += 1;
        }
    }
    assert!(csv > 0 && txt > 0, "{csv} CSV, {txt} text");

    let refused = Command::cargo_bin("kc-fixture")
        .expect("binary")
        .arg("--out")
        .arg(dir.path().join("over"))
        .args(["--text-attachments", "101"])
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    assert!(stderr.contains("--text-attachments"), "{stderr}");
    assert!(!dir.path().join("over").exists());
}

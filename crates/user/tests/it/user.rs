//! kc-user end to end on the demo install: each action's exact effect, the refusals, and undo
//! taking the install back through every change byte for byte.

use std::path::{Path, PathBuf};
use std::process::Output;

use kc_core::config::Config;
use kc_testkit::{Options, Scratch};

fn run(s: &Scratch, args: &[&str]) -> Output {
    s.tool("kc-user").args(args).output().expect("runs")
}

fn ok(s: &Scratch, args: &[&str]) -> Output {
    let out = run(s, args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A copy of the install as it is now, to compare with after undoing what follows.
fn snapshot(s: &Scratch, name: &str) -> PathBuf {
    let to = s.root.parent().expect("dir").join(name);
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(&s.root)
        .arg(&to)
        .status()
        .expect("cp");
    assert!(copied.success());
    to
}

fn same(a: &Path, b: &Path) {
    if let Err(d) = kc_testkit::compare_trees(a, b, &kc_testkit::TOOLKIT_FILES) {
        panic!("{d}");
    }
}

#[test]
fn disable_and_enable_flip_one_variable_and_log_it() {
    let s = Scratch::new(&Options::demo());
    ok(&s, &["disable", "mwood@example.org"]);
    let before = std::fs::read_to_string(s.before.join("users.cfg")).expect("read");
    let at = before.find(">mwood<").expect("mwood's record");
    let flag = at + before[at..].find(">1</variable>").expect("Account_enabled");
    assert!(before[..flag].ends_with("<variable name=\"Account_enabled\""));
    let want = format!("{}>0{}", &before[..flag], &before[flag + 2..]);
    assert_eq!(s.read("users.cfg"), want);
    assert_eq!(
        s.changed(),
        [PathBuf::from("store/logs/config.log"), "users.cfg".into()]
    );
    assert_eq!(
        s.new_log_lines("store/logs/config.log"),
        ["kc-user - update User set Account_enabled='0' where Name='mwood', Domain='example.org'"]
    );
    let config = Config::load(&s.root).expect("config");
    assert!(
        !config
            .user("mwood", "example.org")
            .expect("there")
            .enabled()
    );
    // Disabling again changes nothing and says so.
    let out = ok(&s, &["disable", "MWood@example.org"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("mwood@example.org is already disabled"));
    ok(&s, &["enable", "mwood@example.org"]);
    assert_eq!(s.read("users.cfg"), before);
}

#[test]
fn remove_keep_delete_and_transfer_then_undo_back_through_every_change() {
    let s = Scratch::new(&Options::demo());
    let mail = PathBuf::from("store/mail/example.org");

    // 1. Remove keeping the mailbox: the record and its password history go, the mailbox stays,
    //    the references are listed as warnings.
    let out = ok(&s, &["remove", "lclark@example.org", "--mailbox", "keep"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: lclark@example.org is still named: member of group sales@example.org (use --purge-settings to remove)"),
        "{stderr}"
    );
    let config = Config::load(&s.root).expect("config");
    assert!(config.user("lclark", "example.org").is_none());
    assert!(!config.additional_data().any(|d| d.name() == "lclark"));
    assert!(s.root.join(mail.join("lclark")).is_dir());
    assert_eq!(
        s.new_log_lines("store/logs/warning.log"),
        ["kc-user - Remove User 'lclark@example.org' (mailbox kept)"]
    );
    let after_keep = snapshot(&s, "after-keep");

    // 2. Remove deleting the mailbox.
    ok(&s, &["remove", "oreed@example.org", "--mailbox", "delete"]);
    assert!(!s.root.join(mail.join("oreed")).exists());
    let after_delete = snapshot(&s, "after-delete");

    // 3. Remove moving the mailbox to another account, purging every reference.
    ok(
        &s,
        &[
            "remove",
            "mwood@example.org",
            "--mailbox",
            "transfer:pnelson@example.org",
            "--purge-settings",
        ],
    );
    let folder = s
        .root
        .join(mail.join("pnelson/Deleted mailbox \u{2014} mwood@example.org"));
    // Every file of the mailbox is there, byte for byte, plus the folder's status.fld.
    assert_eq!(
        kc_testkit::differences(&s.before.join(mail.join("mwood")), &folder, &[]),
        [PathBuf::from("status.fld")]
    );
    let status = std::fs::read_to_string(folder.join("status.fld")).expect("status.fld");
    assert!(
        status.starts_with("T2 G") && status.ends_with(" U00000001 C00000000 M6 D0 R0 N0 S0\n"),
        "{status}"
    );
    let config = Config::load(&s.root).expect("config");
    for g in config.groups() {
        assert!(!g.member_names().any(|m| m == "mwood"), "{}", g.name());
    }
    for l in config.mailing_lists() {
        assert!(!l.members().contains("mwood@"), "{}", l.name());
    }
    for f in kc_core::store::folder_level_files(
        &s.root.join("store/mail"),
        &["status.fld", "folder.map"],
    )
    .expect("walk")
    {
        let text = std::fs::read_to_string(&f).expect("read");
        assert!(!text.contains("mwood@example.org"), "{}", f.display());
    }
    let stdout = String::from_utf8_lossy(&ok(&s, &["list", "--json", "-d", "example.org"]).stdout)
        .into_owned();
    assert!(!stdout.contains("\"name\":\"mwood\""));
    assert!(
        stdout.lines().all(|l| l.starts_with("{\"name\":")),
        "{stdout}"
    );

    // Undo, repeated, walks back through every state.
    s.undo_last();
    same(&after_delete, &s.root);
    s.undo_last();
    same(&after_keep, &s.root);
    s.undo_last();
    s.assert_unchanged();
}

/// users.cfg with `who`'s Account_enabled set to `to` (it must hold the other value).
fn flag_of(users: &str, who: &str, to: &str) -> String {
    let at = users.find(&format!(">{who}<")).expect("the record");
    let from = if to == "0" { "1" } else { "0" };
    let var = format!("<variable name=\"Account_enabled\">{from}<");
    let flag = at + users[at..].find(&var).expect("Account_enabled") + var.len() - 2;
    format!("{}{to}{}", &users[..flag], &users[flag + 1..])
}

#[test]
fn a_mapped_account_is_disabled_enabled_and_removed_as_the_console_does() {
    let s = Scratch::new(&Options::demo());
    let before = s.read("users.cfg");
    let disabled = flag_of(&before, "hnelson", "0");
    let log = "store/logs/config.log";
    let mailbox = PathBuf::from("store/mail/corp.example.net/hnelson");

    ok(&s, &["disable", "hnelson@corp.example.net"]);
    assert_eq!(s.read("users.cfg"), disabled);
    ok(&s, &["enable", "hnelson@corp.example.net"]);
    assert_eq!(s.read("users.cfg"), before);
    assert_eq!(
        s.new_log_lines(log),
        [
            "kc-user - update User set Account_enabled='0' where Name='hnelson', Domain='corp.example.net'",
            "kc-user - update User set Account_enabled='1' where Name='hnelson', Domain='corp.example.net'",
        ]
    );

    // Remove only disables it; without --mailbox its mailbox is left as it is.
    let out = ok(&s, &["remove", "hnelson@corp.example.net"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.contains("warning"))
            .collect::<Vec<_>>(),
        [
            "kc-user: warning: hnelson@corp.example.net is mapped from a directory service: it is disabled, not removed, as the administration console does (remove it in the directory); mailbox kept"
        ]
    );
    assert_eq!(s.read("users.cfg"), disabled);
    same(&s.before.join(&mailbox), &s.root.join(&mailbox));
    assert_eq!(
        s.new_log_lines("store/logs/warning.log"),
        [
            "kc-user - Remove User 'hnelson@corp.example.net' (mapped from a directory service: it is disabled, not removed; mailbox kept)"
        ]
    );
    s.undo_last();
    assert_eq!(s.read("users.cfg"), before);

    // With --mailbox, the mailbox goes where it says; the record stays, disabled.
    ok(
        &s,
        &[
            "remove",
            "hnelson@corp.example.net",
            "--mailbox",
            "transfer:tbaker@example.org",
        ],
    );
    assert_eq!(s.read("users.cfg"), disabled);
    assert!(!s.root.join(&mailbox).exists());
    // Its messages byte for byte under the target (the folder gains a status.fld of its own).
    same(
        &s.before.join(&mailbox).join("INBOX"),
        &s.root
            .join("store/mail/example.org/tbaker/Deleted mailbox — hnelson@corp.example.net/INBOX"),
    );
    s.undo_last();
    s.undo_last();
    s.undo_last();
    s.assert_unchanged();
}

/// Writes `text` to `rel` in both the install and its pristine copy.
fn plant(s: &Scratch, rel: &str, text: &str) {
    for root in [&s.root, &s.before] {
        std::fs::write(root.join(rel), text).expect("write");
    }
}

#[test]
fn a_local_account_of_a_mapped_domain_is_local_and_the_last_admin_of_any_kind_stays() {
    let s = Scratch::new(&Options::demo());
    let users = s.read("users.cfg");
    // A local administrator in the mapped domain (DataSource 0), as the vendor advises keeping
    // for when the directory is down.
    let at = users
        .find("<variable name=\"Name\">hnelson<")
        .expect("hnelson");
    let start = users[..at].rfind("<listitem>").expect("its record");
    let end = at + users[at..].find("</listitem>").expect("end") + "</listitem>".len();
    let local = users[start..end]
        .replace(">hnelson<", ">localadm<")
        .replace(
            "<variable name=\"DataSource\">1<",
            "<variable name=\"DataSource\">0<",
        );
    let planted = format!("{}\n    {local}{}", &users[..end], &users[end..]);
    plant(&s, "users.cfg", &planted);
    let out = ok(
        &s,
        &["remove", "localadm@corp.example.net", "--mailbox", "keep"],
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("mapped"));
    assert_eq!(
        s.new_log_lines("store/logs/config.log"),
        ["kc-user - delete User where Name='localadm', Domain='corp.example.net'"]
    );
    s.undo_last();
    s.assert_unchanged();

    // Only mapped administrators and no built-in one: the last of them is never disabled.
    let only_mapped = planted.replace(">localadm<", ">localuser<").replace(
        "<variable name=\"Rights\">3</variable>",
        "<variable name=\"Rights\">0</variable>",
    );
    let hnelson = only_mapped.find(">hnelson<").expect("hnelson");
    let rights = hnelson + only_mapped[hnelson..].find(">0</variable>").expect("a 0");
    assert!(only_mapped[..rights].ends_with("<variable name=\"Rights\""));
    let only_mapped = format!("{}>3{}", &only_mapped[..rights], &only_mapped[rights + 2..]);
    plant(&s, "users.cfg", &only_mapped);
    let server = s.read("mailserver.cfg").replace(
        "<variable name=\"BuiltInAdminEnabled\">1<",
        "<variable name=\"BuiltInAdminEnabled\">0<",
    );
    plant(&s, "mailserver.cfg", &server);
    for args in [
        &["disable", "hnelson@corp.example.net"][..],
        &["remove", "hnelson@corp.example.net"],
    ] {
        let out = run(&s, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "kc-user: error: hnelson@corp.example.net: would leave no enabled account with full administration rights (Rights 3); nothing was changed\n"
        );
        s.assert_unchanged();
    }
}

#[test]
fn refusals_exit_2_and_change_nothing() {
    let s = Scratch::new(&Options::demo());
    for (args, says) in [
        (
            &["disable", "nobody@example.org"][..],
            "nobody@example.org: no such user",
        ),
        (
            &["remove", "Admin@example.com", "--mailbox", "keep"],
            "Admin@example.com: is the built-in administrator",
        ),
        (
            &["disable", "anelson@example.com", "pnelson@example.org"],
            "anelson@example.com, pnelson@example.org: would leave no enabled account with full administration rights (Rights 3)",
        ),
        (
            &["remove", "lclark@example.org"],
            "lclark@example.org: say what happens to its mailbox: --mailbox keep, delete or transfer:USER@DOMAIN",
        ),
        (
            &[
                "remove",
                "mwood@example.org",
                "--mailbox",
                "transfer:ghost@example.org",
            ],
            "transfer target ghost@example.org: no such user",
        ),
        (
            &[
                "remove",
                "mwood@example.org",
                "--mailbox",
                "transfer:mwood@example.org",
            ],
            "transfer target mwood@example.org: is one of the accounts removed",
        ),
    ] {
        let out = run(&s, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("kc-user: error: ") && stderr.contains(says),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.trim_end().ends_with("nothing was changed"),
            "{stderr}"
        );
        s.assert_unchanged();
    }
    // One full admin may go while another remains.
    let out = run(&s, &["-n", "disable", "anelson@example.com"]);
    assert_eq!(out.status.code(), Some(0));
    // A bad --mailbox value is a usage error.
    let out = run(&s, &["remove", "mwood@example.org", "--mailbox", "shred"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("keep, delete or transfer:USER@DOMAIN"));
    s.assert_unchanged();
}

#[test]
fn list_measures_every_mailbox() {
    let s = Scratch::new(&Options::demo());
    let out = ok(&s, &["list", "--json"]);
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(rows.len(), 15);
    let mwood = rows
        .iter()
        .find(|r| r["name"] == "mwood")
        .expect("mwood listed");
    let du =
        kc_core::store::mailbox_stats(&s.root.join("store/mail/example.org/mwood")).expect("stats");
    assert_eq!(mwood["mailbox_bytes"], du.bytes);
    assert_eq!(mwood["enabled"], true);
    let helen = rows
        .iter()
        .find(|r| r["name"] == "hnelson")
        .expect("listed");
    assert_eq!(helen["data_source"], "mapped");
    let never = rows.iter().find(|r| r["name"] == "tbaker").expect("listed");
    assert!(never["mailbox_bytes"].is_null());
    assert_eq!(
        rows[0]
            .as_object()
            .expect("object")
            .keys()
            .cloned()
            .collect::<Vec<_>>(),
        [
            "data_source",
            "domain",
            "enabled",
            "full_name",
            "mailbox_bytes",
            "name",
            "rights"
        ]
    );
}

#[test]
fn a_store_outside_the_root_is_listed_changed_and_undone() {
    let s = Scratch::new(&Options::demo());
    let elsewhere = s.root.parent().expect("dir").join("data-store");
    std::fs::rename(s.root.join("store"), &elsewhere).expect("move the store");
    let before = s.root.parent().expect("dir").join("data-store-before");
    assert!(
        std::process::Command::new("cp")
            .arg("-a")
            .arg(&elsewhere)
            .arg(&before)
            .status()
            .expect("cp")
            .success()
    );
    let store = elsewhere.to_str().expect("utf-8");
    let out = ok(&s, &["--store", store, "list", "--json"]);
    let mwood: serde_json::Value = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON"))
        .find(|r| r["name"] == "mwood")
        .expect("mwood listed");
    let du =
        kc_core::store::mailbox_stats(&elsewhere.join("mail/example.org/mwood")).expect("stats");
    assert_eq!(mwood["mailbox_bytes"], du.bytes);
    // A writer works on the store where it is: the mailbox moves there, the audit line goes
    // to its logs, and undo puts it all back.
    ok(
        &s,
        &[
            "--store",
            store,
            "remove",
            "mwood@example.org",
            "--mailbox",
            "transfer:pnelson@example.org",
        ],
    );
    assert!(!elsewhere.join("mail/example.org/mwood").exists());
    assert!(
        elsewhere
            .join("mail/example.org/pnelson/Deleted mailbox — mwood@example.org/INBOX")
            .is_dir()
    );
    let log = std::fs::read_to_string(elsewhere.join("logs/warning.log")).expect("log");
    assert!(
        log.lines().last().is_some_and(|l| l.contains("kc-user")),
        "{log}"
    );
    assert!(
        !s.root.join("store").exists(),
        "nothing written at <root>/store"
    );
    let undo = assert_cmd::Command::cargo_bin("kc-backup")
        .expect("kc-backup")
        .arg("--server")
        .arg(&s.root)
        .args(["--store", store, "--pid-file"])
        .arg(s.root.join("no.pid"))
        .args(["undo", "--last"])
        .output()
        .expect("runs");
    assert!(
        undo.status.success(),
        "{}",
        String::from_utf8_lossy(&undo.stderr)
    );
    kc_testkit::compare_trees(&before, &elsewhere, &[]).expect("the store is back byte for byte");
}

#[test]
fn purge_settings_removes_the_account_from_public_acl_fld_and_every_sub_fld() {
    let s = Scratch::new(&Options {
        shapes: kc_testkit::Shapes {
            global_public: true,
            ..Default::default()
        },
        ..Options::demo()
    });
    // A domain's own #public/acl.fld too, with a near miss that must stay.
    let domain_acl = "store/mail/example.org/#public/acl.fld";
    for root in [&s.root, &s.before] {
        std::fs::create_dir_all(root.join("store/mail/example.org/#public")).expect("mkdir");
        std::fs::write(
            root.join(domain_acl),
            "Apnelson@example.org lrswipkxte\r\nAxpnelson@example.org lr\r\nAPNelson@Example.ORG lr\r\n",
        )
        .expect("write");
    }
    let global_acl = "store/mail/#public/acl.fld";
    let subs: Vec<PathBuf> = kc_testkit::share_files_naming(&s.before, "~pnelson@example.org/")
        .into_iter()
        .filter(|p| p.ends_with("sub.fld"))
        .collect();
    assert!(!subs.is_empty());

    // Without --purge-settings they are only told (a dry run prints its warnings with the plan).
    let out = ok(
        &s,
        &["-n", "remove", "pnelson@example.org", "--mailbox", "keep"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    // #public's two status.fld, two folder.map, acl.fld, the domain's acl.fld, the sub.fld.
    let lines: usize = subs
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(s.before.join(p)).expect("read");
            text.matches("~pnelson@example.org/").count()
        })
        .sum();
    let entries = 2 + 2 + 1 + 2 + lines;
    let files = 2 + 2 + 1 + 1 + subs.len();
    assert!(
        stderr.contains(&format!(
            "kc-user: warning: {entries} folder sharing entries (ACLs in status.fld and #public/acl.fld, subscriptions in folder.map and sub.fld) in {files} files still name pnelson@example.org (use --purge-settings to remove)\n"
        )),
        "{stderr}"
    );
    s.assert_unchanged();

    ok(
        &s,
        &[
            "remove",
            "pnelson@example.org",
            "--mailbox",
            "keep",
            "--purge-settings",
        ],
    );
    assert_eq!(
        s.read(global_acl),
        "Aanelson@example.com lrswipkxte\nArstewart@example.com lr\nAlhill@example.com lr\nAmwood@example.org lr\nAlclark@example.org lr\n"
    );
    assert_eq!(s.read(domain_acl), "Axpnelson@example.org lr\r\n");
    for sub in &subs {
        let before = std::fs::read_to_string(s.before.join(sub)).expect("read");
        let want: String = before
            .split_inclusive('\n')
            .filter(|line| !line.contains("~pnelson@example.org/"))
            .collect();
        assert_ne!(want, before);
        assert_eq!(s.read(sub), want, "{}", sub.display());
    }
    // Nothing outside the kept mailbox names it any more, but the near miss.
    let left: Vec<PathBuf> = kc_testkit::share_files_naming(&s.root, "pnelson@example.org")
        .into_iter()
        .filter(|p| !p.starts_with("store/mail/example.org/pnelson"))
        .collect();
    assert_eq!(left, [PathBuf::from(domain_acl)]);
    s.undo_last();
    s.assert_unchanged();
}

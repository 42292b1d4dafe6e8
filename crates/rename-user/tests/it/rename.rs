//! kc-rename-user end to end on generated installs: what it changes (exactly), what it refuses,
//! and that `undo` takes every rename back byte for byte.

use std::path::{Path, PathBuf};
use std::process::Output;

use kc_core::config::Config;
use kc_testkit::{Options, Scratch};

const BIN: &str = "kc-rename-user";

fn run(s: &Scratch, args: &[&str]) -> Output {
    s.tool(BIN).args(args).output().expect("runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn read(root: &Path, rel: &str) -> String {
    std::fs::read_to_string(root.join(rel)).expect("read")
}

/// The alias the tool adds, as the document writes it.
fn alias(name: &str, domain: &str, to: &str, nl: &str) -> String {
    format!(
        "    <listitem>{nl}      <variable name=\"Name\">{name}</variable>{nl}      <variable name=\"Domain\">{domain}</variable>{nl}      <variable name=\"DeliverTo\">{to}</variable>{nl}      <variable name=\"Description\">Previous login of {to}</variable>{nl}    </listitem>{nl}"
    )
}

fn with_alias(users_cfg: &str, alias: &str) -> String {
    let end_of_aliases = users_cfg
        .find("  </list>\n  <list name=\"UserAdditionalData\">")
        .or_else(|| users_cfg.find("  </list>\r\n  <list name=\"UserAdditionalData\">"))
        .expect("the Alias list comes before UserAdditionalData");
    format!(
        "{}{alias}{}",
        &users_cfg[..end_of_aliases],
        &users_cfg[end_of_aliases..]
    )
}

#[test]
fn a_rename_rewrites_every_reference_and_nothing_else_and_undo_takes_it_back() {
    let s = Scratch::new(&Options::demo());
    let out = run(&s, &["pnelson@example.org", "peter"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("kc-rename-user: rename pnelson@example.org -> peter@example.org\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("take it back with: kc-backup undo C"),
        "{stdout}"
    );

    // Exactly these paths changed: the configs, the shares, the log, the mailbox's name.
    let mail = PathBuf::from("store/mail/example.org");
    let mut expected: Vec<PathBuf> = [
        "mailserver.cfg",
        "store/logs/config.log",
        "store/mail/example.org/#public/Announcements/status.fld",
        "store/mail/example.org/#public/Company Calendar/status.fld",
        "store/mail/example.org/hcarter/folder.map",
        "store/mail/example.org/mwood/folder.map",
        "users.cfg",
    ]
    .map(PathBuf::from)
    .to_vec();
    let changed = s.changed();
    let (moved, other): (Vec<_>, Vec<_>) = changed
        .into_iter()
        .partition(|p| p.starts_with(mail.join("pnelson")) || p.starts_with(mail.join("peter")));
    expected.sort();
    assert_eq!(other, expected);
    assert!(!moved.is_empty());
    // Every message and file of the mailbox is byte-identical under its new name.
    kc_testkit::compare_trees(
        &s.before.join(mail.join("pnelson")),
        &s.root.join(mail.join("peter")),
        &[],
    )
    .expect("the mailbox moved whole");
    assert!(!s.root.join(mail.join("pnelson")).exists());

    // users.cfg: every `pnelson` is now `peter` (account, own address, groups, alias target,
    // password history), plus the alias from the old login; nothing else moved.
    let before = read(&s.before, "users.cfg");
    let want = with_alias(
        &before.replace("pnelson", "peter"),
        &alias("pnelson", "example.org", "peter@example.org", "\n"),
    );
    assert_eq!(s.read("users.cfg"), want);
    assert_eq!(
        s.read("mailserver.cfg"),
        read(&s.before, "mailserver.cfg").replace("pnelson@example.org", "peter@example.org")
    );
    for file in [
        "store/mail/example.org/#public/Announcements/status.fld",
        "store/mail/example.org/hcarter/folder.map",
    ] {
        let old = read(&s.before, file);
        assert!(old.contains("pnelson@example.org"), "{file}");
        assert_eq!(
            s.read(file),
            old.replace("pnelson@example.org", "peter@example.org"),
            "{file}"
        );
    }
    // One Config log line per record changed, in the server's own form, then the store's.
    let log = s.read("store/logs/config.log");
    let old_log = read(&s.before, "store/logs/config.log");
    let added: Vec<&str> = log[old_log.len()..].lines().collect();
    let tails: Vec<&str> = added
        .iter()
        .map(|l| l.split_once("] ").expect("[date] actor - text").1)
        .collect();
    assert_eq!(
        tails,
        [
            "kc-rename-user - update User set Name='peter', EmailAddresses='peter,peter.nelson' where Name='pnelson', Domain='example.org'",
            "kc-rename-user - update Group set Members='peter' where Name='management', Domain='example.org'",
            "kc-rename-user - update Group set Members='peter,tbaker,mwood,lclark,hcarter,tevans,oreed' where Name='all', Domain='example.org'",
            "kc-rename-user - update Alias set DeliverTo='peter@example.org' where Name='postmaster', Domain='example.org'",
            "kc-rename-user - insert Alias set Name='pnelson', Domain='example.org', DeliverTo='peter@example.org', Description='Previous login of peter@example.org'",
            "kc-rename-user - update UserAdditionalData set Name='peter' where Name='pnelson', Domain='example.org'",
            "kc-rename-user - update MailingList set Members='peter@example.org,tbaker@example.org,mwood@example.org,lclark@example.org,hcarter@example.org,tevans@example.org', Moderators='peter@example.org' where Name='announce', Domain='example.org'",
            "kc-rename-user - Rename mailbox directory 'store/mail/example.org/pnelson' -> 'store/mail/example.org/peter'",
            "kc-rename-user - Rewrite store: 2 ACL entries, 2 folder.map owners",
        ]
    );
    // The pre-change backup is there, and undo restores the install byte for byte.
    let backups: Vec<String> = std::fs::read_dir(s.root.join("kc-backups"))
        .expect("backups")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tar.gz"))
        .collect();
    assert!(
        backups.len() == 1 && backups[0].starts_with('P'),
        "{backups:?}"
    );
    s.undo_last();
    s.assert_unchanged();
}

#[test]
fn a_dry_run_prints_the_whole_plan_and_changes_nothing() {
    let s = Scratch::new(&Options::demo());
    let out = run(&s, &["-n", "pnelson@example.org", "peter"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for line in [
        "kc-rename-user: rename pnelson@example.org -> peter@example.org (dry run: nothing is changed)",
        "  WOULD write users.cfg (",
        "  WOULD write store/mail/example.org/#public/Company Calendar/status.fld (",
        "  WOULD write store/mail/example.org/mwood/folder.map (",
        "  WOULD rename store/mail/example.org/pnelson -> store/mail/example.org/peter",
    ] {
        assert!(stdout.contains(line), "{line:?} not in:\n{stdout}");
    }
    s.assert_unchanged();
    assert!(!s.root.join("kc-backups").exists());
    // --json: the same plan, as data.
    let out = run(&s, &["-n", "--json", "pnelson@example.org", "peter"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["plan"]["tool"], "kc-rename-user");
    assert!(
        v["plan"]["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .any(|st| st["step"] == "rename" && st["to"] == "store/mail/example.org/peter")
    );
    s.assert_unchanged();
}

#[test]
fn every_refusal_exits_2_says_why_and_changes_nothing() {
    let s = Scratch::new(&Options::demo());
    for (args, says) in [
        (
            &["pnelson@example.org", "mwood"][..],
            "mwood@example.org: already exists as a user",
        ),
        (
            &["pnelson@example.org", "MWOOD"],
            "MWOOD@example.org: already exists as a user",
        ),
        (
            &["pnelson@example.org", "info"],
            "info@example.org: already exists as an alias",
        ),
        (
            &["pnelson@example.org", "support"],
            "support@example.org: already exists as a group",
        ),
        (
            &["anelson@example.com", "announce"],
            "announce@example.com: already exists as a mailing list",
        ),
        (
            &["pnelson@example.org", "olduser"],
            "olduser@example.org: already exists as a mailbox directory",
        ),
        (
            &["pnelson@example.org", "martin.wood"],
            "martin.wood@example.org: already exists as an address of user mwood@example.org",
        ),
        (
            &["nobody@example.org", "x"],
            "nobody@example.org: no such user",
        ),
        (
            &["pnelson@example.org", "pe/ter"],
            "NEW: \"pe/ter\" is not an address: '/' is not allowed",
        ),
        (
            &["pnelson@example.org", "pe..ter"],
            "NEW: \"pe..ter\" is not an address: a name may not hold '..'",
        ),
        (
            &["hnelson@corp.example.net", "helen"],
            "hnelson@corp.example.net: is mapped from a directory service; rename it in the directory",
        ),
        (
            &["Admin@example.com", "root"],
            "Admin@example.com: is the built-in administrator; it cannot be renamed here",
        ),
        (
            &["pnelson@example.org", "peter@nowhere.example"],
            "peter@nowhere.example: domain nowhere.example is not a domain of this server",
        ),
        (
            &["pnelson@example.org", "peter@corp.example.net"],
            "domain corp.example.net is mapped from a directory service",
        ),
        (
            &["pnelson@example.org", "pnelson"],
            "pnelson@example.org: the new name is the old one",
        ),
    ] {
        let out = run(&s, args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("kc-rename-user: error: ") && stderr.contains(says),
            "{args:?}: {stderr}"
        );
        if !says.starts_with("NEW:") {
            assert!(
                stderr.trim_end().ends_with("nothing was changed"),
                "{stderr}"
            );
        }
        s.assert_unchanged();
    }
    // Another run holding the lock.
    let _holder = kc_testkit::LockHolder::hold(&s.root, "pid 4242 kc-user");
    let out = run(&s, &["pnelson@example.org", "peter"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("4242"), "{}", text(&out.stderr));
    s.assert_unchanged();
}

#[test]
fn with_json_the_refusals_are_objects_on_stdout_at_the_lines_an_editor_shows() {
    let s = Scratch::new(&Options::demo());
    let map = s.root.parent().expect("dir").join("map.csv");
    // CRLF, a comment and a blank line before the rows: the lines are still the editor's.
    std::fs::write(
        &map,
        "old,new\r\n# first the leavers\r\nnobody@example.org,x\r\n\r\npnelson@example.org,mwood\r\n",
    )
    .expect("map");
    let out = run(&s, &["--json", "--map", &map.display().to_string()]);
    assert_eq!(out.status.code(), Some(2));
    let m = map.display();
    assert_eq!(
        text(&out.stderr),
        format!(
            "kc-rename-user: error: {m}:3: nobody@example.org: no such user\n{m}:5: mwood@example.org: already exists as a user; nothing was changed\n"
        )
    );
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(
        lines,
        [
            serde_json::json!({"problem": {
                "origin": format!("{m}:3"), "subject": "nobody@example.org", "reason": "no such user"
            }}),
            serde_json::json!({"problem": {
                "origin": format!("{m}:5"), "subject": "mwood@example.org", "reason": "already exists as a user"
            }}),
        ]
    );
    // One rename on the command line: no origin.
    let out = run(&s, &["--json", "Admin@example.com", "root"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("one JSON line"),
        serde_json::json!({"problem": {
            "subject": "Admin@example.com",
            "reason": "is the built-in administrator; it cannot be renamed here"
        }})
    );
    s.assert_unchanged();
}

#[test]
fn a_case_only_rename_goes_through_a_temporary_name_and_adds_no_alias() {
    let s = Scratch::new(&Options::demo());
    let out = run(&s, &["pnelson@example.org", "PNelson"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(
            "rename store/mail/example.org/pnelson -> store/mail/example.org/pnelson.kc-rename\n  rename store/mail/example.org/pnelson.kc-rename -> store/mail/example.org/PNelson\n"
        ),
        "{stdout}"
    );
    kc_testkit::compare_trees(
        &s.before.join("store/mail/example.org/pnelson"),
        &s.root.join("store/mail/example.org/PNelson"),
        &[],
    )
    .expect("moved whole");
    let config = Config::load(&s.root).expect("config");
    assert_eq!(
        config
            .user("pnelson", "example.org")
            .expect("still there")
            .name(),
        "PNelson"
    );
    assert!(!config.aliases().any(|a| a.name() == "pnelson"));
    s.undo_last();
    s.assert_unchanged();
}

#[test]
fn a_move_to_another_domain_follows_the_account_everywhere() {
    let s = Scratch::new(&Options::demo());
    let out = run(&s, &["tevans@example.org", "tevans@example.com"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("warning: tevans@example.org leaves group sales@example.org"),
        "{stderr}"
    );
    kc_testkit::compare_trees(
        &s.before.join("store/mail/example.org/tevans"),
        &s.root.join("store/mail/example.com/tevans"),
        &[],
    )
    .expect("moved whole");
    let config = Config::load(&s.root).expect("config");
    let user = config.user("tevans", "example.com").expect("moved");
    assert_eq!(user.groups(), "");
    assert!(config.user("tevans", "example.org").is_none());
    for g in config.groups().filter(|g| g.domain() == "example.org") {
        assert!(
            !g.member_names().any(|m| m == "tevans"),
            "{} still lists tevans",
            g.name()
        );
    }
    let alias = config
        .aliases()
        .find(|a| a.name() == "tevans" && a.domain() == "example.org")
        .expect("alias from the old address");
    assert_eq!(alias.deliver_to(), "tevans@example.com");
    let list = config
        .mailing_lists()
        .find(|l| l.domain() == "example.org")
        .expect("list");
    assert!(kc_core::config::list_contains(
        list.members(),
        "tevans@example.com"
    ));
    assert!(
        s.read("store/mail/example.org/hcarter/folder.map")
            .contains("owner=\"tevans@example.com\"")
    );
    s.undo_last();
    s.assert_unchanged();
}

#[test]
fn a_map_of_a_hundred_renames_is_checked_whole_then_applied_and_undone() {
    let s = Scratch::new(&Options {
        users: 150,
        domains: 3,
        messages_per_user: 1,
        seed: 7,
        max_message_size: 16 << 10,
        ..Options::default()
    });
    let config = Config::load(&s.root).expect("config");
    let users: Vec<(String, String)> = config
        .users()
        .filter(|u| !u.mapped() && !config.domain(u.domain()).is_some_and(|d| d.mapped()))
        .map(|u| (u.name().to_owned(), u.domain().to_owned()))
        .take(100)
        .collect();
    assert_eq!(users.len(), 100);
    let mut csv = String::from("old,new\n");
    for (name, domain) in &users {
        csv.push_str(&format!("{name}@{domain},{name}.x\n"));
    }
    let map = s.root.parent().expect("dir").join("renames.csv");
    // One bad line refuses the whole map, naming the line.
    std::fs::write(&map, format!("{csv}bad name@example.com,y\n")).expect("write");
    let out = run(&s, &["--map", map.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("renames.csv:102: OLD: \"bad name@example.com\""),
        "{}",
        text(&out.stderr)
    );
    s.assert_unchanged();

    std::fs::write(&map, &csv).expect("write");
    let out = run(&s, &["--map", map.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let after = Config::load(&s.root).expect("config");
    for (name, domain) in &users {
        assert!(after.user(&format!("{name}.x"), domain).is_some(), "{name}");
        assert!(after.user(name, domain).is_none(), "{name}");
        // The server matches directories case-insensitively (the fixture plants a mismatch).
        let had_dir = std::fs::read_dir(s.before.join(format!("store/mail/{domain}")))
            .expect("domain dir")
            .any(|e| {
                e.expect("entry")
                    .file_name()
                    .eq_ignore_ascii_case(name.as_str())
            });
        assert_eq!(
            s.root
                .join(format!("store/mail/{domain}/{name}.x"))
                .is_dir(),
            had_dir,
            "{name}"
        );
    }
    s.undo_last();
    s.assert_unchanged();
}

#[test]
fn chains_in_a_map_are_ordered_and_swaps_refused() {
    let s = Scratch::new(&Options::demo());
    let map = s.root.parent().expect("dir").join("m.csv");
    std::fs::write(
        &map,
        "pnelson@example.org,mwood\nmwood@example.org,martin\n",
    )
    .expect("write");
    let out = run(&s, &["--map", map.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let config = Config::load(&s.root).expect("config");
    assert!(config.user("martin", "example.org").is_some());
    assert!(config.user("mwood", "example.org").is_some());
    assert!(config.user("pnelson", "example.org").is_none());
    // mwood's old mailbox is martin's; pnelson's is the new mwood's.
    kc_testkit::compare_trees(
        &s.before.join("store/mail/example.org/mwood"),
        &s.root.join("store/mail/example.org/martin"),
        // mwood subscribed to pnelson's calendar: its owner is now the new mwood.
        &["folder.map"],
    )
    .expect("mwood -> martin");
    s.undo_last();
    s.assert_unchanged();

    std::fs::write(
        &map,
        "pnelson@example.org,mwood\nmwood@example.org,pnelson\n",
    )
    .expect("write");
    let out = run(&s, &["--map", map.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("form a cycle (a swap)"));
    s.assert_unchanged();

    // A repeated rename is one problem, not a second false one; a rename of a new name (not an
    // account yet) says it is one.
    std::fs::write(
        &map,
        "pnelson@example.org,peter\npnelson@example.org,pete\nmwood@example.org,peter\nanew@example.org,x\npnelson@example.org,anew\n",
    )
    .expect("write");
    let out = run(&s, &["--map", map.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2));
    let m = map.display();
    assert_eq!(
        text(&out.stderr),
        format!(
            "kc-rename-user: error: {m}:2: pnelson@example.org: is renamed twice (also at {m}:1)\n\
             {m}:3: peter@example.org: is the new name of two renames (also at {m}:1)\n\
             {m}:4: anew@example.org: no such user: it is the new name of the rename at {m}:5; rename it again in a second run\n\
             {m}:5: pnelson@example.org: is renamed twice (also at {m}:1); nothing was changed\n"
        )
    );
    s.assert_unchanged();
}

#[test]
fn crlf_comments_and_unknown_lists_pass_through() {
    let s = Scratch::new(&Options::demo());
    // Both the install and its pristine copy get a hand-edited users.cfg.
    let original = read(&s.root, "users.cfg");
    let edited = original
        .replacen(
            "<config>\n",
            "<config>\n  <!-- edited by hand -->\n  <list name=\"FutureThing\" x=\"1\"><listitem><variable name=\"K\">pnelson@example.org</variable></listitem></list>\n",
            1,
        )
        .replace('\n', "\r\n");
    for root in [&s.root, &s.before] {
        std::fs::write(root.join("users.cfg"), &edited).expect("write");
    }
    let out = run(&s, &["pnelson@example.org", "peter"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // The unknown list keeps its value (it is not a reference the tool knows), and is named.
    assert!(
        text(&out.stderr).contains(
            "kc-rename-user: warning: users.cfg:4: still names pnelson@example.org; it was not changed"
        ),
        "{}",
        text(&out.stderr)
    );
    let after = s.read("users.cfg");
    let want = with_alias(
        &edited.replace("pnelson", "peter").replace(
            "<variable name=\"K\">peter@example.org</variable>",
            "<variable name=\"K\">pnelson@example.org</variable>",
        ),
        &alias("pnelson", "example.org", "peter@example.org", "\r\n"),
    );
    assert_eq!(after, want);
    s.undo_last();
    s.assert_unchanged();
}

#[test]
fn an_account_may_take_one_of_its_own_addresses_as_its_name() {
    let s = Scratch::new(&Options::demo());
    let out = run(&s, &["rstewart@example.com", "robert.stewart"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let config = Config::load(&s.root).expect("config");
    let user = config
        .user("robert.stewart", "example.com")
        .expect("renamed");
    assert_eq!(user.email_addresses(), "robert.stewart");
    // The old login still reaches it, through the alias.
    assert!(
        config
            .aliases()
            .any(|a| a.name() == "rstewart" && a.deliver_to() == "robert.stewart@example.com")
    );
    // The mailbox directory was spelled "Rstewart" (a planted case mismatch): it moves too.
    assert!(
        s.root
            .join("store/mail/example.com/robert.stewart")
            .is_dir()
    );
    s.undo_last();
    s.assert_unchanged();
}

#[test]
fn a_case_only_rename_to_the_directorys_spelling_moves_nothing() {
    let s = Scratch::new(&Options::demo());
    // The demo plants rstewart's mailbox as "Rstewart".
    assert!(s.root.join("store/mail/example.com/Rstewart").is_dir());
    let out = run(&s, &["rstewart@example.com", "Rstewart"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        !text(&out.stdout).contains("rename store/"),
        "{}",
        text(&out.stdout)
    );
    // The references take the new spelling too; the mailbox directory stays where it is.
    assert_eq!(
        s.changed(),
        [
            "mailserver.cfg",
            "store/logs/config.log",
            "store/mail/example.com/#public/Announcements/status.fld",
            "store/mail/example.com/#public/Company Calendar/status.fld",
            "users.cfg",
        ]
        .map(PathBuf::from)
    );
    assert!(
        s.read("store/mail/example.com/#public/Announcements/status.fld")
            .contains(" ARstewart@example.com ")
    );
    s.undo_last();
    s.assert_unchanged();
}

#[test]
fn a_rename_rewrites_public_acl_fld_and_every_sub_fld_and_undo_takes_it_back() {
    let s = Scratch::new(&Options {
        shapes: kc_testkit::Shapes {
            global_public: true,
            ..Default::default()
        },
        ..Options::demo()
    });
    // A domain's own #public/acl.fld too, with near misses that must stay as they are.
    let domain_acl = "store/mail/example.org/#public/acl.fld";
    let planted = "Apnelson@example.org lrswipkxte\r\nAxpnelson@example.org lr\r\nAPNelson@EXAMPLE.org lr\r\nApnelson@example.org.uk lr\r\nAmwood@example.org lr\r\n";
    for root in [&s.root, &s.before] {
        std::fs::create_dir_all(root.join("store/mail/example.org/#public")).expect("mkdir");
        std::fs::write(root.join(domain_acl), planted).expect("write");
    }
    let global_acl = "store/mail/#public/acl.fld";
    assert_eq!(
        read(&s.before, global_acl),
        "Aanelson@example.com lrswipkxte\nArstewart@example.com lr\nAlhill@example.com lr\nApnelson@example.org lrswipkxte\nAmwood@example.org lr\nAlclark@example.org lr\n"
    );
    let subs: Vec<PathBuf> = kc_testkit::share_files_naming(&s.before, "pnelson@example.org")
        .into_iter()
        .filter(|p| p.ends_with("sub.fld"))
        .collect();
    assert!(subs.len() >= 5, "{subs:?}");
    let subscriptions: usize = subs
        .iter()
        .map(|p| {
            read(&s.before, p.to_str().expect("utf-8"))
                .matches("~pnelson@example.org/")
                .count()
        })
        .sum();

    let out = run(&s, &["pnelson@example.org", "peter"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    assert_eq!(
        s.read(global_acl),
        "Aanelson@example.com lrswipkxte\nArstewart@example.com lr\nAlhill@example.com lr\nApeter@example.org lrswipkxte\nAmwood@example.org lr\nAlclark@example.org lr\n"
    );
    assert_eq!(
        s.read(domain_acl),
        "Apeter@example.org lrswipkxte\r\nAxpnelson@example.org lr\r\nApeter@example.org lr\r\nApnelson@example.org.uk lr\r\nAmwood@example.org lr\r\n"
    );
    for sub in &subs {
        let rel = sub.to_str().expect("utf-8");
        assert_eq!(
            s.read(rel),
            read(&s.before, rel).replace("~pnelson@example.org/", "~peter@example.org/"),
            "{rel}"
        );
    }
    // Exactly these changed, besides the moved mailbox: the configs, the log, and every store
    // file that named the old address.
    let mail = PathBuf::from("store/mail/example.org");
    let (_, other): (Vec<_>, Vec<_>) = s
        .changed()
        .into_iter()
        .partition(|p| p.starts_with(mail.join("pnelson")) || p.starts_with(mail.join("peter")));
    let mut want = kc_testkit::share_files_naming(&s.before, "pnelson@example.org");
    want.retain(|p| !p.starts_with(mail.join("pnelson")));
    want.extend(["mailserver.cfg", "store/logs/config.log", "users.cfg"].map(PathBuf::from));
    want.sort();
    assert_eq!(other, want);
    // Only the near misses of the planted file still hold the old name's letters.
    assert_eq!(
        kc_testkit::share_files_naming(&s.root, "pnelson@example.org"),
        [PathBuf::from(domain_acl)]
    );
    let log = s.read("store/logs/config.log");
    assert!(
        log.trim_end().ends_with(&format!(
            "kc-rename-user - Rewrite store: 2 ACL entries, 2 folder.map owners, 3 public folder ACL entries (acl.fld), {subscriptions} subscriptions (sub.fld)"
        )),
        "{log}"
    );
    s.undo_last();
    s.assert_unchanged();
}

// ---- Calendar items (issue 17 part 3) ----

/// How a fixture's calendar part is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Enc {
    Plain,
    Qp,
    Base64,
}

/// Where a fixture message's calendar part's body is, and its encoding: found by plain string
/// search (the fixture writes each header one way), not by the code under test.
fn calendar_body(msg: &str) -> Option<(std::ops::Range<usize>, Enc)> {
    let at = msg.find("Content-Type: text/calendar")?;
    let head_end = at + msg[at..].find("\r\n\r\n")?;
    let head = &msg[at..head_end];
    let enc = if head.contains("Content-Transfer-Encoding: quoted-printable") {
        Enc::Qp
    } else if head.contains("Content-Transfer-Encoding: base64") {
        Enc::Base64
    } else {
        Enc::Plain
    };
    let start = head_end + 4;
    let end = msg[start..].find("\r\n--").map_or(msg.len(), |k| start + k);
    Some((start..end, enc))
}

fn decode(body: &str, enc: Enc) -> String {
    let bytes = match enc {
        Enc::Plain => body.as_bytes().to_vec(),
        Enc::Qp => quoted_printable::decode(body, quoted_printable::ParseMode::Robust).expect("qp"),
        Enc::Base64 => {
            use base64::Engine as _;
            let compact: String = body.split_whitespace().collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact)
                .expect("base64")
        }
    };
    String::from_utf8(bytes).expect("utf-8")
}

/// The iCalendar text as the rename should leave it, computed here: each logical line of an
/// ORGANIZER or ATTENDEE naming `mailto:old` gets `mailto:new` and is folded at 75 octets
/// (the fixture's text is ASCII there); every other line stays as it is.
fn expected_ical(text: &str, old: &str, new: &str) -> String {
    let mut blocks: Vec<Vec<&str>> = Vec::new();
    for line in text.split_inclusive("\r\n") {
        match blocks.last_mut() {
            Some(b) if line.starts_with(' ') => b.push(line),
            _ => blocks.push(vec![line]),
        }
    }
    let (from, to) = (format!("mailto:{old}"), format!("mailto:{new}"));
    let mut out = String::new();
    for block in blocks {
        let unfolded: String = block
            .iter()
            .enumerate()
            .map(|(k, l)| {
                let l = l.trim_end_matches("\r\n");
                if k == 0 { l } else { &l[1..] }
            })
            .collect();
        let named = (unfolded.starts_with("ORGANIZER") || unfolded.starts_with("ATTENDEE"))
            && unfolded.contains(&from);
        if !named {
            out.extend(block);
            continue;
        }
        let line = unfolded.replace(&from, &to);
        let mut rest = line.as_str();
        let mut first = true;
        while !rest.is_empty() {
            let room = if first { 75 } else { 74 };
            let (piece, tail) = rest.split_at(room.min(rest.len()));
            if !first {
                out.push(' ');
            }
            out.push_str(piece);
            out.push_str("\r\n");
            rest = tail;
            first = false;
        }
    }
    out
}

/// Quoted-printable hard lines (encoded lines joined through their soft breaks).
fn qp_hard_lines(body: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut open = false;
    for line in body.split_inclusive("\r\n") {
        if open {
            out.last_mut().expect("open").push_str(line);
        } else {
            out.push(line.to_owned());
        }
        open = line.ends_with("=\r\n");
    }
    out
}

/// Every message file under `root`, relative to it.
fn messages(root: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = walkdir::WalkDir::new(root)
        .into_iter()
        .map(|e| e.expect("walk"))
        .filter(|e| e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "eml"))
        .map(|e| e.path().strip_prefix(root).expect("inside").to_path_buf())
        .collect();
    out.sort();
    out
}

/// A fixture with calendar items; the address whose Calendar holds the damaged item, and that
/// item's path.
fn calendar_install() -> (Scratch, String, PathBuf) {
    let s = Scratch::new(&Options {
        calendars: true,
        ..Options::default()
    });
    let damaged = messages(&s.before)
        .into_iter()
        .find(|p| {
            read(&s.before, p.to_str().expect("utf-8"))
                .contains(kc_testkit::calendar::DAMAGED_SUBJECT)
        })
        .expect("the fixture has a damaged item");
    let text = read(&s.before, damaged.to_str().expect("utf-8"));
    let from = text
        .lines()
        .find_map(|l| l.strip_prefix("From: "))
        .expect("From")
        .to_owned();
    (s, from, damaged)
}

/// Puts a copy of `msg` into `folder` (relative to the root) of both the live install and its
/// pristine copy, listed in `index.fld` with `class`; returns its path.
fn plant(s: &Scratch, folder: &str, msg: &str, class: &str) -> PathBuf {
    let mut path = PathBuf::new();
    for root in [&s.root, &s.before] {
        let index = root.join(folder).join("index.fld");
        let mut lines = std::fs::read_to_string(&index).expect("index");
        let uid = lines.lines().count() + 0x100;
        lines.push_str(&format!(
            "U{uid:08x} F80000001 S{} D6a000000 M6a000000 I{uid:04x} C{class}\n",
            msg.len()
        ));
        std::fs::write(&index, lines).expect("index");
        path = Path::new(folder).join(format!("#msgs/{uid:08x}.eml"));
        std::fs::write(root.join(&path), msg).expect("message");
    }
    path
}

#[test]
fn a_rename_rewrites_calendar_organizers_and_attendees_and_every_other_byte_stays() {
    let (s, old, damaged) = calendar_install();
    let (old_name, domain) = old.split_once('@').expect("address");
    let new_name = "renamed.person";
    let new = format!("{new_name}@{domain}");
    let mailbox = PathBuf::from(format!("store/mail/{domain}/{old_name}"));
    let moved_to = PathBuf::from(format!("store/mail/{domain}/{new_name}"));
    // Another mailbox's folders: a calendar item listed as a note is not read (the index
    // decides), the same item listed as an appointment is.
    let other = messages(&s.before.join("store/mail"))
        .into_iter()
        .map(|p| Path::new("store/mail").join(p))
        .find(|p| !p.starts_with(&mailbox) && p.to_string_lossy().contains("/Calendar/"))
        .expect("another calendar");
    let other_box = other
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .expect("box");
    let own_item = messages(&s.before.join(&mailbox))
        .into_iter()
        .map(|p| read(&s.before.join(&mailbox), p.to_str().expect("utf-8")))
        .find(|m| {
            m.contains("Content-Transfer-Encoding: quoted-printable")
                && m.contains(&format!("mailto:{old}"))
        })
        .expect("a quoted-printable item naming the account");
    let as_note = plant(
        &s,
        other_box.join("Sent Items").to_str().expect("utf-8"),
        &own_item,
        "IPM.Note",
    );
    // In the account's own mailbox every message is read, whatever its class.
    let own_note = plant(
        &s,
        mailbox.join("Sent Items").to_str().expect("utf-8"),
        &own_item,
        "IPM.Note",
    );
    let as_event = plant(
        &s,
        other_box.join("Notes").to_str().expect("utf-8"),
        &own_item,
        "IPM.Appointment",
    );

    let out = run(&s, &[&old, new_name]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    // The damaged item is named, and left byte for byte.
    assert!(
        stderr.contains(&format!(
            "{}: a calendar item that cannot be read for certain (a multipart part without its closing boundary",
            damaged.display()
        )),
        "{stderr}"
    );

    let after_path = |p: &Path| match p.strip_prefix(&mailbox) {
        Ok(rest) => moved_to.join(rest),
        Err(_) => p.to_path_buf(),
    };
    let mut changed = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for rel in messages(&s.before) {
        let before = std::fs::read_to_string(s.before.join(&rel)).expect("before");
        let after = std::fs::read_to_string(s.root.join(after_path(&rel))).expect("after");
        let Some((body, enc)) = calendar_body(&before) else {
            assert_eq!(after, before, "{}", rel.display());
            continue;
        };
        let decoded = decode(&before[body.clone()], enc);
        let want = expected_ical(&decoded, &old, &new);
        let skipped = rel == damaged || rel == as_note;
        if want == decoded || skipped {
            assert_eq!(after, before, "{}", rel.display());
            continue;
        }
        changed.push(rel.clone());
        seen.insert(format!("{enc:?}"));
        // Every byte around the calendar part's body is the same; the body decodes to exactly
        // the expected text.
        let (new_body, new_enc) = calendar_body(&after).expect("still a calendar");
        assert_eq!(new_enc, enc);
        assert_eq!(
            &after[..new_body.start],
            &before[..body.start],
            "{}",
            rel.display()
        );
        assert_eq!(
            &after[new_body.end..],
            &before[body.end..],
            "{}",
            rel.display()
        );
        assert_eq!(
            decode(&after[new_body.clone()], enc),
            want,
            "{}",
            rel.display()
        );
        assert!(!after.contains(&format!("ATTENDEE:mailto:{old}")));
        match enc {
            Enc::Plain => {
                if decoded.contains("\r\n :mailto:") || decoded.contains("\r\n ") {
                    seen.insert("folded".into());
                }
            }
            Enc::Qp => {
                // The hard lines that did not change keep their encoded bytes; those that did
                // were ORGANIZER/ATTENDEE lines naming the old address.
                let (a, b) = (
                    qp_hard_lines(&before[body.clone()]),
                    qp_hard_lines(&after[new_body.clone()]),
                );
                let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
                let suffix = a
                    .iter()
                    .rev()
                    .zip(b.iter().rev())
                    .take_while(|(x, y)| x == y)
                    .count();
                assert!(prefix + suffix < a.len(), "something changed");
                for line in &a[prefix..a.len() - suffix] {
                    let d = decode(line, Enc::Qp);
                    assert!(
                        (d.starts_with("ORGANIZER") || d.starts_with("ATTENDEE"))
                            && d.contains(&format!("mailto:{old}")),
                        "{d}"
                    );
                }
            }
            Enc::Base64 => {
                // Encoded again at the width it had.
                let width = before[body.clone()].lines().next().expect("a line").len();
                let lines: Vec<&str> = after[new_body.clone()].trim_end().lines().collect();
                assert!(
                    lines[..lines.len() - 1].iter().all(|l| l.len() == width),
                    "{width}"
                );
            }
        }
    }
    assert!(
        ["Plain", "Qp", "Base64", "folded"]
            .iter()
            .all(|k| seen.contains(*k)),
        "{seen:?}"
    );
    assert!(changed.contains(&as_event), "{changed:?}");
    assert!(changed.contains(&own_note), "{changed:?}");
    assert!(
        changed.iter().any(|p| !p.starts_with(&mailbox)),
        "others' calendars too"
    );
    // What changed in the store: the messages, and in their folders index.fld and search.fld
    // moved aside (the server rebuilds them); nothing else of the store but share files.
    let folders: std::collections::BTreeSet<PathBuf> = changed
        .iter()
        .map(|p| after_path(p.parent().and_then(Path::parent).expect("folder")))
        .collect();
    for folder in &folders {
        let root_folder = s.root.join(folder);
        assert!(
            !root_folder.join("index.fld").exists(),
            "{}",
            folder.display()
        );
        let before_folder = match folder.strip_prefix(&moved_to) {
            Ok(rest) => s.before.join(&mailbox).join(rest),
            Err(_) => s.before.join(folder),
        };
        for (file, aside) in [("index.fld", "index.bad"), ("search.fld", "search.bad")] {
            assert_eq!(
                std::fs::read(root_folder.join(aside)).expect("aside"),
                std::fs::read(before_folder.join(file)).expect("before")
            );
        }
    }
    let log = s.read("store/logs/config.log");
    assert!(
        log.contains(&format!(
            ", {} calendar items (ORGANIZER/ATTENDEE)\n",
            changed.len()
        )) && log.contains(&format!(
            "Rewrite calendar items (ORGANIZER/ATTENDEE) in folder '{}/{}/Calendar':",
            domain, old_name
        )),
        "{log}"
    );
    // Undo restores every byte of the store.
    s.undo_last();
    s.assert_unchanged();
}

#[test]
fn no_calendars_leaves_every_message_and_a_dry_run_counts_them_by_folder() {
    let (s, old, _) = calendar_install();
    let (old_name, domain) = old.split_once('@').expect("address");
    let out = run(&s, &["-n", &old, "someone.else"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let line = format!(
        "kc-rename-user - Rewrite calendar items (ORGANIZER/ATTENDEE) in folder '{domain}/{old_name}/Calendar': "
    );
    assert!(stdout.contains(&line), "{stdout}");
    assert!(stdout.contains("  WOULD move "), "{stdout}");
    s.assert_unchanged();

    let out = run(&s, &["--no-calendars", &old, "someone.else"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("calendar item"),
        "{}",
        text(&out.stderr)
    );
    let mailbox = PathBuf::from(format!("store/mail/{domain}/{old_name}"));
    let moved = PathBuf::from(format!("store/mail/{domain}/someone.else"));
    kc_testkit::compare_trees(&s.before.join(&mailbox), &s.root.join(&moved), &[])
        .expect("the mailbox moved whole");
    let others: Vec<PathBuf> = s
        .changed()
        .into_iter()
        .filter(|p| !p.starts_with(&mailbox) && !p.starts_with(&moved))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.ends_with(".eml") || name.starts_with("index.") || name.starts_with("search.")
        })
        .collect();
    assert!(others.is_empty(), "{others:?}");
    s.undo_last();
    s.assert_unchanged();
}

/// Lines of `root`'s Calendar messages (not `skip`) whose ORGANIZER or ATTENDEE names `address`,
/// in folders whose `index.fld` an earlier change moved aside. (Only Calendar folders: the
/// fixture's INBOX invitations carry a text part that names the same lines, which stays.)
fn calendar_lines_in_aside_folders(root: &Path, address: &str, skip: &Path) -> usize {
    let wanted = format!("mailto:{}", address.to_ascii_lowercase());
    messages(root)
        .into_iter()
        .filter(|p| p != skip && p.to_string_lossy().contains("/Calendar/#msgs/"))
        .filter(|p| {
            let folder = root
                .join(p)
                .parent()
                .and_then(Path::parent)
                .map(Path::to_path_buf);
            folder.is_some_and(|f| !f.join("index.fld").exists() && f.join("index.bad").exists())
        })
        .map(|p| {
            let bytes = std::fs::read(root.join(&p)).expect("read");
            text(&bytes)
                .lines()
                .map(str::to_ascii_lowercase)
                .filter(|l| l.starts_with("organizer") || l.starts_with("attendee"))
                .filter(|l| l.contains(&wanted))
                .count()
        })
        .sum()
}

#[test]
fn a_second_rename_in_the_same_window_finds_calendar_items_whose_index_the_first_moved_aside() {
    let (s, first, damaged) = calendar_install();
    let out = run(&s, &[&first, "first.renamed"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Another user named in the folders whose index the first rename moved aside.
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    let domain = first.split_once('@').expect("address").1;
    for line in messages(&s.root)
        .into_iter()
        .filter(|p| *p != damaged)
        .flat_map(|p| {
            let folder = s
                .root
                .join(&p)
                .parent()
                .and_then(Path::parent)
                .map(Path::to_path_buf);
            let aside = folder.is_some_and(|f| !f.join("index.fld").exists());
            let bytes = if aside {
                std::fs::read(s.root.join(&p)).expect("read")
            } else {
                Vec::new()
            };
            text(&bytes).lines().map(str::to_owned).collect::<Vec<_>>()
        })
    {
        let lower = line.to_ascii_lowercase();
        if (lower.starts_with("organizer") || lower.starts_with("attendee"))
            && let Some((_, rest)) = lower.split_once("mailto:")
            && rest.ends_with(&format!("@{domain}"))
            && !rest.starts_with("first.renamed@")
        {
            *counts.entry(rest.to_owned()).or_default() += 1;
        }
    }
    let (second, before) = counts
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .expect("another attendee");
    assert!(before > 0);
    assert!(calendar_lines_in_aside_folders(&s.root, &second, &damaged) > 0);
    let out = run(&s, &[&second, "second.renamed"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        calendar_lines_in_aside_folders(&s.root, &second, &damaged),
        0,
        "{second} still named in folders whose index.fld the first rename moved aside"
    );
}

#[test]
fn a_calendar_item_that_is_a_link_is_left_with_a_warning_and_the_rest_renamed() {
    let (s, old, damaged) = calendar_install();
    let (old_name, _) = old.split_once('@').expect("address");
    let linked = messages(&s.root)
        .into_iter()
        .find(|p| {
            *p != damaged
                && p.to_string_lossy().contains(&format!("/{old_name}/"))
                && read(&s.root, p.to_str().expect("utf-8")).contains(&format!("mailto:{old}"))
        })
        .expect("a calendar item of the renamed account");
    let outside = s.root.parent().expect("dir").join("outside.eml");
    let bytes = std::fs::read(s.root.join(&linked)).expect("read");
    std::fs::write(&outside, &bytes).expect("write");
    std::fs::remove_file(s.root.join(&linked)).expect("rm");
    std::os::unix::fs::symlink(&outside, s.root.join(&linked)).expect("symlink");
    let out = run(&s, &[&old, "linked.renamed"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let name = linked
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(
        stderr.contains(&format!(
            "{name}: is a symbolic link; a calendar item behind it is left as it is"
        )),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(&outside).expect("read"),
        bytes,
        "nothing written through it"
    );
    let moved = PathBuf::from(
        linked
            .to_string_lossy()
            .replace(&format!("/{old_name}/"), "/linked.renamed/"),
    );
    assert_eq!(
        std::fs::read_link(s.root.join(&moved)).expect("still a link"),
        outside
    );
    // The other items of the mailbox are renamed.
    let renamed = messages(&s.root)
        .into_iter()
        .filter(|p| *p != moved && p.to_string_lossy().contains("/linked.renamed/"))
        .any(|p| read(&s.root, p.to_str().expect("utf-8")).contains("mailto:linked.renamed@"));
    assert!(renamed, "the other calendar items are rewritten");
}

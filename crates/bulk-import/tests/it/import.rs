//! kc-bulk-import end to end on the demo install: the vendor's own CSV examples, TOML with
//! templates, every bad row reported, generated passwords, a migration, and undo.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use kc_core::config::Config;
use kc_testkit::{Options, Scratch};

fn run(s: &Scratch, args: &[&str]) -> Output {
    s.tool("kc-bulk-import").args(args).output().expect("runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn file(s: &Scratch, name: &str, text: &str) -> PathBuf {
    let path = s.root.parent().expect("dir").join(name);
    std::fs::write(&path, text).expect("write");
    path
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8")
}

/// A new account's listitem as the tool writes it.
fn user_item(fields: &[(&str, &str)]) -> String {
    let mut out = String::from("    <listitem>\n");
    for (k, v) in fields {
        out.push_str(&format!("      <variable name=\"{k}\">{v}</variable>\n"));
    }
    out.push_str("    </listitem>\n");
    out
}

/// `[name, domain, full name, description, password, addresses, groups, quota]`.
fn standard(v: [&str; 8]) -> String {
    let [
        name,
        domain,
        full,
        description,
        password,
        addresses,
        groups,
        quota,
    ] = v;
    user_item(&[
        ("Name", name),
        ("Domain", domain),
        ("FullName", full),
        ("Description", description),
        ("Password", password),
        ("Account_enabled", "1"),
        ("Auth_type", "0"),
        ("Rights", "0"),
        ("ForwardMode", "0"),
        ("ForwardAddress", ""),
        ("EmailAddresses", addresses),
        ("Groups", groups),
        ("Qstorage", quota),
        ("Qmessage", "0"),
        ("DataSource", "0"),
    ])
}

/// users.cfg with `items` added at the end of the User list.
fn with_users(before: &str, items: &str) -> String {
    let at = before
        .find("  </list>\n  <list name=\"Group\">")
        .expect("User list before Group list");
    format!("{}{items}{}", &before[..at], &before[at..])
}

#[test]
fn the_vendors_two_csv_examples_import_as_they_are() {
    let sc = Scratch::new(&Options::demo());
    let before = std::fs::read_to_string(sc.before.join("users.cfg")).expect("read");
    // The second example: ',' with quoted multi-values, into a domain that requires secure
    // passwords.
    let v2 = file(
        &sc,
        "v2.csv",
        "Name,Password,FullName,Description,MailAddress,Groups\newood,Ahdpppu4,Edward Wood,Sales,\"ewood,wood\",\"sales,all\"\n",
    );
    let out = run(&sc, &[s(&v2), "--domain", "example.org"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let item = standard([
        "ewood",
        "example.org",
        "Edward Wood",
        "Sales",
        "NUL:Ahdpppu4",
        "ewood,wood",
        "sales,all",
        "0",
    ]);
    let want = with_users(&before, &item)
        .replace(
            "<variable name=\"Members\">lclark,tevans</variable>",
            "<variable name=\"Members\">lclark,tevans,ewood</variable>",
        )
        .replace(
            "<variable name=\"Members\">pnelson,tbaker,mwood,lclark,hcarter,tevans,oreed</variable>",
            "<variable name=\"Members\">pnelson,tbaker,mwood,lclark,hcarter,tevans,oreed,ewood</variable>",
        );
    assert_eq!(sc.read("users.cfg"), want);
    let log = sc.read("store/logs/config.log");
    assert_eq!(
        sc.new_log_lines("store/logs/config.log"),
        [
            "kc-bulk-import - insert User set Name='ewood', Domain='example.org', FullName='Edward Wood', Description='Sales', Password=xxxxxx, Account_enabled='1', Auth_type='0', Rights='0', ForwardMode='0', ForwardAddress='', EmailAddresses='ewood,wood', Groups='sales,all', Qstorage='0', Qmessage='0', DataSource='0'",
            "kc-bulk-import - update Group set Members='lclark,tevans,ewood' where Name='sales', Domain='example.org'",
            "kc-bulk-import - update Group set Members='pnelson,tbaker,mwood,lclark,hcarter,tevans,oreed,ewood' where Name='all', Domain='example.org'",
        ]
    );
    assert!(!log.contains("Ahdpppu4"), "the password is masked");

    // The first example: ';' with comma multi-values; its group "read" does not exist.
    let v1 = file(
        &sc,
        "v1.csv",
        "Name;Password;FullName;Description;MailAddress;Groups\nabird;VbD66op1;Alexandra Bird;Development;abird;read,all\n",
    );
    let out = run(&sc, &[s(&v1), "--domain", "example.com"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        format!(
            "kc-bulk-import: error: {}:2: Groups: no group read in example.com (add --create-groups to create it)\n1 problem; nothing was changed\n",
            v1.display()
        )
    );
    let out = run(&sc, &[s(&v1), "--domain", "example.com", "--create-groups"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let after = sc.read("users.cfg");
    assert!(after.contains(&standard([
        "abird",
        "example.com",
        "Alexandra Bird",
        "Development",
        "NUL:VbD66op1",
        "abird",
        "read,all",
        "0"
    ])));
    assert!(after.contains(
        "    <listitem>\n      <variable name=\"Name\">read</variable>\n      <variable name=\"Domain\">example.com</variable>\n      <variable name=\"Description\"></variable>\n      <variable name=\"EmailAddresses\">read</variable>\n      <variable name=\"Members\">abird</variable>\n      <variable name=\"Rights\">0</variable>\n    </listitem>\n  </list>\n  <list name=\"Alias\">"
    ));
    // Undo, twice, takes both imports back byte for byte.
    sc.undo_last();
    assert_eq!(sc.read("users.cfg"), want);
    sc.undo_last();
    sc.assert_unchanged();
}

#[test]
fn every_bad_row_is_reported_with_its_line_and_nothing_changes() {
    let sc = Scratch::new(&Options::demo());
    let bad = file(
        &sc,
        "bad.csv",
        "\u{feff}Name;Password;FullName;MailAddress;Groups\r\n\
         good.one;Str0ng-pass;Good One;;sales\r\n\
         bad name;Str0ng-pass;Bad;;\r\n\
         mwood;Str0ng-pass;Taken;;\r\n\
         GOOD.ONE;Str0ng-pass;Twice;;\r\n\
         addr;Str0ng-pass;Addr;addr,martin.wood;\r\n\
         weak;weakpass;Weak;;\r\n\
         nogroup;Str0ng-pass;No Group;;nosuch\r\n\
         ;Str0ng-pass;No Name;;\r\n\
         sneaky;Sneaky123-x;Has Name;;\r\n",
    );
    let out = run(&sc, &[s(&bad), "--domain", "example.org"]);
    assert_eq!(out.status.code(), Some(2));
    let p = bad.display();
    assert_eq!(
        stderr(&out),
        format!(
            "kc-bulk-import: error: {p}:3: Name: \"bad name\": ' ' is not allowed (letters, digits, '.', '_' and '-' only)\n\
             {p}:4: Name: mwood@example.org already exists as a user\n\
             {p}:5: Name: GOOD.ONE@example.org already exists as a user of line 2 of {p}\n\
             {p}:6: MailAddress: martin.wood@example.org is already used as an address of user mwood@example.org\n\
             {p}:7: Password: needs three of: lower case, upper case, digits, other characters (the domain requires secure passwords)\n\
             {p}:8: Groups: no group nosuch in example.org (add --create-groups to create it)\n\
             {p}:9: Name: missing (every account needs a name)\n\
             {p}:10: Password: contains the username (the domain requires secure passwords)\n\
             8 problems; nothing was changed\n"
        )
    );
    sc.assert_unchanged();
    assert!(!sc.root.join("kc-backups").exists());
    assert!(out.stdout.is_empty(), "no JSON without --json");

    // With --json the same problems are data on stdout, one object a line; the refusal is
    // still on stderr and the exit code 2.
    let json = run(&sc, &[s(&bad), "--domain", "example.org", "--json"]);
    assert_eq!(json.status.code(), Some(2));
    assert_eq!(stderr(&json), stderr(&out));
    let problems: Vec<serde_json::Value> = String::from_utf8_lossy(&json.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(problems.len(), 8);
    assert_eq!(
        problems[0],
        serde_json::json!({"problem": {
            "origin": format!("{p}:3"),
            "subject": "Name",
            "reason": "\"bad name\": ' ' is not allowed (letters, digits, '.', '_' and '-' only)",
        }})
    );
    assert_eq!(problems[7]["problem"]["origin"], format!("{p}:10"));
    assert_eq!(problems[7]["problem"]["subject"], "Password");
    sc.assert_unchanged();

    // The licence: 15 enabled accounts count now (14 local, and the mapped one, which has a
    // mailbox); two more are one too many for 16.
    let two = file(
        &sc,
        "two.csv",
        "Name,Password\nnew.one,Str0ng-pass\nnew.two,Str0ng-pass\n",
    );
    let out = run(
        &sc,
        &[s(&two), "--domain", "example.org", "--license-limit", "16"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&format!(
            "{}:3: --license-limit: 17 enabled accounts after the import (15 now + 2 new), more than the licence's 16",
            two.display()
        )),
        "{}",
        stderr(&out)
    );
    let out = run(
        &sc,
        &[
            s(&two),
            "--domain",
            "example.org",
            "--license-limit",
            "17",
            "-n",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("(dry run: nothing is changed)"));
    // Disabled accounts do not count against the licence, even one already over its limit.
    let disabled = file(
        &sc,
        "disabled.toml",
        "[[user]]\nName = \"dormant\"\nPassword = \"Dorm4nt-pass\"\nAccount_enabled = 0\n",
    );
    let out = run(
        &sc,
        &[
            s(&disabled),
            "--domain",
            "example.org",
            "--license-limit",
            "1",
            "-n",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    sc.assert_unchanged();
}

#[test]
fn toml_with_templates_per_user_domains_and_any_variable() {
    let sc = Scratch::new(&Options::demo());
    let toml = file(
        &sc,
        "users.toml",
        r#"
[[user]]
Name = "jseller"
FullName = "Jane Seller"
Password = "D3S:0123456789abcdef0123456789abcdef"
template = "Sales staff"

[[user]]
Name = "obuyer"
FullName = "Otto Buyer"
domain = "example.org"
Password = "Buy3r-Otto"
MailAddress = ["obuyer", "otto"]
Qmessage = 5000
"#,
    );
    let out = run(&sc, &[s(&toml), "--domain", "example.com"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let config = Config::load(&sc.root).expect("config");
    let get = |name: &str, domain: &str, var: &str| {
        config
            .user(name, domain)
            .expect("created")
            .0
            .get(var)
            .expect(var)
            .to_owned()
    };
    // The template gives groups, quota and description; the hash is copied verbatim.
    assert_eq!(get("jseller", "example.com", "Groups"), "sales,all");
    assert_eq!(get("jseller", "example.com", "Qstorage"), "1073741824");
    assert_eq!(get("jseller", "example.com", "Description"), "Sales");
    assert_eq!(
        get("jseller", "example.com", "Password"),
        "D3S:0123456789abcdef0123456789abcdef"
    );
    assert_eq!(
        get("obuyer", "example.org", "EmailAddresses"),
        "obuyer,otto"
    );
    assert_eq!(get("obuyer", "example.org", "Qmessage"), "5000");
    assert_eq!(get("obuyer", "example.org", "Qstorage"), "0");
    let sales = config
        .groups()
        .find(|g| g.name() == "sales" && g.domain() == "example.com")
        .expect("sales");
    assert_eq!(sales.members(), "anelson,bnelson,tnovak,jseller");
    // A bad TOML value names its line.
    let bad = file(&sc, "bad.toml", "[[user]]\nName = \"x\"\nQstorage = 1.5\n");
    let out = run(&sc, &[s(&bad), "--domain", "example.com"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&format!(
            "{}:3: Qstorage: a float is not a value a variable can hold",
            bad.display()
        )),
        "{}",
        stderr(&out)
    );
    // A key that is no variable of this server's accounts is a typo, not a new variable for
    // users.cfg (Qmessage above is one the tools write for every account).
    let typo = file(
        &sc,
        "typo.toml",
        "[[user]]\nName = \"t1\"\nPassword = \"Typ0-pass-1\"\nFullNmae = \"T One\"\nBogus = 3\n",
    );
    let out = run(&sc, &[s(&typo), "--domain", "example.com"]);
    assert_eq!(out.status.code(), Some(2));
    let t = typo.display();
    assert_eq!(
        stderr(&out),
        format!(
            "kc-bulk-import: error: {t}:4: FullNmae: not a User variable of this server: no account in users.cfg has one (did you mean FullName?)\n\
             {t}:5: Bogus: not a User variable of this server: no account in users.cfg has one\n\
             2 problems; nothing was changed\n"
        )
    );
    // A misspelt table or a key outside the tables is refused, not ignored.
    let tables = file(
        &sc,
        "tables.toml",
        "dommain = \"example.org\"\n[[users]]\nName = \"g\"\n",
    );
    let out = run(&sc, &[s(&tables), "--domain", "example.com"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with(&format!(
            "kc-bulk-import: error: {}:1: -: unknown field `dommain`, expected `user`",
            tables.display()
        )),
        "{}",
        stderr(&out)
    );
    // `Domain`, as users.cfg spells it, is the row's domain, over --domain.
    let spelt = file(
        &sc,
        "spelt.toml",
        "[[user]]\nName = \"d1\"\nPassword = \"Sp3lt-pass-1\"\nDomain = \"example.org\"\n",
    );
    let out = run(&sc, &[s(&spelt), "--domain", "example.com", "-n"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Name='d1', Domain='example.org'"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    sc.undo_last();
    sc.assert_unchanged();
}

#[test]
fn generated_passwords_meet_the_policy_and_go_to_a_private_file() {
    let sc = Scratch::new(&Options::demo());
    let csv = file(&sc, "p.csv", "Name,FullName\nnew.a,New A\nnew.b,New B\n");
    // Without passwords, in a domain that does not require them: said plainly.
    let out = run(&sc, &[s(&csv), "--domain", "example.com", "-n"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "kc-bulk-import: warning: 2 accounts get an empty password (anyone may log in to them): new.a, new.b; give passwords, or --generate-passwords\n"
    );
    let creds = sc.root.parent().expect("dir").join("creds.csv");
    let out = run(
        &sc,
        &[
            s(&csv),
            "--domain",
            "example.org",
            "--generate-passwords",
            "--credentials-out",
            s(&creds),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mode = std::fs::metadata(&creds)
        .expect("written")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&creds).expect("read");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "address,password");
    let config = Config::load(&sc.root).expect("config");
    for line in &lines[1..] {
        let (address, password) = line.split_once(',').expect("address,password");
        let (name, domain) = address.split_once('@').expect("address");
        kc_core::import::check_password(password, name).expect("meets the policy");
        let user = config.user(name, domain).expect("created");
        assert_eq!(user.password(), format!("NUL:{password}"));
    }
    assert_eq!(lines.len(), 3);
    assert!(
        !sc.read("store/logs/config.log")
            .contains(lines[1].split(',').nth(1).expect("p"))
    );
    // Never over an existing file.
    let again = file(&sc, "q.csv", "Name\nnew.c\n");
    let out = run(
        &sc,
        &[
            s(&again),
            "--domain",
            "example.org",
            "--generate-passwords",
            "--credentials-out",
            s(&creds),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("exists; the credentials file is never overwritten"));
}

#[test]
fn a_migration_keeps_hashes_groups_aliases_and_history() {
    let sc = Scratch::new(&Options::demo());
    let source = file(
        &sc,
        "old-users.cfg",
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<config>\n  <list name=\"User\">\n    <listitem>\n      <variable name=\"Name\">moved</variable>\n      <variable name=\"Domain\">example.com</variable>\n      <variable name=\"Password\">D3S:aaaabbbbccccdddd</variable>\n      <variable name=\"Groups\">movers</variable>\n      <variable name=\"Custom\">kept</variable>\n    </listitem>\n    <listitem>\n      <variable name=\"Name\">elsewhere</variable>\n      <variable name=\"Domain\">other.example</variable>\n    </listitem>\n  </list>\n  <list name=\"Group\">\n    <listitem>\n      <variable name=\"Name\">movers</variable>\n      <variable name=\"Domain\">example.com</variable>\n      <variable name=\"Description\">From the old server</variable>\n      <variable name=\"Members\">moved,gone</variable>\n    </listitem>\n  </list>\n  <list name=\"Alias\">\n    <listitem>\n      <variable name=\"Name\">mover</variable>\n      <variable name=\"Domain\">example.com</variable>\n      <variable name=\"DeliverTo\">moved@example.com</variable>\n    </listitem>\n  </list>\n  <list name=\"UserAdditionalData\">\n    <listitem>\n      <variable name=\"Name\">moved</variable>\n      <variable name=\"Domain\">example.com</variable>\n      <variable name=\"PasswordHistory\">D3S:aaaabbbbccccdddd</variable>\n    </listitem>\n  </list>\n</config>\n",
    );
    let out = run(
        &sc,
        &["--from-users-cfg", s(&source), "--domain", "example.com"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let config = Config::load(&sc.root).expect("config");
    let moved = config.user("moved", "example.com").expect("migrated");
    assert_eq!(moved.password(), "D3S:aaaabbbbccccdddd");
    assert_eq!(moved.0.get("Custom"), Some("kept"));
    assert!(config.user("elsewhere", "other.example").is_none());
    let movers = config
        .groups()
        .find(|g| g.name() == "movers")
        .expect("group created from its source record");
    assert_eq!(
        (movers.description(), movers.members()),
        ("From the old server", "moved")
    );
    assert!(
        config
            .aliases()
            .any(|a| a.name() == "mover" && a.deliver_to() == "moved@example.com")
    );
    assert!(config.additional_data().any(|d| d.name() == "moved"));
    sc.undo_last();
    sc.assert_unchanged();
}

/// Runs the import and checks it is refused as a whole: exit code 2, `first` as the first line
/// of stderr, and the install byte for byte as it was.
fn refused(sc: &Scratch, args: &[&str], first: &str) -> String {
    let out = run(sc, args);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().next(), Some(first), "{err}");
    sc.assert_unchanged();
    err
}

#[test]
fn one_run_names_every_problem_however_the_rows_go_wrong() {
    let sc = Scratch::new(&Options::demo());
    // A control character, a bad name, a name twice in the file, a template typo.
    let csv = file(
        &sc,
        "mixed.csv",
        "Name;Password;FullName\nnew.one;Str0ng-pass;New One\nbad name;Str0ng-pass;Bad\nctl;Str0ng-pass;C\u{1}x\nnew.one;Str0ng-pass;Twice\n",
    );
    let p = csv.display();
    let err = refused(
        &sc,
        &[
            s(&csv),
            "--domain",
            "example.org",
            "--template",
            "Nope",
            "--license-limit",
            "15",
        ],
        &format!(
            "kc-bulk-import: error: {p}:2: template: no user template \"Nope\" for example.org (general or of that domain)"
        ),
    );
    let lines: Vec<&str> = err.lines().collect();
    for want in [
        format!("{p}:4: FullName: control character U+0001 is not allowed"),
        format!(
            "{p}:3: Name: \"bad name\": ' ' is not allowed (letters, digits, '.', '_' and '-' only)"
        ),
        format!("{p}:5: Name: new.one@example.org already exists as a user of line 2 of {p}"),
    ] {
        assert!(lines.contains(&want.as_str()), "{want}\nin:\n{err}");
    }
    assert!(
        err.contains("--license-limit: 18 enabled accounts after the import"),
        "{err}"
    );
    // A domain typo does not hide what any name must be.
    let typo = refused(
        &sc,
        &[s(&csv), "--domain", "exmaple.org"],
        &format!(
            "kc-bulk-import: error: {p}:2: domain: no domain exmaple.org (did you mean example.org?) on this server"
        ),
    );
    assert!(
        typo.contains(&format!("{p}:3: Name: \"bad name\": ' ' is not allowed")),
        "{typo}"
    );
    assert!(
        typo.contains(&format!("{p}:4: FullName: control character U+0001")),
        "{typo}"
    );
}

#[test]
fn control_characters_in_what_is_imported_are_refused_with_file_line_and_field() {
    let sc = Scratch::new(&Options::demo());
    let csv = file(
        &sc,
        "new-staff.csv",
        "Name;Password;FullName\nok.one;Str0ng-pass;Ok One\nnul;Str0ng\0pass;Nul\nesc;Str0ng-pass;Esc \u{1b}[31mRed\nc1;Str0ng-pass;Next\u{85}Line\n",
    );
    let p = csv.display();
    let err = refused(
        &sc,
        &[s(&csv), "--domain", "example.org"],
        &format!("kc-bulk-import: error: {p}:3: Password: control character U+0000 is not allowed"),
    );
    assert_eq!(
        err,
        format!(
            "kc-bulk-import: error: {p}:3: Password: control character U+0000 is not allowed\n\
             {p}:4: FullName: control character U+001B is not allowed\n\
             {p}:5: FullName: control character U+0085 is not allowed\n\
             3 problems; nothing was changed\n"
        )
    );
    // A line break quoted into a one-line value would forge a line of the audit log.
    let csv = file(
        &sc,
        "quoted.csv",
        "Name,FullName\nann,\"Ann\nAdmin - delete User\"\n",
    );
    refused(
        &sc,
        &[s(&csv), "--domain", "example.org"],
        &format!(
            "kc-bulk-import: error: {}:2: FullName: line break U+000A is not allowed (a one-line value)",
            csv.display()
        ),
    );
    let toml = file(
        &sc,
        "nul.toml",
        "[[user]]\nName = \"tnul\"\nFullName = \"T \\u0000 Nul\"\n",
    );
    refused(
        &sc,
        &[s(&toml), "--domain", "example.org"],
        &format!(
            "kc-bulk-import: error: {}:3: FullName: control character U+0000 is not allowed",
            toml.display()
        ),
    );
}

#[test]
fn a_broken_csv_is_refused_where_it_breaks() {
    let sc = Scratch::new(&Options::demo());
    // example.com requires no secure passwords: only the file's own problems are reported.
    // The quote after "ann;" is never closed: bob's row would become part of ann's name.
    let csv = file(
        &sc,
        "open.csv",
        "Name;FullName\nann;\"Ann Smith\nbob;Bob Jones\n",
    );
    refused(
        &sc,
        &[s(&csv), "--domain", "example.com"],
        &format!(
            "kc-bulk-import: error: {}:2: -: a quote is not closed: lines 2 to 3 read as one row",
            csv.display()
        ),
    );
    // The same with CRLF, the quote on the third line, and one at the very end.
    let csv = file(
        &sc,
        "open-crlf.csv",
        "Name;FullName\r\nann;Ann\r\nbob;\"Bob\r\ncy;Cy\r\ndee;Dee\r\n",
    );
    refused(
        &sc,
        &[s(&csv), "--domain", "example.com"],
        &format!(
            "kc-bulk-import: error: {}:3: -: a quote is not closed: lines 3 to 5 read as one row",
            csv.display()
        ),
    );
    let csv = file(&sc, "open-end.csv", "Name;FullName\nann;\"Ann\n");
    refused(
        &sc,
        &[s(&csv), "--domain", "example.com"],
        &format!(
            "kc-bulk-import: error: {}:2: -: a quote is not closed",
            csv.display()
        ),
    );
    let csv = file(&sc, "twice.csv", "Name;FullName;name\nann;Ann;x\n");
    refused(
        &sc,
        &[s(&csv), "--domain", "example.com"],
        &format!(
            "kc-bulk-import: error: {}:1: name: the header names this column twice",
            csv.display()
        ),
    );
}

#[test]
fn toml_values_must_have_the_type_of_their_variable() {
    let sc = Scratch::new(&Options::demo());
    let toml = file(
        &sc,
        "types.toml",
        "[[user]]\nName = \"a.one\"\nPassword = true\n\n\
         [[user]]\nName = \"a.two\"\nQstorage = \"lots\"\n\n\
         [[user]]\nName = \"a.three\"\nQstorage = -5\n\n\
         [[user]]\nName = \"a.four\"\nAccount_enabled = 7\n\n\
         [[user]]\nName = \"a.five\"\nRights = 2\nFullName = [\"A\", \"Five\"]\n",
    );
    let p = toml.display();
    let err = refused(
        &sc,
        &[s(&toml), "--domain", "example.com"],
        &format!("kc-bulk-import: error: {p}:3: Password: must be a string, not a boolean"),
    );
    assert_eq!(
        err,
        format!(
            "kc-bulk-import: error: {p}:3: Password: must be a string, not a boolean\n\
             {p}:7: Qstorage: must be a whole number of 0 or more, not \"lots\"\n\
             {p}:11: Qstorage: must be a whole number of 0 or more, not -5\n\
             {p}:15: Account_enabled: must be 0 or 1 (or false or true), not 7\n\
             {p}:19: Rights: must be one of 0 (no rights), 1 (read-only admin), 3 (full admin), not 2\n\
             {p}:20: FullName: must be a string, not an array\n\
             6 problems; nothing was changed\n"
        )
    );
    // The right types pass: strings, whole numbers (or their digits), 0/1 or true/false.
    let good = file(
        &sc,
        "good.toml",
        "[[user]]\nName = \"b.one\"\nPassword = \"Str0ng-pass\"\nQstorage = 1048576\nQmessage = \"500\"\nAccount_enabled = false\nRights = 1\n",
    );
    let out = run(&sc, &[s(&good), "--domain", "example.com"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let config = Config::load(&sc.root).expect("config");
    let user = config.user("b.one", "example.com").expect("created");
    let get = |k: &str| user.0.get(k).expect(k).to_owned();
    assert_eq!(
        [
            get("Qstorage"),
            get("Qmessage"),
            get("Account_enabled"),
            get("Rights")
        ],
        ["1048576", "500", "0", "1"]
    );
}

/// The migration source of `a_migration_keeps_hashes_groups_aliases_and_history`, smaller.
fn old_users_cfg(full_name: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<config>\n  <list name=\"User\">\n    <listitem>\n      <variable name=\"Name\">moved</variable>\n      <variable name=\"Domain\">example.com</variable>\n      <variable name=\"FullName\">{full_name}</variable>\n      <variable name=\"Password\">D3S:aaaabbbbccccdddd</variable>\n    </listitem>\n  </list>\n  <list name=\"Alias\">\n    <listitem>\n      <variable name=\"Name\">mover</variable>\n      <variable name=\"Domain\">example.com</variable>\n      <variable name=\"DeliverTo\">moved@example.com</variable>\n    </listitem>\n  </list>\n</config>\n"
    )
}

#[test]
fn a_migration_source_holding_a_control_character_is_refused() {
    let sc = Scratch::new(&Options::demo());
    let source = file(
        &sc,
        "old-users.cfg",
        &old_users_cfg("Moved &#x1b;[0m Person"),
    );
    refused(
        &sc,
        &["--from-users-cfg", s(&source), "--domain", "example.com"],
        &format!(
            "kc-bulk-import: error: {}:7: FullName: control character U+001B is not allowed",
            source.display()
        ),
    );
}

#[test]
fn a_users_cfg_with_a_bom_crlf_and_a_self_closed_alias_list_gets_one_alias_list() {
    let sc = Scratch::new(&Options::demo());
    // users.cfg as Notepad or a .NET tool leaves it: a BOM, CRLF, the empty list self-closed.
    let demo = std::fs::read_to_string(sc.root.join("users.cfg")).expect("read");
    let start = demo.find("  <list name=\"Alias\">").expect("an Alias list");
    let end = start + demo[start..].find("  </list>\n").expect("its end") + "  </list>\n".len();
    let shaped = format!(
        "\u{feff}{}  <list name=\"Alias\" />\n{}",
        &demo[..start],
        &demo[end..]
    )
    .replace('\n', "\r\n");
    for root in [&sc.root, &sc.before] {
        std::fs::write(root.join("users.cfg"), &shaped).expect("write");
    }
    let source = file(&sc, "old-users.cfg", &old_users_cfg("Moved Person"));
    let out = run(
        &sc,
        &["--from-users-cfg", s(&source), "--domain", "example.com"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let after = sc.read("users.cfg");
    assert!(after.starts_with('\u{feff}'), "the BOM stays");
    assert_eq!(after.matches("<list name=\"Alias\"").count(), 1, "{after}");
    assert!(
        after.contains(
            "  <list name=\"Alias\">\r\n    <listitem>\r\n      <variable name=\"Name\">mover</variable>\r\n      <variable name=\"Domain\">example.com</variable>\r\n      <variable name=\"DeliverTo\">moved@example.com</variable>\r\n    </listitem>\r\n  </list>\r\n"
        ),
        "{after}"
    );
    assert_eq!(
        after.matches('\n').count(),
        after.matches("\r\n").count(),
        "CRLF throughout"
    );
    let config = Config::load(&sc.root).expect("config");
    assert_eq!(
        config
            .user("moved", "example.com")
            .map(|u| u.0.get("FullName")),
        Some(Some("Moved Person"))
    );
    sc.undo_last();
    sc.assert_unchanged();
}

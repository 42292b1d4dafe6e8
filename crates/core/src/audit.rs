//! The lines the tools add to the server's own logs (KERIO-FORMAT.md §4), so that an admin's
//! usual greps and log viewers find the toolkit's changes beside the server's.
//!
//! A change to the configuration is written as the server writes it, one line per record:
//! `insert User set Name='tjones', Domain='company.com', …, Password=xxxxxx, …` [C], and
//! `update User set Account_enabled='0' where Name='jdoe', Domain='example.com'` and
//! `delete User where Name='jdoe', Domain='example.com'` [A: the form of these two is assumed].
//! The actor is the tool (`kc-user`), where the server writes the administrator's login. What is
//! not a record (a mailbox moved, ACL entries rewritten) is one line of plain words, as the
//! server's "Store backup started". Secrets ([`schema::SECRET`]) are always `xxxxxx`.

use std::path::Path;

use crate::change::{Step, printable};
use crate::config::schema;
use crate::config::{Config, RecordAction, RecordChange};

/// The Kerio log line for an action: `[DD/Mon/YYYY HH:MM:SS] kc-<tool> - <text>`, local time.
/// Control characters in the text (a directory named with a newline or an escape sequence) are
/// written as `\u{…}`: a name can never forge a second log line or drive the admin's terminal.
pub fn line(tool: &str, text: &str) -> String {
    let now = jiff::Zoned::now();
    format!(
        "[{}] {tool} - {}",
        now.strftime("%d/%b/%Y %H:%M:%S"),
        printable(text)
    )
}

/// The Config log text of every record the pending edits of both config files change:
/// users.cfg first, then mailserver.cfg, each in file order.
pub fn config_changes(config: &Config) -> Vec<String> {
    [&config.users, &config.mailserver]
        .into_iter()
        .flat_map(|doc| doc.record_changes())
        .map(|c| record(&c))
        .collect()
}

/// One record change in the server's form.
pub fn record(change: &RecordChange) -> String {
    let pairs = |vars: &[(String, String)]| {
        vars.iter()
            .map(|(name, value)| assignment(name, value))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let whose = if change.key.is_empty() {
        String::new()
    } else {
        format!(" where {}", pairs(&change.key))
    };
    match change.action {
        RecordAction::Insert => format!("insert {} set {}", change.list, pairs(&change.vars)),
        RecordAction::Update => {
            format!("update {} set {}{whose}", change.list, pairs(&change.vars))
        }
        RecordAction::Delete => format!("delete {}{whose}", change.list),
    }
}

/// `Name='value'`, a quote in the value doubled; `Password=xxxxxx` for a secret.
fn assignment(name: &str, value: &str) -> String {
    if is_secret(name, value) {
        format!("{name}=xxxxxx")
    } else {
        format!("{name}={}", quoted(value))
    }
}

/// A secret: a variable [`schema::SECRET`] names (in any case), or any value in one of the
/// server's password forms (`D3S:` is reversible, `NUL:` is clear text, `SHA:` a hash), whatever
/// the variable is called.
pub fn is_secret(name: &str, value: &str) -> bool {
    schema::SECRET.iter().any(|s| s.eq_ignore_ascii_case(name))
        || schema::PASSWORD_FORMS.iter().any(|f| {
            value
                .trim_start()
                .get(..f.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(f))
        })
}

/// `'text'`, a quote inside doubled: a name in a log line that cannot end its quotes early.
pub fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The server's Config log, in its log directory: what changed in the configuration.
pub const CONFIG_LOG: &str = "config.log";
/// The server's Warning log, in its log directory.
pub const WARNING_LOG: &str = "warning.log";

/// The steps that append these lines to the Config log and the Warning log in `logs`: one step
/// per log, however many lines.
pub fn steps(logs: &Path, tool: &str, config: &[String], warning: &[String]) -> Vec<Step> {
    [(config, CONFIG_LOG), (warning, WARNING_LOG)]
        .into_iter()
        .filter(|(lines, _)| !lines.is_empty())
        .map(|(lines, file)| Step::AppendLines {
            path: logs.join(file),
            lines: lines.iter().map(|l| line(tool, l)).collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Document;

    const USERS: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<config>
  <list name="User">
    <listitem>
      <variable name="Name">jdoe</variable>
      <variable name="Domain">example.com</variable>
      <variable name="FullName">John O'Doe</variable>
      <variable name="Password">D3S:0011</variable>
      <variable name="Account_enabled">1</variable>
    </listitem>
    <listitem>
      <variable name="Name">gone</variable>
      <variable name="Domain">example.com</variable>
    </listitem>
  </list>
</config>
"#;

    #[test]
    fn edits_are_written_as_the_server_writes_them() {
        let mut doc =
            Document::parse(Path::new("users.cfg"), USERS.as_bytes().to_vec()).expect("parses");
        let ids: Vec<_> = doc.items("User").map(|u| u.id()).collect();
        doc.set(ids[0], "Account_enabled", "0").expect("set");
        doc.set(ids[0], "Password", "NUL:secret").expect("set");
        doc.remove_item(ids[1]);
        doc.add_item(
            "User",
            &[
                ("Name", "tjones"),
                ("Domain", "company.com"),
                ("Account_enabled", "1"),
                ("Password", "NUL:Sup3r-secret"),
                ("PIN", "NUL:4444"),
                ("Rights", "1"),
            ],
        )
        .expect("add");
        // Set back to what the file holds: no change to log.
        let added = doc.add_item("User", &[("Name", "x")]).expect("add");
        doc.remove_item(added);
        let lines: Vec<String> = doc.record_changes().iter().map(record).collect();
        assert_eq!(
            lines,
            [
                "update User set Password=xxxxxx, Account_enabled='0' where Name='jdoe', Domain='example.com'",
                "delete User where Name='gone', Domain='example.com'",
                "insert User set Name='tjones', Domain='company.com', Account_enabled='1', Password=xxxxxx, PIN=xxxxxx, Rights='1'",
            ]
        );
        let mut doc =
            Document::parse(Path::new("users.cfg"), USERS.as_bytes().to_vec()).expect("parses");
        doc.set(ids[0], "FullName", "John O'Doe")
            .expect("same value");
        doc.set(ids[0], "Name", "john").expect("rename");
        assert_eq!(
            doc.record_changes().iter().map(record).collect::<Vec<_>>(),
            ["update User set Name='john' where Name='jdoe', Domain='example.com'"]
        );
    }

    #[test]
    fn secrets_by_any_name_or_form_and_records_without_a_key_are_never_ambiguous() {
        for (name, value) in [
            ("pin", "9876"),
            ("Pin", "5555"),
            ("password", "x"),
            ("ExtraPassword", "D3S:d1ca"),
            ("Whatever", "nul:secret"),
            ("Hash", "SHA:0011"),
        ] {
            assert_eq!(assignment(name, value), format!("{name}=xxxxxx"));
        }
        assert_eq!(assignment("FullName", "Nul Point"), "FullName='Nul Point'");
        assert_eq!(assignment("FullName", "O'Neil"), "FullName='O''Neil'");

        let text = "<config>\n  <list name=\"MailingList\">\n    <listitem>\n      <variable name=\"Name\">announce</variable>\n      <variable name=\"Members\">a@x.test,b@x.test</variable>\n    </listitem>\n  </list>\n</config>\n";
        let mut doc =
            Document::parse(Path::new("mailserver.cfg"), text.as_bytes().to_vec()).expect("parses");
        let id = doc.items("MailingList").next().expect("one").id();
        doc.set(id, "Members", "a@x.test").expect("set");
        assert_eq!(
            doc.record_changes().iter().map(record).collect::<Vec<_>>(),
            [
                "update MailingList set Members='a@x.test' where Name='announce', Members='a@x.test,b@x.test'"
            ]
        );
    }

    #[test]
    fn a_name_with_a_newline_or_an_escape_cannot_forge_a_log_line() {
        let l = line(
            "kc-test",
            "Archive mailbox evil\n[01/Jan/2026 00:00:00] Admin - x\x1b[2J",
        );
        assert_eq!(l.lines().count(), 1, "{l}");
        assert!(
            l.ends_with(
                "] kc-test - Archive mailbox evil\\u{a}[01/Jan/2026 00:00:00] Admin - x\\u{1b}[2J"
            ),
            "{l}"
        );
        let steps = steps(
            Path::new("store/logs"),
            "kc-test",
            &["a\nb".into(), "c".into()],
            &[],
        );
        let [Step::AppendLines { path, lines }] = steps.as_slice() else {
            panic!("one step: {steps:?}")
        };
        assert_eq!(path, Path::new("store/logs/config.log"));
        assert_eq!(lines.len(), 2, "{lines:?}");
    }
}

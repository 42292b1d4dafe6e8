//! Writes the install root: `mailserver.cfg`, `users.cfg`, the server's `.bak` copies, and the
//! other directories of a real root (`license/`, `sslcert/`, `settings/`, `ldapmap/`).
//!
//! The files are written as text in the shape KERIO-FORMAT.md gives, with names taken from the
//! core's schema table so that the fixture and the toolkit can never disagree on a name. A few
//! lists and tables the toolkit does not know are included, as a real file has them, so that
//! every test sees that unknown content passes through. The shapes of other writers (§1: Notepad's
//! BOM and CRLF, Python ElementTree, .NET XDocument) and the Docker layout's symlinks are
//! written when [`Shapes`] asks for them.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use kc_core::config::escape_text;
use kc_core::config::schema::{
    ADMINISTRATION, ALIAS, DIRECTORIES, DOMAIN, GROUP, MAILING_LIST, MAILSERVER_CFG, TEMPLATE,
    USER, USER_ADDITIONAL_DATA, USERS_CFG,
};

use crate::{Places, Plan, Shapes, hex, rng_for};

/// How a writer spells the XML.
#[derive(Debug, Clone, Copy)]
struct Style {
    declaration: bool,
    comments: bool,
    /// Empty elements as `<x />` (ElementTree, XDocument), not `<x></x>` (the server).
    self_close: bool,
    /// Non-ASCII as decimal character references (ElementTree's default `us-ascii` output).
    ascii: bool,
    final_newline: bool,
}

/// The server's own way.
const KERIO: Style = Style {
    declaration: true,
    comments: true,
    self_close: false,
    ascii: false,
    final_newline: true,
};

/// The vendor's staff script: `ElementTree.write()` of a parsed file.
const ELEMENTTREE: Style = Style {
    declaration: false,
    comments: false,
    self_close: true,
    ascii: true,
    final_newline: false,
};

/// The migration tool's .NET `XDocument.Save()`.
const XDOCUMENT: Style = Style {
    self_close: true,
    ..KERIO
};

/// Builds one config file in Kerio's grammar.
struct Cfg {
    out: String,
    style: Style,
}

impl Cfg {
    fn new(style: Style) -> Cfg {
        let head = if style.declaration {
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<config>\n"
        } else {
            "<config>\n"
        };
        Cfg {
            out: head.to_owned(),
            style,
        }
    }
    fn comment(&mut self, text: &str) {
        if self.style.comments {
            let _ = writeln!(self.out, "  <!-- {text} -->");
        }
    }
    fn variable(&mut self, indent: &str, var: &str, value: &str) {
        if value.is_empty() && self.style.self_close {
            let _ = writeln!(self.out, "{indent}<variable name=\"{var}\" />");
            return;
        }
        let mut text = escape_text(value);
        if self.style.ascii {
            text = text
                .chars()
                .map(|c| {
                    if c.is_ascii() {
                        c.to_string()
                    } else {
                        format!("&#{};", u32::from(c))
                    }
                })
                .collect();
        }
        let _ = writeln!(
            self.out,
            "{indent}<variable name=\"{var}\">{text}</variable>"
        );
    }
    fn list(&mut self, name: &str, attrs: &str, items: &[Vec<(&str, String)>]) {
        if items.is_empty() && self.style.self_close {
            let _ = writeln!(self.out, "  <list name=\"{name}\"{attrs} />");
            return;
        }
        let _ = writeln!(self.out, "  <list name=\"{name}\"{attrs}>");
        for item in items {
            self.out.push_str("    <listitem>\n");
            for (var, value) in item {
                self.variable("      ", var, value);
            }
            self.out.push_str("    </listitem>\n");
        }
        self.out.push_str("  </list>\n");
    }
    fn table(&mut self, name: &str, vars: &[(&str, String)]) {
        let _ = writeln!(self.out, "  <table name=\"{name}\">");
        for (var, value) in vars {
            self.variable("    ", var, value);
        }
        self.out.push_str("  </table>\n");
    }
    fn finish(mut self) -> String {
        self.out.push_str("</config>");
        if self.style.final_newline {
            self.out.push('\n');
        }
        self.out
    }
}

/// The bytes of a config file: with a BOM and CRLF line endings in the `bom_crlf` shape.
fn encode(text: String, shapes: Shapes) -> Vec<u8> {
    if shapes.bom_crlf {
        format!("\u{feff}{}", text.replace('\n', "\r\n")).into_bytes()
    } else {
        text.into_bytes()
    }
}

fn flag(b: bool) -> String {
    if b { "1" } else { "0" }.to_owned()
}

pub(crate) fn write(places: &Places, plan: &Plan, shapes: Shapes) -> anyhow::Result<()> {
    let root = places.root.as_path();
    let users = encode(users_cfg(plan, shapes), shapes);
    let mailserver = encode(mailserver_cfg(plan, shapes, &places.store_dir), shapes);
    for (name, bytes) in [(USERS_CFG, &users), (MAILSERVER_CFG, &mailserver)] {
        match places.volume.as_deref().filter(|_| shapes.symlink_configs) {
            // Docker: the file is in the volume, the root has a symlink to it.
            Some(volume) => {
                fs_err::write(volume.join(name), bytes)?;
                std::os::unix::fs::symlink(volume.join(name), root.join(name)).with_context(
                    || format!("{}: cannot make the symlink", root.join(name).display()),
                )?;
            }
            None => fs_err::write(root.join(name), bytes)?,
        }
        // The server keeps the previous version of each file beside it.
        fs_err::write(root.join(format!("{name}.bak")), bytes)?;
    }
    fs_err::write(
        root.join("cluster.cfg"),
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<config>\n  <table name=\"Cluster\">\n    <variable name=\"Enabled\">0</variable>\n  </table>\n</config>\n",
    )?;
    let mut rng = rng_for(plan.now, "license");
    let mut signature = [0u8; 64];
    rand::Rng::fill(&mut rng, &mut signature[..]);
    write_file(
        &root.join("license/license.key"),
        &format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<verify>\n  <product>Kerio Connect</product>\n  <users>{}</users>\n  <signature>{}</signature>\n</verify>\n",
            (plan.users.len() / 50 + 1) * 50,
            hex(&signature)
        ),
    )?;
    write_file(
        &root.join("sslcert/server.crt"),
        "-----BEGIN CERTIFICATE-----\nMIIBfixturecertificatenotreal\n-----END CERTIFICATE-----\n",
    )?;
    write_file(
        &root.join("sslcert/server.key"),
        "-----BEGIN PRIVATE KEY-----\nMIIBfixturekeynotreal\n-----END PRIVATE KEY-----\n",
    )?;
    write_file(
        &root.join("settings/webmail/defaults.xml"),
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<settings><language>en</language></settings>\n",
    )?;
    if let Some(d) = plan.domains.iter().find(|d| d.mapped) {
        write_file(
            &root.join(format!("ldapmap/{}.map", d.name)),
            "# attribute map of the directory service\nmail=mail\nuid=sAMAccountName\n",
        )?;
    }
    Ok(())
}

fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    fs_err::create_dir_all(path.parent().expect("fixture files are under the root"))?;
    fs_err::write(path, text)?;
    Ok(())
}

fn users_cfg(plan: &Plan, shapes: Shapes) -> String {
    let mut cfg = Cfg::new(if shapes.elementtree { XDOCUMENT } else { KERIO });
    let users: Vec<Vec<(&str, String)>> = plan
        .users
        .iter()
        .map(|u| {
            vec![
                (USER.name, u.name.clone()),
                (USER.domain, u.domain.clone()),
                (USER.full_name, u.full_name.clone()),
                (USER.description, u.description.clone()),
                (USER.password, u.password.clone()),
                (USER.enabled, flag(u.enabled)),
                (USER.auth_type, if u.mapped { "1" } else { "0" }.to_owned()),
                (USER.rights, u.rights.to_string()),
                (USER.forward_mode, flag(u.forward.is_some())),
                (USER.forward_address, u.forward.clone().unwrap_or_default()),
                (USER.email_addresses, u.addresses.join(",")),
                (USER.groups, u.groups.join(",")),
                (USER.quota_storage, u.quota.to_string()),
                (USER.quota_messages, "0".to_owned()),
                (USER.data_source, flag(u.mapped)),
                (
                    "LastLogin",
                    if u.dir.is_some() {
                        plan.now - 86_400
                    } else {
                        0
                    }
                    .to_string(),
                ),
            ]
        })
        .collect();
    cfg.list(
        USER.list,
        &format!(" identityCounter=\"{}\"", users.len()),
        &users,
    );

    let mut groups = Vec::new();
    let mut aliases = Vec::new();
    for d in plan.domains.iter().filter(|d| !d.mapped) {
        for (name, members) in &d.groups {
            groups.push(vec![
                (GROUP.name, name.clone()),
                (GROUP.domain, d.name.clone()),
                (GROUP.description, format!("The {name} team")),
                (GROUP.email_addresses, name.clone()),
                (GROUP.members, members.join(",")),
                (GROUP.rights, "0".to_owned()),
            ]);
        }
        let in_domain: Vec<&crate::User> =
            plan.users.iter().filter(|u| u.domain == d.name).collect();
        let Some(admin) = in_domain.first() else {
            continue;
        };
        let mut alias = |name: &str, to: String, description: &str| {
            aliases.push(vec![
                (ALIAS.name, name.to_owned()),
                (ALIAS.domain, d.name.clone()),
                (ALIAS.deliver_to, to),
                (ALIAS.description, description.to_owned()),
            ]);
        };
        alias("postmaster", admin.address(), "Required by RFC 5321");
        alias(
            "info",
            in_domain[in_domain.len() / 2].address(),
            "Public contact",
        );
        alias(
            "sales-team",
            format!("sales@{}", d.name),
            "Delivers to a group",
        );
        alias(
            "announce*",
            format!("#public@{}/Announcements", d.name),
            "Wildcard to a public folder",
        );
        if let Some(u) = in_domain.get(1) {
            // The alias left behind by an earlier rename, the vendor's way.
            alias(&format!("{}.old", u.name), u.address(), "Previous login");
        }
    }
    cfg.list(GROUP.list, "", &groups);
    if shapes.elementtree {
        // No aliases: the empty list, self-closed, that a tool must add to.
        aliases.clear();
    }
    cfg.list(ALIAS.list, "", &aliases);

    let history: Vec<Vec<(&str, String)>> = plan
        .users
        .iter()
        .filter(|u| !u.mapped)
        .map(|u| {
            vec![
                (USER_ADDITIONAL_DATA.name, u.name.clone()),
                (USER_ADDITIONAL_DATA.domain, u.domain.clone()),
                (
                    USER_ADDITIONAL_DATA.last_password_change,
                    (plan.now - 40 * 86_400).to_string(),
                ),
                (USER_ADDITIONAL_DATA.password_history, u.password.clone()),
            ]
        })
        .collect();
    cfg.list(USER_ADDITIONAL_DATA.list, "", &history);
    cfg.comment("resources are kept by the server; the toolkit passes them through");
    cfg.list(
        "Resource",
        "",
        &[vec![
            ("Name", "meeting-room".to_owned()),
            ("Domain", plan.domains[0].name.clone()),
            ("Type", "0".to_owned()),
        ]],
    );
    cfg.finish()
}

fn mailserver_cfg(plan: &Plan, shapes: Shapes, store_dir: &str) -> String {
    let mut cfg = Cfg::new(if shapes.elementtree {
        ELEMENTTREE
    } else {
        KERIO
    });
    cfg.comment("Kerio Connect configuration: generated by kc-fixture");
    cfg.table(
        DIRECTORIES.table,
        &[(DIRECTORIES.store_dir, store_dir.to_owned())],
    );
    cfg.table(
        ADMINISTRATION.table,
        &[
            (ADMINISTRATION.builtin_admin_enabled, "1".to_owned()),
            (ADMINISTRATION.builtin_admin_username, "Admin".to_owned()),
            (
                "BuiltInAdminPassword",
                "D3S:0f3b6a5c2d1e4f708192a3b4c5d6e7f8".to_owned(),
            ),
        ],
    );
    let domains: Vec<Vec<(&str, String)>> = plan
        .domains
        .iter()
        .map(|d| {
            vec![
                (DOMAIN.name, d.name.clone()),
                (
                    DOMAIN.description,
                    if d.mapped {
                        "Mapped from Active Directory"
                    } else {
                        ""
                    }
                    .to_owned(),
                ),
                (DOMAIN.dir_service, flag(d.mapped)),
                (DOMAIN.password_policy, flag(d.secure_passwords)),
                ("Aliases", String::new()),
            ]
        })
        .collect();
    cfg.list(DOMAIN.list, "", &domains);
    let first = &plan.domains[0].name;
    cfg.list(
        TEMPLATE.list,
        "",
        &[
            vec![
                (TEMPLATE.name, "Default".to_owned()),
                (TEMPLATE.domain, String::new()),
                (TEMPLATE.description, "General template".to_owned()),
                (USER.quota_storage, (2u64 << 30).to_string()),
            ],
            vec![
                (TEMPLATE.name, "Sales staff".to_owned()),
                (TEMPLATE.domain, first.clone()),
                (
                    TEMPLATE.description,
                    if shapes.elementtree {
                        "Neue Verkäufer" // non-ASCII, for ElementTree's `&#228;`
                    } else {
                        "New sales people"
                    }
                    .to_owned(),
                ),
                (USER.groups, "sales,all".to_owned()),
                (USER.quota_storage, (1u64 << 30).to_string()),
                (USER.description, "Sales".to_owned()),
            ],
        ],
    );
    let lists: Vec<Vec<(&str, String)>> = plan
        .domains
        .iter()
        .filter(|d| !d.mapped)
        .map(|d| {
            let members: Vec<String> = plan
                .users
                .iter()
                .filter(|u| u.domain == d.name)
                .take(6)
                .map(|u| u.address())
                .collect();
            vec![
                (MAILING_LIST.name, "announce".to_owned()),
                (MAILING_LIST.domain, d.name.clone()),
                (MAILING_LIST.members, members.join(",")),
                (
                    MAILING_LIST.moderators,
                    members.first().cloned().unwrap_or_default(),
                ),
            ]
        })
        .collect();
    cfg.list(MAILING_LIST.list, "", &lists);
    cfg.table(
        "SmtpServer",
        &[
            ("Hostname", format!("mail.{first}")),
            ("MaxMessageSize", "52428800".to_owned()),
            ("Banner", "ESMTP ready & waiting <here>".to_owned()),
        ],
    );
    cfg.finish()
}

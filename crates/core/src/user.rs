//! The account actions of the vendor's console, offline (kc-user): disable, enable, remove with
//! the mailbox kept, deleted or moved to another account, and a listing.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::account::{self, AccountError, Address, Layout, ShareFile};
use crate::change::{Plan, Step, audit_line};
use crate::config::schema::{ALIAS, GROUP, MAILING_LIST, USER};
use crate::config::{Config, ConfigError, list_tokens};
use crate::install::Install;
use crate::progress::Progress;
use crate::store::{folder_map::FolderMap, status_fld::StatusFld, sub_fld::SubFld};

pub const TOOL: &str = "kc-user";

/// What happens to a removed account's mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxFate {
    /// Left in the store; the server re-attaches it if an account of that name is created.
    Keep,
    /// Removed (the pre-change backup keeps it recoverable).
    Delete,
    /// Moved under another account as folder `Deleted mailbox — <address>`.
    Transfer(Address),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Disable,
    Enable,
    Remove { mailbox: MailboxFate, purge: bool },
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("{}; nothing was changed", .0.join("\n"))]
    Refused(Vec<String>),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Account(#[from] AccountError),
}

/// Removes every reference to `who` from the configuration (group members, mailing lists,
/// aliases, other users' forwards). Returns what it removed, one line each.
fn purge_config(config: &mut Config, who: &Address) -> Result<Vec<String>, ConfigError> {
    let addr = who.to_string();
    let mut said = Vec::new();
    for (id, name) in crate::config::view::groups_of(&config.users, &who.domain) {
        if config.users.remove_token(id, GROUP.members, &who.name)? > 0 {
            said.push(format!("member of group {name}@{}", who.domain));
        }
    }
    let aliases: Vec<_> = config
        .aliases()
        .map(|a| (a.id(), format!("{}@{}", a.name(), a.domain())))
        .collect();
    for (id, name) in aliases {
        if config.users.remove_token(id, ALIAS.deliver_to, &addr)? == 0 {
            continue;
        }
        let left = config.users.item(id).get(ALIAS.deliver_to).unwrap_or("");
        if list_tokens(left).next().is_none() {
            config.users.remove_item(id);
            said.push(format!("alias {name} delivers only to it"));
        } else {
            said.push(format!("alias {name} delivers to it among others"));
        }
    }
    let users: Vec<_> = config.users().map(|u| (u.id(), u.address())).collect();
    for (id, name) in users {
        if config.users.remove_token(id, USER.forward_address, &addr)? > 0 {
            said.push(format!("user {name} forwards to it"));
        }
    }
    let lists: Vec<_> = config
        .mailing_lists()
        .map(|l| (l.id(), format!("{}@{}", l.name(), l.domain())))
        .collect();
    for (id, name) in lists {
        for (field, role) in [
            (MAILING_LIST.members, "member"),
            (MAILING_LIST.moderators, "moderator"),
        ] {
            if config.mailserver.remove_token(id, field, &addr)? > 0 {
                said.push(format!("{role} of mailing list {name}"));
            }
        }
    }
    Ok(said)
}

/// Plans an action on some accounts. Every refusal is collected and returned together.
pub fn plan(install: &Install, who: &[Address], action: &Action) -> Result<Plan, UserError> {
    let layout = Layout::new(install);
    let mut config = Config::load(&install.root)?;
    let builtin = config.builtin_admin().map(str::to_owned);
    let mut problems = Vec::new();
    let mut targets: Vec<(Address, crate::config::ItemId, bool)> = Vec::new();
    for a in who {
        if builtin
            .as_deref()
            .is_some_and(|b| b.eq_ignore_ascii_case(&a.name))
        {
            problems.push(format!(
                "{a}: is the built-in administrator; it is managed in the administration settings"
            ));
            continue;
        }
        let Some(u) = config.user(&a.name, &a.domain) else {
            problems.push(format!("{a}: no such user"));
            continue;
        };
        if u.mapped() || config.domain(u.domain()).is_some_and(|d| d.mapped()) {
            problems.push(format!(
                "{a}: is mapped from a directory service; its record lives in the directory"
            ));
            continue;
        }
        let spelled = Address {
            name: u.name().to_owned(),
            domain: u.domain().to_owned(),
        };
        if targets.iter().any(|(t, ..)| t.is(&spelled)) {
            continue;
        }
        targets.push((spelled, u.id(), u.enabled()));
    }
    if let Action::Remove {
        mailbox: MailboxFate::Transfer(to),
        ..
    } = action
    {
        match config.user(&to.name, &to.domain) {
            None => problems.push(format!("transfer target {to}: no such user")),
            Some(_) if targets.iter().any(|(t, ..)| t.is(to)) => problems.push(format!(
                "transfer target {to}: is one of the accounts removed"
            )),
            Some(_) => {}
        }
    }
    // The admin lockout guard: some enabled local full administrator must remain (a mapped one
    // depends on a directory service that may be the very thing being repaired).
    let admins = |c: &Config, gone: &[Address]| {
        c.users()
            .filter(|u| u.enabled() && u.rights() == 3)
            .filter(|u| !u.mapped() && !c.domain(u.domain()).is_some_and(|d| d.mapped()))
            .filter(|u| !gone.iter().any(|g| u.is(&g.name, &g.domain)))
            .count()
    };
    if !matches!(action, Action::Enable) {
        let gone: Vec<Address> = targets.iter().map(|(a, ..)| a.clone()).collect();
        if admins(&config, &[]) > 0 && admins(&config, &gone) == 0 {
            problems.push(format!(
                "{}: would leave no enabled account with full administration rights (Rights 3)",
                gone.iter()
                    .filter(|g| config
                        .user(&g.name, &g.domain)
                        .is_some_and(|u| u.rights() == 3))
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    if !problems.is_empty() {
        return Err(UserError::Refused(problems));
    }

    let mut steps = Vec::new();
    let mut late = Vec::new();
    let mut warnings = Vec::new();
    let mut config_lines = Vec::new();
    let mut warning_lines = Vec::new();
    match action {
        Action::Disable | Action::Enable => {
            let (value, verb) = if *action == Action::Disable {
                ("0", "Disable")
            } else {
                ("1", "Enable")
            };
            for (a, id, enabled) in &targets {
                if *enabled == (*action == Action::Enable) {
                    warnings.push(format!("{a} is already {}d", verb.to_lowercase()));
                    continue;
                }
                config.users.set(*id, USER.enabled, value)?;
                config_lines.push(format!("{verb} User '{a}': Account_enabled='{value}'"));
            }
        }
        Action::Remove { mailbox, purge } => {
            // The target's mailbox, and the step creating it (taken when a mailbox moves there).
            let mut target = match mailbox {
                MailboxFate::Transfer(to) => Some(account::transfer_target(install, &layout, to)?),
                _ => None,
            };
            for (a, id, _) in &targets {
                config.users.remove_item(*id);
                let extra =
                    crate::config::view::additional_data_of(&config.users, &a.name, &a.domain);
                for d in extra {
                    config.users.remove_item(d);
                }
                // References elsewhere: removed with --purge-settings, else only told.
                let said = if *purge {
                    purge_config(&mut config, a)?
                } else {
                    purge_config(&mut config.clone(), a)?
                };
                let fate = match mailbox {
                    MailboxFate::Keep => "mailbox kept".to_owned(),
                    MailboxFate::Delete => "mailbox deleted".to_owned(),
                    MailboxFate::Transfer(to) => format!("mailbox moved to {to}"),
                };
                for s in &said {
                    if *purge {
                        config_lines.push(format!("Remove reference to '{a}': {s}"));
                    } else {
                        warnings.push(format!(
                            "{a} is still named: {s} (use --purge-settings to remove)"
                        ));
                    }
                }
                let line = format!("Remove User '{a}' ({fate})");
                config_lines.push(line.clone());
                warning_lines.push(line);
                let dir = account::mailbox_path(install, &layout, a)?;
                match (mailbox, dir) {
                    (MailboxFate::Keep, _) => {}
                    (_, None) => warnings.push(format!("{a} has no mailbox directory")),
                    (MailboxFate::Delete, Some(dir)) => late.push(Step::RemoveDir { path: dir }),
                    (MailboxFate::Transfer(_), Some(dir)) => {
                        let (target, create) = target.as_mut().expect("resolved for a transfer");
                        steps.extend(create.take());
                        late.extend(
                            account::transfer_steps(install, &dir, a, target)
                                .map_err(|e| UserError::Refused(vec![e.to_string()]))?,
                        );
                    }
                }
            }
            // The store: ACL entries and subscriptions naming the removed accounts.
            let gone: Vec<String> = targets.iter().map(|(a, ..)| a.to_string()).collect();
            let deleted: Vec<PathBuf> = late
                .iter()
                .filter_map(|s| match s {
                    Step::RemoveDir { path } => Some(path.clone()),
                    _ => None,
                })
                .collect();
            let found = Mutex::new(Vec::new());
            let files = account::edit_share_files(install, &layout, |kind, path, bytes| {
                let rel = install.logical(path).unwrap_or_else(|| path.to_path_buf());
                if deleted.iter().any(|d| rel.starts_with(d)) {
                    return Ok(None);
                }
                let (out, n) = match kind {
                    ShareFile::Status | ShareFile::PublicAcl => {
                        let mut s = StatusFld::parse(bytes);
                        let n: usize = gone.iter().map(|g| s.remove(g)).sum();
                        (s.into_bytes(), n)
                    }
                    ShareFile::Map => {
                        let mut bytes = bytes;
                        let mut n = 0;
                        for g in &gone {
                            let map = FolderMap::parse(path, bytes)
                                .map_err(|e| AccountError::Share(e.to_string()))?;
                            let (b, k) = map.without_owner(g);
                            n += k;
                            bytes = b;
                        }
                        (bytes, n)
                    }
                    ShareFile::Subscriptions => {
                        let mut s = SubFld::parse(bytes);
                        let n: usize = gone.iter().map(|g| s.remove(g)).sum();
                        (s.into_bytes(), n)
                    }
                };
                if n == 0 {
                    return Ok(None);
                }
                found
                    .lock()
                    .map_err(|_| AccountError::Share("a worker panicked".into()))?
                    .push((rel.to_path_buf(), n));
                Ok(Some(out))
            })?;
            let found = found.into_inner().unwrap_or_default();
            let total: usize = found.iter().map(|(_, n)| n).sum();
            if *purge {
                for (path, bytes, read) in files {
                    steps.push(Step::write_file(path, bytes, read));
                }
                if total > 0 {
                    config_lines.push(format!(
                        "Remove {total} folder sharing entries naming {}",
                        gone.join(", ")
                    ));
                }
            } else if total > 0 {
                warnings.push(format!(
                    "{total} folder sharing entries (ACLs in status.fld and #public/acl.fld, subscriptions in folder.map and sub.fld) in {} files still name {} (use --purge-settings to remove)",
                    found.len(),
                    gone.join(", ")
                ));
            }
        }
    }
    let mut head = Vec::new();
    for doc in [&config.users, &config.mailserver] {
        if doc.is_modified() {
            let name = doc.path().file_name().unwrap_or_default();
            head.push(Step::save_document(Path::new(name), doc));
        }
    }
    head.extend(steps);
    head.extend(late);
    for line in config_lines {
        head.push(Step::AppendLine {
            path: layout.config_log(),
            line: audit_line(TOOL, &line),
        });
    }
    for line in warning_lines {
        head.push(Step::AppendLine {
            path: layout.warning_log(),
            line: audit_line(TOOL, &line),
        });
    }
    let verb = match action {
        Action::Disable => "disable",
        Action::Enable => "enable",
        Action::Remove { .. } => "remove",
    };
    let names: Vec<String> = targets.iter().map(|(a, ..)| a.to_string()).collect();
    Ok(Plan {
        tool: TOOL.into(),
        description: format!("{verb} {}", names.join(", ")),
        steps: head,
        warnings,
    })
}

/// One line of `kc-user list`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    pub name: String,
    pub domain: String,
    pub full_name: String,
    pub enabled: bool,
    pub rights: u8,
    /// `local` or `mapped`.
    pub data_source: &'static str,
    /// Bytes of the mailbox directory; `null` when it has none.
    pub mailbox_bytes: Option<u64>,
}

/// The accounts (of one domain), with their mailboxes measured in parallel.
pub fn list(
    install: &Install,
    domain: Option<&str>,
    progress: &dyn Progress,
) -> Result<Vec<Row>, UserError> {
    let config = Config::load(&install.root)?;
    let mut rows = Vec::new();
    let mut dirs = Vec::new();
    for u in config.users() {
        if domain.is_some_and(|d| !u.domain().eq_ignore_ascii_case(d)) {
            continue;
        }
        let mapped = u.mapped() || config.domain(u.domain()).is_some_and(|d| d.mapped());
        let a = Address {
            name: u.name().to_owned(),
            domain: u.domain().to_owned(),
        };
        dirs.push(account::mailbox_dir(install, &a)?);
        rows.push(Row {
            name: a.name,
            domain: a.domain,
            full_name: u.full_name().to_owned(),
            enabled: u.enabled(),
            rights: u.rights(),
            data_source: if mapped { "mapped" } else { "local" },
            mailbox_bytes: None,
        });
    }
    let present: Vec<(usize, PathBuf)> = dirs
        .iter()
        .enumerate()
        .filter_map(|(i, d)| d.clone().map(|d| (i, d)))
        .collect();
    let paths: Vec<&Path> = present.iter().map(|(_, p)| p.as_path()).collect();
    let stats = crate::store::stats_of_all(&paths, progress);
    for ((i, _), s) in present.iter().zip(stats) {
        rows[*i].mailbox_bytes = Some(s.map_err(AccountError::from)?.bytes);
    }
    Ok(rows)
}

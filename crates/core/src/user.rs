//! The account actions of the vendor's console, offline (kc-user): disable, enable, remove with
//! the mailbox kept, deleted or moved to another account, and a listing.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::account::{self, AccountError, Address, Layout, ShareFile};
use crate::audit;
use crate::change::{Plan, Step};
use crate::config::schema::{ALIAS, GROUP, MAILING_LIST, USER};
use crate::config::{Config, ConfigError, list_tokens};
use crate::install::Install;
use crate::model::Model;
use crate::problem::{Problem, Problems};
use crate::progress::Progress;
use crate::store::{folder_map::FolderMap, status_fld::StatusFld, sub_fld::SubFld};

/// The tool's name, as it signs its log lines and messages.
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

/// What to do to the accounts named (the subcommand).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Set `Account_enabled` to 0 in users.cfg, as the console's Disable does.
    Disable,
    /// Set `Account_enabled` back to 1.
    Enable,
    /// Remove local accounts; a mapped account is only disabled, as the console does (its
    /// record is the directory's). `mailbox` is required for a local account; for a mapped one
    /// it applies only when given.
    Remove {
        /// What happens to the mailbox (`--mailbox`); `None` when not given.
        mailbox: Option<MailboxFate>,
        /// Also remove the ACL entries, `folder.map` owners and subscriptions that name the
        /// removed accounts (`--purge-settings`); without it they are only counted in a warning.
        purge: bool,
    },
}

/// One account an action applies to, as the configuration spells it.
#[derive(Debug)]
struct Target {
    address: Address,
    id: crate::config::ItemId,
    enabled: bool,
    /// Mapped from a directory service (the user's or its domain's data source).
    mapped: bool,
}

/// `no such user`, with the closest address there is when one is close.
fn no_such_user(config: &Config, a: &Address) -> String {
    let all: Vec<String> = config.users().map(|u| u.address()).collect();
    match crate::suggest::closest(&a.to_string(), all.iter().map(String::as_str)) {
        Some(c) => format!("no such user (did you mean {c}?)"),
        None => "no such user".to_owned(),
    }
}

/// Why an action or the listing could not be done.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// A `--domain` the server does not have (a typo is never an empty list).
    #[error("{0}")]
    Unknown(String),
    /// The action breaks these rules (no such user, the last admin locked out, …); nothing was
    /// changed.
    #[error("{0}; nothing was changed")]
    Refused(Problems),
    /// mailserver.cfg or users.cfg could not be read, parsed or edited.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A mailbox or share file could not be found, read or moved.
    #[error(transparent)]
    Account(#[from] AccountError),
}

impl UserError {
    /// The problems of a refused plan, for `--json`.
    pub fn problems(&self) -> Option<&Problems> {
        match self {
            UserError::Refused(problems) => Some(problems),
            _ => None,
        }
    }
}

/// A place in the configuration that still names a removed account.
#[derive(Debug)]
struct Reference {
    /// In mailserver.cfg (mailing lists), else users.cfg.
    mailserver: bool,
    id: crate::config::ItemId,
    variable: &'static str,
    /// The token naming the account in that comma list.
    token: String,
    /// The whole record goes with it (an alias that delivers only to the account).
    whole_record: bool,
    /// What it is, in the admin's words.
    said: String,
}

/// Every reference to `who` in the configuration: group members, mailing lists, aliases,
/// other users' forwards.
fn references(config: &Config, who: &Address) -> Vec<Reference> {
    let addr = who.to_string();
    let holds = |value: Option<&str>, token: &str| {
        value.is_some_and(|v| list_tokens(v).any(|t| t.eq_ignore_ascii_case(token)))
    };
    let mut out = Vec::new();
    let mut found = |mailserver, id, variable, token: &str, whole_record, said| {
        out.push(Reference {
            mailserver,
            id,
            variable,
            token: token.to_owned(),
            whole_record,
            said,
        })
    };
    for (id, name) in crate::config::view::groups_of(&config.users, &who.domain) {
        if holds(config.users.item(id).get(GROUP.members), &who.name) {
            let said = format!("member of group {name}@{}", who.domain);
            found(false, id, GROUP.members, &who.name, false, said);
        }
    }
    for a in config.aliases() {
        let deliver_to = config.users.item(a.id()).get(ALIAS.deliver_to);
        if holds(deliver_to, &addr) {
            let only = list_tokens(deliver_to.unwrap_or("")).all(|t| t.eq_ignore_ascii_case(&addr));
            let how = if only {
                "only to it"
            } else {
                "to it among others"
            };
            let said = format!("alias {}@{} delivers {how}", a.name(), a.domain());
            found(false, a.id(), ALIAS.deliver_to, &addr, only, said);
        }
    }
    for u in config.users() {
        if holds(config.users.item(u.id()).get(USER.forward_address), &addr) {
            let said = format!("user {} forwards to it", u.address());
            found(false, u.id(), USER.forward_address, &addr, false, said);
        }
    }
    for l in config.mailing_lists() {
        let roles = [
            (MAILING_LIST.members, "member"),
            (MAILING_LIST.moderators, "moderator"),
        ];
        for (variable, role) in roles {
            if holds(config.mailserver.item(l.id()).get(variable), &addr) {
                let said = format!("{role} of mailing list {}@{}", l.name(), l.domain());
                found(true, l.id(), variable, &addr, false, said);
            }
        }
    }
    out
}

/// Removes the references [`references`] found.
fn remove_references(config: &mut Config, found: &[Reference]) -> Result<(), ConfigError> {
    for r in found {
        let doc = if r.mailserver {
            &mut config.mailserver
        } else {
            &mut config.users
        };
        if r.whole_record {
            doc.remove_item(r.id);
        } else {
            doc.remove_token(r.id, r.variable, &r.token)?;
        }
    }
    Ok(())
}

/// Plans an action on some accounts. Every refusal is collected and returned together.
pub fn plan(model: Model<'_>, who: &[Address], action: &Action) -> Result<Plan, UserError> {
    let Model {
        install,
        layout,
        mut config,
    } = model;
    let (targets, mut problems) = targets(&config, who, action);
    if let Action::Remove {
        mailbox: Some(MailboxFate::Transfer(to)),
        ..
    } = action
    {
        problems.extend(check_transfer_target(&config, &targets, to));
    }
    if !matches!(action, Action::Enable) {
        problems.extend(check_lockout(&config, &targets));
    }
    if !problems.is_empty() {
        return Err(UserError::Refused(Problems(problems)));
    }
    let mut out = Edits::default();
    match action {
        Action::Disable => set_enabled(&mut config, &targets, false, &mut out)?,
        Action::Enable => set_enabled(&mut config, &targets, true, &mut out)?,
        Action::Remove { mailbox, purge } => {
            let mailbox = mailbox.as_ref();
            remove(
                install,
                &layout,
                &mut config,
                &targets,
                mailbox,
                *purge,
                &mut out,
            )?
        }
    }
    Ok(Plan {
        tool: TOOL.into(),
        description: describe(action, &targets),
        steps: steps(&layout, &config, &mut out),
        warnings: out.warnings,
    })
}

/// The accounts named, as the configuration spells them (each once), and the problems of those
/// that cannot be acted on.
fn targets(config: &Config, who: &[Address], action: &Action) -> (Vec<Target>, Vec<Problem>) {
    let builtin = config.builtin_admin();
    let (mut targets, mut problems) = (Vec::<Target>::new(), Vec::new());
    for a in who {
        if builtin.is_some_and(|b| b.eq_ignore_ascii_case(&a.name)) {
            let why = "is the built-in administrator; it is managed in the administration settings";
            problems.push(Problem::new(a, why));
            continue;
        }
        let Some(u) = config.user(&a.name, &a.domain) else {
            problems.push(Problem::new(a, no_such_user(config, a)));
            continue;
        };
        let mapped = config.is_mapped(&u);
        let address = Address {
            name: u.name().to_owned(),
            domain: u.domain().to_owned(),
        };
        if let Action::Remove { mailbox: None, .. } = action
            && !mapped
        {
            let why =
                "say what happens to its mailbox: --mailbox keep, delete or transfer:USER@DOMAIN";
            problems.push(Problem::new(&address, why));
            continue;
        }
        if !targets.iter().any(|t| t.address.is(&address)) {
            targets.push(Target {
                address,
                id: u.id(),
                enabled: u.enabled(),
                mapped,
            });
        }
    }
    (targets, problems)
}

/// A transfer's target exists and is not removed itself (a mapped account removed stays,
/// disabled, but its mailbox moves: not onto itself).
fn check_transfer_target(config: &Config, targets: &[Target], to: &Address) -> Option<Problem> {
    let subject = format!("transfer target {to}");
    match config.user(&to.name, &to.domain) {
        None => Some(Problem::new(subject, no_such_user(config, to))),
        Some(_) if targets.iter().any(|t| t.address.is(to)) => {
            Some(Problem::new(subject, "is one of the accounts removed"))
        }
        Some(_) => None,
    }
}

/// The admin lockout guard: some enabled local full administrator must remain (a mapped one
/// depends on a directory service that may be the very thing being repaired); and where
/// there is none, the last administrator of any kind (the built-in one included) must.
fn check_lockout(config: &Config, targets: &[Target]) -> Option<Problem> {
    let admins = |gone: &[Address], local_only: bool| {
        config
            .users()
            .filter(|u| u.enabled() && u.rights() == 3)
            .filter(|u| !(local_only && config.is_mapped(u)))
            .filter(|u| !gone.iter().any(|g| u.is(&g.name, &g.domain)))
            .count()
            + usize::from(!local_only && config.builtin_admin().is_some())
    };
    let gone: Vec<Address> = targets.iter().map(|t| t.address.clone()).collect();
    let last = |local_only| admins(&[], local_only) > 0 && admins(&gone, local_only) == 0;
    if !(last(true) || last(false)) {
        return None;
    }
    let admins_gone: Vec<String> = (gone.iter())
        .filter(|g| {
            config
                .user(&g.name, &g.domain)
                .is_some_and(|u| u.rights() == 3)
        })
        .map(ToString::to_string)
        .collect();
    Some(Problem::new(
        admins_gone.join(", "),
        "would leave no enabled account with full administration rights (Rights 3)",
    ))
}

/// The steps: the edited configs, then the store's, then the logs.
fn steps(layout: &Layout, config: &Config, out: &mut Edits) -> Vec<Step> {
    let mut steps = Step::save_modified(config);
    steps.append(&mut out.steps);
    steps.append(&mut out.late);
    let mut config_lines = audit::config_changes(config);
    config_lines.append(&mut out.store_lines);
    steps.extend(audit::steps(
        &layout.logs,
        TOOL,
        &config_lines,
        &out.warning_lines,
    ));
    steps
}

/// The change's one-line summary, as `kc-backup changes` lists it.
fn describe(action: &Action, targets: &[Target]) -> String {
    let names: Vec<String> = targets.iter().map(|t| t.address.to_string()).collect();
    let names = names.join(", ");
    match action {
        Action::Disable => format!("disable {names}"),
        Action::Enable => format!("enable {names}"),
        Action::Remove { mailbox, purge } => {
            let fate = match mailbox {
                None => "mailbox left".to_owned(),
                Some(MailboxFate::Keep) => "mailbox kept".to_owned(),
                Some(MailboxFate::Delete) => "mailbox deleted".to_owned(),
                Some(MailboxFate::Transfer(to)) => format!("mailbox moved to {to}"),
            };
            let purge = if *purge { ", settings purged" } else { "" };
            format!("remove {names} ({fate}{purge})")
        }
    }
}

/// What an action's phases add to the plan besides the config edits.
#[derive(Debug, Default)]
struct Edits {
    /// Store steps taken first (a transfer target's folder created).
    steps: Vec<Step>,
    /// Store steps taken after (mailboxes removed or moved).
    late: Vec<Step>,
    warnings: Vec<String>,
    /// Config log lines of what is not a config record (folder sharing entries).
    store_lines: Vec<String>,
    warning_lines: Vec<String>,
}

fn set_enabled(
    config: &mut Config,
    targets: &[Target],
    enable: bool,
    out: &mut Edits,
) -> Result<(), UserError> {
    for t in targets {
        if t.enabled == enable {
            let state = if enable { "enabled" } else { "disabled" };
            out.warnings
                .push(format!("{} is already {state}", t.address));
            continue;
        }
        config
            .users
            .set(t.id, USER.enabled, if enable { "1" } else { "0" })?;
    }
    Ok(())
}

/// Removes the local accounts and disables the mapped ones (the console's "delete" of a mapped
/// account), then does what `mailbox` says with their mailboxes and, with `purge`, removes what
/// names the removed ones.
fn remove(
    install: &Install,
    layout: &Layout,
    config: &mut Config,
    targets: &[Target],
    mailbox: Option<&MailboxFate>,
    purge: bool,
    out: &mut Edits,
) -> Result<(), UserError> {
    // The target's mailbox, and the step creating it (taken when a mailbox moves there).
    let mut target = match mailbox {
        Some(MailboxFate::Transfer(to)) => Some(account::transfer_target(install, layout, to)?),
        _ => None,
    };
    for t in targets {
        let fate = match mailbox {
            None | Some(MailboxFate::Keep) => "mailbox kept".to_owned(),
            Some(MailboxFate::Delete) => "mailbox deleted".to_owned(),
            Some(MailboxFate::Transfer(to)) => format!("mailbox moved to {to}"),
        };
        if t.mapped {
            disable_mapped(config, t, mailbox, &fate, out)?;
        } else {
            remove_local(config, t, purge, &fate, out)?;
        }
        if let Some(mailbox @ (MailboxFate::Delete | MailboxFate::Transfer(_))) = mailbox {
            mailbox_steps(install, layout, &t.address, mailbox, target.as_mut(), out)?;
        }
    }
    // The store: ACL entries and subscriptions naming the removed (local) accounts.
    let gone: Vec<String> = targets
        .iter()
        .filter(|t| !t.mapped)
        .map(|t| t.address.to_string())
        .collect();
    if !gone.is_empty() {
        share_entries(install, layout, &gone, purge, out)?;
    }
    Ok(())
}

/// A mapped account is disabled, not removed, as the administration console does: its record
/// is the directory's.
fn disable_mapped(
    config: &mut Config,
    t: &Target,
    mailbox: Option<&MailboxFate>,
    fate: &str,
    out: &mut Edits,
) -> Result<(), UserError> {
    let a = &t.address;
    if t.enabled {
        config.users.set(t.id, USER.enabled, "0")?;
    }
    let state = if t.enabled {
        "it is disabled"
    } else {
        "it is already disabled"
    };
    out.warnings.push(format!(
        "{a} is mapped from a directory service: {state}, not removed, as the administration console does (remove it in the directory); {fate}"
    ));
    let moved = matches!(
        mailbox,
        Some(MailboxFate::Delete | MailboxFate::Transfer(_))
    );
    if t.enabled || moved {
        out.warning_lines.push(format!(
            "Remove User {} (mapped from a directory service: {state}, not removed; {fate})",
            audit::quoted(&a.to_string())
        ));
    }
    Ok(())
}

/// A local account's record goes, with its password history; references elsewhere go with
/// `purge`, else are told.
fn remove_local(
    config: &mut Config,
    t: &Target,
    purge: bool,
    fate: &str,
    out: &mut Edits,
) -> Result<(), UserError> {
    let a = &t.address;
    config.users.remove_item(t.id);
    for d in crate::config::view::additional_data_of(&config.users, &a.name, &a.domain) {
        config.users.remove_item(d);
    }
    purge_or_tell(config, a, purge, out)?;
    let line = format!("Remove User {} ({fate})", audit::quoted(&a.to_string()));
    out.warning_lines.push(line);
    Ok(())
}

/// The steps that delete or move a removed account's mailbox, and their log lines.
fn mailbox_steps(
    install: &Install,
    layout: &Layout,
    a: &Address,
    mailbox: &MailboxFate,
    target: Option<&mut (PathBuf, Option<Step>)>,
    out: &mut Edits,
) -> Result<(), UserError> {
    let Some(dir) = account::mailbox_path(install, layout, a)? else {
        out.warnings.push(format!("{a} has no mailbox directory"));
        return Ok(());
    };
    let (shown, who) = (
        audit::quoted(&dir.display().to_string()),
        audit::quoted(&a.to_string()),
    );
    match (mailbox, target) {
        (MailboxFate::Transfer(to), Some((target, create))) => {
            let to = audit::quoted(&to.to_string());
            out.store_lines
                .push(format!("Move mailbox {shown} of {who} to {to}"));
            out.steps.extend(create.take());
            let moves = account::transfer_steps(install, &dir, a, target)
                .map_err(|e| UserError::Refused(Problems(vec![Problem::said(e)])))?;
            out.late.extend(moves);
        }
        _ => {
            let line = format!("Delete mailbox {shown} of {who} (kept in the pre-change backup)");
            out.store_lines.push(line);
            out.late.push(Step::RemoveDir { path: dir });
        }
    }
    Ok(())
}

/// References elsewhere in the configuration: removed with `purge`, else only told.
fn purge_or_tell(
    config: &mut Config,
    a: &Address,
    purge: bool,
    out: &mut Edits,
) -> Result<(), UserError> {
    let found = references(config, a);
    if purge {
        remove_references(config, &found)?;
        return Ok(());
    }
    for r in found {
        let said = r.said;
        (out.warnings).push(format!(
            "{a} is still named: {said} (use --purge-settings to remove)"
        ));
    }
    Ok(())
}

/// Folder sharing entries (status.fld and #public/acl.fld ACLs, folder.map owners, sub.fld
/// subscriptions) naming the removed accounts: rewritten with `purge`, else only told.
fn share_entries(
    install: &Install,
    layout: &Layout,
    gone: &[String],
    purge: bool,
    out: &mut Edits,
) -> Result<(), UserError> {
    let deleted: Vec<PathBuf> = out
        .late
        .iter()
        .filter_map(|s| match s {
            Step::RemoveDir { path } => Some(path.clone()),
            _ => None,
        })
        .collect();
    let found = Mutex::new(Vec::new());
    let files = account::edit_share_files(install, layout, |kind, path, bytes| {
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
                for g in gone {
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
    if total == 0 {
        return Ok(());
    }
    if purge {
        for (path, bytes, read) in files {
            out.steps.push(Step::write_file(path, bytes, read));
        }
        out.store_lines.push(format!(
            "Remove {total} folder sharing entries naming {}",
            gone.join(", ")
        ));
    } else {
        out.warnings.push(format!(
            "{total} folder sharing entries (ACLs in status.fld and #public/acl.fld, subscriptions in folder.map and sub.fld) in {} files still name {} (use --purge-settings to remove)",
            found.len(),
            gone.join(", ")
        ));
    }
    Ok(())
}

/// One line of `kc-user list`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    /// The login name, as users.cfg spells it.
    pub name: String,
    /// The account's domain, as users.cfg spells it.
    pub domain: String,
    /// The `FullName` of users.cfg; empty when it has none.
    pub full_name: String,
    /// Whether the account is enabled (`Account_enabled`).
    pub enabled: bool,
    /// The administration rights (`Rights`): 0 none, 1 read-only admin, 3 full admin.
    pub rights: u8,
    /// `local` or `mapped`.
    pub data_source: &'static str,
    /// Bytes of the mailbox directory; `null` when it has none.
    pub mailbox_bytes: Option<u64>,
}

/// The accounts (of one domain), with their mailboxes measured in parallel.
pub fn list(
    model: &Model<'_>,
    domain: Option<&str>,
    progress: &dyn Progress,
) -> Result<Vec<Row>, UserError> {
    let (install, config) = (model.install, &model.config);
    if let Some(d) = domain
        && config.domain(d).is_none()
    {
        return Err(UserError::Unknown(crate::suggest::unknown(
            "domain",
            d,
            config.domains().map(|d| d.name()),
        )));
    }
    let mut rows = Vec::new();
    let mut dirs = Vec::new();
    for u in config.users() {
        if domain.is_some_and(|d| !u.domain().eq_ignore_ascii_case(d)) {
            continue;
        }
        let mapped = config.is_mapped(&u);
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

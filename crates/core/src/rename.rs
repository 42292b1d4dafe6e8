//! Renaming accounts end to end (kc-rename-user): the plan of everything that names the old
//! account, in both config files and in the store, as a pure function of the install.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::account::{self, AccountError, Address, Layout, NameKey, Names, ShareFile, name_key};
use crate::audit;
use crate::change::{Plan, Step};
use crate::config::schema::{ALIAS, GROUP, MAILING_LIST, USER, USER_ADDITIONAL_DATA};
use crate::config::view::User;
use crate::config::{Config, ConfigError, Document, ItemId};
use crate::install::Install;
use crate::model::Model;
use crate::problem::{Problem, Problems};
use crate::store::{INDEX_FLD, folder_map::FolderMap, status_fld::StatusFld, sub_fld::SubFld};

mod calendar;
mod map;

pub use map::{parse_pair, read_map};

/// The tool's name, as it signs its log lines and messages.
pub const TOOL: &str = "kc-rename-user";

/// One rename, and where it was asked for (a line of a `--map` file) for messages.
#[derive(Debug, Clone)]
pub struct Rename {
    /// The account as it is named now.
    pub old: Address,
    /// The name and domain it gets; may differ from `old` only by case.
    pub new: Address,
    /// `FILE:LINE` of a map file, or empty.
    pub origin: String,
}

/// How to rename, beyond the names (the tool's switches).
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Add an alias old -> new (the default).
    pub alias: bool,
    /// Rewrite the old addresses in calendar items' ORGANIZER and ATTENDEE (the default).
    pub calendars: bool,
}

/// Why a rename could not be planned.
#[derive(Debug, thiserror::Error)]
pub enum RenameError {
    /// The request breaks these rules (each rename's problems, from one run); nothing was
    /// changed.
    #[error("{0}; nothing was changed")]
    Refused(Problems),
    /// mailserver.cfg or users.cfg could not be read, parsed or edited.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store's mailboxes or share files could not be read or edited.
    #[error(transparent)]
    Account(#[from] AccountError),
    /// The `--map` file could not be read.
    #[error("{path}")]
    Read {
        /// The map file, as given.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The `--map` file holds no rename (only blank lines, comments or a header).
    #[error("{0}: no renames in it")]
    EmptyMap(PathBuf),
}

impl RenameError {
    /// Refused, the problems in the order of their lines in the map (those without a line
    /// last), whichever phase found them.
    fn refused(mut problems: Vec<Problem>) -> RenameError {
        problems.sort_by_key(Problem::line);
        RenameError::Refused(Problems(problems))
    }

    /// The problems of a refused plan, for `--json`.
    pub fn problems(&self) -> Option<&Problems> {
        match self {
            RenameError::Refused(problems) => Some(problems),
            _ => None,
        }
    }
}

/// What a plan will rewrite, counted for the summary and the audit line.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Counts {
    /// References rewritten in the config files: the accounts themselves, their groups,
    /// aliases, forwards and mailing lists naming them.
    pub config_references: usize,
    /// Entries of mailboxes' `status.fld` files (folder ACLs).
    pub acl_entries: usize,
    /// Owners in `folder.map` files.
    pub folder_map_owners: usize,
    /// Entries of `#public/acl.fld` files.
    pub public_acl_entries: usize,
    /// Addresses in `sub.fld` files.
    pub subscriptions: usize,
    /// Calendar items (messages) whose ORGANIZER or ATTENDEE named an old address.
    pub calendar_items: usize,
}

/// The plan and what it counts.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Planned {
    /// The steps to run through the change protocol.
    pub plan: Plan,
    /// What the plan rewrites, counted.
    pub counts: Counts,
}

/// What a rename looks up, built once, so that each rename of a long `--map` costs lookups
/// rather than scans of users.cfg: who holds which name, password history by account, and the
/// users that forward anywhere (the only ones whose `ForwardAddress` can name anyone).
struct Index {
    names: Names,
    history: HashMap<NameKey, Vec<ItemId>>,
    forwarders: Vec<ItemId>,
}

impl Index {
    fn new(config: &Config) -> Index {
        let mut history: HashMap<NameKey, Vec<ItemId>> = HashMap::new();
        for d in config.additional_data() {
            history
                .entry(name_key(d.name(), d.domain()))
                .or_default()
                .push(d.id());
        }
        Index {
            names: Names::new(config),
            history,
            forwarders: config
                .users()
                .filter(|u| !u.forward_address().trim().is_empty())
                .map(|u| u.id())
                .collect(),
        }
    }
}

fn key(a: &Address) -> NameKey {
    name_key(&a.name, &a.domain)
}

/// Orders the renames so that a name is vacated before it is reused (a chain `b -> c, a -> b`);
/// a cycle (a swap) cannot be ordered.
fn order(renames: &[Rename]) -> Result<Vec<usize>, Problem> {
    let olds: HashMap<(String, String), usize> = renames
        .iter()
        .enumerate()
        .map(|(i, r)| (key(&r.old), i))
        .collect();
    let mut done = vec![false; renames.len()];
    let mut out = Vec::with_capacity(renames.len());
    while out.len() < renames.len() {
        let before = out.len();
        for i in 0..renames.len() {
            if done[i] {
                continue;
            }
            // Waits for the rename that vacates its new name, unless that is itself (case-only).
            let blocked = olds
                .get(&key(&renames[i].new))
                .is_some_and(|&j| j != i && !done[j]);
            if !blocked {
                done[i] = true;
                out.push(i);
            }
        }
        if out.len() == before {
            let cycle: Vec<String> = (0..renames.len())
                .filter(|&i| !done[i])
                .map(|i| {
                    let r = &renames[i];
                    format!("{}{} -> {}", prefix(&r.origin), r.old, r.new)
                })
                .collect();
            return Err(Problem::said(format!(
                "these renames form a cycle (a swap), which needs a temporary name: rename through one in two runs: {}",
                cycle.join("; ")
            )));
        }
    }
    Ok(out)
}

fn prefix(origin: &str) -> String {
    if origin.is_empty() {
        String::new()
    } else {
        format!("{origin}: ")
    }
}

/// Where `text` names one of `addresses` (lower case) as a whole address, not inside a longer
/// one: `(line, address)` in text order. One pass, whatever the number of addresses (a `--map`
/// of thousands over a users.cfg of 60 MiB).
fn mentions(text: &str, addresses: &HashSet<String>) -> Vec<(usize, String)> {
    let part = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-' | b'@');
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let (mut line, mut i) = (1, 0);
    while i < bytes.len() {
        if !part(bytes[i]) {
            if bytes[i] == b'\n' {
                line += 1;
            }
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && part(bytes[i]) {
            i += 1;
        }
        // ASCII bytes bound the token, so these are character boundaries.
        let token = &text[start..i];
        if token.contains('@') {
            let lower = token.to_ascii_lowercase();
            if addresses.contains(&lower) {
                out.push((line, lower));
            }
        }
    }
    out
}

/// Plans the renames. Every refusal is collected and returned together.
///
/// The phases, each one method of [`Planner`]: the request as a whole (duplicates, an order in
/// which each name is vacated before it is reused); then each rename, in that order, against the
/// install as the earlier ones left it: is it allowed, then users.cfg, mailserver.cfg and the
/// mailbox directory; then the aliases old -> new; then the store (share files, calendar items);
/// then the steps and the audit lines.
pub fn plan(
    model: Model<'_>,
    renames: &[Rename],
    options: Options,
) -> Result<Planned, RenameError> {
    let mut planner = Planner::new(model, options)?;
    let order = planner.request(renames)?;
    for &i in &order {
        planner.rename(&renames[i])?;
    }
    if !planner.problems.is_empty() {
        return Err(RenameError::refused(planner.problems));
    }
    planner.add_aliases()?;
    let store = planner.edit_store()?;
    planner.leftover_mentions();
    Ok(planner.finish(store))
}

/// A problem of one rename, at its line of the map file when it comes from one.
fn problem(r: &Rename, subject: impl std::fmt::Display, reason: impl std::fmt::Display) -> Problem {
    if r.origin.is_empty() {
        Problem::new(subject, reason)
    } else {
        Problem::at(&r.origin, subject, reason)
    }
}

/// The install as the renames planned so far leave it, and what they add up to.
struct Planner<'a> {
    install: &'a Install,
    options: Options,
    layout: Layout,
    config: Config,
    index: Index,
    /// The built-in administrator's login (mailserver.cfg), which is never renamed.
    builtin: Option<String>,
    /// The mailbox directory of each (lower-case) name and domain, relative to the root: where
    /// each one is, and for the "already exists" check; kept up to date as renames move them.
    mailboxes: HashMap<NameKey, PathBuf>,
    problems: Vec<Problem>,
    /// The new names of the request, with where each was asked for.
    new_names: HashMap<NameKey, String>,
    /// Each rename planned, as (old, new) spelled as the configuration spells them.
    done: Vec<(Address, Address)>,
    counts: Counts,
    warnings: Vec<String>,
    /// Domain directories to create (the first account moved into a domain without one).
    create_dirs: Vec<PathBuf>,
    /// Mailbox directories to rename, from -> to.
    moves: Vec<(PathBuf, PathBuf)>,
}

/// What the store phase found to change.
struct StoreEdits {
    files: Vec<account::EditedFile>,
    calendars: calendar::Calendars,
}

impl<'a> Planner<'a> {
    /// Lists every mailbox directory.
    fn new(model: Model<'a>, options: Options) -> Result<Planner<'a>, RenameError> {
        let Model {
            install,
            layout,
            config,
        } = model;
        let mut mailboxes = HashMap::new();
        let mail = install.resolve(&layout.mail());
        for mb in crate::store::all_mailboxes(&mail).map_err(AccountError::from)? {
            let rel = install.logical(&mb.path).unwrap_or(mb.path.clone());
            mailboxes.insert(
                name_key(&mb.name.to_string_lossy(), &mb.domain.to_string_lossy()),
                rel,
            );
        }
        Ok(Planner {
            install,
            options,
            layout,
            builtin: config.builtin_admin().map(str::to_owned),
            index: Index::new(&config),
            config,
            mailboxes,
            problems: Vec::new(),
            new_names: HashMap::new(),
            done: Vec::new(),
            counts: Counts::default(),
            warnings: Vec::new(),
            create_dirs: Vec::new(),
            moves: Vec::new(),
        })
    }

    /// The request as a whole: a name renamed twice or given twice as a new name, and the order
    /// of the renames (refused at once if there is none: a cycle).
    fn request(&mut self, renames: &[Rename]) -> Result<Vec<usize>, RenameError> {
        let mut seen_old = HashMap::new();
        let mut seen_new = HashMap::new();
        // A rename that repeats an earlier one's name is not checked further: its own problems
        // would only follow from the first (a false "no such user").
        let mut repeated = HashSet::new();
        for (i, r) in renames.iter().enumerate() {
            if let Some(first) = seen_old.get(&key(&r.old)) {
                let reason = format!("is renamed twice (also at {first})");
                self.problems.push(problem(r, &r.old, reason));
                repeated.insert(i);
            } else {
                seen_old.insert(key(&r.old), r.origin.as_str());
            }
            if let Some(first) = seen_new.get(&key(&r.new)) {
                let reason = format!("is the new name of two renames (also at {first})");
                self.problems.push(problem(r, &r.new, reason));
                repeated.insert(i);
            } else {
                seen_new.insert(key(&r.new), r.origin.as_str());
            }
        }
        self.new_names = (renames.iter())
            .map(|r| (key(&r.new), r.origin.clone()))
            .collect();
        let order = order(renames).map_err(|cycle| {
            self.problems.push(cycle);
            RenameError::refused(std::mem::take(&mut self.problems))
        })?;
        Ok(order
            .into_iter()
            .filter(|i| !repeated.contains(i))
            .collect())
    }

    /// One rename against the install as the earlier ones left it: a refusal is noted and the
    /// rename skipped, so that every refusal of the request is found in one run.
    fn rename(&mut self, r: &Rename) -> Result<(), RenameError> {
        let (user_id, old, new) = match self.check(r) {
            Ok(checked) => checked,
            Err(p) => {
                self.problems.push(p);
                return Ok(());
            }
        };
        let mut n = self.rename_account(user_id, &old, &new)?;
        n += self.rename_in_groups(user_id, &old, &new)?;
        n += self.rename_pointers(&old.to_string(), &new.to_string())?;
        self.counts.config_references += n;
        self.move_mailbox(&old, &new);
        self.done.push((old, new));
        Ok(())
    }

    /// Whether `r` may be done: the account, and its old and new names as the configuration
    /// spells them (the new domain as the domain is spelled).
    fn check(&self, r: &Rename) -> Result<(ItemId, Address, Address), Problem> {
        let is_builtin = |name: &str| {
            self.builtin
                .as_deref()
                .is_some_and(|b| b.eq_ignore_ascii_case(name))
        };
        if is_builtin(&r.old.name) {
            let why = "is the built-in administrator; it cannot be renamed here";
            return Err(problem(r, &r.old, why));
        }
        let config = &self.config;
        let Some(user) = (self.index.names)
            .user(&r.old.name, &r.old.domain)
            .map(|id| User(config.users.item(id)))
        else {
            // The new name of another rename in this request: a chain, done in two runs.
            let why = match self.new_names.get(&key(&r.old)) {
                Some(at) if !at.is_empty() => format!(
                    "no such user: it is the new name of the rename at {at}; rename it again in a second run"
                ),
                Some(_) => "no such user: it is the new name of another rename; rename it again in a second run".to_owned(),
                None => "no such user".to_owned(),
            };
            return Err(problem(r, &r.old, why));
        };
        let old = Address {
            name: user.name().to_owned(),
            domain: user.domain().to_owned(),
        };
        let Some(new_domain) = config.domain(&r.new.domain) else {
            let why = format!("domain {} is not a domain of this server", r.new.domain);
            return Err(problem(r, &r.new, why));
        };
        let new = Address {
            name: r.new.name.clone(),
            domain: new_domain.name().to_owned(),
        };
        if config.is_mapped(&user) {
            let why = "is mapped from a directory service; rename it in the directory";
            return Err(problem(r, &old, why));
        }
        if new_domain.mapped() {
            let why = format!(
                "domain {} is mapped from a directory service; accounts cannot be moved into it",
                new.domain
            );
            return Err(problem(r, &new, why));
        }
        if old.name == new.name && old.domain.eq_ignore_ascii_case(&new.domain) {
            return Err(problem(r, &old, "the new name is the old one"));
        }
        if !old.is(&new) {
            let taken = (self.index.names)
                .taken(config, &new.name, &new.domain, Some(user.id()))
                .or_else(|| {
                    (self.mailboxes.contains_key(&key(&new)))
                        .then(|| "a mailbox directory".to_owned())
                });
            if let Some(what) = taken {
                return Err(problem(r, &new, format!("already exists as {what}")));
            }
            if is_builtin(&new.name) {
                return Err(problem(
                    r,
                    &new,
                    "is the name of the built-in administrator",
                ));
            }
        }
        Ok((user.id(), old, new))
    }

    /// users.cfg: the account itself, its own addresses and its password history (and the
    /// lookups, for the renames after it). Returns the references changed.
    fn rename_account(
        &mut self,
        user_id: ItemId,
        old: &Address,
        new: &Address,
    ) -> Result<usize, ConfigError> {
        let cross = !old.domain.eq_ignore_ascii_case(&new.domain);
        let users = &mut self.config.users;
        users.set(user_id, USER.name, &new.name)?;
        if cross {
            users.set(user_id, USER.domain, &new.domain)?;
        }
        let own = users
            .item(user_id)
            .get(USER.email_addresses)
            .unwrap_or("")
            .to_owned();
        let mut n = if !old.is(new) && crate::config::list_contains(&own, &new.name) {
            // Renamed to one of its own addresses: the old login goes (the alias keeps it).
            users.remove_token(user_id, USER.email_addresses, &old.name)?
        } else {
            users.rename_token(user_id, USER.email_addresses, &old.name, &new.name)?
        };
        let now = users.item(user_id).get(USER.email_addresses).unwrap_or("");
        self.index.names.rename_user(
            user_id,
            (&old.name, &old.domain, &own),
            (&new.name, &new.domain, now),
        );
        let history = self.index.history.remove(&key(old)).unwrap_or_default();
        for &id in &history {
            users.set(id, USER_ADDITIONAL_DATA.name, &new.name)?;
            if cross {
                users.set(id, USER_ADDITIONAL_DATA.domain, &new.domain)?;
            }
            n += 1;
        }
        self.index.history.insert(key(new), history);
        Ok(n)
    }

    /// users.cfg: groups of the old domain name the user by login. A group belongs to one
    /// domain, so a move to another domain leaves them (with a warning each).
    fn rename_in_groups(
        &mut self,
        user_id: ItemId,
        old: &Address,
        new: &Address,
    ) -> Result<usize, ConfigError> {
        let cross = !old.domain.eq_ignore_ascii_case(&new.domain);
        let users = &mut self.config.users;
        let mut n = 0;
        for (id, group) in crate::config::view::groups_of(users, &old.domain) {
            if !cross {
                n += users.rename_token(id, GROUP.members, &old.name, &new.name)?;
                continue;
            }
            let removed = users.remove_token(id, GROUP.members, &old.name)?;
            if removed > 0 {
                n += removed;
                self.warnings.push(format!(
                    "{old} leaves group {group}@{} (groups belong to one domain); add {new} to a group of {} if needed",
                    old.domain, new.domain
                ));
            }
        }
        if cross
            && !users
                .item(user_id)
                .get(USER.groups)
                .unwrap_or("")
                .is_empty()
        {
            users.set(user_id, USER.groups, "")?;
        }
        Ok(n)
    }

    /// Whole addresses that point at the account: aliases and forwards in users.cfg (of every
    /// domain: an address may point anywhere), mailing lists' members and moderators in
    /// mailserver.cfg.
    fn rename_pointers(&mut self, old: &str, new: &str) -> Result<usize, ConfigError> {
        let mut n = 0;
        let users = &mut self.config.users;
        let aliases: Vec<_> = users.items(ALIAS.list).map(|a| a.id()).collect();
        for id in aliases {
            n += users.rename_token(id, ALIAS.deliver_to, old, new)?;
        }
        for &id in &self.index.forwarders {
            n += users.rename_token(id, USER.forward_address, old, new)?;
        }
        let lists = &mut self.config.mailserver;
        let ids: Vec<_> = lists.items(MAILING_LIST.list).map(|l| l.id()).collect();
        for id in ids {
            for field in [MAILING_LIST.members, MAILING_LIST.moderators] {
                n += lists.rename_token(id, field, old, new)?;
            }
        }
        Ok(n)
    }

    /// The mailbox directory moves to the new name, in the new domain's directory (as spelled
    /// on disk; created when the domain has none yet, once for all renames into it).
    fn move_mailbox(&mut self, old: &Address, new: &Address) {
        let Some(from) = self.mailboxes.remove(&key(old)) else {
            self.warnings.push(format!(
                "{old} has no mailbox directory (never logged in): nothing to move"
            ));
            return;
        };
        let planned = (self.create_dirs.iter())
            .find(|d| {
                d.file_name()
                    .is_some_and(|n| n.eq_ignore_ascii_case(&new.domain))
            })
            .cloned();
        let domain_dir = existing_domain_dir(self.install, &self.layout, &new.domain)
            .or(planned)
            .unwrap_or_else(|| {
                let d = self.layout.domain(&new.domain);
                self.create_dirs.push(d.clone());
                d
            });
        let to = domain_dir.join(&new.name);
        self.moves.push((from, to.clone()));
        self.mailboxes.insert(key(new), to);
    }

    /// Aliases old -> new, unless a later rename took the old name (or only the case changed:
    /// the old address still reaches the account).
    fn add_aliases(&mut self) -> Result<(), ConfigError> {
        if !self.options.alias {
            return Ok(());
        }
        let reused: HashSet<_> = self.done.iter().map(|(_, n)| key(n)).collect();
        for (old, new) in &self.done {
            if old.is(new) {
                continue;
            }
            if reused.contains(&key(old)) {
                self.warnings.push(format!(
                    "no alias {old} -> {new}: {old} is the new name of another rename"
                ));
                continue;
            }
            self.config.users.add_item(
                ALIAS.list,
                &[
                    (ALIAS.name, &old.name),
                    (ALIAS.domain, &old.domain),
                    (ALIAS.deliver_to, &new.to_string()),
                    (ALIAS.description, &format!("Previous login of {new}")),
                ],
            )?;
        }
        Ok(())
    }

    /// Every rename at once, by lower-case old address: the order makes a name vacated before
    /// it is reused, so no new address is also an old one and one pass equals the renames in
    /// turn.
    fn new_of(&self) -> HashMap<String, String> {
        (self.done.iter())
            .map(|(old, new)| (old.to_string().to_ascii_lowercase(), new.to_string()))
            .collect()
    }

    /// The store: ACL entries (status.fld, #public/acl.fld), folder.map owners and sub.fld
    /// subscriptions, then the calendar items, listed by the same walk.
    fn edit_store(&mut self) -> Result<StoreEdits, RenameError> {
        let new_of = self.new_of();
        let lookup = |address: &str| {
            new_of
                .get(&address.to_ascii_lowercase())
                .map(String::as_str)
        };
        // Every folder's index (and an index moved aside by an earlier change of this window,
        // not yet rebuilt by the server) is where calendar items are looked for.
        let indexes: &[&str] = if self.options.calendars {
            &[INDEX_FLD, crate::config::schema::INDEX.aside]
        } else {
            &[]
        };
        let tally = ShareTally::default();
        let (files, listed) = account::edit_share_files_listing(
            self.install,
            &self.layout,
            indexes,
            |kind, path, bytes| tally.edit(kind, path, bytes, &lookup),
        )?;
        tally.into_counts(&mut self.counts);
        let own: Vec<PathBuf> = self.moves.iter().map(|(from, _)| from.clone()).collect();
        let owned = |address: &str| lookup(address).map(str::to_owned);
        let mut calendars =
            calendar::plan(self.install, self.options.calendars, listed, &own, &owned)?;
        self.counts.calendar_items = calendars.messages;
        self.warnings.append(&mut calendars.warnings);
        Ok(StoreEdits { files, calendars })
    }

    /// What still names an old address in the config files is for the admin to look at.
    fn leftover_mentions(&mut self) {
        let olds: HashSet<String> = self.new_of().into_keys().collect();
        for doc in [&self.config.users, &self.config.mailserver] {
            let text = String::from_utf8_lossy(&doc.to_bytes()).into_owned();
            for (line, old) in mentions(&text, &olds) {
                self.warnings.push(format!(
                    "{}:{line}: still names {old}; it was not changed",
                    file_name(doc).display()
                ));
            }
        }
    }

    /// The steps, in the order they are carried out: the config files, the store files, the
    /// calendar items (inside the mailboxes before they are renamed), the new domain
    /// directories, the mailbox directories, then the audit lines.
    fn finish(mut self, mut store: StoreEdits) -> Planned {
        let mut steps = Step::save_modified(&self.config);
        for (path, bytes, read) in store.files {
            steps.push(Step::write_file(path, bytes, read));
        }
        steps.extend(store.calendars.steps());
        for dir in std::mem::take(&mut self.create_dirs) {
            steps.push(Step::CreateDir { path: dir });
        }
        let mut lines = audit::config_changes(&self.config);
        lines.extend(self.audit_lines(&mut store.calendars.audit));
        steps.extend(mailbox_steps(std::mem::take(&mut self.moves)));
        steps.extend(audit::steps(&self.layout.logs, TOOL, &lines, &[]));
        Planned {
            plan: Plan {
                tool: TOOL.into(),
                description: describe(&self.done),
                steps,
                warnings: self.warnings,
            },
            counts: self.counts,
        }
    }

    /// The audit lines of the store: the mailbox directories renamed, what was rewritten, and
    /// the calendar items' folders.
    fn audit_lines(&self, calendars: &mut Vec<String>) -> Vec<String> {
        let mut lines: Vec<String> = (self.moves.iter())
            .filter(|(from, to)| from != to)
            .map(|(from, to)| {
                format!(
                    "Rename mailbox directory {} -> {}",
                    audit::quoted(&from.display().to_string()),
                    audit::quoted(&to.display().to_string())
                )
            })
            .collect();
        let c = &self.counts;
        let mut rewrite = format!(
            "Rewrite store: {} ACL entries, {} folder.map owners",
            c.acl_entries, c.folder_map_owners
        );
        // Said only when there are some, so a store without them logs what it always did.
        for (n, what) in [
            (c.public_acl_entries, "public folder ACL entries (acl.fld)"),
            (c.subscriptions, "subscriptions (sub.fld)"),
            (c.calendar_items, "calendar items (ORGANIZER/ATTENDEE)"),
        ] {
            if n > 0 {
                rewrite.push_str(&format!(", {n} {what}"));
            }
        }
        lines.push(rewrite);
        lines.append(calendars);
        lines
    }
}

/// What the share files' edits counted, from the parallel walk.
#[derive(Default)]
struct ShareTally {
    acl: AtomicUsize,
    owners: AtomicUsize,
    public_acl: AtomicUsize,
    subscriptions: AtomicUsize,
}

impl ShareTally {
    /// One share file with every old address that `lookup` answers renamed: its new bytes if
    /// any changed.
    fn edit<'l>(
        &self,
        kind: ShareFile,
        path: &std::path::Path,
        bytes: Vec<u8>,
        lookup: &(dyn Fn(&str) -> Option<&'l str> + Sync),
    ) -> Result<Option<Vec<u8>>, AccountError> {
        let (out, n, count) = match kind {
            ShareFile::Status | ShareFile::PublicAcl => {
                let mut s = StatusFld::parse(bytes);
                let n = s.rename_with(lookup);
                let count = if kind == ShareFile::Status {
                    &self.acl
                } else {
                    &self.public_acl
                };
                (s.into_bytes(), n, count)
            }
            ShareFile::Map => {
                let map = FolderMap::parse(path, bytes)
                    .map_err(|e| AccountError::Share(e.to_string()))?;
                let (out, n) = map.renamed_with(lookup);
                (out, n, &self.owners)
            }
            ShareFile::Subscriptions => {
                let mut s = SubFld::parse(bytes);
                let n = s.rename_with(lookup);
                (s.into_bytes(), n, &self.subscriptions)
            }
        };
        count.fetch_add(n, Ordering::Relaxed);
        Ok((n > 0).then_some(out))
    }

    fn into_counts(self, counts: &mut Counts) {
        counts.acl_entries = self.acl.into_inner();
        counts.folder_map_owners = self.owners.into_inner();
        counts.public_acl_entries = self.public_acl.into_inner();
        counts.subscriptions = self.subscriptions.into_inner();
    }
}

/// The renames of mailbox directories. A change of case only goes through a temporary name,
/// so that a case-insensitive filesystem renames too; a directory that already has the new
/// spelling (a case mismatch put right) is left.
fn mailbox_steps(moves: Vec<(PathBuf, PathBuf)>) -> Vec<Step> {
    let mut steps = Vec::new();
    for (from, to) in moves {
        if from == to {
            continue;
        }
        let case_only = from.parent() == to.parent()
            && (from.file_name().zip(to.file_name()))
                .is_some_and(|(a, b)| a.eq_ignore_ascii_case(b));
        if case_only {
            let mut tmp = from.clone().into_os_string();
            tmp.push(".kc-rename");
            let tmp = PathBuf::from(tmp);
            steps.push(Step::Rename {
                from,
                to: tmp.clone(),
            });
            steps.push(Step::Rename { from: tmp, to });
        } else {
            steps.push(Step::Rename { from, to });
        }
    }
    steps
}

/// The change's description: the renames, or how many when there are more than three.
fn describe(done: &[(Address, Address)]) -> String {
    if done.len() <= 3 {
        let each: Vec<String> = done.iter().map(|(o, n)| format!("{o} -> {n}")).collect();
        format!("rename {}", each.join(", "))
    } else {
        format!("rename {} accounts", done.len())
    }
}

fn file_name(doc: &Document) -> PathBuf {
    PathBuf::from(doc.path().file_name().unwrap_or_default())
}

/// The domain's directory as spelled on disk, if it exists.
fn existing_domain_dir(install: &Install, layout: &Layout, domain: &str) -> Option<PathBuf> {
    let mail = install.resolve(&layout.mail());
    std::fs::read_dir(&mail)
        .ok()?
        .flatten()
        .find(|e| e.file_name().eq_ignore_ascii_case(domain) && e.path().is_dir())
        .map(|e| layout.mail().join(e.file_name()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(old: &str, new: &str) -> Rename {
        Rename {
            old: Address::parse(old, None).expect("old"),
            new: Address::parse(new, None).expect("new"),
            origin: String::new(),
        }
    }

    #[test]
    fn chains_are_ordered_and_cycles_refused() {
        let chain = [r("a@d", "b@d"), r("b@d", "c@d"), r("c@d", "e@d")];
        assert_eq!(order(&chain).expect("ordered"), [2, 1, 0]);
        let swap = [r("a@d", "b@d"), r("b@d", "a@d"), r("x@d", "y@d")];
        let err = order(&swap).expect_err("cycle");
        assert!(err.reason.ends_with("a@d -> b@d; b@d -> a@d"), "{err:?}");
        // Case-only is not a cycle with itself.
        assert_eq!(order(&[r("a@d", "A@d")]).expect("ordered"), [0]);
    }

    #[test]
    fn mentions_are_whole_addresses() {
        let text =
            "x jdoe@example.com\nxjdoe@example.com jdoe@example.comx\n<a>JDOE@example.com</a>";
        let olds = HashSet::from(["jdoe@example.com".to_owned(), "x@y.z".to_owned()]);
        assert_eq!(
            mentions(text, &olds),
            [
                (1, "jdoe@example.com".to_owned()),
                (3, "jdoe@example.com".to_owned())
            ]
        );
    }
}

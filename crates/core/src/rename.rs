//! Renaming accounts end to end (kc-rename-user): the plan of everything that names the old
//! account, in both config files and in the store, as a pure function of the install.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use crate::account::{self, AccountError, Address, Layout, NameKey, Names, ShareFile, name_key};
use crate::audit;
use crate::change::{Plan, Step};
use crate::config::schema::{ALIAS, GROUP, MAILING_LIST, USER, USER_ADDITIONAL_DATA};
use crate::config::view::User;
use crate::config::{Config, ConfigError, Document, ItemId};
use crate::install::Install;
use crate::store::{INDEX_FLD, folder_map::FolderMap, status_fld::StatusFld, sub_fld::SubFld};

mod calendar;

pub const TOOL: &str = "kc-rename-user";

/// One rename, and where it was asked for (a line of a `--map` file) for messages.
#[derive(Debug, Clone)]
pub struct Rename {
    pub old: Address,
    pub new: Address,
    /// `FILE:LINE` of a map file, or empty.
    pub origin: String,
}

#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Add an alias old -> new (the default).
    pub alias: bool,
    /// Rewrite the old addresses in calendar items' ORGANIZER and ATTENDEE (the default).
    pub calendars: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RenameError {
    #[error("{}; nothing was changed", crate::change::problem_lines(.0))]
    Refused(Vec<String>),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Account(#[from] AccountError),
}

/// What a plan will rewrite, counted for the summary and the audit line.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Counts {
    pub config_references: usize,
    pub acl_entries: usize,
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
    pub plan: Plan,
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
fn order(renames: &[Rename]) -> Result<Vec<usize>, Vec<String>> {
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
            return Err(vec![format!(
                "these renames form a cycle (a swap), which needs a temporary name: rename through one in two runs: {}",
                cycle.join("; ")
            )]);
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
pub fn plan(
    install: &Install,
    renames: &[Rename],
    options: Options,
) -> Result<Planned, RenameError> {
    let layout = Layout::new(install);
    let mut config = Config::load(&install.root)?;
    let mut problems = Vec::new();

    // The mailbox directories of every domain, by lower-case (name, domain): where each one is,
    // and for the "already exists" check.
    let mut dir_paths: HashMap<(String, String), PathBuf> = HashMap::new();
    let mail = install.resolve(&layout.mail());
    for mb in crate::store::all_mailboxes(&mail).map_err(AccountError::from)? {
        let a = (
            mb.name.to_string_lossy().to_ascii_lowercase(),
            mb.domain.to_string_lossy().to_ascii_lowercase(),
        );
        let rel = install.logical(&mb.path).unwrap_or(mb.path.clone());
        dir_paths.insert(a, rel);
    }

    // The whole request first: duplicates within it.
    let mut seen_old = HashMap::new();
    let mut seen_new = HashMap::new();
    for r in renames {
        if let Some(first) = seen_old.insert(key(&r.old), &r.origin) {
            problems.push(format!(
                "{}{} is renamed twice (also at {first})",
                prefix(&r.origin),
                r.old
            ));
        }
        if let Some(first) = seen_new.insert(key(&r.new), &r.origin) {
            problems.push(format!(
                "{}{} is the new name of two renames (also at {first})",
                prefix(&r.origin),
                r.new
            ));
        }
    }
    let order = match order(renames) {
        Ok(o) => o,
        Err(p) => {
            problems.extend(p);
            return Err(RenameError::Refused(problems));
        }
    };
    let builtin = config.builtin_admin().map(str::to_owned);
    let mut index = Index::new(&config);

    // Each rename against the model as the earlier ones left it.
    let mut done: Vec<(Address, Address)> = Vec::new();
    let mut counts = Counts::default();
    let mut warnings = Vec::new();
    let mut create_dirs: Vec<PathBuf> = Vec::new();
    let mut moves: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut audit = Vec::new();
    for &i in &order {
        let r = &renames[i];
        let here = prefix(&r.origin);
        if builtin
            .as_deref()
            .is_some_and(|b| b.eq_ignore_ascii_case(&r.old.name))
        {
            problems.push(format!(
                "{here}{}: is the built-in administrator; it cannot be renamed here",
                r.old
            ));
            continue;
        }
        let Some(user) = index
            .names
            .user(&r.old.name, &r.old.domain)
            .map(|id| User(config.users.item(id)))
        else {
            problems.push(format!("{here}{}: no such user", r.old));
            continue;
        };
        // The names as the file spells them.
        let old = Address {
            name: user.name().to_owned(),
            domain: user.domain().to_owned(),
        };
        let user_id = user.id();
        let mut new = r.new.clone();
        let Some(new_domain) = config.domain(&new.domain) else {
            problems.push(format!(
                "{here}{}: domain {} is not a domain of this server",
                r.new, new.domain
            ));
            continue;
        };
        new.domain = new_domain.name().to_owned();
        let new_domain_mapped = new_domain.mapped();
        if config.is_mapped(&user) {
            problems.push(format!(
                "{here}{old}: is mapped from a directory service; rename it in the directory"
            ));
            continue;
        }
        if new_domain_mapped {
            problems.push(format!(
                "{here}{new}: domain {} is mapped from a directory service; accounts cannot be moved into it",
                new.domain
            ));
            continue;
        }
        if old.name == new.name && old.domain.eq_ignore_ascii_case(&new.domain) {
            problems.push(format!("{here}{old}: the new name is the old one"));
            continue;
        }
        let case_only = old.is(&new);
        if !case_only {
            let what = index
                .names
                .taken(&config, &new.name, &new.domain, Some(user_id))
                .or_else(|| {
                    dir_paths
                        .contains_key(&key(&new))
                        .then(|| "a mailbox directory".to_owned())
                });
            if let Some(what) = what {
                problems.push(format!("{here}{new}: already exists as {what}"));
                continue;
            }
            if builtin
                .as_deref()
                .is_some_and(|b| b.eq_ignore_ascii_case(&new.name))
            {
                problems.push(format!(
                    "{here}{new}: is the name of the built-in administrator"
                ));
                continue;
            }
        }
        let cross = !old.domain.eq_ignore_ascii_case(&new.domain);
        let (old_addr, new_addr) = (old.to_string(), new.to_string());
        let mut n = 0;

        // users.cfg: the account, its own addresses, its password history.
        let users = &mut config.users;
        users.set(user_id, USER.name, &new.name)?;
        if cross {
            users.set(user_id, USER.domain, &new.domain)?;
        }
        let own = users
            .item(user_id)
            .get(USER.email_addresses)
            .unwrap_or("")
            .to_owned();
        if !case_only && crate::config::list_contains(&own, &new.name) {
            // Renamed to one of its own addresses: the old login goes (the alias keeps it).
            n += users.remove_token(user_id, USER.email_addresses, &old.name)?;
        } else {
            n += users.rename_token(user_id, USER.email_addresses, &old.name, &new.name)?;
        }
        let now = users.item(user_id).get(USER.email_addresses).unwrap_or("");
        index.names.rename_user(
            user_id,
            (&old.name, &old.domain, &own),
            (&new.name, &new.domain, now),
        );
        let extra = index.history.remove(&key(&old)).unwrap_or_default();
        index.history.insert(key(&new), extra.clone());
        for id in extra {
            users.set(id, USER_ADDITIONAL_DATA.name, &new.name)?;
            if cross {
                users.set(id, USER_ADDITIONAL_DATA.domain, &new.domain)?;
            }
            n += 1;
        }
        // Groups of the old domain name the user by login.
        for (id, group) in crate::config::view::groups_of(users, &old.domain) {
            if cross {
                let removed = users.remove_token(id, GROUP.members, &old.name)?;
                if removed > 0 {
                    n += removed;
                    warnings.push(format!(
                        "{old_addr} leaves group {group}@{} (groups belong to one domain); add {new_addr} to a group of {} if needed",
                        old.domain, new.domain
                    ));
                }
            } else {
                n += users.rename_token(id, GROUP.members, &old.name, &new.name)?;
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
        // Addresses in aliases, forwards (every domain: an address may point anywhere).
        let ids: Vec<_> = users.items(ALIAS.list).map(|a| a.id()).collect();
        for id in ids {
            n += users.rename_token(id, ALIAS.deliver_to, &old_addr, &new_addr)?;
        }
        for id in &index.forwarders {
            n += users.rename_token(*id, USER.forward_address, &old_addr, &new_addr)?;
        }
        // mailserver.cfg: mailing lists.
        let lists: Vec<_> = config
            .mailserver
            .items(MAILING_LIST.list)
            .map(|l| l.id())
            .collect();
        for id in lists {
            for field in [MAILING_LIST.members, MAILING_LIST.moderators] {
                n += config
                    .mailserver
                    .rename_token(id, field, &old_addr, &new_addr)?;
            }
        }
        counts.config_references += n;

        // The mailbox directory.
        let (ok, nk) = (key(&old), key(&new));
        match dir_paths.remove(&ok) {
            Some(from) => {
                let planned = create_dirs
                    .iter()
                    .find(|d| {
                        d.file_name()
                            .is_some_and(|n| n.eq_ignore_ascii_case(&new.domain))
                    })
                    .cloned();
                let domain_dir =
                    match existing_domain_dir(install, &layout, &new.domain).or(planned) {
                        Some(d) => d,
                        None => {
                            let d = layout.domain(&new.domain);
                            create_dirs.push(d.clone());
                            d
                        }
                    };
                let to = domain_dir.join(&new.name);
                moves.push((from, to.clone()));
                dir_paths.insert(nk, to);
            }
            None => warnings.push(format!(
                "{old_addr} has no mailbox directory (never logged in): nothing to move"
            )),
        }
        done.push((old, new));
    }
    if !problems.is_empty() {
        return Err(RenameError::Refused(problems));
    }

    // Aliases old -> new, unless a later rename took the old name.
    if options.alias {
        let reused: HashSet<_> = done.iter().map(|(_, n)| key(n)).collect();
        for (old, new) in &done {
            if old.is(new) {
                continue; // case only: the old address still reaches the account
            }
            if reused.contains(&key(old)) {
                warnings.push(format!(
                    "no alias {old} -> {new}: {old} is the new name of another rename"
                ));
                continue;
            }
            config.users.add_item(
                ALIAS.list,
                &[
                    (ALIAS.name, &old.name),
                    (ALIAS.domain, &old.domain),
                    (ALIAS.deliver_to, &new.to_string()),
                    (ALIAS.description, &format!("Previous login of {new}")),
                ],
            )?;
        }
    }

    // The store: ACL entries (status.fld, #public/acl.fld), folder.map owners and sub.fld
    // subscriptions, every rename in order.
    let [acl, owners, public_acl, subscriptions] =
        std::array::from_fn(|_| std::sync::atomic::AtomicUsize::new(0));
    let add = |count: &std::sync::atomic::AtomicUsize, n| {
        count.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    };
    // Every rename at once, by lower-case old address: the order makes a name vacated before it
    // is reused, so no new address is also an old one and one pass equals the renames in turn.
    let new_of: HashMap<String, String> = done
        .iter()
        .map(|(old, new)| (old.to_string().to_ascii_lowercase(), new.to_string()))
        .collect();
    let lookup = |address: &str| {
        new_of
            .get(&address.to_ascii_lowercase())
            .map(String::as_str)
    };
    // The same walk lists every folder's index, where calendar items are looked for next (and
    // an index moved aside by an earlier change of this window, not yet rebuilt by the server).
    let aside = crate::config::schema::INDEX.aside;
    let indexes: &[&str] = if options.calendars {
        &[INDEX_FLD, aside]
    } else {
        &[]
    };
    let (store_files, listed) =
        account::edit_share_files_listing(install, &layout, indexes, |kind, path, bytes| {
            let (out, changed) = match kind {
                ShareFile::Status | ShareFile::PublicAcl => {
                    let mut s = StatusFld::parse(bytes);
                    let n = s.rename_with(lookup);
                    add(
                        if kind == ShareFile::Status {
                            &acl
                        } else {
                            &public_acl
                        },
                        n,
                    );
                    (s.into_bytes(), n)
                }
                ShareFile::Map => {
                    let map = FolderMap::parse(path, bytes)
                        .map_err(|e| AccountError::Share(e.to_string()))?;
                    let (out, n) = map.renamed_with(lookup);
                    add(&owners, n);
                    (out, n)
                }
                ShareFile::Subscriptions => {
                    let mut s = SubFld::parse(bytes);
                    let n = s.rename_with(lookup);
                    add(&subscriptions, n);
                    (s.into_bytes(), n)
                }
            };
            Ok((changed > 0).then_some(out))
        })?;
    counts.acl_entries = acl.into_inner();
    counts.folder_map_owners = owners.into_inner();
    counts.public_acl_entries = public_acl.into_inner();
    counts.subscriptions = subscriptions.into_inner();
    let own: Vec<PathBuf> = moves.iter().map(|(from, _)| from.clone()).collect();
    let owned = |address: &str| lookup(address).map(str::to_owned);
    let mut calendars = calendar::plan(install, options.calendars, listed, &own, &owned)?;
    counts.calendar_items = calendars.messages;
    warnings.append(&mut calendars.warnings);

    // What still names an old address is for the admin to look at.
    let olds: HashSet<String> = new_of.keys().cloned().collect();
    for doc in [&config.users, &config.mailserver] {
        let text = String::from_utf8_lossy(&doc.to_bytes()).into_owned();
        for (line, old) in mentions(&text, &olds) {
            warnings.push(format!(
                "{}:{line}: still names {old}; it was not changed",
                file_name(doc).display()
            ));
        }
    }

    let mut steps = Vec::new();
    for doc in [&config.users, &config.mailserver] {
        if doc.is_modified() {
            steps.push(Step::save_document(file_name(doc), doc));
        }
    }
    for (path, bytes, read) in store_files {
        steps.push(Step::write_file(path, bytes, read));
    }
    // Inside the mailboxes before they are renamed.
    steps.extend(calendars.steps());
    for dir in create_dirs {
        steps.push(Step::CreateDir { path: dir });
    }
    for (from, to) in &moves {
        if from != to {
            audit.push(format!(
                "Rename mailbox directory {} -> {}",
                audit::quoted(&from.display().to_string()),
                audit::quoted(&to.display().to_string())
            ));
        }
    }
    for (from, to) in moves {
        if from == to {
            continue; // the directory already has the new spelling (a case mismatch put right)
        }
        if from.parent() == to.parent()
            && from
                .file_name()
                .zip(to.file_name())
                .is_some_and(|(a, b)| a.eq_ignore_ascii_case(b))
        {
            // Case only: through a temporary name, so a case-insensitive filesystem renames too.
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
    let mut rewrite = format!(
        "Rewrite store: {} ACL entries, {} folder.map owners",
        counts.acl_entries, counts.folder_map_owners
    );
    // Said only when there are some, so a store without them logs what it always did.
    for (n, what) in [
        (
            counts.public_acl_entries,
            "public folder ACL entries (acl.fld)",
        ),
        (counts.subscriptions, "subscriptions (sub.fld)"),
        (counts.calendar_items, "calendar items (ORGANIZER/ATTENDEE)"),
    ] {
        if n > 0 {
            rewrite.push_str(&format!(", {n} {what}"));
        }
    }
    audit.push(rewrite);
    audit.append(&mut calendars.audit);
    let mut lines = audit::config_changes(&config);
    lines.extend(audit);
    steps.extend(audit::steps(&layout.logs, TOOL, &lines, &[]));
    let description = done
        .iter()
        .map(|(o, n)| format!("{o} -> {n}"))
        .collect::<Vec<_>>();
    let description = if description.len() <= 3 {
        format!("rename {}", description.join(", "))
    } else {
        format!("rename {} accounts", description.len())
    };
    Ok(Planned {
        plan: Plan {
            tool: TOOL.into(),
            description,
            steps,
            warnings,
        },
        counts,
    })
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
        assert!(err[0].ends_with("a@d -> b@d; b@d -> a@d"), "{err:?}");
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

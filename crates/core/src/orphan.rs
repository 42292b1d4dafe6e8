//! Mailboxes without accounts, and the inconsistencies around them (kc-orphan-mailbox-finder):
//! found by comparing the store's directories with both config files, measured in parallel, and
//! resolved through the change protocol.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::account::{self, AccountError, Address, Layout};
use crate::audit;
use crate::change::{Plan, Step};
use crate::config::schema::USER;
use crate::config::{Config, ConfigError};
use crate::install::Install;
use crate::model::Model;
use crate::problem::{Problem, Problems};
use crate::progress::Progress;
use crate::store::{self, DELETED_MAILBOX_PREFIX, StoreError};

/// The tool's name, as it signs its log lines and messages.
pub const TOOL: &str = "kc-orphan-mailbox-finder";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
/// What is wrong: the `kind` of a finding, written in kebab-case in every output format.
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A mailbox directory with no account of that name (for a mapped domain: not in the
    /// directory export), or any mailbox of an orphan domain.
    OrphanMailbox,
    /// A domain directory under `store/mail` with no domain in mailserver.cfg.
    OrphanDomain,
    /// A mailbox directory whose name differs from its account's only by case.
    CaseMismatch,
    /// An enabled local account with no mailbox directory.
    MissingMailbox,
    /// A `Deleted mailbox — <address>` folder left in a mailbox by an earlier transfer.
    DeletedMailboxFolder,
    /// A mailbox of a mapped (directory-service) domain with no local account, which only a
    /// `--directory-export` could settle.
    Unverifiable,
}

impl Kind {
    /// The kind as written in the output, e.g. `orphan-mailbox`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::OrphanMailbox => "orphan-mailbox",
            Kind::OrphanDomain => "orphan-domain",
            Kind::CaseMismatch => "case-mismatch",
            Kind::MissingMailbox => "missing-mailbox",
            Kind::DeletedMailboxFolder => "deleted-mailbox-folder",
            Kind::Unverifiable => "unverifiable",
        }
    }
}

/// One finding: exactly the fields of the JSON Lines output.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// What is wrong.
    pub kind: Kind,
    /// The domain, as spelled by its directory (or by mailserver.cfg for a missing mailbox).
    pub domain: String,
    /// The mailbox (or account) name; empty for an orphan domain.
    pub name: String,
    /// The directory, absolute; empty for a missing mailbox.
    pub path: String,
    /// The size in bytes of every file under the directory; 0 for a missing mailbox.
    pub bytes: u64,
    /// How many messages (`.eml` files in `#msgs` folders) it holds.
    pub messages: u64,
    /// The newest message's time (RFC 3339, UTC), `null` without messages.
    pub newest: Option<String>,
    /// The newest message's time, for `--older-than` (not output); `None` without messages.
    #[serde(skip)]
    pub newest_time: Option<SystemTime>,
    /// Relative to the install root, for actions.
    #[serde(skip)]
    pub rel: PathBuf,
}

/// Why the finder could not report or act.
#[derive(Debug, thiserror::Error)]
pub enum OrphanError {
    /// mailserver.cfg or users.cfg could not be read or parsed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The `--transfer-to` account's mailbox could not be found or prepared.
    #[error(transparent)]
    Account(#[from] AccountError),
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The directory export (`--directory-export`, LDIF) could not be read or parsed.
    #[error("{path}:{line}: {message}")]
    Ldif {
        /// The LDIF file, as given.
        path: PathBuf,
        /// The 1-based line of the fault; 0 when the file could not be read at all.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// An action's plan was refused for these problems; nothing was changed.
    #[error("{0}; nothing was changed")]
    Refused(Problems),
    /// A `--domain` or `--name` the install does not have (a typo is never an all-clear).
    #[error("{0}")]
    Unknown(String),
}

impl OrphanError {
    /// The problems of a refused plan, for `--json`.
    pub fn problems(&self) -> Option<&Problems> {
        match self {
            OrphanError::Refused(problems) => Some(problems),
            _ => None,
        }
    }
}

/// The accounts of a directory export (LDIF): per domain (lower case), the names (lower case).
/// Entries give them as `mail`, `userPrincipalName`, or `uid`/`sAMAccountName` with `mail`'s
/// domain.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    accounts: HashMap<String, HashSet<String>>,
}

impl Directory {
    /// Reads and parses the LDIF file at `path`.
    pub fn load(path: &Path) -> Result<Directory, OrphanError> {
        let text = std::fs::read_to_string(path).map_err(|e| OrphanError::Ldif {
            path: path.to_owned(),
            line: 0,
            message: e.to_string(),
        })?;
        Directory::parse(path, &text)
    }

    /// Parses LDIF `text` (folded lines, base64 `::` values); `path` only names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Directory, OrphanError> {
        use base64::Engine;
        // Unfold continuation lines (a line starting with one space continues the previous one).
        let mut lines: Vec<(usize, String)> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            match (raw.strip_prefix(' '), lines.last_mut()) {
                (Some(more), Some((_, last))) if !last.is_empty() => last.push_str(more),
                _ => lines.push((i + 1, raw.to_owned())),
            }
        }
        let mut dir = Directory::default();
        let mut entry: Vec<(String, String)> = Vec::new();
        let flush = |entry: &mut Vec<(String, String)>, dir: &mut Directory| {
            let get = |k: &'static str| {
                entry
                    .iter()
                    .filter(move |(a, _)| a.eq_ignore_ascii_case(k))
                    .map(|(_, v)| v.clone())
                    .collect::<Vec<String>>()
            };
            let mut found: Vec<(String, String)> = Vec::new();
            for v in get("mail").into_iter().chain(get("userPrincipalName")) {
                if let Some((n, d)) = v.rsplit_once('@') {
                    found.push((n.to_ascii_lowercase(), d.to_ascii_lowercase()));
                }
            }
            let domains: Vec<String> = found.iter().map(|(_, d)| d.clone()).collect();
            for v in get("uid").into_iter().chain(get("sAMAccountName")) {
                for d in &domains {
                    found.push((v.to_ascii_lowercase(), d.clone()));
                }
            }
            for (n, d) in found {
                dir.accounts.entry(d).or_default().insert(n);
            }
            entry.clear();
        };
        for (line, text) in lines {
            if text.is_empty() {
                flush(&mut entry, &mut dir);
                continue;
            }
            if text.starts_with('#') {
                continue;
            }
            let Some((attr, rest)) = text.split_once(':') else {
                return Err(OrphanError::Ldif {
                    path: path.to_owned(),
                    line,
                    message: format!("not an LDIF line (attribute: value): {text:?}"),
                });
            };
            let value = if let Some(b64) = rest.strip_prefix(':') {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .map_err(|e| OrphanError::Ldif {
                        path: path.to_owned(),
                        line,
                        message: format!("{attr}: bad base64: {e}"),
                    })?;
                String::from_utf8_lossy(&bytes).into_owned()
            } else {
                rest.trim().to_owned()
            };
            entry.push((attr.trim().to_owned(), value));
        }
        flush(&mut entry, &mut dir);
        Ok(dir)
    }

    fn lists(&self, domain: &str) -> Option<&HashSet<String>> {
        self.accounts.get(&domain.to_ascii_lowercase())
    }
}

/// What to look for.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this domain (`--domain`, any case); `None`: every domain.
    pub domain: Option<String>,
    /// Only this mailbox or account name (`--name`, any case); `None`: every name.
    pub name: Option<String>,
    /// Only findings whose newest message is older than this (or that hold none).
    pub older_than_days: Option<u64>,
}

impl Filter {
    fn keeps(&self, f: &Finding, now: SystemTime) -> bool {
        self.domain
            .as_deref()
            .is_none_or(|d| f.domain.eq_ignore_ascii_case(d))
            && self
                .name
                .as_deref()
                .is_none_or(|n| f.name.eq_ignore_ascii_case(n))
            && self.older_than_days.is_none_or(|days| {
                let limit = std::time::Duration::from_secs(days * 86_400);
                f.newest_time
                    .is_none_or(|t| now.duration_since(t).is_ok_and(|age| age > limit))
            })
    }
}

fn rfc3339(t: SystemTime) -> Option<String> {
    jiff::Timestamp::try_from(t)
        .ok()
        .map(|ts| ts.round(jiff::Unit::Second).unwrap_or(ts).to_string())
}

/// An account as the store comparison needs it: its spelling, enabled, mapped.
type Account = (String, bool, bool);
/// Accounts per domain, both keys lower case.
type Accounts = HashMap<String, HashMap<String, Account>>;

/// Compares the store with the configs and measures what it finds, in parallel.
pub fn scan(
    model: &Model<'_>,
    directory: Option<&Directory>,
    filter: &Filter,
    progress: &dyn Progress,
) -> Result<Vec<Finding>, OrphanError> {
    let (install, config) = (model.install, &model.config);
    let mail = install.mail_dir();
    check_filter(config, &mail, filter)?;
    let mut accounts: Accounts = HashMap::new();
    for u in config.users() {
        let account = (u.name().to_owned(), u.enabled(), config.is_mapped(&u));
        let domain = accounts.entry(u.domain().to_ascii_lowercase()).or_default();
        domain.insert(u.name().to_ascii_lowercase(), account);
    }
    let compare = Compare {
        install,
        config,
        directory,
        accounts: &accounts,
    };
    let mut found: Vec<Finding> = Vec::new();
    let mut seen: HashSet<(String, String)> = HashSet::new();
    for domain_dir in store::domains(&mail)? {
        if !store::is_server_folder(&domain_dir.name) {
            compare.domain(&domain_dir, &mut found, &mut seen)?;
        }
    }
    // Measure what was found (and only that), on all cores.
    let mut found = measure(found, progress)?;
    found.extend(compare.missing_mailboxes(&seen));
    let now = SystemTime::now();
    found.retain(|f| filter.keeps(f, now));
    sort_findings(&mut found);
    Ok(found)
}

/// The store's directories against the configuration's accounts.
struct Compare<'a> {
    install: &'a Install,
    config: &'a Config,
    directory: Option<&'a Directory>,
    accounts: &'a Accounts,
}

impl Compare<'_> {
    /// A finding of this kind for a directory, not measured yet.
    fn finding(&self, kind: Kind, domain: &str, name: &str, path: &Path) -> Finding {
        Finding {
            kind,
            domain: domain.to_owned(),
            name: name.to_owned(),
            path: path.display().to_string(),
            bytes: 0,
            messages: 0,
            newest: None,
            newest_time: None,
            rel: self
                .install
                .logical(path)
                .unwrap_or_else(|| path.to_path_buf()),
        }
    }

    /// The findings in one domain directory of the store; the mailboxes seen are added to
    /// `seen` (domain, name; lower case).
    fn domain(
        &self,
        domain_dir: &store::DomainDir,
        found: &mut Vec<Finding>,
        seen: &mut HashSet<(String, String)>,
    ) -> Result<(), OrphanError> {
        let dname = domain_dir.name.to_string_lossy().into_owned();
        let Some(domain) = self.config.domain(&dname) else {
            found.push(self.finding(Kind::OrphanDomain, &dname, "", &domain_dir.path));
            // Each mailbox in it is an orphan too: it can be moved out on its own.
            for mb in store::mailboxes(domain_dir)? {
                let name = mb.name.to_string_lossy();
                found.push(self.finding(Kind::OrphanMailbox, &dname, &name, &mb.path));
            }
            return Ok(());
        };
        let dkey = dname.to_ascii_lowercase();
        let known = self.accounts.get(&dkey);
        let listed = self.directory.and_then(|d| d.lists(&dname));
        for mb in store::mailboxes(domain_dir)? {
            let name = mb.name.to_string_lossy().into_owned();
            let key = name.to_ascii_lowercase();
            let account = known.and_then(|k| k.get(&key));
            if let Some(kind) = mailbox_kind(&name, account, domain.mapped(), listed) {
                found.push(self.finding(kind, &dname, &name, &mb.path));
            }
            found.extend(self.deleted_mailbox_folders(&dname, &name, &mb.path)?);
            seen.insert((dkey.clone(), key));
        }
        Ok(())
    }

    /// Folders left by a transfer, at the top of a mailbox.
    fn deleted_mailbox_folders(
        &self,
        domain: &str,
        name: &str,
        mailbox: &Path,
    ) -> Result<Vec<Finding>, OrphanError> {
        let entries = std::fs::read_dir(mailbox).map_err(|source| StoreError::Io {
            path: mailbox.to_owned(),
            source,
        })?;
        let left = |e: &std::fs::DirEntry| {
            let by_transfer = e
                .file_name()
                .to_str()
                .is_some_and(|f| f.starts_with(DELETED_MAILBOX_PREFIX));
            by_transfer && e.file_type().is_ok_and(|t| t.is_dir())
        };
        Ok((entries.flatten())
            .filter(left)
            .map(|e| self.finding(Kind::DeletedMailboxFolder, domain, name, &e.path()))
            .collect())
    }

    /// Enabled local accounts whose mailbox directory was not seen.
    fn missing_mailboxes(&self, seen: &HashSet<(String, String)>) -> Vec<Finding> {
        let mut out = Vec::new();
        for (dkey, users) in self.accounts {
            for (key, (spelled, enabled, mapped)) in users {
                if *enabled && !*mapped && !seen.contains(&(dkey.clone(), key.clone())) {
                    let domain =
                        (self.config.domain(dkey)).map_or(dkey.clone(), |d| d.name().to_owned());
                    out.push(Finding {
                        path: String::new(),
                        rel: PathBuf::new(),
                        ..self.finding(Kind::MissingMailbox, &domain, spelled, Path::new(""))
                    });
                }
            }
        }
        out
    }
}

/// What a mailbox directory of a domain on the server is: `None` when its account is there.
fn mailbox_kind(
    name: &str,
    account: Option<&Account>,
    mapped_domain: bool,
    listed: Option<&HashSet<String>>,
) -> Option<Kind> {
    let key = name.to_ascii_lowercase();
    match (account, mapped_domain, listed) {
        // A local account of a mapped domain is as any local one.
        (Some((spelled, _, false)), true, _) if *spelled != name => Some(Kind::CaseMismatch),
        (Some((_, _, false)), true, _) => None,
        // A mapped domain's accounts are the directory's: the export decides.
        (_, true, Some(l)) if !l.contains(&key) => Some(Kind::OrphanMailbox),
        (_, true, Some(_)) => None,
        (_, true, None) => Some(Kind::Unverifiable),
        (Some((spelled, ..)), _, _) if *spelled != name => Some(Kind::CaseMismatch),
        (None, false, _) => Some(Kind::OrphanMailbox),
        _ => None,
    }
}

/// Sizes, message counts and the newest message of every finding with a directory.
fn measure(mut found: Vec<Finding>, progress: &dyn Progress) -> Result<Vec<Finding>, OrphanError> {
    let paths: Vec<PathBuf> = found.iter().map(|f| PathBuf::from(&f.path)).collect();
    let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let stats = store::stats_of_all(&refs, progress);
    for (f, s) in found.iter_mut().zip(stats) {
        let s = s?;
        f.bytes = s.bytes;
        f.messages = s.messages;
        f.newest_time = s.newest;
        f.newest = s.newest.and_then(rfc3339);
    }
    Ok(found)
}

/// By kind, domain, name and path; the mailboxes of an orphan domain right under its row (its
/// name is empty: first).
fn sort_findings(found: &mut [Finding]) {
    let orphan_domains: HashSet<String> = (found.iter())
        .filter(|f| f.kind == Kind::OrphanDomain)
        .map(|f| f.domain.to_ascii_lowercase())
        .collect();
    let group = |f: &Finding| match f.kind {
        Kind::OrphanMailbox if orphan_domains.contains(&f.domain.to_ascii_lowercase()) => {
            Kind::OrphanDomain
        }
        kind => kind,
    };
    found.sort_by(|a, b| {
        let a = (group(a), a.domain.to_ascii_lowercase(), &a.name, &a.path);
        a.cmp(&(group(b), b.domain.to_ascii_lowercase(), &b.name, &b.path))
    });
}

/// Refuses a `--domain` that is neither a domain of the server nor a directory of the store,
/// and a `--name` that is neither an account nor a mailbox directory (of that domain), naming
/// the closest one there is.
fn check_filter(config: &Config, mail: &Path, filter: &Filter) -> Result<(), OrphanError> {
    if filter.domain.is_none() && filter.name.is_none() {
        return Ok(());
    }
    let mut domains: Vec<String> = config.domains().map(|d| d.name().to_owned()).collect();
    let mut dirs = Vec::new();
    for d in store::domains(mail)? {
        if !store::is_server_folder(&d.name) {
            domains.push(d.name.to_string_lossy().into_owned());
            dirs.push(d);
        }
    }
    if let Some(wanted) = &filter.domain
        && !domains.iter().any(|d| d.eq_ignore_ascii_case(wanted))
    {
        return Err(OrphanError::Unknown(crate::suggest::unknown(
            "domain",
            wanted,
            domains.iter().map(String::as_str),
        )));
    }
    let Some(wanted) = &filter.name else {
        return Ok(());
    };
    let in_domain = |d: &str| {
        filter
            .domain
            .as_ref()
            .is_none_or(|f| f.eq_ignore_ascii_case(d))
    };
    let mut names: Vec<String> = config
        .users()
        .filter(|u| in_domain(u.domain()))
        .map(|u| u.name().to_owned())
        .collect();
    for d in dirs.iter().filter(|d| in_domain(&d.name.to_string_lossy())) {
        for mb in store::mailboxes(d)? {
            names.push(mb.name.to_string_lossy().into_owned());
        }
    }
    if names.iter().any(|n| n.eq_ignore_ascii_case(wanted)) {
        return Ok(());
    }
    let what = match &filter.domain {
        Some(d) => format!("account or mailbox in {d} named"),
        None => "account or mailbox named".to_owned(),
    };
    Err(OrphanError::Unknown(crate::suggest::unknown(
        &what,
        wanted,
        names.iter().map(String::as_str),
    )))
}

/// What to do with the orphan mailboxes found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolve {
    /// Back them up (the pre-change backup), then remove them.
    Archive,
    /// Move each under this account as `Deleted mailbox — <name>@<domain>`.
    TransferTo(Address),
    /// Create a disabled account for each, so the server re-attaches it.
    Adopt,
}

/// Plans the resolution of the `orphan-mailbox` findings (and, for `--archive`, of the
/// `orphan-domain` ones).
pub fn plan(model: Model<'_>, findings: &[Finding], action: &Resolve) -> Result<Plan, OrphanError> {
    let Model {
        install,
        layout,
        config,
    } = model;
    let mut r = Resolution::new(install, config);
    let target = match action {
        Resolve::TransferTo(to) => r.transfer_target(&layout, to)?,
        _ => None,
    };
    // An orphan domain directory is archived whole; its mailboxes are also findings of their
    // own, for a transfer (or an archive of only some, with --user).
    let domains: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.kind == Kind::OrphanDomain)
        .collect();
    if *action == Resolve::Archive {
        domains.iter().for_each(|f| r.archive_domain(f));
    }
    for f in findings.iter().filter(|f| f.kind == Kind::OrphanMailbox) {
        let addr = Address {
            name: f.name.clone(),
            domain: f.domain.clone(),
        };
        match action {
            Resolve::Archive
                if domains
                    .iter()
                    .any(|d| d.domain.eq_ignore_ascii_case(&f.domain)) => {}
            Resolve::Archive => r.archive_mailbox(f, &addr),
            Resolve::TransferTo(to) => r.transfer(f, &addr, to, target.as_deref()),
            Resolve::Adopt => r.adopt(f, &addr)?,
        }
    }
    let verb = match action {
        Resolve::Archive if !domains.is_empty() => {
            format!("archive {} orphan domains and", domains.len())
        }
        Resolve::Archive => "archive".to_owned(),
        Resolve::TransferTo(to) => format!("move to {to}"),
        Resolve::Adopt => "adopt".to_owned(),
    };
    let description = format!("{verb} {} orphan mailboxes", r.acted);
    r.finish(&layout, description)
}

/// A resolution being planned: the edits and steps so far.
struct Resolution<'a> {
    install: &'a Install,
    config: Config,
    /// Steps taken first (a transfer target's mailbox created), and after the config.
    steps: Vec<Step>,
    late: Vec<Step>,
    lines: Vec<String>,
    warning_lines: Vec<String>,
    problems: Vec<Problem>,
    skipped: Vec<Problem>,
    /// The orphan mailboxes acted on one by one (not those archived with their domain).
    acted: usize,
}

impl<'a> Resolution<'a> {
    fn new(install: &'a Install, config: Config) -> Resolution<'a> {
        Resolution {
            install,
            config,
            steps: Vec::new(),
            late: Vec::new(),
            lines: Vec::new(),
            warning_lines: Vec::new(),
            problems: Vec::new(),
            skipped: Vec::new(),
            acted: 0,
        }
    }

    /// The mailbox a transfer moves into (created when it is not there yet).
    fn transfer_target(
        &mut self,
        layout: &Layout,
        to: &Address,
    ) -> Result<Option<PathBuf>, OrphanError> {
        if self.config.user(&to.name, &to.domain).is_none() {
            (self.problems).push(Problem::new(format!("--transfer-to {to}"), "no such user"));
            return Ok(None);
        }
        let (dir, create) = account::transfer_target(self.install, layout, to)?;
        self.steps.extend(create);
        Ok(Some(dir))
    }

    fn archive_domain(&mut self, f: &Finding) {
        self.late.push(Step::RemoveDir {
            path: f.rel.clone(),
        });
        self.warning_lines.push(format!(
            "Remove orphan domain directory {} ({} bytes, {} messages; kept in the pre-change backup)",
            audit::quoted(&f.domain),
            f.bytes,
            f.messages
        ));
    }

    fn archive_mailbox(&mut self, f: &Finding, addr: &Address) {
        self.late.push(Step::RemoveDir {
            path: f.rel.clone(),
        });
        self.warning_lines.push(format!(
            "Remove orphan mailbox {} ({} bytes, {} messages; kept in the pre-change backup)",
            audit::quoted(&addr.to_string()),
            f.bytes,
            f.messages
        ));
        self.acted += 1;
    }

    /// Moves an orphan mailbox under `to` (`target` is its mailbox; none when `to` is wrong,
    /// which is already a problem).
    fn transfer(&mut self, f: &Finding, addr: &Address, to: &Address, target: Option<&Path>) {
        if to.is(addr) {
            let why =
                format!("cannot be moved into itself (--transfer-to {to} names its own account)");
            self.problems.push(Problem::new(&f.path, why));
            return;
        }
        let Some(target) = target else { return };
        match account::transfer_steps(self.install, &f.rel, addr, target) {
            Ok(moves) => self.late.extend(moves),
            Err(e) => return self.problems.push(Problem::said(e)),
        }
        let (addr, to) = (
            audit::quoted(&addr.to_string()),
            audit::quoted(&to.to_string()),
        );
        self.lines
            .push(format!("Move orphan mailbox {addr} to {to}"));
        self.acted += 1;
    }

    /// A disabled account for the mailbox, so that the server re-attaches it.
    fn adopt(&mut self, f: &Finding, addr: &Address) -> Result<(), OrphanError> {
        if self.config.domain(&addr.domain).is_none() {
            let why = format!(
                "not adopted: its domain {} is not on the server (create the domain first, or move the mailbox out with --transfer-to)",
                addr.domain
            );
            self.skipped.push(Problem::new(addr, why));
            return Ok(());
        }
        if let Err(why) = account::check_name(&addr.name) {
            let why = format!("cannot become an account name: {why}");
            self.problems.push(Problem::new(&f.path, why));
            return Ok(());
        }
        // Never an empty password: an admin who enables the account later without setting
        // one would open it to anyone. A random one nobody knows.
        let password = format!("NUL:{}", crate::password::generate_password(&addr.name));
        self.config.users.add_item(
            USER.list,
            &[
                (USER.name, &addr.name),
                (USER.domain, &addr.domain),
                (USER.full_name, ""),
                (USER.description, "Adopted orphan mailbox"),
                (USER.password, &password),
                (USER.enabled, "0"),
                (USER.auth_type, "0"),
                (USER.rights, "0"),
                (USER.data_source, "0"),
            ],
        )?;
        self.acted += 1;
        Ok(())
    }

    /// The plan, or every problem found.
    fn finish(mut self, layout: &Layout, description: String) -> Result<Plan, OrphanError> {
        // Nothing else to adopt: what was skipped is the answer, not an all-clear.
        if !self.config.users.is_modified() {
            self.problems.append(&mut self.skipped);
        }
        if !self.problems.is_empty() {
            return Err(OrphanError::Refused(Problems(self.problems)));
        }
        self.steps.splice(0..0, Step::save_modified(&self.config));
        self.steps.append(&mut self.late);
        let mut config_lines = audit::config_changes(&self.config);
        config_lines.append(&mut self.lines);
        config_lines.extend(self.warning_lines.iter().cloned());
        let logs = audit::steps(&layout.logs, TOOL, &config_lines, &self.warning_lines);
        self.steps.extend(logs);
        Ok(Plan {
            tool: TOOL.into(),
            description,
            steps: self.steps,
            warnings: self.skipped.iter().map(ToString::to_string).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldif_lists_accounts_by_domain() {
        let text = "# export\ndn: CN=Helen,DC=corp\nmail: HNelson@corp.example.net\nsAMAccountName: helen\n\ndn: CN=Long\nuserPrincipalName: a.very.long.na\n me@corp.example.net\n\ndn: CN=B64\nmail:: YmI2NEBjb3JwLmV4YW1wbGUubmV0\n";
        let dir = Directory::parse(Path::new("x.ldif"), text).expect("parses");
        let mut names: Vec<_> = dir
            .lists("Corp.Example.Net")
            .expect("listed")
            .iter()
            .cloned()
            .collect();
        names.sort();
        assert_eq!(names, ["a.very.long.name", "bb64", "helen", "hnelson"]);
        assert!(dir.lists("example.com").is_none());
        let err = Directory::parse(Path::new("x.ldif"), "dn: x\nnonsense\n").expect_err("bad");
        assert_eq!(
            err.to_string(),
            "x.ldif:2: not an LDIF line (attribute: value): \"nonsense\""
        );
    }
}

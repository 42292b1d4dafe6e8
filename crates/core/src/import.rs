//! Creating many accounts at once (kc-bulk-import): the vendor's CSV, a TOML file, or another
//! installation's users.cfg ([`read`]); every row validated against the file and the server,
//! and every problem reported, before anything is planned ([`plan`]).

mod read;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

pub use crate::password::{check_password, generate_password};
pub use read::{Field, Migration, Row, read_csv, read_toml, read_users_cfg};

use crate::account::{Names, check_name};
use crate::audit;
use crate::change::{Plan, Step};
use crate::config::schema::{ALIAS, GROUP, TEMPLATE, USER, USER_ADDITIONAL_DATA};
use crate::config::{Config, ConfigError, list_tokens, view::Template};
use crate::install::Install;
use crate::model::Model;
use crate::password::is_stored_form;
use crate::problem::{Problem, Problems};

/// The tool named in plans, journals and audit lines.
pub const TOOL: &str = "kc-bulk-import";

/// A record's variables, in file order.
pub type Vars = Vec<(String, String)>;

/// The vendor's CSV columns [C] and the User variables they fill.
pub const COLUMNS: [(&str, &str); 6] = [
    ("Name", USER.name),
    ("Password", USER.password),
    ("FullName", USER.full_name),
    ("Description", USER.description),
    ("MailAddress", USER.email_addresses),
    ("Groups", USER.groups),
];

/// Why an import was refused or could not be planned.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// What is wrong with the rows, all of them at once: nothing is imported.
    #[error("{0}\n{n} problem{s}; nothing was changed", n = .0.0.len(), s = if .0.0.len() == 1 { "" } else { "s" })]
    Invalid(Problems),
    /// The input file could not be read.
    #[error("{path}")]
    Read {
        /// The input file.
        path: PathBuf,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
    /// The install's config files (or the users.cfg migrated from) could not be read.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl ImportError {
    fn invalid(problems: Vec<Problem>) -> ImportError {
        ImportError::Invalid(Problems(problems))
    }

    /// The problems of a refused import, for `--json`.
    pub fn problems(&self) -> Option<&Problems> {
        match self {
            ImportError::Invalid(problems) => Some(problems),
            _ => None,
        }
    }
}

/// One warning per new account that gets a mailbox already in the store (kept when an account
/// of that name was removed): the server re-attaches it, old mail and all.
fn kept_mailboxes(install: &Install, kept: &[(crate::account::Address, PathBuf)]) -> Vec<String> {
    let dirs: Vec<&Path> = kept.iter().map(|(_, d)| d.as_path()).collect();
    let stats = crate::store::stats_of_all(&dirs, &crate::progress::Silent);
    kept.iter()
        .zip(stats)
        .map(|((address, dir), stats)| {
            let at = install.logical(dir).unwrap_or_else(|| dir.clone());
            let what = match stats {
                Ok(s) => {
                    let newest = s
                        .newest
                        .and_then(|t| jiff::Timestamp::try_from(t).ok())
                        .map(|t| format!(", newest {}", t.strftime("%Y-%m-%d")))
                        .unwrap_or_default();
                    format!("{} messages{newest}", s.messages)
                }
                Err(e) => format!("not readable: {e}"),
            };
            format!(
                "{address} gets the existing mailbox {} ({what}): the server attaches it to the new account; move it away first (kc-orphan-mailbox-finder --transfer-to or --archive) if it is not theirs",
                at.display()
            )
        })
        .collect()
}

/// How to import: kc-bulk-import's flags.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The domain of the accounts (a TOML row may name its own).
    pub domain: Option<String>,
    /// The user template (general, or of the domain) giving the defaults.
    pub template: Option<String>,
    /// Create the groups the rows name that do not exist, instead of refusing.
    pub create_groups: bool,
    /// Give a random strong password to every row without one.
    pub generate_passwords: bool,
    /// Refuse if more enabled accounts than this would exist after the import.
    pub license_limit: Option<usize>,
}

/// The plan, and the generated passwords (address, password) for the credentials file.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The change to apply.
    pub plan: Plan,
    /// `(address, password)` of each account given a generated password.
    pub credentials: Vars,
    /// How many accounts the plan creates.
    pub accounts: usize,
    /// How many groups the plan creates.
    pub groups_created: usize,
}

/// The defaults a template gives: its variables but Name and Domain; its own description is
/// the first `Description`, a second one is the users' default.
fn template_defaults(t: Template<'_>) -> Vars {
    let mut out: Vars = Vec::new();
    let mut descriptions = 0;
    for (k, v) in t.0.variables() {
        if k == TEMPLATE.name || k == TEMPLATE.domain {
            continue;
        }
        if k == TEMPLATE.description {
            descriptions += 1;
            if descriptions == 1 {
                continue;
            }
        }
        out.retain(|(o, _)| o != k);
        out.push((k.to_owned(), v.to_owned()));
    }
    out
}

/// The User variables a new account gets, in the order the server writes them, and their
/// defaults.
const ORDER: [(&str, &str); 15] = [
    (USER.name, ""),
    (USER.domain, ""),
    (USER.full_name, ""),
    (USER.description, ""),
    (USER.password, "NUL:"),
    (USER.enabled, "1"),
    (USER.auth_type, "0"),
    (USER.rights, "0"),
    (USER.forward_mode, "0"),
    (USER.forward_address, ""),
    (USER.email_addresses, ""),
    (USER.groups, ""),
    (USER.quota_storage, "0"),
    (USER.quota_messages, "0"),
    (USER.data_source, "0"),
];

fn set(values: &mut Vars, k: &str, v: &str) {
    match values.iter_mut().find(|(n, _)| n == k) {
        Some(slot) => slot.1 = v.to_owned(),
        None => values.push((k.to_owned(), v.to_owned())),
    }
}

fn value(values: &[(String, String)], k: &str) -> String {
    values
        .iter()
        .find(|(n, _)| n == k)
        .map_or(String::new(), |(_, v)| v.clone())
}

/// A group's or account's key in maps: name and domain, lower case.
type Key = (String, String);

fn key(name: &str, domain: &str) -> Key {
    (name.to_ascii_lowercase(), domain.to_ascii_lowercase())
}

/// Validates every row and plans the import. Every problem of every row is reported together.
pub fn plan(
    model: Model<'_>,
    rows: &[Row],
    migration: &Migration,
    options: &Options,
) -> Result<Imported, ImportError> {
    let mut planner = Planner::new(model.install, model.config, migration, options);
    for row in rows {
        planner.row(row);
    }
    planner.check_license();
    let aliases = planner.migration_aliases(rows);
    if !planner.problems.is_empty() {
        return Err(ImportError::invalid(planner.problems));
    }
    planner.write(aliases)
}

/// What the rows so far have checked and claimed: each row is checked against the server and
/// against the rows above it, then either adds problems or is planned.
struct Planner<'a> {
    install: &'a Install,
    options: &'a Options,
    migration: &'a Migration,
    config: Config,
    names: Names,
    problems: Vec<Problem>,
    /// Groups on the server and those the import creates: key -> name as written.
    groups_here: HashMap<Key, String>,
    /// The migration's groups, by key.
    source_groups: HashMap<Key, &'a Vars>,
    /// Groups to create: name, domain, and the migration's record when it has one.
    new_groups: Vec<(String, String, Option<&'a Vars>)>,
    /// The new members of each group.
    members: BTreeMap<Key, Vec<String>>,
    /// The new accounts' variables.
    planned: Vec<Vars>,
    credentials: Vars,
    enabled_new: Vec<&'a Row>,
    empty_passwords: Vec<String>,
    /// New accounts that get a mailbox already in the store.
    kept: Vec<(crate::account::Address, PathBuf)>,
    /// The User variables this server knows, sorted, listed at the first TOML row.
    known_variables: Option<Vec<String>>,
}

impl<'a> Planner<'a> {
    fn new(
        install: &'a Install,
        config: Config,
        migration: &'a Migration,
        options: &'a Options,
    ) -> Planner<'a> {
        let groups_here = config
            .groups()
            .map(|g| (key(g.name(), g.domain()), g.name().to_owned()))
            .collect();
        let source_groups = migration
            .groups
            .iter()
            .map(|vars| {
                (
                    (key(&value(vars, GROUP.name), &value(vars, GROUP.domain))),
                    vars,
                )
            })
            .collect();
        Planner {
            install,
            options,
            migration,
            names: Names::new(&config),
            config,
            problems: Vec::new(),
            groups_here,
            source_groups,
            new_groups: Vec::new(),
            members: BTreeMap::new(),
            planned: Vec::new(),
            credentials: Vec::new(),
            enabled_new: Vec::new(),
            empty_passwords: Vec::new(),
            kept: Vec::new(),
            known_variables: None,
        }
    }

    /// Checks one row; plans it when it has no problem.
    fn row(&mut self, row: &'a Row) {
        let before = self.problems.len();
        // What reading found; a row that could not be read has nothing more to check.
        self.problems.extend(row.problems.iter().cloned());
        if row.fields.is_empty() && !row.problems.is_empty() {
            return;
        }
        if row.any_variable {
            self.unknown_variables(row);
        }
        let Some((domain, secure)) = self.domain_of(row) else {
            // Without a domain the name can still be checked for what any name must be.
            self.name_of(row, None);
            return;
        };
        let defaults = self.template_defaults_of(row, &domain);
        let Some(name) = self.name_of(row, Some(&domain)) else {
            return;
        };
        // The values: row over template over defaults.
        let mut values: Vars = ORDER
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        for (k, v) in defaults
            .iter()
            .map(|(k, v)| (k, v))
            .chain(row.fields.iter().map(|f| (&f.var, &f.value)))
        {
            set(&mut values, k, v);
        }
        set(&mut values, USER.name, &name);
        set(&mut values, USER.domain, &domain);
        let addresses = self.addresses(row, &mut values, &name, &domain);
        let groups = self.groups(row, &values, &domain);
        self.password(row, &mut values, &name, &domain, secure);
        // A row with problems is not planned, but its names are taken and it counts towards
        // the licence: the rows below, and the limit, are checked as they will be once fixed.
        let ok = self.problems.len() == before;
        self.accept(row, values, &addresses, &groups, ok);
    }

    /// A TOML row's keys that are no User variable of this server: neither one the tools write
    /// for a new account nor one any account in users.cfg has.
    fn unknown_variables(&mut self, row: &Row) {
        let known = self.known_variables.get_or_insert_with(|| {
            let mut known: Vec<String> = ORDER.iter().map(|(k, _)| (*k).to_owned()).collect();
            for user in self.config.users.items(USER.list) {
                known.extend(user.variables().map(|(k, _)| k.to_owned()));
            }
            known.sort();
            known.dedup();
            known
        });
        for f in &row.fields {
            if known.binary_search(&f.var).is_ok() {
                continue;
            }
            let hint = crate::suggest::closest(&f.var, known.iter().map(String::as_str))
                .map_or(String::new(), |c| format!(" (did you mean {c}?)"));
            let why = format!(
                "not a User variable of this server: no account in users.cfg has one{hint}"
            );
            self.problems.push(row.at(f.line, &f.column, why));
        }
    }

    /// The row's domain, as written on the server, and whether it requires secure passwords.
    fn domain_of(&mut self, row: &Row) -> Option<(String, bool)> {
        let (text, line) = match (&row.domain, &self.options.domain) {
            (Some((d, l)), _) => (d.clone(), *l),
            (None, Some(d)) => (d.clone(), row.line),
            (None, None) => {
                self.problems.push(row.at(
                    row.line,
                    "domain",
                    "no domain: give --domain, or domain = \"…\" for the user",
                ));
                return None;
            }
        };
        let reason = match self.config.domain(&text) {
            Some(d) if !d.mapped() => return Some((d.name().to_owned(), d.secure_passwords())),
            Some(_) => {
                format!("{text} is mapped from a directory service: create its accounts there")
            }
            None => {
                let known = self.config.domains().map(|d| d.name());
                crate::suggest::unknown("domain", &text, known) + " on this server"
            }
        };
        self.problems.push(row.at(line, "domain", reason));
        None
    }

    /// The defaults of the row's template (its own, or `--template`), if it names one.
    fn template_defaults_of(&mut self, row: &Row, domain: &str) -> Vars {
        let (name, line) = match (&row.template, &self.options.template) {
            (Some((t, l)), _) => (t.clone(), *l),
            (None, Some(t)) => (t.clone(), row.line),
            (None, None) => return Vec::new(),
        };
        let found = self.config.templates().find(|x| {
            x.name().eq_ignore_ascii_case(&name)
                && (x.general() || x.domain().eq_ignore_ascii_case(domain))
        });
        match found {
            Some(x) => template_defaults(x),
            None => {
                self.problems.push(row.at(
                    line,
                    "template",
                    format!("no user template {name:?} for {domain} (general or of that domain)"),
                ));
                Vec::new()
            }
        }
    }

    /// The account's name, when it is one; a name already taken is a problem but the row is
    /// still checked further.
    fn name_of(&mut self, row: &Row, domain: Option<&str>) -> Option<String> {
        let field = row.get(USER.name);
        let name = field.map_or("", |f| f.value.as_str()).to_owned();
        let line = field.map_or(row.line, |f| f.line);
        let column = field.map_or("Name", |f| f.column.as_str());
        if name.is_empty() {
            let why = "missing (every account needs a name)";
            self.problems.push(row.at(line, column, why));
            return None;
        }
        if let Err(why) = check_name(&name) {
            self.problems
                .push(row.at(line, column, format!("{name:?}: {why}")));
            return None;
        }
        let domain = domain?;
        if let Some(what) = self.names.taken(&self.config, &name, domain, None) {
            let why = format!("{name}@{domain} already exists as {what}");
            self.problems.push(row.at(line, column, why));
        }
        Some(name)
    }

    /// The account's addresses: its own name first, then the rest, each one unused.
    fn addresses(&mut self, row: &Row, values: &mut Vars, name: &str, domain: &str) -> Vec<String> {
        let mut addresses: Vec<String> = list_tokens(&value(values, USER.email_addresses))
            .map(str::to_owned)
            .collect();
        if !addresses.iter().any(|a| a.eq_ignore_ascii_case(name)) {
            addresses.insert(0, name.to_owned());
        }
        let (line, column) = field_at(row, USER.email_addresses);
        for a in addresses.iter().filter(|a| !a.eq_ignore_ascii_case(name)) {
            if let Err(why) = check_name(a) {
                self.problems
                    .push(row.at(line, &column, format!("{a:?}: {why}")));
            } else if let Some(what) = self.names.taken(&self.config, a, domain, None) {
                let why = format!("{a}@{domain} is already used as {what}");
                self.problems.push(row.at(line, &column, why));
            }
        }
        set(values, USER.email_addresses, &addresses.join(","));
        addresses
    }

    /// The account's groups; each one is on the server, or is created (`--create-groups`, or
    /// the migration has it).
    fn groups(&mut self, row: &Row, values: &Vars, domain: &str) -> Vec<String> {
        let (line, column) = field_at(row, USER.groups);
        let groups: Vec<String> = list_tokens(&value(values, USER.groups))
            .map(str::to_owned)
            .collect();
        for g in &groups {
            let k = key(g, domain);
            if self.groups_here.contains_key(&k) {
                continue;
            }
            let source = self.source_groups.get(&k).copied();
            let why = if !self.options.create_groups && source.is_none() {
                format!("no group {g} in {domain} (add --create-groups to create it)")
            } else if let Err(why) = check_name(g) {
                format!("group {g:?}: {why}")
            } else if let Some(what) = self.names.taken(&self.config, g, domain, None) {
                format!("cannot create group {g}@{domain}: the name is {what}")
            } else {
                self.groups_here.insert(k, g.clone());
                let what = format!("group {g} (created by line {})", row.line);
                self.names.take(g, domain, what);
                self.new_groups.push((g.clone(), domain.to_owned(), source));
                continue;
            };
            self.problems.push(row.at(line, &column, why));
        }
        groups
    }

    /// The password as stored: given (checked where the domain requires secure passwords),
    /// generated (`--generate-passwords`), or the template's.
    fn password(&mut self, row: &Row, values: &mut Vars, name: &str, domain: &str, secure: bool) {
        let (line, column) = field_at(row, USER.password);
        let mut password = row.get(USER.password).map(|f| f.value.clone());
        if password.as_deref().is_none_or(str::is_empty) && self.options.generate_passwords {
            let p = generate_password(name);
            self.credentials
                .push((format!("{name}@{domain}"), p.clone()));
            password = Some(p);
        }
        let stored = match password.as_deref() {
            None | Some("") => value(values, USER.password),
            Some(p) if is_stored_form(p) => p.to_owned(),
            Some(p) => {
                if secure && let Err(why) = check_password(p, name) {
                    self.problems.push(row.at(line, &column, why));
                }
                format!("NUL:{p}")
            }
        };
        // A password the file gave but reading refused is that problem, not also an empty one.
        let refused = (row.problems.iter()).any(|p| p.subject.eq_ignore_ascii_case(&column));
        if secure && stored == "NUL:" && !refused {
            let why = "empty, and the domain requires secure passwords (give one, or --generate-passwords)";
            self.problems.push(row.at(line, &column, why));
        }
        if stored == "NUL:" {
            self.empty_passwords.push(name.to_owned());
        }
        set(values, USER.password, &stored);
    }

    /// A checked row's names are taken for the rows below, and an enabled one counts towards
    /// the licence; it is planned when `ok` (it has no problem).
    fn accept(
        &mut self,
        row: &'a Row,
        values: Vars,
        addresses: &[String],
        groups: &[String],
        ok: bool,
    ) {
        let (name, domain) = (value(&values, USER.name), value(&values, USER.domain));
        let here = format!("a user of line {} of {}", row.line, row.file.display());
        for a in addresses {
            self.names.take(a, &domain, here.clone());
        }
        for g in groups {
            self.members
                .entry(key(g, &domain))
                .or_default()
                .push(name.clone());
        }
        if value(&values, USER.enabled).trim() != "0" {
            self.enabled_new.push(row);
        }
        if !ok {
            return;
        }
        // A mailbox left by a removal with its mail kept: the server gives it to the new account.
        let address = crate::account::Address { name, domain };
        if let Ok(Some(dir)) = crate::account::mailbox_dir(self.install, &address) {
            self.kept.push((address, dir));
        }
        self.planned.push(values);
    }

    /// The licence: enabled local accounts, and mapped ones with a mailbox, after the import.
    /// Disabled accounts do not count: importing only those never goes over the limit.
    fn check_license(&mut self) {
        let (Some(limit), Some(_)) = (self.options.license_limit, self.enabled_new.first()) else {
            return;
        };
        let mail = self.install.mail_dir();
        let existing = (self.config.users())
            .filter(|u| u.enabled())
            .filter(|u| !self.config.is_mapped(u) || mail.join(u.domain()).join(u.name()).is_dir())
            .count();
        let new = self.enabled_new.len();
        if existing + new > limit {
            let over = self.enabled_new[limit.saturating_sub(existing).min(new - 1)];
            self.problems.push(over.at(
                over.line,
                "--license-limit",
                format!(
                    "{} enabled accounts after the import ({existing} now + {new} new), more than the licence's {limit}",
                    existing + new,
                ),
            ));
        }
    }

    /// A migration's aliases: those of domains on this server, each unless its name is taken.
    fn migration_aliases(&mut self, rows: &[Row]) -> Vec<&'a Vars> {
        let (mut aliases, migration) = (Vec::new(), self.migration);
        for (line, vars) in &migration.aliases {
            let (n, d) = (value(vars, ALIAS.name), value(vars, ALIAS.domain));
            if self.config.domain(&d).is_none() {
                continue;
            }
            match self.names.taken(&self.config, &n, &d, None) {
                None => aliases.push(vars),
                Some(what) => {
                    let file = rows.first().map_or(PathBuf::new(), |r| r.file.clone());
                    let origin = format!("{}:{line}", file.display());
                    let why = format!("{n}@{d} already exists here as {what}");
                    self.problems.push(Problem::at(origin, "Alias", why));
                }
            }
        }
        aliases
    }

    /// Writes users, groups (members added or created), aliases and password history into
    /// users.cfg, and makes the steps.
    fn write(mut self, aliases: Vec<&Vars>) -> Result<Imported, ImportError> {
        for values in &self.planned {
            self.config.users.add_item(USER.list, &pairs(values))?;
        }
        let created = self.create_groups()?;
        self.add_members()?;
        for vars in aliases {
            self.config.users.add_item(ALIAS.list, &pairs(vars))?;
        }
        for vars in &self.migration.additional_data {
            let list = USER_ADDITIONAL_DATA.list;
            self.config.users.add_item(list, &pairs(vars))?;
        }
        let layout = crate::account::Layout::new(self.install);
        let mut steps = Step::save_modified(&self.config);
        let logged = audit::config_changes(&self.config);
        steps.extend(audit::steps(&layout.logs, TOOL, &logged, &[]));
        let accounts = self.planned.len();
        let mut warnings = kept_mailboxes(self.install, &self.kept);
        if !self.empty_passwords.is_empty() {
            warnings.push(format!(
                "{} accounts get an empty password (anyone may log in to them): {}; give passwords, or --generate-passwords",
                self.empty_passwords.len(),
                self.empty_passwords.join(", ")
            ));
        }
        Ok(Imported {
            plan: Plan {
                tool: TOOL.into(),
                description: format!("import {accounts} accounts ({created} groups created)"),
                steps,
                warnings,
            },
            credentials: self.credentials,
            accounts,
            groups_created: created,
        })
    }

    /// Creates the new groups, with their new members; returns how many.
    fn create_groups(&mut self) -> Result<usize, ImportError> {
        for (name, domain, source) in &self.new_groups {
            let members = self.members.remove(&key(name, domain)).unwrap_or_default();
            let mut vars: Vars = match source {
                Some(vars) => (*vars).clone(),
                None => vec![
                    (GROUP.name.into(), name.clone()),
                    (GROUP.domain.into(), domain.clone()),
                    (GROUP.description.into(), String::new()),
                    (GROUP.email_addresses.into(), name.clone()),
                    (GROUP.members.into(), String::new()),
                    (GROUP.rights.into(), "0".into()),
                ],
            };
            if let Some(slot) = vars.iter_mut().find(|(k, _)| k == GROUP.members) {
                slot.1 = members.join(",");
            }
            self.config.users.add_item(GROUP.list, &pairs(&vars))?;
        }
        Ok(self.new_groups.len())
    }

    /// Adds the new members of groups already on the server.
    fn add_members(&mut self) -> Result<(), ImportError> {
        let groups: Vec<_> = (self.config.groups())
            .map(|g| (g.id(), key(g.name(), g.domain()), g.members().to_owned()))
            .collect();
        for (id, k, current) in groups {
            if let Some(new) = self.members.remove(&k) {
                let joined = if current.trim().is_empty() {
                    new.join(",")
                } else {
                    format!("{current},{}", new.join(","))
                };
                self.config.users.set(id, GROUP.members, &joined)?;
            }
        }
        Ok(())
    }
}

/// Where a variable's value came from in the row: its field's line and column, else the row's
/// line and the variable's name.
fn field_at(row: &Row, var: &str) -> (usize, String) {
    row.get(var)
        .map_or((row.line, var.to_owned()), |f| (f.line, f.column.clone()))
}

fn pairs(vars: &Vars) -> Vec<(&str, &str)> {
    vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

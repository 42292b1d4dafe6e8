//! Creating many accounts at once (kc-bulk-import): the vendor's CSV, a TOML file, or another
//! installation's users.cfg ([`read`]); every row validated against the file and the server,
//! and every problem reported, before anything is planned ([`plan`]).

mod password;
mod read;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

pub use password::{check_password, generate_password};
pub use read::{Field, Migration, Row, read_csv, read_toml, read_users_cfg};

use crate::account::{Names, check_name};
use crate::audit;
use crate::change::{Plan, Step};
use crate::config::schema::{ALIAS, GROUP, TEMPLATE, USER, USER_ADDITIONAL_DATA};
use crate::config::{Config, ConfigError, list_tokens, view::Template};
use crate::install::Install;
use password::is_stored_form;

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

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{}\n{} problem{}; nothing was changed", .0.join("\n"), .0.len(), if .0.len() == 1 { "" } else { "s" })]
    Invalid(Vec<String>),
    #[error("{path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
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

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub domain: Option<String>,
    pub template: Option<String>,
    pub create_groups: bool,
    pub generate_passwords: bool,
    pub license_limit: Option<usize>,
}

/// The plan, and the generated passwords (address, password) for the credentials file.
#[derive(Debug, Clone)]
pub struct Imported {
    pub plan: Plan,
    pub credentials: Vars,
    pub accounts: usize,
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

/// Validates every row and plans the import. Every problem of every row is reported together.
pub fn plan(
    install: &Install,
    rows: &[Row],
    migration: &Migration,
    &Options {
        ref domain,
        ref template,
        create_groups,
        generate_passwords,
        license_limit,
    }: &Options,
) -> Result<Imported, ImportError> {
    let (default_domain, default_template) = (domain, template);
    let mut config = Config::load(&install.root)?;
    let mut names = Names::new(&config);
    let mut problems: Vec<String> = Vec::new();
    let mut groups_here: HashMap<(String, String), String> = config
        .groups()
        .map(|g| {
            (
                (
                    g.name().to_ascii_lowercase(),
                    g.domain().to_ascii_lowercase(),
                ),
                g.name().to_owned(),
            )
        })
        .collect();
    let source_groups: HashMap<(String, String), &Vars> = migration
        .groups
        .iter()
        .map(|vars| {
            let get = |k: &str| {
                vars.iter()
                    .find(|(n, _)| n == k)
                    .map_or(String::new(), |(_, v)| v.to_ascii_lowercase())
            };
            ((get(GROUP.name), get(GROUP.domain)), vars)
        })
        .collect();
    let mut new_groups: Vec<(String, String, Option<&Vars>)> = Vec::new();
    let mut members: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut planned: Vec<Vars> = Vec::new();
    let mut credentials = Vec::new();
    let mut enabled_new = Vec::new();
    let mut empty_passwords: Vec<String> = Vec::new();
    let mut kept: Vec<(crate::account::Address, PathBuf)> = Vec::new();

    for row in rows {
        let before = problems.len();
        // Domain.
        let (domain_text, domain_line) = match (&row.domain, default_domain) {
            (Some((d, l)), _) => (d.clone(), *l),
            (None, Some(d)) => (d.clone(), row.line),
            (None, None) => {
                problems.push(row.at(
                    row.line,
                    "domain",
                    "no domain: give --domain, or domain = \"…\" for the user",
                ));
                continue;
            }
        };
        let domain = match config.domain(&domain_text) {
            Some(d) if d.mapped() => {
                problems.push(row.at(
                    domain_line,
                    "domain",
                    format!("{domain_text} is mapped from a directory service: create its accounts there"),
                ));
                continue;
            }
            Some(d) => (d.name().to_owned(), d.secure_passwords()),
            None => {
                problems.push(row.at(
                    domain_line,
                    "domain",
                    crate::suggest::unknown(
                        "domain",
                        &domain_text,
                        config.domains().map(|d| d.name()),
                    ) + " on this server",
                ));
                continue;
            }
        };
        let (domain, secure) = domain;
        // Template.
        let template = match (&row.template, default_template) {
            (Some((t, l)), _) => Some((t.clone(), *l)),
            (None, Some(t)) => Some((t.clone(), row.line)),
            (None, None) => None,
        };
        let defaults = match &template {
            None => Vec::new(),
            Some((t, l)) => match config.templates().find(|x| {
                x.name().eq_ignore_ascii_case(t)
                    && (x.general() || x.domain().eq_ignore_ascii_case(&domain))
            }) {
                Some(x) => template_defaults(x),
                None => {
                    problems.push(row.at(
                        *l,
                        "template",
                        format!("no user template {t:?} for {domain} (general or of that domain)"),
                    ));
                    Vec::new()
                }
            },
        };
        // Name.
        let name_field = row.get(USER.name);
        let name = name_field.map_or("", |f| f.value.as_str()).to_owned();
        let name_line = name_field.map_or(row.line, |f| f.line);
        let name_col = name_field.map_or("Name", |f| f.column.as_str());
        if name.is_empty() {
            problems.push(row.at(name_line, name_col, "missing (every account needs a name)"));
            continue;
        }
        if let Err(why) = check_name(&name) {
            problems.push(row.at(name_line, name_col, format!("{name:?}: {why}")));
            continue;
        }
        if let Some(what) = names.taken(&config, &name, &domain, None) {
            problems.push(row.at(
                name_line,
                name_col,
                format!("{name}@{domain} already exists as {what}"),
            ));
        }
        // The values: row over template over defaults.
        let mut values: Vars = ORDER
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        for (k, v) in &defaults {
            set(&mut values, k, v);
        }
        for f in &row.fields {
            set(&mut values, &f.var, &f.value);
        }
        set(&mut values, USER.name, &name);
        set(&mut values, USER.domain, &domain);
        let field_at = |var: &str| {
            row.get(var)
                .map_or((row.line, var.to_owned()), |f| (f.line, f.column.clone()))
        };
        // Addresses: the account's own name, then the rest, each unused.
        let mut addresses: Vec<String> = list_tokens(&value(&values, USER.email_addresses))
            .map(str::to_owned)
            .collect();
        if !addresses.iter().any(|a| a.eq_ignore_ascii_case(&name)) {
            addresses.insert(0, name.clone());
        }
        let (aline, acol) = field_at(USER.email_addresses);
        for a in &addresses {
            if a.eq_ignore_ascii_case(&name) {
                continue;
            }
            if let Err(why) = check_name(a) {
                problems.push(row.at(aline, &acol, format!("{a:?}: {why}")));
            } else if let Some(what) = names.taken(&config, a, &domain, None) {
                problems.push(row.at(
                    aline,
                    &acol,
                    format!("{a}@{domain} is already used as {what}"),
                ));
            }
        }
        set(&mut values, USER.email_addresses, &addresses.join(","));
        // Groups.
        let (gline, gcol) = field_at(USER.groups);
        let groups: Vec<String> = list_tokens(&value(&values, USER.groups))
            .map(str::to_owned)
            .collect();
        for g in &groups {
            let key = (g.to_ascii_lowercase(), domain.to_ascii_lowercase());
            if groups_here.contains_key(&key) {
                continue;
            }
            let source = source_groups.get(&key).copied();
            if create_groups || source.is_some() {
                if let Err(why) = check_name(g) {
                    problems.push(row.at(gline, &gcol, format!("group {g:?}: {why}")));
                    continue;
                }
                if let Some(what) = names.taken(&config, g, &domain, None) {
                    problems.push(row.at(
                        gline,
                        &gcol,
                        format!("cannot create group {g}@{domain}: the name is {what}"),
                    ));
                    continue;
                }
                groups_here.insert(key, g.clone());
                names.take(
                    g,
                    &domain,
                    format!("group {g} (created by line {})", row.line),
                );
                new_groups.push((g.clone(), domain.clone(), source));
            } else {
                problems.push(row.at(
                    gline,
                    &gcol,
                    format!("no group {g} in {domain} (add --create-groups to create it)"),
                ));
            }
        }
        // Password.
        let (pline, pcol) = field_at(USER.password);
        let mut password = row.get(USER.password).map(|f| f.value.clone());
        if password.as_deref().is_none_or(str::is_empty) && generate_passwords {
            let p = generate_password(&name);
            credentials.push((format!("{name}@{domain}"), p.clone()));
            password = Some(p);
        }
        let stored = match password.as_deref() {
            None | Some("") => value(&values, USER.password),
            Some(p) if is_stored_form(p) => p.to_owned(),
            Some(p) => {
                if secure && let Err(why) = check_password(p, &name) {
                    problems.push(row.at(pline, &pcol, why));
                }
                format!("NUL:{p}")
            }
        };
        if secure && stored == "NUL:" {
            problems.push(row.at(
                pline,
                &pcol,
                "empty, and the domain requires secure passwords (give one, or --generate-passwords)",
            ));
        }
        set(&mut values, USER.password, &stored);
        if stored == "NUL:" {
            empty_passwords.push(name.clone());
        }
        if problems.len() > before {
            continue;
        }
        // Taken from here on, for the rows below.
        let here = format!("a user of line {} of {}", row.line, row.file.display());
        for a in &addresses {
            names.take(a, &domain, here.clone());
        }
        for g in &groups {
            members
                .entry((g.to_ascii_lowercase(), domain.to_ascii_lowercase()))
                .or_default()
                .push(name.clone());
        }
        if value(&values, USER.enabled).trim() != "0" {
            enabled_new.push(row);
        }
        // A mailbox left by a removal with its mail kept: the server gives it to the new account.
        let address = crate::account::Address {
            name: name.clone(),
            domain: domain.clone(),
        };
        if let Ok(Some(dir)) = crate::account::mailbox_dir(install, &address) {
            kept.push((address, dir));
        }
        planned.push(values);
    }

    // The licence: enabled local accounts, and mapped ones with a mailbox, after the import.
    if let Some(limit) = license_limit {
        let existing = config
            .users()
            .filter(|u| u.enabled())
            .filter(|u| {
                let mapped = config.is_mapped(u);
                !mapped || install.mail_dir().join(u.domain()).join(u.name()).is_dir()
            })
            .count();
        // Disabled accounts do not count: importing only those never goes over the limit.
        if !enabled_new.is_empty() && existing + enabled_new.len() > limit {
            let over = enabled_new[limit.saturating_sub(existing).min(enabled_new.len() - 1)];
            problems.push(over.at(
                over.line,
                "--license-limit",
                format!(
                    "{} enabled accounts after the import ({existing} now + {} new), more than the licence's {limit}",
                    existing + enabled_new.len(),
                    enabled_new.len()
                ),
            ));
        }
    }
    // A migration's aliases: copied unless their name is taken.
    let mut aliases = Vec::new();
    for (line, vars) in &migration.aliases {
        let get = |k: &str| {
            vars.iter()
                .find(|(n, _)| n == k)
                .map_or("", |(_, v)| v.as_str())
        };
        let (n, d) = (get(ALIAS.name), get(ALIAS.domain));
        if config.domain(d).is_none() {
            continue;
        }
        if let Some(what) = names.taken(&config, n, d, None) {
            let file = rows.first().map_or(PathBuf::new(), |r| r.file.clone());
            problems.push(format!(
                "{}:{line}: Alias: {n}@{d} already exists here as {what}",
                file.display()
            ));
            continue;
        }
        aliases.push(vars);
    }
    if !problems.is_empty() {
        return Err(ImportError::Invalid(problems));
    }

    // Writing: users, groups (members added or created), aliases, password history.
    for values in &planned {
        let vars: Vec<(&str, &str)> = values
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        config.users.add_item(USER.list, &vars)?;
    }
    let mut created = 0;
    for (name, domain, source) in &new_groups {
        let key = (name.to_ascii_lowercase(), domain.to_ascii_lowercase());
        let list = members.remove(&key).unwrap_or_default().join(",");
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
            slot.1 = list;
        }
        let refs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        config.users.add_item(GROUP.list, &refs)?;
        created += 1;
    }
    let group_ids: Vec<_> = config
        .groups()
        .map(|g| {
            (
                g.id(),
                (
                    g.name().to_ascii_lowercase(),
                    g.domain().to_ascii_lowercase(),
                ),
                g.members().to_owned(),
            )
        })
        .collect();
    for (id, key, current) in group_ids {
        if let Some(new) = members.remove(&key) {
            let joined = if current.trim().is_empty() {
                new.join(",")
            } else {
                format!("{current},{}", new.join(","))
            };
            config.users.set(id, GROUP.members, &joined)?;
        }
    }
    for vars in aliases {
        let refs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        config.users.add_item(ALIAS.list, &refs)?;
    }
    for vars in &migration.additional_data {
        let refs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        config.users.add_item(USER_ADDITIONAL_DATA.list, &refs)?;
    }
    let layout = crate::account::Layout::new(install);
    let mut steps = Vec::new();
    if config.users.is_modified() {
        steps.push(Step::save_document(
            crate::config::schema::USERS_CFG,
            &config.users,
        ));
    }
    steps.extend(audit::steps(
        &layout.logs,
        TOOL,
        &audit::config_changes(&config),
        &[],
    ));
    let accounts = planned.len();
    let mut warnings = kept_mailboxes(install, &kept);
    if !empty_passwords.is_empty() {
        warnings.push(format!(
            "{} accounts get an empty password (anyone may log in to them): {}; give passwords, or --generate-passwords",
            empty_passwords.len(),
            empty_passwords.join(", ")
        ));
    }
    Ok(Imported {
        plan: Plan {
            tool: TOOL.into(),
            description: format!("import {accounts} accounts ({created} groups created)"),
            steps,
            warnings,
        },
        credentials,
        accounts,
        groups_created: created,
    })
}

//! Creating many accounts at once (kc-bulk-import): the vendor's CSV, a TOML file, or another
//! installation's users.cfg; every row validated before anything is planned.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::account::check_name;
use crate::change::{Plan, Step, audit_line};
use crate::config::schema::{ALIAS, GROUP, TEMPLATE, USER, USER_ADDITIONAL_DATA};
use crate::config::{Config, ConfigError, Document, list_tokens, view::Template};
use crate::install::Install;

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
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// One value of a row, with where it came from.
#[derive(Debug, Clone)]
pub struct Field {
    /// The User variable it sets.
    pub var: String,
    /// The column (CSV) or key (TOML) that gave it, for messages.
    pub column: String,
    pub value: String,
    pub line: usize,
}

/// One account to create.
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub file: PathBuf,
    pub line: usize,
    pub fields: Vec<Field>,
    /// Per-row domain and template (TOML), with their lines.
    pub domain: Option<(String, usize)>,
    pub template: Option<(String, usize)>,
}

impl Row {
    fn get(&self, var: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.var == var)
    }
    fn at(&self, line: usize, column: &str, message: impl std::fmt::Display) -> String {
        format!("{}:{line}: {column}: {message}", self.file.display())
    }
}

fn read(path: &Path) -> Result<String, ImportError> {
    let bytes = std::fs::read(path).map_err(|source| ImportError::Read {
        path: path.to_owned(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let (line, _) = crate::config::line_column(e.as_bytes(), e.utf8_error().valid_up_to());
        ImportError::Invalid(vec![format!(
            "{}:{line}: -: not UTF-8 (save the file as UTF-8)",
            path.display()
        )])
    })
}

/// Reads the vendor's CSV: a header row naming the columns, `;` or `,` (seen in the header),
/// UTF-8 with or without a BOM, CRLF or LF.
pub fn read_csv(path: &Path) -> Result<Vec<Row>, ImportError> {
    let text = read(path)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let header_line = text.lines().next().unwrap_or("");
    let delimiter = if header_line.contains(';') {
        b';'
    } else {
        b','
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let at = |line: usize, column: &str, message: &str| {
        format!("{}:{line}: {column}: {message}", path.display())
    };
    // From the byte offset, past the line break csv may count as the record's start (a CRLF's
    // LF): its own line count is one short after a CRLF. Offsets only grow, so lines are
    // counted from the previous record on.
    let bytes = text.as_bytes();
    let mut counted = (0usize, 1usize);
    let mut line_at = |byte: u64| {
        let mut at = (byte as usize).min(bytes.len());
        while bytes.get(at).is_some_and(|b| matches!(b, b'\r' | b'\n')) {
            at += 1;
        }
        let (from, line) = counted;
        let from = from.min(at);
        let line = line + bytes[from..at].iter().filter(|&&b| b == b'\n').count();
        counted = (at, line);
        line
    };
    let headers = reader
        .headers()
        .map_err(|e| ImportError::Invalid(vec![at(1, "-", &e.to_string())]))?
        .clone();
    let mut problems = Vec::new();
    let mut vars = Vec::new();
    for h in &headers {
        match COLUMNS.iter().find(|(c, _)| c.eq_ignore_ascii_case(h)) {
            Some((c, v)) => vars.push(((*c).to_owned(), (*v).to_owned())),
            None => problems.push(at(
                1,
                h,
                &format!(
                    "unknown column (the columns are {})",
                    COLUMNS.map(|(c, _)| c).join(", ")
                ),
            )),
        }
    }
    if !vars.iter().any(|(c, _)| c == "Name") {
        problems.push(at(
            1,
            "Name",
            "the header has no Name column, which is required",
        ));
    }
    if !problems.is_empty() {
        return Err(ImportError::Invalid(problems));
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| line_at(p.byte()));
                problems.push(at(line, "-", &e.to_string()));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| line_at(p.byte()));
        if record.iter().all(str::is_empty) {
            continue;
        }
        if record.len() > vars.len() {
            problems.push(at(
                line,
                "-",
                &format!(
                    "{} fields, but the header names {}",
                    record.len(),
                    vars.len()
                ),
            ));
            continue;
        }
        let fields = record
            .iter()
            .zip(&vars)
            .map(|(value, (column, var))| Field {
                var: var.clone(),
                column: column.clone(),
                value: value.to_owned(),
                line,
            })
            .collect();
        rows.push(Row {
            file: path.to_owned(),
            line,
            fields,
            ..Row::default()
        });
    }
    if !problems.is_empty() {
        return Err(ImportError::Invalid(problems));
    }
    Ok(rows)
}

/// Reads a TOML file of `[[user]]` tables: the CSV's fields, any User variable, and optional
/// `domain` and `template`.
pub fn read_toml(path: &Path) -> Result<Vec<Row>, ImportError> {
    use toml::Spanned;
    #[derive(serde::Deserialize)]
    struct File {
        #[serde(default)]
        user: Vec<Spanned<BTreeMap<String, Spanned<toml::Value>>>>,
    }
    let text = read(path)?;
    let line_of = |offset: usize| crate::config::line_column(text.as_bytes(), offset).0;
    let file: File = toml::from_str(&text).map_err(|e| {
        let line = e.span().map_or(0, |s| line_of(s.start));
        ImportError::Invalid(vec![format!(
            "{}:{line}: -: {}",
            path.display(),
            e.message()
        )])
    })?;
    let mut problems = Vec::new();
    let mut rows = Vec::new();
    for table in file.user {
        let mut row = Row {
            file: path.to_owned(),
            line: line_of(table.span().start),
            ..Row::default()
        };
        // Tables keep keys sorted; order the fields as the file wrote them.
        let mut entries: Vec<(String, Spanned<toml::Value>)> =
            table.into_inner().into_iter().collect();
        entries.sort_by_key(|(_, v)| v.span().start);
        for (key, value) in entries {
            let line = line_of(value.span().start);
            let text = match value.get_ref() {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => u8::from(*b).to_string(),
                toml::Value::Array(items) => {
                    let mut parts = Vec::new();
                    for item in items {
                        match item.as_str() {
                            Some(s) => parts.push(s.to_owned()),
                            None => problems.push(format!(
                                "{}:{line}: {key}: a list may hold only strings",
                                path.display()
                            )),
                        }
                    }
                    parts.join(",")
                }
                other => {
                    problems.push(format!(
                        "{}:{line}: {key}: a {} is not a value a variable can hold",
                        path.display(),
                        other.type_str()
                    ));
                    continue;
                }
            };
            match key.as_str() {
                "domain" => row.domain = Some((text, line)),
                "template" => row.template = Some((text, line)),
                _ => {
                    let var = COLUMNS
                        .iter()
                        .find(|(c, _)| c.eq_ignore_ascii_case(&key))
                        .map_or(key.clone(), |(_, v)| (*v).to_owned());
                    row.fields.push(Field {
                        var,
                        column: key,
                        value: text,
                        line,
                    });
                }
            }
        }
        rows.push(row);
    }
    if !problems.is_empty() {
        return Err(ImportError::Invalid(problems));
    }
    Ok(rows)
}

/// What a migration brings beyond the users: their groups, aliases and password history.
#[derive(Debug, Clone, Default)]
pub struct Migration {
    /// Group records (variables in order) of the source, for groups to create.
    pub groups: Vec<Vars>,
    pub aliases: Vec<(usize, Vars)>,
    pub additional_data: Vec<Vars>,
}

/// Reads another installation's users.cfg: its users (of `domain`, or all), verbatim, password
/// hashes included, with their groups, the aliases delivering to them, and their password
/// history.
pub fn read_users_cfg(
    path: &Path,
    domain: Option<&str>,
) -> Result<(Vec<Row>, Migration), ImportError> {
    let doc = Document::load(path)?;
    let wanted = |d: &str| domain.is_none_or(|w| w.eq_ignore_ascii_case(d));
    let vars = |item: crate::config::ItemRef<'_>| -> Vars {
        item.variables()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    };
    let mut rows = Vec::new();
    let mut addresses = Vec::new();
    for item in doc.items(USER.list) {
        let d = item.get(USER.domain).unwrap_or("");
        if !wanted(d) {
            continue;
        }
        let line = item.line();
        addresses.push(format!("{}@{d}", item.get(USER.name).unwrap_or("")).to_ascii_lowercase());
        rows.push(Row {
            file: path.to_owned(),
            line,
            fields: item
                .variables()
                .filter(|(k, _)| *k != USER.domain)
                .map(|(k, v)| Field {
                    var: k.to_owned(),
                    column: k.to_owned(),
                    value: v.to_owned(),
                    line,
                })
                .collect(),
            domain: Some((d.to_owned(), line)),
            template: None,
        });
    }
    let mut migration = Migration::default();
    for item in doc.items(GROUP.list) {
        if wanted(item.get(GROUP.domain).unwrap_or("")) {
            migration.groups.push(vars(item));
        }
    }
    for item in doc.items(ALIAS.list) {
        let d = item.get(ALIAS.domain).unwrap_or("");
        let to = item.get(ALIAS.deliver_to).unwrap_or("");
        if wanted(d) && list_tokens(to).any(|t| addresses.contains(&t.to_ascii_lowercase())) {
            migration.aliases.push((item.line(), vars(item)));
        }
    }
    for item in doc.items(USER_ADDITIONAL_DATA.list) {
        let n = item.get(USER_ADDITIONAL_DATA.name).unwrap_or("");
        let d = item.get(USER_ADDITIONAL_DATA.domain).unwrap_or("");
        if addresses.contains(&format!("{n}@{d}").to_ascii_lowercase()) {
            migration.additional_data.push(vars(item));
        }
    }
    Ok((rows, migration))
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

/// Whether a password value is already in a server form (`D3S:…`, `NUL:…`, another `XYZ:`
/// prefix) and is copied verbatim.
fn is_stored_form(value: &str) -> bool {
    value.len() >= 4
        && value.as_bytes()[3] == b':'
        && value.as_bytes()[..3]
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// The domain policy for secure passwords (KERIO-FORMAT.md): at least 8 characters, three of
/// lower case, upper case, digits and others, and not containing the username.
pub fn check_password(password: &str, name: &str) -> Result<(), String> {
    if password.chars().count() < 8 {
        return Err("shorter than 8 characters (the domain requires secure passwords)".into());
    }
    let classes = [
        password.chars().any(|c| c.is_lowercase()),
        password.chars().any(|c| c.is_uppercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| !c.is_alphanumeric()),
    ];
    if classes.iter().filter(|&&c| c).count() < 3 {
        return Err(
            "needs three of: lower case, upper case, digits, other characters (the domain requires secure passwords)"
                .into(),
        );
    }
    if password.to_lowercase().contains(&name.to_lowercase()) {
        return Err("contains the username (the domain requires secure passwords)".into());
    }
    Ok(())
}

/// A strong random password that meets the policy for `name`.
pub fn generate_password(name: &str) -> String {
    use rand::seq::IndexedRandom;
    const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const DIGIT: &[u8] = b"23456789";
    const OTHER: &[u8] = b"-_.+=%#";
    let mut rng = rand::rng();
    loop {
        let all: Vec<u8> = [LOWER, UPPER, DIGIT, OTHER].concat();
        let mut chars: Vec<u8> = (0..16)
            .map(|_| *all.choose(&mut rng).expect("not empty"))
            .collect();
        for (i, class) in [LOWER, UPPER, DIGIT, OTHER].iter().enumerate() {
            chars[i * 4] = *class.choose(&mut rng).expect("not empty");
        }
        let password = String::from_utf8(chars).expect("ASCII");
        if check_password(&password, name).is_ok() {
            return password;
        }
    }
}

/// Names taken in a domain: users (and their addresses), aliases, groups, mailing lists.
struct Taken(HashMap<(String, String), String>);

impl Taken {
    fn new(config: &Config) -> Taken {
        let mut map = HashMap::new();
        let mut put = |n: &str, d: &str, what: String| {
            map.entry((n.to_ascii_lowercase(), d.to_ascii_lowercase()))
                .or_insert(what);
        };
        for u in config.users() {
            put(u.name(), u.domain(), "a user".into());
            for a in list_tokens(u.email_addresses()) {
                put(a, u.domain(), format!("an address of user {}", u.address()));
            }
        }
        for a in config.aliases() {
            put(a.name(), a.domain(), "an alias".into());
        }
        for g in config.groups() {
            put(g.name(), g.domain(), "a group".into());
            for a in list_tokens(g.email_addresses()) {
                put(a, g.domain(), format!("an address of group {}", g.name()));
            }
        }
        for l in config.mailing_lists() {
            put(l.name(), l.domain(), "a mailing list".into());
        }
        Taken(map)
    }

    fn get(&self, name: &str, domain: &str) -> Option<&String> {
        self.0
            .get(&(name.to_ascii_lowercase(), domain.to_ascii_lowercase()))
    }

    fn take(&mut self, name: &str, domain: &str, what: String) {
        self.0.insert(
            (name.to_ascii_lowercase(), domain.to_ascii_lowercase()),
            what,
        );
    }
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
    options: &Options,
) -> Result<Imported, ImportError> {
    let mut config = Config::load(&install.root)?;
    let mut taken = Taken::new(&config);
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
    let mut audit = Vec::new();
    let mut enabled_new = Vec::new();

    for row in rows {
        let before = problems.len();
        // Domain.
        let (domain_text, domain_line) = match (&row.domain, &options.domain) {
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
                    format!("{domain_text} is not a domain of this server"),
                ));
                continue;
            }
        };
        let (domain, secure) = domain;
        // Template.
        let template = match (&row.template, &options.template) {
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
        if let Some(what) = taken.get(&name, &domain) {
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
            } else if let Some(what) = taken.get(a, &domain) {
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
            if options.create_groups || source.is_some() {
                if let Err(why) = check_name(g) {
                    problems.push(row.at(gline, &gcol, format!("group {g:?}: {why}")));
                    continue;
                }
                if let Some(what) = taken.get(g, &domain) {
                    problems.push(row.at(
                        gline,
                        &gcol,
                        format!("cannot create group {g}@{domain}: the name is {what}"),
                    ));
                    continue;
                }
                groups_here.insert(key, g.clone());
                taken.take(
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
        if password.as_deref().is_none_or(str::is_empty) && options.generate_passwords {
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
        if problems.len() > before {
            continue;
        }
        // Taken from here on, for the rows below.
        let here = format!("a user of line {} of {}", row.line, row.file.display());
        for a in &addresses {
            taken.take(a, &domain, here.clone());
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
        audit.push(format!(
            "Add User '{name}@{domain}': FullName='{}', Password='xxxxxx', Groups='{}'",
            value(&values, USER.full_name),
            groups.join(",")
        ));
        planned.push(values);
    }

    // The licence: enabled local accounts, and mapped ones with a mailbox, after the import.
    if let Some(limit) = options.license_limit {
        let existing = config
            .users()
            .filter(|u| u.enabled())
            .filter(|u| {
                let mapped = u.mapped() || config.domain(u.domain()).is_some_and(|d| d.mapped());
                !mapped || install.mail_dir().join(u.domain()).join(u.name()).is_dir()
            })
            .count();
        if existing + enabled_new.len() > limit {
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
        if let Some(what) = taken.get(n, d) {
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
        config.users.add_item(USER.list, &vars);
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
        config.users.add_item(GROUP.list, &refs);
        audit.push(format!("Add Group '{name}@{domain}'"));
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
                g.name().to_owned(),
                g.domain().to_owned(),
                g.members().to_owned(),
            )
        })
        .collect();
    for (id, key, name, domain, current) in group_ids {
        if let Some(new) = members.remove(&key) {
            let joined = if current.trim().is_empty() {
                new.join(",")
            } else {
                format!("{current},{}", new.join(","))
            };
            config.users.set(id, GROUP.members, &joined)?;
            audit.push(format!(
                "Update Group '{name}@{domain}': {} members added",
                new.len()
            ));
        }
    }
    for vars in aliases {
        let refs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        config.users.add_item(ALIAS.list, &refs);
    }
    for vars in &migration.additional_data {
        let refs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        config.users.add_item(USER_ADDITIONAL_DATA.list, &refs);
    }
    let layout = crate::account::Layout::new(install).ok();
    let mut steps = Vec::new();
    if config.users.is_modified() {
        steps.push(Step::write_file(
            crate::config::schema::USERS_CFG,
            config.users.to_bytes(),
        ));
    }
    if !audit.is_empty() {
        let log = layout.map_or_else(
            || PathBuf::from("store/logs/config.log"),
            |l| l.config_log(),
        );
        let lines: Vec<String> = audit.iter().map(|l| audit_line(TOOL, l)).collect();
        steps.push(Step::AppendLine {
            path: log,
            line: lines.join("\n"),
        });
    }
    let accounts = planned.len();
    Ok(Imported {
        plan: Plan {
            tool: TOOL.into(),
            description: format!("import {accounts} accounts ({created} groups created)"),
            steps,
            warnings: Vec::new(),
        },
        credentials,
        accounts,
        groups_created: created,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_policy() {
        assert_eq!(check_password("VbD66op1", "abird"), Ok(()));
        assert!(check_password("short1A", "x").is_err());
        assert!(check_password("alllowercase1", "x").is_err());
        assert!(check_password("Abird1234", "abird").is_err());
        for name in ["abird", "x", "Admin"] {
            let p = generate_password(name);
            assert_eq!(check_password(&p, name), Ok(()), "{p}");
            assert_eq!(p.len(), 16);
        }
        assert!(
            is_stored_form("D3S:00ff") && is_stored_form("NUL:") && !is_stored_form("Secret:1")
        );
    }
}

//! Reading what to import: the vendor's CSV, a TOML file, another installation's users.cfg.
//! Each row keeps the file and line (and column) of every value, for messages.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{COLUMNS, ImportError, Vars};
use crate::config::schema::{ALIAS, GROUP, USER, USER_ADDITIONAL_DATA};
use crate::config::{Document, list_tokens};

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
    pub(super) fn get(&self, var: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.var == var)
    }
    pub(super) fn at(&self, line: usize, column: &str, message: impl std::fmt::Display) -> String {
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

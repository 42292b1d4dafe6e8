//! Reading what to import: the vendor's CSV, a TOML file, another installation's users.cfg.
//! Each row keeps the file and line (and column) of every value, for messages.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{COLUMNS, ImportError, Vars};
use crate::config::schema::{ALIAS, GROUP, TEMPLATE, USER, USER_ADDITIONAL_DATA};
use crate::config::{Document, check_value, check_variable_name, list_tokens};
use crate::problem::Problem;

/// One value of a row, with where it came from.
#[derive(Debug, Clone)]
pub struct Field {
    /// The User variable it sets.
    pub var: String,
    /// The column (CSV) or key (TOML) that gave it, for messages.
    pub column: String,
    /// The value, as read.
    pub value: String,
    /// The line of the file it is on.
    pub line: usize,
}

/// One account to create.
#[derive(Debug, Clone, Default)]
pub struct Row {
    /// The file it was read from.
    pub file: PathBuf,
    /// The line it starts on.
    pub line: usize,
    /// Its values, in the order read.
    pub fields: Vec<Field>,
    /// Per-row domain and template (TOML), with their lines.
    pub domain: Option<(String, usize)>,
    /// Per-row template (TOML), with its line.
    pub template: Option<(String, usize)>,
    /// What reading found wrong with the row (a value refused; a row that could not be read at
    /// all has no fields): reported with the plan's problems, so that one run names them all.
    pub problems: Vec<Problem>,
    /// Its keys may name any User variable (TOML), so each is checked against those the
    /// server's accounts have: a typo is refused rather than written into users.cfg.
    pub any_variable: bool,
}

impl Row {
    /// A row that could not be read: only its problem.
    fn unreadable(path: &Path, line: usize, problem: Problem) -> Row {
        Row {
            file: path.to_owned(),
            line,
            problems: vec![problem],
            ..Row::default()
        }
    }

    pub(super) fn get(&self, var: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.var == var)
    }
    pub(super) fn at(&self, line: usize, column: &str, message: impl std::fmt::Display) -> Problem {
        Problem::at(format!("{}:{line}", self.file.display()), column, message)
    }
}

/// Each value [`check_value`] refuses (a control character; a line break in a one-line
/// value), as `FILE:LINE: COLUMN: why`: found while reading, with the place in the input, rather
/// than later by the document, which knows only the users.cfg it would write.
fn refused_values(path: &Path, fields: &[Field]) -> Vec<Problem> {
    fields
        .iter()
        .filter_map(|f| {
            check_variable_name(&f.var)
                .and_then(|()| check_value(&f.var, &f.value))
                .err()
                .map(|why| Problem::at(format!("{}:{}", path.display(), f.line), &f.column, why))
        })
        .collect()
}

fn read(path: &Path) -> Result<String, ImportError> {
    let bytes = std::fs::read(path).map_err(|source| ImportError::Read {
        path: path.to_owned(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let (line, _) = crate::config::line_column(e.as_bytes(), e.utf8_error().valid_up_to());
        let origin = format!("{}:{line}", path.display());
        ImportError::invalid(vec![Problem::at(
            origin,
            "-",
            "not UTF-8 (save the file as UTF-8)",
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
    let vars = csv_columns(path, &mut reader)?;
    let bytes = text.as_bytes();
    let mut lines = crate::csv_lines::RecordLines::new(bytes, None);
    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let line = e.position().map_or(0, |p| lines.line_at(p.byte()));
                let problem = Problem::at(format!("{}:{line}", path.display()), "-", e);
                rows.push(Row::unreadable(path, line, problem));
                continue;
            }
        }
        let start = record.position().map_or(0, csv::Position::byte);
        let line = lines.line_at(start);
        let end = reader.position().byte();
        let raw = &bytes[(start as usize).min(bytes.len())..(end as usize).min(bytes.len())];
        rows.extend(csv_row(path, line, raw, &record, &vars));
    }
    Ok(rows)
}

/// The header's columns, each with the User variable it sets; refused when a column is unknown
/// or given twice, or there is no Name.
fn csv_columns(
    path: &Path,
    reader: &mut csv::Reader<&[u8]>,
) -> Result<Vec<(String, String)>, ImportError> {
    let at =
        |column: &str, message: &str| Problem::at(format!("{}:1", path.display()), column, message);
    let headers = reader
        .headers()
        .map_err(|e| ImportError::invalid(vec![at("-", &e.to_string())]))?;
    let mut problems = Vec::new();
    let mut vars: Vec<(String, String)> = Vec::new();
    for h in headers {
        match COLUMNS.iter().find(|(c, _)| c.eq_ignore_ascii_case(h)) {
            // Which of two columns would win is a guess: refused.
            Some((c, _)) if vars.iter().any(|(seen, _)| seen == c) => {
                problems.push(at(h, "the header names this column twice"));
            }
            Some((c, v)) => vars.push(((*c).to_owned(), (*v).to_owned())),
            None => problems.push(at(
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
            "Name",
            "the header has no Name column, which is required",
        ));
    }
    if !problems.is_empty() {
        return Err(ImportError::invalid(problems));
    }
    Ok(vars)
}

/// The row of one record at `line` (`raw` its text), or none for a record of empty fields.
fn csv_row(
    path: &Path,
    line: usize,
    raw: &[u8],
    record: &csv::StringRecord,
    vars: &[(String, String)],
) -> Option<Row> {
    let at = |message: &str| Problem::at(format!("{}:{line}", path.display()), "-", message);
    // A quote left open takes in the rows after it, as one value: the record's own text then
    // holds an odd number of quotes.
    if raw.iter().filter(|&&b| b == b'"').count() % 2 == 1 {
        let lines = raw.trim_ascii().iter().filter(|&&b| b == b'\n').count();
        let problem = at(&if lines > 0 {
            format!(
                "a quote is not closed: lines {line} to {} read as one row",
                line + lines
            )
        } else {
            "a quote is not closed".to_owned()
        });
        return Some(Row::unreadable(path, line, problem));
    }
    if record.iter().all(str::is_empty) {
        return None;
    }
    if record.len() > vars.len() {
        let problem = at(&format!(
            "{} fields, but the header names {}",
            record.len(),
            vars.len()
        ));
        return Some(Row::unreadable(path, line, problem));
    }
    let fields: Vec<Field> = record
        .iter()
        .zip(vars)
        .map(|(value, (column, var))| Field {
            var: var.clone(),
            column: column.clone(),
            value: value.to_owned(),
            line,
        })
        .collect();
    Some(Row {
        file: path.to_owned(),
        line,
        problems: refused_values(path, &fields),
        fields,
        ..Row::default()
    })
}

/// Reads a TOML file of `[[user]]` tables: the CSV's fields, any User variable, and optional
/// `domain` and `template`.
pub fn read_toml(path: &Path) -> Result<Vec<Row>, ImportError> {
    use toml::Spanned;
    // Only `[[user]]` tables: a misspelt table or a key outside them is refused, not ignored.
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        #[serde(default)]
        user: Vec<Spanned<BTreeMap<String, Spanned<toml::Value>>>>,
    }
    let text = read(path)?;
    let line_of = |offset: usize| crate::config::line_column(text.as_bytes(), offset).0;
    let file: File = toml::from_str(&text).map_err(|e| {
        let line = e.span().map_or(0, |s| line_of(s.start));
        ImportError::invalid(vec![Problem::at(
            format!("{}:{line}", path.display()),
            "-",
            e.message(),
        )])
    })?;
    let mut rows = Vec::new();
    for table in file.user {
        let mut row = Row {
            file: path.to_owned(),
            line: line_of(table.span().start),
            any_variable: true,
            ..Row::default()
        };
        // Tables keep keys sorted; order the fields as the file wrote them.
        let mut entries: Vec<(String, Spanned<toml::Value>)> =
            table.into_inner().into_iter().collect();
        entries.sort_by_key(|(_, v)| v.span().start);
        for (key, value) in entries {
            let line = line_of(value.span().start);
            toml_entry(&mut row, path, key, value.get_ref(), line);
        }
        rows.push(row);
    }
    Ok(rows)
}

/// One `key = value` of a `[[user]]` table, into the row: a field, its domain or template,
/// or a problem at `line`.
fn toml_entry(row: &mut Row, path: &Path, key: String, value: &toml::Value, line: usize) {
    let origin = format!("{}:{line}", path.display());
    // `domain` and `template` in any case (`Domain` is how users.cfg spells it).
    let key = match key.to_ascii_lowercase().as_str() {
        k @ ("domain" | "template") => k.to_owned(),
        _ => key,
    };
    let (var, given_twice) = match key.as_str() {
        "domain" => (USER.domain, row.domain.is_some()),
        "template" => (TEMPLATE.name, row.template.is_some()),
        _ => (
            (COLUMNS.iter())
                .find(|(c, _)| c.eq_ignore_ascii_case(&key))
                .map_or(key.as_str(), |(_, v)| v),
            false,
        ),
    };
    if given_twice {
        let why = "given twice (in two spellings)";
        return row.problems.push(Problem::at(origin, &key, why));
    }
    let text = match toml_value(kind(var), value)
        .and_then(|text| check_value(var, &text).map(|()| text))
    {
        Ok(text) => text,
        Err(why) => return row.problems.push(Problem::at(origin, &key, why)),
    };
    match key.as_str() {
        "domain" => row.domain = Some((text, line)),
        "template" => row.template = Some((text, line)),
        _ => {
            if let Err(why) = check_variable_name(var) {
                return row
                    .problems
                    .push(Problem::at(origin, format!("{key:?}"), why));
            }
            let var = var.to_owned();
            row.fields.push(Field {
                var,
                column: key,
                value: text,
                line,
            });
        }
    }
}

/// What a TOML value may be for a variable.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// A string; where the variable is a comma list, a list of strings too.
    Text { list: bool },
    /// A whole number of 0 or more: quotas (bytes, messages) and codes.
    Count,
    /// 0 or 1, or true or false.
    Flag,
    /// One of these numbers, with what each means.
    Choice(&'static [(i64, &'static str)]),
    /// A variable the toolkit does not know: a string, a whole number or true/false, as written.
    Any,
}

/// The kind of value of a User variable (KERIO-FORMAT.md §2), or of `domain` and `template`.
fn kind(var: &str) -> Kind {
    let text = [
        USER.name,
        USER.domain,
        USER.full_name,
        USER.description,
        USER.password,
        TEMPLATE.name,
    ];
    let lists = [USER.forward_address, USER.email_addresses, USER.groups];
    let counts = [
        USER.quota_storage,
        USER.quota_messages,
        USER.auth_type,
        USER.forward_mode,
    ];
    if text.contains(&var) {
        Kind::Text { list: false }
    } else if lists.contains(&var) {
        Kind::Text { list: true }
    } else if counts.contains(&var) {
        Kind::Count
    } else if var == USER.enabled || var == USER.data_source {
        Kind::Flag
    } else if var == USER.rights {
        Kind::Choice(&[(0, "no rights"), (1, "read-only admin"), (3, "full admin")])
    } else {
        Kind::Any
    }
}

/// A TOML value as the text of a variable of this kind, or why it cannot be one.
fn toml_value(kind: Kind, value: &toml::Value) -> Result<String, String> {
    use toml::Value;
    let what = |v: &Value| match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    let a = |v: &Value| {
        let t = v.type_str();
        let article = if t.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        };
        format!("{article} {t}")
    };
    match (kind, value) {
        (_, Value::Float(_) | Value::Datetime(_) | Value::Table(_)) => {
            Err(format!("{} is not a value a variable can hold", a(value)))
        }
        (Kind::Text { .. }, Value::String(s)) => Ok(s.clone()),
        (Kind::Text { list: true }, Value::Array(items)) => comma_list(items),
        (Kind::Text { list }, other) => Err(format!(
            "must be a string{}, not {}",
            if list { " or a list of strings" } else { "" },
            a(other)
        )),
        (Kind::Count, Value::Integer(i)) if *i >= 0 => Ok(i.to_string()),
        (Kind::Count, Value::String(s))
            if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Ok(s.clone())
        }
        (Kind::Count, other) => Err(format!(
            "must be a whole number of 0 or more, not {}",
            what(other)
        )),
        (Kind::Flag, Value::Boolean(b)) => Ok(u8::from(*b).to_string()),
        (Kind::Flag, Value::Integer(i @ (0 | 1))) => Ok(i.to_string()),
        (Kind::Flag, Value::String(s)) if s == "0" || s == "1" => Ok(s.clone()),
        (Kind::Flag, other) => Err(format!(
            "must be 0 or 1 (or false or true), not {}",
            what(other)
        )),
        (Kind::Choice(choices), Value::Integer(i)) if choices.iter().any(|(c, _)| c == i) => {
            Ok(i.to_string())
        }
        (Kind::Choice(choices), other) => Err(format!(
            "must be one of {}, not {}",
            choices
                .iter()
                .map(|(c, means)| format!("{c} ({means})"))
                .collect::<Vec<_>>()
                .join(", "),
            what(other)
        )),
        (Kind::Any, Value::String(s)) => Ok(s.clone()),
        (Kind::Any, Value::Integer(i)) => Ok(i.to_string()),
        (Kind::Any, Value::Boolean(b)) => Ok(u8::from(*b).to_string()),
        (Kind::Any, Value::Array(items)) => comma_list(items),
    }
}

/// A TOML list of strings as a comma list.
fn comma_list(items: &[toml::Value]) -> Result<String, String> {
    items
        .iter()
        .map(|item| {
            item.as_str()
                .ok_or_else(|| "a list may hold only strings".to_owned())
        })
        .collect::<Result<Vec<_>, _>>()
        .map(|parts| parts.join(","))
}

/// What a migration brings beyond the users: their groups, aliases and password history.
#[derive(Debug, Clone, Default)]
pub struct Migration {
    /// Group records (variables in order) of the source, for groups to create.
    pub groups: Vec<Vars>,
    /// The source's aliases that deliver to a migrated user, with their lines.
    pub aliases: Vec<(usize, Vars)>,
    /// The migrated users' password-history records.
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
    // What is copied is checked as what is read from a CSV: a control character in the old
    // file (`&#x1b;`) is refused with its line, not carried into this server's users.cfg.
    let mut problems = Vec::new();
    let mut check = |item: crate::config::ItemRef<'_>| {
        for (k, v) in item.variables() {
            if let Err(why) = check_variable_name(k).and_then(|()| check_value(k, v)) {
                let line = item.variable_line(k).unwrap_or(item.line());
                problems.push(Problem::at(format!("{}:{line}", path.display()), k, why));
            }
        }
    };
    let mut rows = Vec::new();
    let mut addresses = Vec::new();
    for item in doc.items(USER.list) {
        let d = item.get(USER.domain).unwrap_or("");
        if !wanted(d) {
            continue;
        }
        check(item);
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
            problems: Vec::new(),
            // Another server's accounts: their variables are the vendor's, whatever this
            // server's accounts have.
            any_variable: false,
        });
    }
    let mut migration = Migration::default();
    for item in doc.items(GROUP.list) {
        if wanted(item.get(GROUP.domain).unwrap_or("")) {
            check(item);
            migration.groups.push(vars(item));
        }
    }
    for item in doc.items(ALIAS.list) {
        let d = item.get(ALIAS.domain).unwrap_or("");
        let to = item.get(ALIAS.deliver_to).unwrap_or("");
        if wanted(d) && list_tokens(to).any(|t| addresses.contains(&t.to_ascii_lowercase())) {
            check(item);
            migration.aliases.push((item.line(), vars(item)));
        }
    }
    for item in doc.items(USER_ADDITIONAL_DATA.list) {
        let n = item.get(USER_ADDITIONAL_DATA.name).unwrap_or("");
        let d = item.get(USER_ADDITIONAL_DATA.domain).unwrap_or("");
        if addresses.contains(&format!("{n}@{d}").to_ascii_lowercase()) {
            check(item);
            migration.additional_data.push(vars(item));
        }
    }
    if !problems.is_empty() {
        return Err(ImportError::invalid(problems));
    }
    Ok((rows, migration))
}

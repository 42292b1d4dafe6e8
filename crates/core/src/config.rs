//! `mailserver.cfg` and `users.cfg` as byte-preserving documents.
//!
//! Both files share one grammar (KERIO-FORMAT.md §2): a root element holding `<list name="X">`s
//! of `<listitem>`s of `<variable name="Field">value</variable>`, and `<table name="X">`s of
//! variables. A [`Document`] keeps the original text and remembers where every value sits in it;
//! edits are recorded against that map and [`Document::to_bytes`] splices only the edited ranges
//! back in. Everything else (line endings, indentation, comments, unknown elements and
//! attributes, character references) is copied through untouched, so an unedited document
//! serialises to its exact input, and a value set back to what it was is clean again.
//!
//! Other tools write these files too (KERIO-FORMAT.md §1): Notepad and .NET add a byte order
//! mark, Python's ElementTree writes no declaration and `<x />`, people write single quotes and
//! CRLF. All of it is read and kept; an empty list written self-closed is expanded in place when
//! an item is added to it. What edits write is checked by [`check_value`]: no control
//! characters, and no line breaks in one-line variables.
//!
//! The names of lists and variables live in [`schema`], and the typed views in [`view`].

mod parse;
pub mod schema;
mod value;
pub mod view;

use std::ops::Range;
use std::path::{Path, PathBuf};

pub use value::{check_value, check_variable_name};
pub use view::Config;

/// What can go wrong reading a config file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
    /// The file holds bytes that are not UTF-8, first at `line`:`column` (1-based).
    #[error("{path}:{line}:{column}: not valid UTF-8")]
    Encoding {
        /// The config file.
        path: PathBuf,
        /// The line of the first bad byte.
        line: usize,
        /// The column of the first bad byte.
        column: usize,
    },
    /// The file is not well-formed XML.
    #[error("{path}:{line}:{column}: malformed XML: {message}")]
    Xml {
        /// The config file.
        path: PathBuf,
        /// Where the XML parser stopped: line.
        line: usize,
        /// Where the XML parser stopped: column.
        column: usize,
        /// The XML parser's reason.
        message: String,
    },
    /// Well-formed XML that is not a config file's layout (or a record no server writes).
    #[error("{path}:{line}: {element}: {message}")]
    Structure {
        /// The config file.
        path: PathBuf,
        /// The line of the element.
        line: usize,
        /// The element's name (`listitem`, `variable`, …).
        element: String,
        /// What is wrong with it.
        message: String,
    },
    /// A value (or variable name) an edit would write holds a character [`check_value`]
    /// refuses; `line` is the item's, `None` for an item being added.
    #[error("{}: {field}: {reason}", at_line(path, *line))]
    Value {
        /// The config file.
        path: PathBuf,
        /// The item's line.
        line: Option<usize>,
        /// The variable (or its name) refused.
        field: String,
        /// Why [`check_value`] refused it.
        reason: String,
    },
}

/// `path:line`, or `path` alone.
fn at_line(path: &Path, line: Option<usize>) -> String {
    match line {
        Some(line) => format!("{}:{line}", path.display()),
        None => path.display().to_string(),
    }
}

/// Which section of a document an item belongs to, and where it is among the section's items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct ItemId {
    section: usize,
    item: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SectionKind {
    List,
    Table,
}

#[derive(Debug, Clone)]
struct Section {
    kind: SectionKind,
    name: String,
    /// Offset of the section's closing tag in the source, or `None` for a section added by an
    /// edit or written self-closed.
    close: Option<usize>,
    /// The whole element of a section written self-closed (`<list name="Alias" />`): an empty
    /// section, which an edit that adds to it expands in place.
    self_closed: Option<Range<usize>>,
    /// Indentation of the section's start tag, of its items, and of their variables, as the
    /// file has them (or one more unit each, where the file has no example).
    indent: String,
    item_indent: String,
    var_indent: String,
    items: Vec<Item>,
}

#[derive(Debug, Clone)]
struct Item {
    /// The `<listitem>` element in the source (for a table: the table), `None` when added.
    span: Option<Range<usize>>,
    /// Offset of the item's closing tag, where added variables go.
    close: Option<usize>,
    line: usize,
    removed: bool,
    vars: Vec<Variable>,
}

/// A byte range of the source, kept small: a config file has millions of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// Text that is either a slice of the source as it stands, or decoded (it held references).
#[derive(Debug, Clone)]
enum Text {
    Source(Span),
    Decoded(Box<str>),
}

impl Text {
    fn as_str<'a>(&'a self, source: &'a str) -> &'a str {
        match self {
            Text::Source(span) => &source[span.range()],
            Text::Decoded(text) => text,
        }
    }
}

#[derive(Debug, Clone)]
struct Variable {
    name: Text,
    original: Option<Original>,
    /// The value an edit set; `None` while the variable holds what the file has.
    edited: Option<Box<str>>,
}

impl Variable {
    fn name<'a>(&'a self, source: &'a str) -> &'a str {
        self.name.as_str(source)
    }

    fn value<'a>(&'a self, source: &'a str) -> &'a str {
        match (&self.edited, &self.original) {
            (Some(v), _) => v,
            (None, Some(o)) => o.value.as_str(source),
            (None, None) => "",
        }
    }
}

#[derive(Debug, Clone)]
struct Original {
    value: Text,
    /// The bytes between the start and end tags; for `<variable name="x"/>` the whole element.
    content: Span,
    self_closing: bool,
    /// The value holds markup (child elements or comments): it can be read but not edited.
    structured: bool,
}

/// A config file held as its original text plus a map of its lists, tables and variables.
#[derive(Debug, Clone)]
pub struct Document {
    path: PathBuf,
    /// The SHA-256 of the bytes read, so that a change can refuse a file written since.
    read_sha256: String,
    source: String,
    newline: &'static str,
    /// One level of indentation, as the file uses it.
    unit: String,
    /// Offset of the root element's closing tag, where added sections go.
    root_close: usize,
    sections: Vec<Section>,
}

/// What an edit does to one record (a list's item, or a table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordAction {
    /// The record is new.
    Insert,
    /// Some of the record's variables change.
    Update,
    /// The record is removed.
    Delete,
}

/// One record an edit changes: see [`Document::record_changes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordChange {
    /// Whether the record is added, changed or removed.
    pub action: RecordAction,
    /// The list (or table) name: `User`, `Alias`, `Group`, …
    pub list: String,
    /// For an insert every variable of the new record, for an update the ones it changes, in
    /// record order; empty for a delete.
    pub vars: Vec<(String, String)>,
    /// The record's key variables as the file had them (`Name`, `Domain`); empty for an insert
    /// and for a table.
    pub key: Vec<(String, String)>,
}

/// A read-only view of one item (a list's `<listitem>`, or a table).
#[derive(Debug, Clone, Copy)]
pub struct ItemRef<'d> {
    doc: &'d Document,
    id: ItemId,
}

impl<'d> ItemRef<'d> {
    /// The item's place in its document, to edit it by.
    pub fn id(&self) -> ItemId {
        self.id
    }

    fn item(&self) -> &'d Item {
        &self.doc.sections[self.id.section].items[self.id.item]
    }

    /// The current (decoded) value of a variable, if the item has it.
    pub fn get(&self, name: &str) -> Option<&'d str> {
        let source = self.doc.source.as_str();
        self.item()
            .vars
            .iter()
            .find(|v| v.name(source) == name)
            .map(|v| v.value(source))
    }

    /// The variables of the item in file order, as `(name, value)`.
    pub fn variables(&self) -> impl Iterator<Item = (&'d str, &'d str)> + 'd {
        let source = self.doc.source.as_str();
        self.item()
            .vars
            .iter()
            .map(move |v| (v.name(source), v.value(source)))
    }

    /// The line of the file variable `name` starts on (1-based), if the file has it.
    pub fn variable_line(&self, name: &str) -> Option<usize> {
        let source = self.doc.source.as_str();
        let var = self.item().vars.iter().find(|v| v.name(source) == name)?;
        let at = var.original.as_ref()?.content.start as usize;
        Some(line_column(source.as_bytes(), at).0)
    }

    /// The line of the file the item starts on (1-based; 0 for an item added by an edit).
    pub fn line(&self) -> usize {
        self.item().line
    }

    /// The document the item is in.
    pub fn document(&self) -> &'d Document {
        self.doc
    }
}

impl Document {
    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<Document, ConfigError> {
        let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Document::parse(path, bytes)
    }

    /// Parses the bytes of a config file; `path` is used in errors and kept for saving.
    pub fn parse(path: &Path, bytes: Vec<u8>) -> Result<Document, ConfigError> {
        let read_sha256 = crate::hash::sha256_hex(&bytes);
        let source = String::from_utf8(bytes).map_err(|e| {
            let at = e.utf8_error().valid_up_to();
            let (line, column) = line_column(e.as_bytes(), at);
            ConfigError::Encoding {
                path: path.to_owned(),
                line,
                column,
            }
        })?;
        let map = parse::parse(path, &source)?;
        let newline = if source.contains("\r\n") {
            "\r\n"
        } else {
            "\n"
        };
        Ok(Document {
            path: path.to_owned(),
            read_sha256,
            newline,
            unit: map.unit,
            root_close: map.root_close,
            sections: map.sections,
            source,
        })
    }

    /// The file the document was read from, and is saved to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The SHA-256 (hex) of the bytes this document was read from.
    pub fn read_sha256(&self) -> &str {
        &self.read_sha256
    }

    /// The items of the list (or the one item of the table) called `name`, in file order,
    /// leaving out removed ones.
    pub fn items<'d>(&'d self, name: &'d str) -> impl Iterator<Item = ItemRef<'d>> + 'd {
        self.sections
            .iter()
            .enumerate()
            .filter(move |(_, s)| s.kind == SectionKind::List && s.name == name)
            .flat_map(move |(s, section)| {
                section
                    .items
                    .iter()
                    .enumerate()
                    .filter(|(_, item)| !item.removed)
                    .map(move |(i, _)| ItemRef {
                        doc: self,
                        id: ItemId {
                            section: s,
                            item: i,
                        },
                    })
            })
    }

    /// The table called `name`, if the document has one.
    pub fn table<'d>(&'d self, name: &str) -> Option<ItemRef<'d>> {
        let s = self
            .sections
            .iter()
            .position(|s| s.kind == SectionKind::Table && s.name == name)?;
        Some(ItemRef {
            doc: self,
            id: ItemId {
                section: s,
                item: 0,
            },
        })
    }

    /// The item at `id` (from [`ItemRef::id`] on this document).
    pub fn item(&self, id: ItemId) -> ItemRef<'_> {
        ItemRef { doc: self, id }
    }

    /// Names of the lists and tables in file order: unknown ones included.
    pub fn section_names(&self) -> impl Iterator<Item = &str> {
        self.sections.iter().map(|s| s.name.as_str())
    }

    /// The last list called `name`: where added items go.
    fn section_index(&self, name: &str) -> Option<usize> {
        self.sections
            .iter()
            .rposition(|s| s.kind == SectionKind::List && s.name == name)
    }

    fn item_mut(&mut self, id: ItemId) -> &mut Item {
        &mut self.sections[id.section].items[id.item]
    }

    /// Sets a variable of an item, adding it (before the item's closing tag) if it is missing.
    /// Setting a value back to what the file held makes the variable clean again. A value (or
    /// name) holding a character [`check_value`] refuses is an error, unless it is the very value
    /// the file holds.
    pub fn set(&mut self, id: ItemId, name: &str, value: &str) -> Result<(), ConfigError> {
        let line = self.item(id).line();
        let refused = |reason: String| ConfigError::Value {
            path: self.path.clone(),
            line: (line > 0).then_some(line),
            field: name.to_owned(),
            reason,
        };
        let item = &self.sections[id.section].items[id.item];
        let source = self.source.as_str();
        let var = item.vars.iter().position(|v| v.name(source) == name);
        let original = var
            .and_then(|v| item.vars[v].original.as_ref())
            .map(|o| (o.structured, o.value.as_str(source) == value));
        match original {
            Some((true, _)) => {
                return Err(ConfigError::Structure {
                    path: self.path.clone(),
                    line,
                    element: format!("variable {name}"),
                    message: "holds markup, which this toolkit does not edit".into(),
                });
            }
            // What the file holds is never refused: setting it back only undoes an edit.
            Some((false, true)) => {}
            _ => check_variable_name(name)
                .and_then(|()| check_value(name, value))
                .map_err(refused)?,
        }
        let item = &mut self.sections[id.section].items[id.item];
        match var {
            Some(v) => {
                let var = &mut item.vars[v];
                var.edited = match original {
                    Some((_, true)) => None,
                    _ => Some(value.into()),
                };
            }
            // Into a self-closed `<listitem/>` or `<table name="X"/>` too: it is expanded.
            None => item.vars.push(Variable {
                name: Text::Decoded(name.into()),
                original: None,
                edited: Some(value.into()),
            }),
        }
        Ok(())
    }

    /// Adds a listitem with these variables at the end of the list, creating the list (at the
    /// end of the document) if the file has none. A list written self-closed
    /// (`<list name="Alias" />`) is an empty list: it is expanded in place, never doubled.
    /// Every name and value is checked by [`check_value`] first; a refused one adds nothing.
    pub fn add_item(&mut self, list: &str, vars: &[(&str, &str)]) -> Result<ItemId, ConfigError> {
        for (name, value) in vars {
            check_variable_name(name)
                .and_then(|()| check_value(name, value))
                .map_err(|reason| ConfigError::Value {
                    path: self.path.clone(),
                    line: None,
                    field: format!("{name} (new {list} item)"),
                    reason,
                })?;
        }
        let section = match self.section_index(list) {
            Some(s) => s,
            None => {
                let indent = self.unit.clone();
                self.sections.push(Section {
                    kind: SectionKind::List,
                    name: list.to_owned(),
                    close: None,
                    self_closed: None,
                    item_indent: indent.repeat(2),
                    var_indent: indent.repeat(3),
                    indent,
                    items: Vec::new(),
                });
                self.sections.len() - 1
            }
        };
        let items = &mut self.sections[section].items;
        items.push(Item {
            span: None,
            close: None,
            line: 0,
            removed: false,
            vars: vars
                .iter()
                .map(|(name, value)| Variable {
                    name: Text::Decoded((*name).into()),
                    original: None,
                    edited: Some((*value).into()),
                })
                .collect(),
        });
        Ok(ItemId {
            section,
            item: items.len() - 1,
        })
    }

    /// Removes a listitem (with its whole line, when it stands on lines of its own).
    pub fn remove_item(&mut self, id: ItemId) {
        self.item_mut(id).removed = true;
    }

    /// Undoes [`Document::remove_item`].
    pub fn restore_item(&mut self, id: ItemId) {
        self.item_mut(id).removed = false;
    }

    /// Renames a token of a comma-list variable (`sales,all`), matching it case-insensitively
    /// and leaving the rest of the value, spacing included, as it was. Returns how many tokens
    /// were renamed.
    pub fn rename_token(
        &mut self,
        id: ItemId,
        name: &str,
        old: &str,
        new: &str,
    ) -> Result<usize, ConfigError> {
        let Some(value) = self.item(id).get(name) else {
            return Ok(0);
        };
        let (renamed, count) = replace_list_token(value, old, new);
        if count > 0 {
            self.set(id, name, &renamed)?;
        }
        Ok(count)
    }

    /// Removes every token of a comma-list variable equal to `token` (case-insensitively),
    /// keeping the others and their spacing. Returns how many were removed.
    pub fn remove_token(
        &mut self,
        id: ItemId,
        name: &str,
        token: &str,
    ) -> Result<usize, ConfigError> {
        let Some(value) = self.item(id).get(name) else {
            return Ok(0);
        };
        let (kept, count) = remove_list_token(value, token);
        if count > 0 {
            self.set(id, name, &kept)?;
        }
        Ok(count)
    }

    /// The records the pending edits insert, update and delete, in file order: what the
    /// server's Config log says of a change (see [`crate::audit`]). An item added and removed
    /// again is no change; an update lists only the variables whose value differs from the file.
    pub fn record_changes(&self) -> Vec<RecordChange> {
        let source = self.source.as_str();
        let mut out = Vec::new();
        for section in &self.sections {
            for item in &section.items {
                let current = || {
                    item.vars
                        .iter()
                        .map(|v| (v.name(source).to_owned(), v.value(source).to_owned()))
                        .collect::<Vec<_>>()
                };
                // The record as the file names it: its Name and Domain (the `where` of the log);
                // a record lacking one is named by every variable it had, so that the line never
                // reads as a change to other records too.
                let key = || {
                    let original = || {
                        item.vars.iter().filter_map(|v| {
                            let value = v.original.as_ref()?.value.as_str(source);
                            Some((v.name(source).to_owned(), value.to_owned()))
                        })
                    };
                    let key: Vec<_> = original()
                        .filter(|(name, _)| {
                            crate::config::schema::RECORD_KEY.contains(&name.as_str())
                        })
                        .collect();
                    if key.len() == crate::config::schema::RECORD_KEY.len() {
                        key
                    } else {
                        original().collect()
                    }
                };
                let (action, vars) = match (&item.span, item.removed) {
                    (None, true) => continue,
                    (None, false) => (RecordAction::Insert, current()),
                    (Some(_), true) => (RecordAction::Delete, Vec::new()),
                    (Some(_), false) => {
                        let set: Vec<_> = item
                            .vars
                            .iter()
                            .filter(|v| {
                                v.edited.as_deref().is_some_and(|e| {
                                    v.original
                                        .as_ref()
                                        .is_none_or(|o| o.value.as_str(source) != e)
                                })
                            })
                            .map(|v| (v.name(source).to_owned(), v.value(source).to_owned()))
                            .collect();
                        if set.is_empty() {
                            continue;
                        }
                        (RecordAction::Update, set)
                    }
                };
                let key = if action == RecordAction::Insert || section.kind == SectionKind::Table {
                    Vec::new()
                } else {
                    key()
                };
                out.push(RecordChange {
                    action,
                    list: section.name.clone(),
                    vars,
                    key,
                });
            }
        }
        out
    }

    /// Whether any edit is pending, i.e. [`Document::to_bytes`] differs from the input.
    pub fn is_modified(&self) -> bool {
        !self.patches().is_empty()
    }

    /// The document as bytes: the original input with the edits spliced in.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut patches = self.patches();
        // Insertions at one offset keep the order they were made in.
        patches.sort_by_key(|p| (p.range.start, p.range.end));
        let mut out = String::with_capacity(self.source.len() + 256);
        let mut at = 0;
        for patch in patches {
            out.push_str(&self.source[at..patch.range.start]);
            out.push_str(&patch.text);
            at = patch.range.end;
        }
        out.push_str(&self.source[at..]);
        out.into_bytes()
    }

    fn patches(&self) -> Vec<Patch> {
        let mut patches = Vec::new();
        for section in &self.sections {
            let mut added = String::new();
            for item in &section.items {
                match (&item.span, item.removed) {
                    (Some(span), true) => patches.push(Patch {
                        range: whole_lines(self.source.as_bytes(), span.clone()),
                        text: String::new(),
                    }),
                    (Some(_), false) => self.item_patches(section, item, &mut patches),
                    (None, true) => {}
                    (None, false) => self.render_item(section, item, &mut added),
                }
            }
            if added.is_empty() {
                continue;
            }
            match (section.close, &section.self_closed) {
                (Some(close), _) => {
                    let (at, inline) = self.insertion_point(close);
                    if inline {
                        added.insert_str(0, self.newline);
                        added.push_str(&section.indent);
                    }
                    patches.push(Patch {
                        range: at..at,
                        text: added,
                    });
                }
                // Expanded in place: one list, where the file has it.
                (None, Some(tag)) => {
                    let (open, close) = expand_empty(&self.source[tag.clone()]);
                    patches.push(Patch {
                        range: tag.clone(),
                        text: format!(
                            "{open}{nl}{added}{ind}{close}",
                            nl = self.newline,
                            ind = section.indent
                        ),
                    });
                }
                (None, None) => {
                    let nl = self.newline;
                    let text = format!(
                        "{ind}<list name=\"{name}\">{nl}{added}{ind}</list>{nl}",
                        ind = section.indent,
                        name = escape_attr(&section.name),
                    );
                    let (at, inline) = self.insertion_point(self.root_close);
                    let text = if inline { format!("{nl}{text}") } else { text };
                    patches.push(Patch {
                        range: at..at,
                        text,
                    });
                }
            }
        }
        patches
    }

    fn item_patches(&self, section: &Section, item: &Item, patches: &mut Vec<Patch>) {
        let source = self.source.as_str();
        let mut added = String::new();
        let mut inline = String::new();
        for var in &item.vars {
            let Some(value) = var.edited.as_deref() else {
                continue;
            };
            let name = var.name(source);
            match &var.original {
                // Expanded from its own start tag: attributes and quotes stay as written.
                Some(o) if o.self_closing => patches.push(Patch {
                    range: o.content.range(),
                    text: {
                        let (open, close) = expand_empty(&source[o.content.range()]);
                        format!("{open}{}{close}", escape_text(value))
                    },
                }),
                Some(o) => patches.push(Patch {
                    range: o.content.range(),
                    text: escape_text(value),
                }),
                None => {
                    added.push_str(&section.var_indent);
                    added.push_str(&render_variable(name, value));
                    added.push_str(self.newline);
                    inline.push_str(&render_variable(name, value));
                }
            }
        }
        if added.is_empty() {
            return;
        }
        match (item.close, &item.span) {
            (Some(close), _) => {
                let (at, is_inline) = self.insertion_point(close);
                patches.push(Patch {
                    range: at..at,
                    // An item on one line stays on one line.
                    text: if is_inline { inline } else { added },
                });
            }
            // `<listitem/>` or `<table name="X" />`: expanded in place around the variables.
            (None, Some(span)) => {
                let (open, close) = expand_empty(&source[span.clone()]);
                let text = match self.line_indent(span.start) {
                    Some(indent) => format!("{open}{}{added}{indent}{close}", self.newline),
                    None => format!("{open}{inline}{close}"),
                };
                patches.push(Patch {
                    range: span.clone(),
                    text,
                });
            }
            (None, None) => {}
        }
    }

    fn render_item(&self, section: &Section, item: &Item, out: &mut String) {
        let nl = self.newline;
        let indent = &section.item_indent;
        out.push_str(indent);
        out.push_str("<listitem>");
        out.push_str(nl);
        for var in &item.vars {
            out.push_str(&section.var_indent);
            out.push_str(&render_variable(
                var.name(&self.source),
                var.value(&self.source),
            ));
            out.push_str(nl);
        }
        out.push_str(indent);
        out.push_str("</listitem>");
        out.push_str(nl);
    }

    /// Where to insert before the closing tag at `close`: at the start of its line when only
    /// indentation precedes it there (returns `false`), else right at the tag (`true`: inline).
    fn insertion_point(&self, close: usize) -> (usize, bool) {
        let line_start = self.source[..close].rfind('\n').map_or(0, |i| i + 1);
        if self.source[line_start..close]
            .bytes()
            .all(|b| b == b' ' || b == b'\t')
        {
            (line_start, false)
        } else {
            (close, true)
        }
    }

    /// The indentation before `offset` when only spaces and tabs precede it on its line.
    fn line_indent(&self, offset: usize) -> Option<&str> {
        let line_start = self.source[..offset].rfind('\n').map_or(0, |i| i + 1);
        let before = &self.source[line_start..offset];
        before
            .bytes()
            .all(|b| b == b' ' || b == b'\t')
            .then_some(before)
    }
}

/// Widens a range of `src` (an element, an entry) to its whole lines when it stands on lines of
/// its own: the indentation before it, blanks after it and its line break.
pub(crate) fn whole_lines(src: &[u8], span: Range<usize>) -> Range<usize> {
    let mut start = span.start;
    while start > 0 && matches!(src[start - 1], b' ' | b'\t') {
        start -= 1;
    }
    let mut end = span.end;
    while end < src.len() && matches!(src[end], b' ' | b'\t') {
        end += 1;
    }
    let at_line_start = start == 0 || src[start - 1] == b'\n';
    let newline_len = if src[end..].starts_with(b"\r\n") {
        2
    } else if src[end..].starts_with(b"\n") {
        1
    } else {
        0
    };
    if at_line_start && newline_len > 0 {
        start..end + newline_len
    } else {
        span
    }
}

#[derive(Debug)]
struct Patch {
    range: Range<usize>,
    text: String,
}

/// The start and end tags that replace a self-closed element (`<list name='A' />`): its own
/// start tag, attributes and quoting as written, and the matching end tag.
fn expand_empty(element: &str) -> (String, String) {
    let open = element.strip_suffix("/>").unwrap_or(element).trim_end();
    let name = open
        .trim_start_matches('<')
        .split(|c: char| c.is_ascii_whitespace() || c == '/' || c == '>')
        .next()
        .unwrap_or_default();
    (format!("{open}>"), format!("</{name}>"))
}

fn render_variable(name: &str, value: &str) -> String {
    format!(
        "<variable name=\"{}\">{}</variable>",
        escape_attr(name),
        escape_text(value)
    )
}

/// Escapes text content: `&`, `<`, `>`, and carriage returns (which XML would otherwise fold).
pub fn escape_text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes an attribute value written between double quotes.
pub fn escape_attr(value: &str) -> String {
    escape_text(value).replace('"', "&quot;")
}

/// The tokens of a comma-list value, trimmed, empty ones left out.
pub fn list_tokens(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|t| !t.is_empty())
}

/// Whether a comma-list value holds `token`, compared case-insensitively.
pub fn list_contains(value: &str, token: &str) -> bool {
    list_tokens(value).any(|t| t.eq_ignore_ascii_case(token))
}

/// Replaces every token of a comma list equal to `old` (case-insensitively) by `new`, keeping
/// the spacing around it. Returns the new value and how many tokens were replaced.
pub fn replace_list_token(value: &str, old: &str, new: &str) -> (String, usize) {
    let mut count = 0;
    let parts: Vec<String> = value
        .split(',')
        .map(|part| {
            let trimmed = part.trim();
            if !trimmed.is_empty() && trimmed.eq_ignore_ascii_case(old) {
                count += 1;
                let lead = part.len() - part.trim_start().len();
                let trail = part.trim_end().len();
                format!("{}{}{}", &part[..lead], new, &part[trail..])
            } else {
                part.to_owned()
            }
        })
        .collect();
    (parts.join(","), count)
}

/// Removes every token of a comma list equal to `token` (case-insensitively), keeping the other
/// tokens and their spacing. Returns the new value and how many were removed.
pub fn remove_list_token(value: &str, token: &str) -> (String, usize) {
    let parts: Vec<&str> = value.split(',').collect();
    let kept: Vec<&str> = parts
        .iter()
        .copied()
        .filter(|p| !p.trim().eq_ignore_ascii_case(token) || p.trim().is_empty())
        .collect();
    let removed = parts.len() - kept.len();
    if removed == 0 {
        return (value.to_owned(), 0);
    }
    let mut joined = kept.join(",");
    if kept.len() == 1 && kept[0].trim().is_empty() {
        joined = String::new();
    }
    (joined.trim_start_matches(',').to_owned(), removed)
}

/// 1-based line and column (in bytes) of `offset` in `bytes`.
pub fn line_column(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    (line, offset - line_start + 1)
}

#[cfg(test)]
mod tests;

//! Reads a config file into the map of [`super::Document`] in one streaming pass.
//!
//! quick-xml checks well-formedness (matching end tags, legal references) and gives the byte
//! position of every event, which is all the map needs: no tree is built. Values are kept as
//! spans of the source unless they hold references or CDATA, so a 50,000-user file costs little
//! more memory than its text.

use std::path::Path;

use std::ops::Range;

use quick_xml::events::{BytesRef, BytesStart, Event};

use super::{ConfigError, Item, Original, Section, SectionKind, Span, Text, Variable, line_column};

pub(super) struct Map {
    pub sections: Vec<Section>,
    pub root_close: usize,
    pub unit: String,
}

/// What the parser is inside of.
enum Frame {
    Root,
    Section,
    Item,
    Variable(Open),
    /// An element the toolkit does not interpret (inside a variable, it makes it structured).
    Other,
}

/// A variable being read.
struct Open {
    name: Text,
    content_start: usize,
    /// The decoded value, filled only when it differs from the raw text.
    decoded: String,
    needs_decoding: bool,
    structured: bool,
}

impl Open {
    /// From here on the value differs from its raw text: copy what was read so far (plain text,
    /// up to `at`) and collect the rest decoded.
    fn start_decoding(&mut self, source: &str, at: usize) {
        if !self.needs_decoding {
            self.needs_decoding = true;
            self.decoded = source[self.content_start..at].to_owned();
        }
    }
}

impl Item {
    /// An item whose start tag spans `tag`; its end and close are filled in at its end tag.
    fn opened(tag: std::ops::Range<usize>, line: usize) -> Item {
        Item {
            span: Some(tag),
            close: None,
            line,
            removed: false,
            vars: Vec::new(),
        }
    }
}

fn span(range: std::ops::Range<usize>) -> Span {
    // Config files are far below 4 GiB; `parse` refuses larger ones.
    Span {
        start: range.start as u32,
        end: range.end as u32,
    }
}

pub(super) fn parse(path: &Path, source: &str) -> Result<Map, ConfigError> {
    let mut p = Parser {
        path,
        source,
        stack: Vec::new(),
        sections: Vec::new(),
        root_close: None,
        line_at: (0, 1),
    };
    if u32::try_from(source.len()).is_err() {
        return Err(p.xml_error(0, "larger than 4 GiB".into()));
    }
    // A UTF-8 byte order mark (Notepad, .NET XDocument) stays in the source, so that it is
    // written back, but the reader starts after it: quick-xml would skip it and count its
    // positions from after it, three bytes short of the source's.
    let base = if source.starts_with('\u{feff}') {
        '\u{feff}'.len_utf8()
    } else {
        0
    };
    let mut reader = quick_xml::Reader::from_str(&source[base..]);
    loop {
        let start = base + reader.buffer_position() as usize;
        let event = (reader.read_event())
            .map_err(|e| p.xml_error(base + reader.error_position() as usize, e.to_string()))?;
        let end = base + reader.buffer_position() as usize;
        match event {
            Event::Start(ref e) => p.start(e, start..end, false)?,
            Event::Empty(ref e) => p.start(e, start..end, true)?,
            Event::End(_) => p.end(start..end),
            Event::Text(ref t) if matches!(p.stack.last(), Some(Frame::Variable(_))) => {
                let raw = t.decode().map_err(|e| p.xml_error(start, e.to_string()))?;
                p.text(start, &raw);
            }
            Event::GeneralRef(ref r) => p.reference(start, r)?,
            Event::CData(ref c) => {
                if let Some(open) = p.open_variable() {
                    open.start_decoding(source, start);
                    open.decoded.push_str(&String::from_utf8_lossy(c));
                }
            }
            Event::Comment(_) | Event::PI(_) => {
                if let Some(open) = p.open_variable() {
                    open.start_decoding(source, start);
                    open.structured = true;
                }
            }
            Event::Text(_) | Event::Decl(_) | Event::DocType(_) => {}
            Event::Eof => break,
        }
    }
    p.finish()
}

/// The state of one streaming pass.
struct Parser<'s> {
    path: &'s Path,
    source: &'s str,
    stack: Vec<Frame>,
    sections: Vec<Section>,
    root_close: Option<usize>,
    /// Items come in file order, so lines are counted forward from the previous one: the
    /// offset and line counted to.
    line_at: (usize, usize),
}

impl Parser<'_> {
    fn xml_error(&self, at: usize, message: String) -> ConfigError {
        let (line, column) = line_column(self.source.as_bytes(), at);
        ConfigError::Xml {
            path: self.path.to_owned(),
            line,
            column,
            message,
        }
    }

    fn structure(&self, at: usize, element: &str, message: &str) -> ConfigError {
        ConfigError::Structure {
            path: self.path.to_owned(),
            line: line_column(self.source.as_bytes(), at).0,
            element: element.to_owned(),
            message: message.to_owned(),
        }
    }

    /// The line of `offset`, at or after the last one asked for.
    fn line(&mut self, offset: usize) -> usize {
        let newlines = self.source.as_bytes()[self.line_at.0..offset]
            .iter()
            .filter(|&&b| b == b'\n');
        self.line_at = (offset, self.line_at.1 + newlines.count());
        self.line_at.1
    }

    /// The `name` attribute: a span of the source, or its decoded text when it has references.
    fn name_of(&self, e: &BytesStart, at: usize) -> Result<Text, ConfigError> {
        let attr = (e.try_get_attribute("name"))
            .map_err(|err| self.xml_error(at, err.to_string()))?
            .ok_or_else(|| {
                let element = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                self.structure(at, &element, "has no name attribute")
            })?;
        let raw = &attr.value;
        let value_start = raw.as_ptr() as usize - self.source.as_ptr() as usize;
        if raw.contains(&b'&') {
            let value = attr
                .unescape_value()
                .map_err(|err| self.xml_error(at, err.to_string()))?;
            Ok(Text::Decoded(value.into()))
        } else {
            Ok(Text::Source(span(value_start..value_start + raw.len())))
        }
    }

    fn open_variable(&mut self) -> Option<&mut Open> {
        match self.stack.last_mut() {
            Some(Frame::Variable(open)) => Some(open),
            _ => None,
        }
    }

    /// A start tag (or an empty element) at `tag`.
    fn start(&mut self, e: &BytesStart, tag: Range<usize>, empty: bool) -> Result<(), ConfigError> {
        let in_table = self
            .sections
            .last()
            .is_some_and(|s| s.kind == SectionKind::Table);
        let frame = match (self.stack.last(), e.name().as_ref()) {
            (None, _) => Frame::Root,
            (Some(Frame::Root), b"list") => self.section(e, SectionKind::List, tag, empty)?,
            (Some(Frame::Root), b"table") => self.section(e, SectionKind::Table, tag, empty)?,
            (Some(Frame::Section), b"listitem") => self.item(tag),
            (Some(Frame::Item), b"variable") => self.variable(e, tag, empty)?,
            (Some(Frame::Section), b"variable") if in_table => self.variable(e, tag, empty)?,
            (Some(Frame::Variable(_)), _) => {
                let source = self.source;
                if let Some(open) = self.open_variable() {
                    open.start_decoding(source, tag.start);
                    open.structured = true;
                }
                Frame::Other
            }
            _ => Frame::Other,
        };
        // `<list name="X"/>`, `<listitem/>`, `<variable/>`: no closing tag; an edit adding to
        // it replaces the whole element (see `self_closed` and `Item::span`).
        if !empty {
            self.stack.push(frame);
        }
        Ok(())
    }

    /// A `<list>` or `<table>` of the root.
    fn section(
        &mut self,
        e: &BytesStart,
        kind: SectionKind,
        tag: Range<usize>,
        empty: bool,
    ) -> Result<Frame, ConfigError> {
        let name = self.name_of(e, tag.start)?.as_str(self.source).to_owned();
        let mut section = Section {
            kind,
            name,
            close: None,
            // `<list name="Alias" />`: an empty list, expanded when added to.
            self_closed: empty.then_some(tag.clone()),
            indent: indent_before(self.source, tag.start).to_owned(),
            item_indent: String::new(),
            var_indent: String::new(),
            items: Vec::new(),
        };
        if kind == SectionKind::Table {
            // A table is one item: its variables are its children.
            section
                .items
                .push(Item::opened(tag.clone(), self.line(tag.start)));
        }
        self.sections.push(section);
        Ok(Frame::Section)
    }

    /// A `<listitem>` of a section: an item of a list (of a table, not interpreted).
    fn item(&mut self, tag: Range<usize>) -> Frame {
        let line = self.line(tag.start);
        let section = self
            .sections
            .last_mut()
            .expect("a Section frame has its section");
        if section.kind != SectionKind::List {
            return Frame::Other;
        }
        if section.items.is_empty() {
            section.item_indent = indent_before(self.source, tag.start).to_owned();
        }
        section.items.push(Item::opened(tag, line));
        Frame::Item
    }

    /// A `<variable>` of an item (or of a table); an empty one is complete here.
    fn variable(
        &mut self,
        e: &BytesStart,
        tag: Range<usize>,
        empty: bool,
    ) -> Result<Frame, ConfigError> {
        let name = self.name_of(e, tag.start)?;
        let section = self
            .sections
            .last_mut()
            .expect("variables are inside a section");
        if section.var_indent.is_empty() {
            section.var_indent = indent_before(self.source, tag.start).to_owned();
        }
        if !empty {
            let open = Open {
                name,
                content_start: tag.end,
                decoded: String::new(),
                needs_decoding: false,
                structured: false,
            };
            return Ok(Frame::Variable(open));
        }
        let item = section
            .items
            .last_mut()
            .expect("variables are inside an item");
        item.vars.push(Variable {
            name,
            original: Some(Original {
                value: Text::Decoded("".into()),
                content: span(tag),
                self_closing: true,
                structured: false,
            }),
            edited: None,
        });
        Ok(Frame::Other)
    }

    /// An end tag at `tag`: closes what its start opened.
    fn end(&mut self, tag: Range<usize>) {
        let section = self.sections.last_mut();
        match (self.stack.pop(), section) {
            (Some(Frame::Root), _) => self.root_close = Some(tag.start),
            (Some(Frame::Section), Some(section)) => {
                section.close = Some(tag.start);
                if section.kind == SectionKind::Table
                    && let Some(table) = section.items.first_mut()
                {
                    table.close = Some(tag.start);
                    table.span = table.span.take().map(|s| s.start..tag.end);
                }
            }
            (Some(Frame::Item), Some(section)) => {
                let item = section
                    .items
                    .last_mut()
                    .expect("an Item frame has its item");
                item.close = Some(tag.start);
                item.span = item.span.take().map(|s| s.start..tag.end);
            }
            (Some(Frame::Variable(open)), Some(section)) => {
                let content = open.content_start..tag.start;
                let value = if open.needs_decoding {
                    Text::Decoded(open.decoded.into())
                } else {
                    Text::Source(span(content.clone()))
                };
                let item = section
                    .items
                    .last_mut()
                    .expect("variables are inside an item");
                item.vars.push(Variable {
                    name: open.name,
                    original: Some(Original {
                        value,
                        content: span(content),
                        self_closing: false,
                        structured: open.structured,
                    }),
                    edited: None,
                });
            }
            _ => {}
        }
    }

    /// Text in a variable: decoded only when it differs from the source.
    fn text(&mut self, start: usize, raw: &str) {
        let source = self.source;
        if let Some(open) = self.open_variable()
            && (open.needs_decoding || raw.contains('\r'))
        {
            open.start_decoding(source, start);
            // XML reads a CR LF in text, and a CR alone, as LF.
            open.decoded
                .push_str(&raw.replace("\r\n", "\n").replace('\r', "\n"));
        }
    }

    /// A character or entity reference in a variable.
    fn reference(&mut self, start: usize, r: &BytesRef) -> Result<(), ConfigError> {
        if !matches!(self.stack.last(), Some(Frame::Variable(_))) {
            return Ok(());
        }
        let name = r
            .decode()
            .map_err(|e| self.xml_error(start, e.to_string()))?;
        let text = match r
            .resolve_char_ref()
            .map_err(|e| self.xml_error(start, e.to_string()))?
        {
            Some(c) => c.to_string(),
            None => match quick_xml::escape::resolve_predefined_entity(&name) {
                Some(text) => text.to_owned(),
                None => return Err(self.xml_error(start, format!("unknown entity &{name};"))),
            },
        };
        let source = self.source;
        if let Some(open) = self.open_variable() {
            open.start_decoding(source, start);
            open.decoded.push_str(&text);
        }
        Ok(())
    }

    /// The map, once the whole file is read: every element closed, the indentation the file
    /// gives no example of filled in, one unit deeper each level.
    fn finish(mut self) -> Result<Map, ConfigError> {
        let len = self.source.len();
        if !self.stack.is_empty() {
            let why = "unexpected end of file: an element is not closed";
            return Err(self.xml_error(len, why.into()));
        }
        let Some(root_close) = self.root_close else {
            return Err(self.xml_error(len, "no root element".into()));
        };
        let unit = (self.sections.iter())
            .filter_map(|s| s.item_indent.strip_prefix(s.indent.as_str()))
            .find(|step| !step.is_empty())
            .unwrap_or("  ")
            .to_owned();
        for s in &mut self.sections {
            if s.item_indent.is_empty() {
                s.item_indent = format!("{}{unit}", s.indent);
            }
            if s.var_indent.is_empty() {
                s.var_indent = match s.kind {
                    SectionKind::List => format!("{}{unit}", s.item_indent),
                    SectionKind::Table => format!("{}{unit}", s.indent),
                };
            }
        }
        Ok(Map {
            sections: self.sections,
            root_close,
            unit,
        })
    }
}

/// The spaces and tabs before `offset` on its line, if nothing else precedes it there.
fn indent_before(source: &str, offset: usize) -> &str {
    let line_start = source[..offset].rfind('\n').map_or(0, |i| i + 1);
    let before = &source[line_start..offset];
    if before.bytes().all(|b| b == b' ' || b == b'\t') {
        before
    } else {
        ""
    }
}

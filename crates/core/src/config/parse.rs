//! Reads a config file into the map of [`super::Document`] in one streaming pass.
//!
//! quick-xml checks well-formedness (matching end tags, legal references) and gives the byte
//! position of every event, which is all the map needs: no tree is built. Values are kept as
//! spans of the source unless they hold references or CDATA, so a 50,000-user file costs little
//! more memory than its text.

use std::path::Path;

use quick_xml::events::{BytesStart, Event};

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
    let xml_error = |at: usize, message: String| {
        let (line, column) = line_column(source.as_bytes(), at);
        ConfigError::Xml {
            path: path.to_owned(),
            line,
            column,
            message,
        }
    };
    if u32::try_from(source.len()).is_err() {
        return Err(xml_error(0, "larger than 4 GiB".into()));
    }
    let structure = |at: usize, element: &str, message: &str| ConfigError::Structure {
        path: path.to_owned(),
        line: line_column(source.as_bytes(), at).0,
        element: element.to_owned(),
        message: message.to_owned(),
    };
    // Items come in file order, so lines are counted forward from the previous one.
    let mut line_at = (0usize, 1usize);
    let mut line = |offset: usize| {
        line_at.1 += source.as_bytes()[line_at.0..offset]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        line_at.0 = offset;
        line_at.1
    };
    let name_of = |e: &BytesStart, at: usize| -> Result<Text, ConfigError> {
        let attr = e
            .try_get_attribute("name")
            .map_err(|err| xml_error(at, err.to_string()))?
            .ok_or_else(|| {
                let element = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                structure(at, &element, "has no name attribute")
            })?;
        let raw = &attr.value;
        let value_start = raw.as_ptr() as usize - source.as_ptr() as usize;
        if raw.contains(&b'&') {
            let value = attr
                .unescape_value()
                .map_err(|err| xml_error(at, err.to_string()))?;
            Ok(Text::Decoded(value.into()))
        } else {
            Ok(Text::Source(span(value_start..value_start + raw.len())))
        }
    };

    // A UTF-8 byte order mark (Notepad, .NET XDocument) stays in the source, so that it is
    // written back, but the reader starts after it: quick-xml would skip it and count its
    // positions from after it, three bytes short of the source's.
    let base = if source.starts_with('\u{feff}') {
        '\u{feff}'.len_utf8()
    } else {
        0
    };
    let mut reader = quick_xml::Reader::from_str(&source[base..]);
    let mut stack: Vec<Frame> = Vec::new();
    let mut sections: Vec<Section> = Vec::new();
    let mut root_close = None;
    let mut unit: Option<String> = None;
    loop {
        let start = base + reader.buffer_position() as usize;
        let event = reader
            .read_event()
            .map_err(|e| xml_error(base + reader.error_position() as usize, e.to_string()))?;
        let end = base + reader.buffer_position() as usize;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(event, Event::Empty(_));
                let tag = e.name();
                let frame = match (stack.last(), tag.as_ref()) {
                    (None, _) => Frame::Root,
                    (Some(Frame::Root), kind @ (b"list" | b"table")) => {
                        let kind = if kind == b"list" {
                            SectionKind::List
                        } else {
                            SectionKind::Table
                        };
                        let name = name_of(e, start)?.as_str(source).to_owned();
                        let mut section = Section {
                            kind,
                            name,
                            close: None,
                            // `<list name="Alias" />`: an empty list, expanded when added to.
                            self_closed: empty.then_some(start..end),
                            indent: indent_before(source, start).to_owned(),
                            item_indent: String::new(),
                            var_indent: String::new(),
                            items: Vec::new(),
                        };
                        if kind == SectionKind::Table {
                            // A table is one item: its variables are its children.
                            section.items.push(Item::opened(start..end, line(start)));
                        }
                        sections.push(section);
                        Frame::Section
                    }
                    (Some(Frame::Section), b"listitem") => {
                        let section = sections
                            .last_mut()
                            .expect("a Section frame has its section");
                        if section.kind == SectionKind::List {
                            if section.items.is_empty() {
                                section.item_indent = indent_before(source, start).to_owned();
                            }
                            section.items.push(Item::opened(start..end, line(start)));
                            Frame::Item
                        } else {
                            Frame::Other
                        }
                    }
                    (Some(Frame::Item | Frame::Section), b"variable")
                        if matches!(stack.last(), Some(Frame::Item))
                            || sections
                                .last()
                                .is_some_and(|s| s.kind == SectionKind::Table) =>
                    {
                        let section = sections.last_mut().expect("variables are inside a section");
                        if section.var_indent.is_empty() {
                            section.var_indent = indent_before(source, start).to_owned();
                        }
                        let open = Open {
                            name: name_of(e, start)?,
                            content_start: end,
                            decoded: String::new(),
                            needs_decoding: false,
                            structured: false,
                        };
                        if empty {
                            let item = section
                                .items
                                .last_mut()
                                .expect("variables are inside an item");
                            item.vars.push(Variable {
                                name: open.name,
                                original: Some(Original {
                                    value: Text::Decoded("".into()),
                                    content: span(start..end),
                                    self_closing: true,
                                    structured: false,
                                }),
                                edited: None,
                            });
                            continue;
                        }
                        Frame::Variable(open)
                    }
                    (Some(Frame::Variable(_)), _) => {
                        if let Some(Frame::Variable(open)) = stack.last_mut() {
                            open.start_decoding(source, start);
                            open.structured = true;
                        }
                        Frame::Other
                    }
                    _ => Frame::Other,
                };
                if empty {
                    // `<list name="X"/>` or `<listitem/>`: no closing tag; an edit adding to it
                    // replaces the whole element (see `self_closed` and `Item::span`).
                    continue;
                }
                stack.push(frame);
            }
            Event::End(_) => match stack.pop() {
                Some(Frame::Root) => root_close = Some(start),
                Some(Frame::Section) => {
                    let section = sections
                        .last_mut()
                        .expect("a Section frame has its section");
                    section.close = Some(start);
                    if let Some(table) = section
                        .items
                        .first_mut()
                        .filter(|_| section.kind == SectionKind::Table)
                    {
                        table.close = Some(start);
                        table.span = table.span.take().map(|s| s.start..end);
                    }
                }
                Some(Frame::Item) => {
                    let section = sections.last_mut().expect("an item is inside a section");
                    let item = section
                        .items
                        .last_mut()
                        .expect("an Item frame has its item");
                    item.close = Some(start);
                    item.span = item.span.take().map(|s| s.start..end);
                }
                Some(Frame::Variable(open)) => {
                    let content = open.content_start..start;
                    let value = if open.needs_decoding {
                        Text::Decoded(open.decoded.into())
                    } else {
                        Text::Source(span(content.clone()))
                    };
                    let item = sections
                        .last_mut()
                        .and_then(|s| s.items.last_mut())
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
                Some(Frame::Other) | None => {}
            },
            Event::Text(ref t) => {
                if let Some(Frame::Variable(open)) = stack.last_mut() {
                    let raw = t.decode().map_err(|e| xml_error(start, e.to_string()))?;
                    if open.needs_decoding || raw.contains('\r') {
                        open.start_decoding(source, start);
                        // XML reads a CR LF in text, and a CR alone, as LF.
                        open.decoded
                            .push_str(&raw.replace("\r\n", "\n").replace('\r', "\n"));
                    }
                }
            }
            Event::GeneralRef(ref r) => {
                if let Some(Frame::Variable(open)) = stack.last_mut() {
                    open.start_decoding(source, start);
                    let name = r.decode().map_err(|e| xml_error(start, e.to_string()))?;
                    match r
                        .resolve_char_ref()
                        .map_err(|e| xml_error(start, e.to_string()))?
                    {
                        Some(c) => open.decoded.push(c),
                        None => match quick_xml::escape::resolve_predefined_entity(&name) {
                            Some(text) => open.decoded.push_str(text),
                            None => {
                                return Err(xml_error(start, format!("unknown entity &{name};")));
                            }
                        },
                    }
                }
            }
            Event::CData(ref c) => {
                if let Some(Frame::Variable(open)) = stack.last_mut() {
                    open.start_decoding(source, start);
                    open.decoded.push_str(&String::from_utf8_lossy(c));
                }
            }
            Event::Comment(_) | Event::PI(_) => {
                if let Some(Frame::Variable(open)) = stack.last_mut() {
                    open.start_decoding(source, start);
                    open.structured = true;
                }
            }
            Event::Decl(_) | Event::DocType(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(xml_error(
            source.len(),
            "unexpected end of file: an element is not closed".into(),
        ));
    }
    let root_close = root_close.ok_or_else(|| xml_error(source.len(), "no root element".into()))?;

    // Fill in indentation the file gives no example of, one unit deeper each level.
    for s in &sections {
        if unit.is_none()
            && let Some(step) = s.item_indent.strip_prefix(s.indent.as_str())
            && !step.is_empty()
        {
            unit = Some(step.to_owned());
        }
    }
    let unit = unit.unwrap_or_else(|| "  ".to_owned());
    for s in &mut sections {
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
        sections,
        root_close,
        unit,
    })
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

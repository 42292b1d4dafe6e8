//! The addresses of calendar items: rewriting `mailto:<address>` in the `ORGANIZER` and
//! `ATTENDEE` properties of the iCalendar (`text/calendar`) parts of a message, and nothing else.
//!
//! A message is walked as MIME over byte ranges of the original (headers, multipart boundaries
//! per RFC 2046), and each `text/calendar` part is decoded (7bit/8bit/binary as is,
//! quoted-printable, base64), unfolded into logical lines (RFC 5545 §3.1), and only the lines of
//! those two properties that name a renamed address are replaced: refolded at 75 octets, with
//! the line endings they had, and encoded back the way the part was. Every other byte of the
//! message stays as it was: the headers, the other parts, the untouched lines of the part
//! (quoted-printable lines are re-encoded one hard line at a time, so the others keep their
//! bytes), the line endings. A base64 part is encoded again whole, with the width of its
//! first line and its line ending.
//!
//! Why by hand rather than with a MIME crate: the parsers at hand (`mail-parser`, `mailparse`)
//! are built to decode, and recover from damage silently (a missing closing boundary, bad
//! base64 are read as something); a rewrite must instead know the exact bytes each part spans
//! and refuse what it cannot read for certain, so that a damaged item is left as it is and
//! named rather than rewritten from a guess. The walk below does only that: headers, the
//! `boundary` parameter, delimiter lines.

use std::ops::Range;

use base64::Engine as _;

/// Deeper nesting than this is not a message anyone wrote.
const MAX_DEPTH: usize = 32;
/// The longest line RFC 5545 allows, in octets, without its line ending.
const FOLD_AT: usize = 75;

/// A message rewritten: its new bytes and how many addresses changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    /// The whole message, rewritten.
    pub bytes: Vec<u8>,
    /// How many property values had an address changed.
    pub values: usize,
}

/// Why a message holding calendar data could not be read for certain (it is left as it is).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unparsable(pub String);

/// Whether a message may hold a calendar part: `text/calendar` anywhere in it, any case. The
/// cheap test before a walk; headers are never encoded, so no calendar part escapes it.
pub fn may_hold_calendar(msg: &[u8]) -> bool {
    const NEEDLE: &[u8] = b"text/calendar";
    memchr::memchr_iter(b'/', msg).any(|slash| {
        slash >= 4
            && msg
                .get(slash - 4..slash - 4 + NEEDLE.len())
                .is_some_and(|w| w.eq_ignore_ascii_case(NEEDLE))
    })
}

/// Rewrites every `mailto:<address>` of the `ORGANIZER` and `ATTENDEE` properties (their value
/// and parameters such as `SENT-BY`) for which `new_of` gives a new address; the address is
/// compared by `new_of` (the caller decides case), the `mailto:` keeps its spelling.
/// `Ok(None)` when nothing names a renamed address.
pub fn rewrite_addresses(
    msg: &[u8],
    new_of: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Rewritten>, Unparsable> {
    let mut edits = Vec::new();
    walk(msg, 0..msg.len(), 0, new_of, &mut edits)?;
    if edits.is_empty() {
        return Ok(None);
    }
    edits.sort_by_key(|e| e.span.start);
    let (bytes, values) = splice(msg, edits);
    Ok(Some(Rewritten { bytes, values }))
}

/// `source` with each edit's span replaced by its bytes (edits in order, not overlapping), and
/// how many values the edits changed.
fn splice(source: &[u8], edits: Vec<Edit>) -> (Vec<u8>, usize) {
    let mut out = Vec::with_capacity(source.len() + 64);
    let (mut at, mut values) = (0, 0);
    for e in edits {
        out.extend_from_slice(&source[at..e.span.start]);
        out.extend_from_slice(&e.bytes);
        at = e.span.end;
        values += e.values;
    }
    out.extend_from_slice(&source[at..]);
    (out, values)
}

/// A range of the message replaced by new bytes.
#[derive(Debug)]
struct Edit {
    span: Range<usize>,
    bytes: Vec<u8>,
    values: usize,
}

/// Splits `range` of `bytes` into lines: (content, line ending), the ending `\r\n`, `\n` or
/// empty for a last line without one.
fn lines(bytes: &[u8], range: Range<usize>) -> Vec<(Range<usize>, Range<usize>)> {
    let mut out = Vec::new();
    let mut start = range.start;
    while start < range.end {
        match memchr::memchr(b'\n', &bytes[start..range.end]) {
            Some(k) => {
                let nl = start + k;
                let content_end = if nl > start && bytes[nl - 1] == b'\r' {
                    nl - 1
                } else {
                    nl
                };
                out.push((start..content_end, content_end..nl + 1));
                start = nl + 1;
            }
            None => {
                out.push((start..range.end, range.end..range.end));
                start = range.end;
            }
        }
    }
    out
}

/// The headers a walk needs, unfolded.
#[derive(Debug, Default)]
struct Headers {
    content_type: Option<String>,
    encoding: Option<String>,
}

/// An entity's headers and its body's range (empty when there is no blank line).
fn entity(msg: &[u8], range: Range<usize>) -> (Headers, Range<usize>) {
    let mut headers = Headers::default();
    let mut current: Option<(String, String)> = None;
    let mut body = range.end..range.end;
    let keep = |h: &mut Headers, field: Option<(String, String)>| {
        if let Some((name, value)) = field {
            if name.eq_ignore_ascii_case("content-type") && h.content_type.is_none() {
                h.content_type = Some(value);
            } else if name.eq_ignore_ascii_case("content-transfer-encoding") && h.encoding.is_none()
            {
                h.encoding = Some(value);
            }
        }
    };
    for (content, ending) in lines(msg, range.clone()) {
        let line = &msg[content.clone()];
        if line.is_empty() {
            body = ending.end..range.end;
            break;
        }
        if matches!(line[0], b' ' | b'\t') {
            if let Some((_, value)) = current.as_mut() {
                value.push_str(&String::from_utf8_lossy(line));
            }
            continue;
        }
        keep(&mut headers, current.take());
        // A line without a colon is not a field; it is passed over.
        if let Some(colon) = memchr::memchr(b':', line) {
            current = Some((
                String::from_utf8_lossy(&line[..colon]).trim().to_owned(),
                String::from_utf8_lossy(&line[colon + 1..]).into_owned(),
            ));
        }
    }
    keep(&mut headers, current);
    (headers, body)
}

/// A `Content-Type` value: the type (lower case) and its parameters (names lower case).
#[derive(Debug)]
struct ContentType {
    mime: String,
    params: Vec<(String, String)>,
}

impl ContentType {
    fn parse(value: &str) -> ContentType {
        // Split on `;` outside quoted strings.
        let mut pieces = Vec::new();
        let (mut piece, mut quoted, mut escaped) = (String::new(), false, false);
        for c in value.chars() {
            if escaped {
                piece.push(c);
                escaped = false;
            } else if quoted && c == '\\' {
                escaped = true;
            } else if c == '"' {
                quoted = !quoted;
                piece.push(c);
            } else if c == ';' && !quoted {
                pieces.push(std::mem::take(&mut piece));
            } else {
                piece.push(c);
            }
        }
        pieces.push(piece);
        let mime = pieces[0].trim().to_ascii_lowercase();
        let params = pieces[1..]
            .iter()
            .filter_map(|p| {
                let (name, value) = p.split_once('=')?;
                let value = value.trim();
                let value = value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(value);
                Some((name.trim().to_ascii_lowercase(), value.to_owned()))
            })
            .collect();
        ContentType { mime, params }
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn walk(
    msg: &[u8],
    range: Range<usize>,
    depth: usize,
    new_of: &dyn Fn(&str) -> Option<String>,
    edits: &mut Vec<Edit>,
) -> Result<(), Unparsable> {
    if depth > MAX_DEPTH {
        return Err(Unparsable(format!(
            "MIME parts nested deeper than {MAX_DEPTH}"
        )));
    }
    let (headers, body) = entity(msg, range);
    let Some(content_type) = headers.content_type.as_deref().map(ContentType::parse) else {
        return Ok(()); // text/plain
    };
    if content_type.mime.starts_with("multipart/") {
        let boundary = content_type
            .param("boundary")
            .filter(|b| !b.is_empty())
            .ok_or_else(|| {
                Unparsable(format!(
                    "a {} part without a boundary parameter",
                    content_type.mime
                ))
            })?;
        for part in parts(msg, body, boundary)? {
            walk(msg, part, depth + 1, new_of, edits)?;
        }
    } else if content_type.mime == "text/calendar" {
        let encoding = headers
            .encoding
            .as_deref()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        calendar_part(msg, body, &encoding, new_of, edits)?;
    }
    Ok(())
}

/// The parts of a multipart body: the ranges between its delimiter lines (RFC 2046 §5.1.1:
/// the line ending before a delimiter belongs to it). The closing delimiter must be there.
fn parts(msg: &[u8], body: Range<usize>, boundary: &str) -> Result<Vec<Range<usize>>, Unparsable> {
    let delimiter = format!("--{boundary}");
    let mut out = Vec::new();
    let mut current: Option<usize> = None;
    for (content, ending) in lines(msg, body) {
        let Some(rest) = msg[content.clone()].strip_prefix(delimiter.as_bytes()) else {
            continue;
        };
        let (close, rest) = match rest.strip_prefix(b"--") {
            Some(r) => (true, r),
            None => (false, rest),
        };
        if !rest.iter().all(|b| matches!(b, b' ' | b'\t')) {
            continue; // a longer boundary, or text that starts like one
        }
        if let Some(start) = current {
            let mut end = content.start;
            if end > start && msg[end - 1] == b'\n' {
                end -= 1;
                if end > start && msg[end - 1] == b'\r' {
                    end -= 1;
                }
            }
            out.push(start..end);
        }
        if close {
            return Ok(out);
        }
        current = Some(ending.end);
    }
    Err(Unparsable(format!(
        "a multipart part without its closing boundary \"--{boundary}--\""
    )))
}

/// One line of a decoded calendar part: where it is in the encoded body (the bytes to replace
/// when it changes), its decoded content and its line ending as found.
#[derive(Debug)]
struct Line {
    span: Range<usize>,
    content: Vec<u8>,
    ending: Vec<u8>,
}

/// The lines of `range` of `bytes`, each with its span (ending included) and its own copy of its
/// content and ending.
fn owned_lines(bytes: &[u8], range: Range<usize>) -> Vec<Line> {
    lines(bytes, range)
        .into_iter()
        .map(|(content, ending)| Line {
            span: content.start..ending.end,
            content: bytes[content].to_vec(),
            ending: bytes[ending].to_vec(),
        })
        .collect()
}

/// A logical line (lines `lines`) that changes: its new physical lines (content, ending).
#[derive(Debug)]
struct Change {
    lines: Range<usize>,
    new: Vec<(Vec<u8>, Vec<u8>)>,
    values: usize,
}

fn calendar_part(
    msg: &[u8],
    body: Range<usize>,
    encoding: &str,
    new_of: &dyn Fn(&str) -> Option<String>,
    edits: &mut Vec<Edit>,
) -> Result<(), Unparsable> {
    match encoding {
        "" | "7bit" | "8bit" | "binary" => {
            if !names_any(&msg[body.clone()], new_of) {
                return Ok(()); // the common case, decided without splitting lines
            }
            let lines = owned_lines(msg, body);
            line_edits(&lines, rewrite_lines(&lines, new_of), edits, |c, e| {
                [c, e].concat()
            });
        }
        "quoted-printable" => {
            let whole =
                quoted_printable::decode(&msg[body.clone()], quoted_printable::ParseMode::Robust)
                    .unwrap_or_default();
            if !whole.is_empty() && !names_any(&whole, new_of) {
                return Ok(());
            }
            let lines = qp_lines(msg, body)?;
            line_edits(&lines, rewrite_lines(&lines, new_of), edits, qp_encode_line);
        }
        "base64" => base64_part(msg, body, new_of, edits)?,
        other => {
            return Err(Unparsable(format!(
                "a text/calendar part in an unknown transfer encoding {other:?}"
            )));
        }
    }
    Ok(())
}

/// The edits for changed logical lines: each replaces the encoded bytes of its physical lines
/// with its new lines, each encoded by `encode(content, ending)`.
fn line_edits(
    lines: &[Line],
    changes: Vec<Change>,
    edits: &mut Vec<Edit>,
    encode: impl Fn(&[u8], &[u8]) -> Vec<u8>,
) {
    for change in changes {
        let span = lines[change.lines.start].span.start..lines[change.lines.end - 1].span.end;
        let bytes = change
            .new
            .iter()
            .flat_map(|(content, ending)| encode(content, ending))
            .collect();
        edits.push(Edit {
            span,
            bytes,
            values: change.values,
        });
    }
}

/// The logical lines (a line and the continuation lines after it, RFC 5545 §3.1) that name a
/// renamed address, rewritten and refolded.
fn rewrite_lines(lines: &[Line], new_of: &dyn Fn(&str) -> Option<String>) -> Vec<Change> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let mut j = i + 1;
        while j < lines.len() && matches!(lines[j].content.first(), Some(b' ' | b'\t')) {
            j += 1;
        }
        let logical = unfold(lines[i..j].iter().map(|l| l.content.as_slice()));
        if let Some((new, values)) = rewrite_property(&logical, new_of) {
            let inner = &lines[i].ending;
            let last = &lines[j - 1].ending;
            let folded = fold(&new);
            let n = folded.len();
            let new = folded
                .into_iter()
                .enumerate()
                .map(|(k, c)| {
                    (
                        c,
                        if k + 1 == n {
                            last.clone()
                        } else {
                            inner.clone()
                        },
                    )
                })
                .collect();
            out.push(Change {
                lines: i..j,
                new,
                values,
            });
        }
        i = j;
    }
    out
}

/// A folded line's content: the first line, then each continuation without its leading space
/// or tab.
pub fn unfold<'a>(physical: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, line) in physical.into_iter().enumerate() {
        out.extend_from_slice(if k == 0 { line } else { &line[1..] });
    }
    out
}

/// A logical line folded at 75 octets (RFC 5545 §3.1): the first line up to 75, each
/// continuation a space and up to 74 more; a UTF-8 sequence is never split.
pub fn fold(line: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = line;
    loop {
        let room = if out.is_empty() { FOLD_AT } else { FOLD_AT - 1 };
        let lead: &[u8] = if out.is_empty() { b"" } else { b" " };
        if rest.len() <= room {
            out.push([lead, rest].concat());
            return out;
        }
        let mut cut = room;
        while cut > 0 && rest[cut] & 0xC0 == 0x80 {
            cut -= 1;
        }
        if cut == 0 {
            cut = room; // not UTF-8: octets, then
        }
        out.push([lead, &rest[..cut]].concat());
        rest = &rest[cut..];
    }
}

/// An unfolded `ORGANIZER` or `ATTENDEE` line with each `mailto:<address>` that `new_of`
/// renames replaced, and how many; `None` for other lines and when nothing is renamed.
fn rewrite_property(
    line: &[u8],
    new_of: &dyn Fn(&str) -> Option<String>,
) -> Option<(Vec<u8>, usize)> {
    let name_end = line.iter().position(|&b| b == b';' || b == b':')?;
    let name = &line[..name_end];
    if !(name.eq_ignore_ascii_case(b"ORGANIZER") || name.eq_ignore_ascii_case(b"ATTENDEE")) {
        return None;
    }
    const MAILTO: &[u8] = b"mailto:";
    let ends =
        |b: u8| matches!(b, b'"' | b';' | b':' | b',' | b'<' | b'>') || b.is_ascii_whitespace();
    let mut out = Vec::with_capacity(line.len() + 16);
    let mut values = 0;
    let mut at = 0;
    let mut i = name_end;
    while i + MAILTO.len() <= line.len() {
        if !line[i..i + MAILTO.len()].eq_ignore_ascii_case(MAILTO) {
            i += 1;
            continue;
        }
        let start = i + MAILTO.len();
        let end = line[start..]
            .iter()
            .position(|&b| ends(b))
            .map_or(line.len(), |k| start + k);
        if let Some(new) = std::str::from_utf8(&line[start..end]).ok().and_then(new_of) {
            out.extend_from_slice(&line[at..start]);
            out.extend_from_slice(new.as_bytes());
            at = end;
            values += 1;
        }
        i = end.max(start);
    }
    if values == 0 {
        return None;
    }
    out.extend_from_slice(&line[at..]);
    Some((out, values))
}

/// Whether `text` has a `mailto:<address>` (any case) that `new_of` renames, folded lines
/// joined first: one cheap pass that spares the line-by-line work for the many items that
/// name no renamed address.
fn names_any(text: &[u8], new_of: &dyn Fn(&str) -> Option<String>) -> bool {
    // Unfolded: every line ending followed by a space or a tab goes, with that character.
    let mut joined = Vec::with_capacity(text.len());
    let mut at = 0;
    for nl in memchr::memchr_iter(b'\n', text) {
        if matches!(text.get(nl + 1), Some(b' ' | b'\t')) {
            let end = if nl > at && text[nl - 1] == b'\r' {
                nl - 1
            } else {
                nl
            };
            joined.extend_from_slice(&text[at..end]);
            at = nl + 2;
        }
    }
    if at < text.len() {
        joined.extend_from_slice(&text[at..]);
    }
    let ends =
        |b: u8| matches!(b, b'"' | b';' | b':' | b',' | b'<' | b'>') || b.is_ascii_whitespace();
    memchr::memchr_iter(b':', &joined).any(|colon| {
        if colon < 6 || !joined[colon - 6..colon].eq_ignore_ascii_case(b"mailto") {
            return false;
        }
        let start = colon + 1;
        let end = joined[start..]
            .iter()
            .position(|&b| ends(b))
            .map_or(joined.len(), |k| start + k);
        std::str::from_utf8(&joined[start..end])
            .ok()
            .and_then(new_of)
            .is_some()
    })
}

/// The line ending to use inside a line that ends so: `\n` when it ends with a bare one, else
/// `\r\n`.
fn eol_of(ending: &[u8]) -> &'static [u8] {
    if ending.ends_with(b"\n") && !ending.ends_with(b"\r\n") {
        b"\n"
    } else {
        b"\r\n"
    }
}

/// The hard lines of a quoted-printable body, decoded: each is its encoded lines joined by soft
/// line breaks, and its `ending` the hard line break as found (or, for a body ending in a soft
/// break, the `=` and break after the last line).
fn qp_lines(msg: &[u8], body: Range<usize>) -> Result<Vec<Line>, Unparsable> {
    if let Some(b) = msg[body.clone()]
        .iter()
        .find(|&&b| !matches!(b, b'\t' | b'\r' | b'\n' | b' '..=b'~'))
    {
        return Err(Unparsable(format!(
            "a quoted-printable text/calendar part holds the raw byte 0x{b:02x}"
        )));
    }
    let mut out = Vec::new();
    let mut group: Option<usize> = None;
    let physical = lines(msg, body.clone());
    let n = physical.len();
    for (k, (content, ending)) in physical.into_iter().enumerate() {
        let start = group.unwrap_or(content.start);
        let trimmed = msg[content.clone()].trim_ascii_end();
        let soft = trimmed.ends_with(b"=") && !ending.is_empty();
        if soft && k + 1 < n {
            group = Some(start);
            continue;
        }
        group = None;
        let (encoded_end, ending) = if soft {
            // The body ends with a soft break: it stays after the line.
            (
                content.start + trimmed.len() - 1,
                content.start + trimmed.len() - 1..ending.end,
            )
        } else {
            (content.end, ending)
        };
        let decoded = quoted_printable::decode(
            &msg[start..encoded_end],
            quoted_printable::ParseMode::Robust,
        )
        .map_err(|e| Unparsable(format!("a quoted-printable text/calendar part: {e}")))?;
        if decoded.iter().any(|&b| b == b'\r' || b == b'\n') {
            return Err(Unparsable(
                "a quoted-printable text/calendar part encodes its line breaks (=0D=0A)".into(),
            ));
        }
        out.push(Line {
            span: start..ending.end,
            content: decoded,
            ending: msg[ending].to_vec(),
        });
    }
    Ok(out)
}

/// One hard line encoded as quoted-printable (lines of at most 76 characters, soft breaks with
/// the line's own ending), then its ending.
fn qp_encode_line(content: &[u8], ending: &[u8]) -> Vec<u8> {
    let encoded =
        quoted_printable::encode_with_options(content, quoted_printable::Options::default());
    let eol = eol_of(ending);
    let mut out = if eol == b"\r\n" {
        encoded.into_bytes()
    } else {
        encoded.replace("=\r\n", "=\n").into_bytes()
    };
    out.extend_from_slice(ending);
    out
}

/// A base64 calendar part: decoded whole, rewritten, and encoded again whole with the width of
/// its longest line and its line ending; the blank space around the data is kept.
fn base64_part(
    msg: &[u8],
    body: Range<usize>,
    new_of: &dyn Fn(&str) -> Option<String>,
    edits: &mut Vec<Edit>,
) -> Result<(), Unparsable> {
    let raw = &msg[body.clone()];
    let Some(start) = raw.iter().position(|b| !b.is_ascii_whitespace()) else {
        return Ok(());
    };
    let end = raw
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(raw.len(), |k| k + 1);
    let data = &raw[start..end];
    // The encoder's width is its longest line (a first or last line may be shorter); the
    // line ending is the first line's.
    let layout = memchr::memchr(b'\n', data).map(|nl| {
        let eol = if nl > 0 && data[nl - 1] == b'\r' {
            &b"\r\n"[..]
        } else {
            &b"\n"[..]
        };
        let width = (data.split(|&b| b == b'\n'))
            .map(|line| line.strip_suffix(b"\r").unwrap_or(line).len())
            .max()
            .unwrap_or(0);
        (width, eol)
    });
    let compact: Vec<u8> = data
        .iter()
        .filter(|b| !b.is_ascii_whitespace())
        .copied()
        .collect();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&compact)
        .map_err(|e| Unparsable(format!("a base64 text/calendar part: {e}")))?;
    let lines = owned_lines(&decoded, 0..decoded.len());
    let changes = if names_any(&decoded, new_of) {
        rewrite_lines(&lines, new_of)
    } else {
        Vec::new()
    };
    if changes.is_empty() {
        return Ok(());
    }
    let mut inner = Vec::new();
    line_edits(&lines, changes, &mut inner, |c, e| [c, e].concat());
    let (text, values) = splice(&decoded, inner);
    let encoded = base64::engine::general_purpose::STANDARD.encode(&text);
    let bytes = match layout {
        Some((width, eol)) if width > 0 => encoded
            .as_bytes()
            .chunks(width)
            .collect::<Vec<_>>()
            .join(eol),
        _ => encoded.into_bytes(),
    };
    edits.push(Edit {
        span: body.start + start..body.start + end,
        bytes,
        values,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn renames(address: &str) -> Option<String> {
        match address.to_ascii_lowercase().as_str() {
            "jdoe@example.com" => Some("john.doe@example.com".into()),
            "asmith@example.com" => Some("anna@example.org".into()),
            _ => None,
        }
    }

    fn rewrite(msg: &str) -> Result<Option<String>, Unparsable> {
        Ok(rewrite_addresses(msg.as_bytes(), &renames)?
            .map(|r| String::from_utf8(r.bytes).expect("utf-8")))
    }

    const HEAD: &str = "From: jdoe@example.com\r\nSubject: mailto:jdoe@example.com\r\n";

    #[test]
    fn folding_is_undone_and_redone_at_75_octets() {
        let long = format!(
            "ATTENDEE;CN=\"{}\";ROLE=REQ-PARTICIPANT:mailto:x@example.com",
            "é".repeat(60)
        );
        let folded = fold(long.as_bytes());
        assert!(folded.iter().all(|l| l.len() <= 75), "{folded:?}");
        assert!(folded[1..].iter().all(|l| l[0] == b' '));
        // No UTF-8 sequence is split: every line is text on its own.
        assert!(folded.iter().all(|l| std::str::from_utf8(l).is_ok()));
        assert_eq!(unfold(folded.iter().map(Vec::as_slice)), long.as_bytes());
        assert_eq!(fold(b"SHORT:x"), [b"SHORT:x".to_vec()]);
        let exactly = "A".repeat(75);
        assert_eq!(fold(exactly.as_bytes()), [exactly.as_bytes().to_vec()]);
        let one_more = "A".repeat(76);
        assert_eq!(
            fold(one_more.as_bytes()),
            [exactly.as_bytes().to_vec(), b" A".to_vec()]
        );
    }

    #[test]
    fn only_the_properties_addresses_change_and_folded_lines_are_refolded() {
        let msg = format!(
            "{HEAD}Content-Type: text/calendar; method=REQUEST\r\n\r\nBEGIN:VEVENT\r\nORGANIZER;CN=John:MAILTO:JDoe@Example.com\r\nATTENDEE;CN=Anna Smith;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mai\r\n lto:asmith@example.com\r\nATTENDEE:mailto:jdoe@example.com.au\r\nDESCRIPTION:mailto:jdoe@example.com\r\nEND:VEVENT\r\n"
        );
        let out = rewrite(&msg).expect("parses").expect("changed");
        assert_eq!(
            out,
            format!(
                "{HEAD}Content-Type: text/calendar; method=REQUEST\r\n\r\nBEGIN:VEVENT\r\nORGANIZER;CN=John:MAILTO:john.doe@example.com\r\nATTENDEE;CN=Anna Smith;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=TRUE\r\n :mailto:anna@example.org\r\nATTENDEE:mailto:jdoe@example.com.au\r\nDESCRIPTION:mailto:jdoe@example.com\r\nEND:VEVENT\r\n"
            )
        );
        // Nothing renamed: nothing to write.
        assert_eq!(
            rewrite("Content-Type: text/calendar\n\nORGANIZER:mailto:x@y.z\n"),
            Ok(None)
        );
        // Bare line feeds stay bare, SENT-BY too, and a line grown past 75 is folded.
        let msg = "Content-Type: text/calendar\n\nORGANIZER;CN=Johnathan;SENT-BY=\"mailto:asmith@example.com\":mailto:jdoe@example.com\nEND:VEVENT";
        let line = "ORGANIZER;CN=Johnathan;SENT-BY=\"mailto:anna@example.org\":mailto:john.doe@example.com";
        assert_eq!(
            rewrite(msg).expect("parses").expect("changed"),
            format!(
                "Content-Type: text/calendar\n\n{}\n {}\nEND:VEVENT",
                &line[..75],
                &line[75..]
            )
        );
    }

    #[test]
    fn multipart_parts_are_found_by_boundary_and_others_left_alone() {
        let msg = format!(
            "{HEAD}Content-Type: multipart/alternative;\r\n boundary=\"b1\"\r\n\r\npreamble mailto:jdoe@example.com\r\n--b1\r\nContent-Type: text/plain\r\n\r\nORGANIZER:mailto:jdoe@example.com\r\n--b1x\r\n--b1\r\nContent-Type: text/calendar; charset=utf-8\r\n\r\nORGANIZER:mailto:jdoe@example.com\r\n--b1--\r\nepilogue\r\n"
        );
        let out = rewrite(&msg).expect("parses").expect("changed");
        let want = msg.replacen(
            "text/calendar; charset=utf-8\r\n\r\nORGANIZER:mailto:jdoe@example.com",
            "text/calendar; charset=utf-8\r\n\r\nORGANIZER:mailto:john.doe@example.com",
            1,
        );
        assert_eq!(out, want);
    }

    #[test]
    fn quoted_printable_lines_not_changed_keep_their_bytes() {
        let body = "BEGIN:VEVENT\r\nSUMMARY:caf=C3=A9 =3D soft=\r\n break\r\nATTENDEE;CN=3DX:mailto:asm=\r\nith@example.com\r\nEND:VEVENT\r\n";
        let msg = format!(
            "{HEAD}Content-Type: text/calendar\r\nContent-Transfer-Encoding: Quoted-Printable\r\n\r\n{body}"
        );
        let out = rewrite(&msg).expect("parses").expect("changed");
        let new_body = out.split_once("\r\n\r\n").expect("body").1;
        assert_eq!(
            new_body,
            "BEGIN:VEVENT\r\nSUMMARY:caf=C3=A9 =3D soft=\r\n break\r\nATTENDEE;CN=3DX:mailto:anna@example.org\r\nEND:VEVENT\r\n"
        );
        let decoded = quoted_printable::decode(new_body, quoted_printable::ParseMode::Strict)
            .expect("valid quoted-printable");
        assert_eq!(
            String::from_utf8(decoded).expect("utf-8"),
            "BEGIN:VEVENT\r\nSUMMARY:café = soft break\r\nATTENDEE;CN=X:mailto:anna@example.org\r\nEND:VEVENT\r\n"
        );
        // A changed line longer than 76 gets soft breaks (with the part's line ending).
        let long = format!("ATTENDEE;CN=3D{}:mailto:jdoe@example.com\n", "x".repeat(80));
        let out = rewrite(&format!(
            "Content-Type: text/calendar\nContent-Transfer-Encoding: quoted-printable\n\n{long}"
        ))
        .expect("parses")
        .expect("changed");
        let body = out.split_once("\n\n").expect("body").1;
        assert!(body.lines().all(|l| l.len() <= 76), "{body}");
        let decoded =
            quoted_printable::decode(body, quoted_printable::ParseMode::Robust).expect("qp");
        let text = String::from_utf8(decoded).expect("utf-8");
        let lines: Vec<&[u8]> = text
            .split("\r\n")
            .map(str::as_bytes)
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(
            String::from_utf8(unfold(lines)).expect("utf-8"),
            format!("ATTENDEE;CN={}:mailto:john.doe@example.com", "x".repeat(80))
        );
    }

    #[test]
    fn base64_is_encoded_again_with_the_same_width() {
        let text = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nORGANIZER:mailto:jdoe@example.com\r\nATTENDEE:mailto:zed@example.com\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let b64 = base64::engine::general_purpose::STANDARD.encode(text);
        for (width, eol) in [(76, "\r\n"), (64, "\n"), (1000, "\r\n")] {
            let wrapped = b64
                .as_bytes()
                .chunks(width)
                .map(|c| std::str::from_utf8(c).expect("ascii"))
                .collect::<Vec<_>>()
                .join(eol);
            let msg = format!(
                "{HEAD}Content-Type: multipart/mixed; boundary=xyz\r\n\r\n--xyz\r\nContent-Type: text/calendar\r\nContent-Transfer-Encoding: base64\r\n\r\n{wrapped}{eol}{eol}--xyz--\r\n"
            );
            let out = rewrite(&msg).expect("parses").expect("changed");
            let new_text = text.replace("jdoe@example.com", "john.doe@example.com");
            let new_b64 = base64::engine::general_purpose::STANDARD.encode(&new_text);
            let rewrapped = new_b64
                .as_bytes()
                .chunks(width)
                .map(|c| std::str::from_utf8(c).expect("ascii"))
                .collect::<Vec<_>>()
                .join(eol);
            assert_eq!(out, msg.replace(&wrapped, &rewrapped), "width {width}");
        }
        // A short first line (an encoder that starts a part mid-line) does not set the width.
        let wrapped = format!(
            "{}\r\n{}",
            &b64[..12],
            b64.as_bytes()[12..]
                .chunks(76)
                .map(|c| std::str::from_utf8(c).expect("ascii"))
                .collect::<Vec<_>>()
                .join("\r\n")
        );
        let msg = format!(
            "{HEAD}Content-Type: text/calendar\r\nContent-Transfer-Encoding: base64\r\n\r\n{wrapped}\r\n"
        );
        let out = rewrite(&msg).expect("parses").expect("changed");
        let body = out.split("base64\r\n\r\n").nth(1).expect("body");
        let widths: Vec<usize> = body.trim_end().split("\r\n").map(str::len).collect();
        assert!(
            widths.len() > 1 && widths[..widths.len() - 1].iter().all(|&w| w == 76),
            "{widths:?}"
        );
    }

    #[test]
    fn what_cannot_be_read_for_certain_is_refused() {
        for (msg, why) in [
            (
                "Content-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\nContent-Type: text/calendar\r\n\r\nORGANIZER:mailto:jdoe@example.com\r\n",
                "without its closing boundary",
            ),
            (
                "Content-Type: multipart/mixed\r\n\r\n--q\r\n",
                "without a boundary parameter",
            ),
            (
                "Content-Type: text/calendar\r\nContent-Transfer-Encoding: base64\r\n\r\nQk!VR0lO\r\n",
                "base64",
            ),
            (
                "Content-Type: text/calendar\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin\r\n",
                "unknown transfer encoding",
            ),
        ] {
            let err = rewrite(msg).expect_err(why);
            assert!(err.0.contains(why), "{err} / {why}");
        }
    }

    #[test]
    fn the_quick_pass_sees_addresses_across_folds() {
        assert!(names_any(b"ATTENDEE:MAILTO:jdoe@example.com\r\n", &renames));
        assert!(names_any(
            b"ATTENDEE:mai\r\n lto:jdoe@exam\n\tple.com",
            &renames
        ));
        assert!(!names_any(
            b"ATTENDEE:mailto:jdoe@example.com.au\r\n",
            &renames
        ));
        assert!(!names_any(
            b"X:jdoe@example.com mailto:other@example.com",
            &renames
        ));
    }

    #[test]
    fn calendar_parts_are_spotted_in_any_case() {
        assert!(may_hold_calendar(b"Content-Type: TEXT/Calendar\r\n"));
        assert!(!may_hold_calendar(b"Content-Type: text/plain\r\n/calendar"));
        assert!(!may_hold_calendar(b"/calendar"));
    }
}

//! What may be written into a config file: the characters the toolkit refuses in values and
//! variable names, checked by every writer ([`super::Document::set`], [`super::Document::add_item`])
//! and, earlier and with the file and line of the input, by the readers of what to import.

use super::schema::SINGLE_LINE;

/// Whether `value` may be written into variable `name`: `Ok`, or why not.
///
/// Refused everywhere: C0 control characters but tab (XML 1.0 cannot hold most of them at all,
/// and the server's readers are not known to cope with the ones it can escape), DEL and the C1
/// controls U+0080–U+009F (text pasted from a mis-decoded Windows-1252 source, invisible in the
/// admin console). Line breaks (CR, LF) are refused in the one-line variables of
/// [`SINGLE_LINE`], where one would split a record or forge a log line; other variables may
/// hold them.
pub fn check_value(name: &str, value: &str) -> Result<(), String> {
    let single_line = SINGLE_LINE.contains(&name);
    for c in value.chars() {
        match c {
            '\t' => {}
            '\n' | '\r' if !single_line => {}
            '\n' | '\r' => {
                return Err(format!(
                    "line break U+{:04X} is not allowed (a one-line value)",
                    u32::from(c)
                ));
            }
            c if c.is_control() => {
                return Err(format!(
                    "control character U+{:04X} is not allowed",
                    u32::from(c)
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Whether `name` may name a variable: no control characters, tab and line breaks included.
pub fn check_variable_name(name: &str) -> Result<(), String> {
    match name.chars().find(|c| c.is_control()) {
        Some(c) => Err(format!(
            "control character U+{:04X} is not allowed in a variable name",
            u32::from(c)
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_refused_and_tab_is_not() {
        assert_eq!(check_value("FullName", "Jörg\tSmith"), Ok(()));
        for (c, want) in [
            ('\0', "control character U+0000 is not allowed"),
            ('\u{1b}', "control character U+001B is not allowed"),
            ('\u{7f}', "control character U+007F is not allowed"),
            ('\u{85}', "control character U+0085 is not allowed"),
            ('\u{9f}', "control character U+009F is not allowed"),
        ] {
            assert_eq!(check_value("X", &format!("a{c}b")), Err(want.to_owned()));
        }
        // Just outside the C1 block: a no-break space is text.
        assert_eq!(check_value("FullName", "a\u{a0}b"), Ok(()));
    }

    #[test]
    fn line_breaks_only_where_a_value_may_have_lines() {
        assert_eq!(
            check_value("FullName", "a\nb"),
            Err("line break U+000A is not allowed (a one-line value)".to_owned())
        );
        assert_eq!(
            check_value("Password", "a\rb"),
            Err("line break U+000D is not allowed (a one-line value)".to_owned())
        );
        assert_eq!(check_value("Disclaimer", "line one\r\nline two"), Ok(()));
        assert_eq!(
            check_variable_name("Bad\nName"),
            Err("control character U+000A is not allowed in a variable name".to_owned())
        );
    }
}

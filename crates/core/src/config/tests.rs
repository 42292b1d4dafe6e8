use std::path::Path;

use proptest::prelude::*;

use super::*;

const AWKWARD: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n\
<!-- written by hand -->\r\n\
<config>\r\n\
\t<list name=\"User\" identityCounter=\"7\">\r\n\
\t\t<listitem>\r\n\
\t\t\t<variable name=\"Name\">jdoe</variable>\r\n\
\t\t\t<variable name=\"Domain\">example.com</variable>\r\n\
\t\t\t<!-- smile -->\r\n\
\t\t\t<variable name=\"FullName\">John &#x263A; Doe &amp; Co</variable>\r\n\
\t\t\t<variable name=\"Description\"></variable>\r\n\
\t\t\t<variable name=\"Groups\">sales, All ,dev</variable>\r\n\
\t\t\t<variable name=\"Empty\"/>\r\n\
\t\t</listitem>\r\n\
\t\t<listitem>\r\n\
\t\t\t<variable name=\"Name\">asmith</variable>\r\n\
\t\t</listitem>\r\n\
\t</list>\r\n\
\t<list name=\"Unknown\" flavour=\"odd\"><listitem><variable name=\"X\">1</variable></listitem></list>\r\n\
\t<table name=\"Store\">\r\n\
\t\t<variable name=\"StoreDir\">/srv/store</variable>\r\n\
\t</table>\r\n\
</config>\r\n";

fn parse(text: &str) -> Document {
    Document::parse(Path::new("users.cfg"), text.as_bytes().to_vec()).expect("test input parses")
}

fn text(doc: &Document) -> String {
    String::from_utf8(doc.to_bytes()).expect("utf-8")
}

fn first_user(doc: &Document) -> ItemId {
    doc.items("User").next().expect("a user").id()
}

#[test]
fn unedited_awkward_file_round_trips_byte_for_byte() {
    let doc = parse(AWKWARD);
    assert_eq!(doc.to_bytes(), AWKWARD.as_bytes());
    assert!(!doc.is_modified());
}

#[test]
fn values_are_decoded_and_located() {
    let doc = parse(AWKWARD);
    let user = doc.items("User").next().expect("a user");
    assert_eq!(user.get("FullName"), Some("John \u{263A} Doe & Co"));
    assert_eq!(user.get("Description"), Some(""));
    assert_eq!(user.get("Empty"), Some(""));
    assert_eq!(user.get("Missing"), None);
    assert_eq!(user.line(), 5);
    assert_eq!(doc.items("User").count(), 2);
    assert_eq!(
        doc.items("Unknown").next().and_then(|i| i.get("X")),
        Some("1")
    );
    assert_eq!(
        doc.table("Store").and_then(|t| t.get("StoreDir")),
        Some("/srv/store")
    );
    let names: Vec<_> = doc.section_names().collect();
    assert_eq!(names, ["User", "Unknown", "Store"]);
}

#[test]
fn set_changes_only_the_value_bytes() {
    let mut doc = parse(AWKWARD);
    let id = first_user(&doc);
    doc.set(id, "Description", "Sales <EU> & more")
        .expect("settable");
    let expected = AWKWARD.replace(
        "\"Description\"></variable>",
        "\"Description\">Sales &lt;EU&gt; &amp; more</variable>",
    );
    assert_eq!(text(&doc), expected);
}

#[test]
fn setting_the_original_value_back_restores_the_original_spelling() {
    let mut doc = parse(AWKWARD);
    let id = first_user(&doc);
    doc.set(id, "FullName", "Someone").expect("settable");
    assert!(text(&doc).contains(">Someone</variable>"));
    doc.set(id, "FullName", "John \u{263A} Doe & Co")
        .expect("settable");
    assert_eq!(
        text(&doc),
        AWKWARD,
        "the &#x263A; reference comes back as written"
    );
}

#[test]
fn self_closing_variable_is_expanded_when_set() {
    let mut doc = parse(AWKWARD);
    let id = first_user(&doc);
    doc.set(id, "Empty", "now").expect("settable");
    let expected = AWKWARD.replace(
        "<variable name=\"Empty\"/>",
        "<variable name=\"Empty\">now</variable>",
    );
    assert_eq!(text(&doc), expected);
}

#[test]
fn a_new_variable_goes_before_the_closing_tag_with_the_file_indentation_and_line_ending() {
    let mut doc = parse(AWKWARD);
    let second = doc.items("User").nth(1).expect("two users").id();
    doc.set(second, "Domain", "example.com").expect("settable");
    let expected = AWKWARD.replace(
        "asmith</variable>\r\n\t\t</listitem>",
        "asmith</variable>\r\n\t\t\t<variable name=\"Domain\">example.com</variable>\r\n\t\t</listitem>",
    );
    assert_eq!(text(&doc), expected);
}

#[test]
fn added_item_follows_the_last_one_in_the_files_style() {
    let mut doc = parse(AWKWARD);
    let id = doc
        .add_item("User", &[("Name", "new"), ("Domain", "example.com")])
        .expect("addable");
    let expected = AWKWARD.replace(
        "\t\t</listitem>\r\n\t</list>",
        "\t\t</listitem>\r\n\t\t<listitem>\r\n\t\t\t<variable name=\"Name\">new</variable>\r\n\
         \t\t\t<variable name=\"Domain\">example.com</variable>\r\n\t\t</listitem>\r\n\t</list>",
    );
    assert_eq!(text(&doc), expected);
    assert_eq!(doc.item(id).get("Name"), Some("new"));
    doc.remove_item(id);
    assert_eq!(
        text(&doc),
        AWKWARD,
        "removing an added item leaves no trace"
    );
}

#[test]
fn added_item_in_a_one_line_list_stays_valid() {
    let mut doc = parse(AWKWARD);
    doc.add_item("Unknown", &[("X", "2")]).expect("addable");
    let out = text(&doc);
    let reparsed = parse(&out);
    let xs: Vec<_> = reparsed
        .items("Unknown")
        .filter_map(|i| i.get("X"))
        .collect();
    assert_eq!(xs, ["1", "2"]);
}

#[test]
fn removing_an_item_takes_its_whole_lines_and_restoring_it_undoes_that() {
    let mut doc = parse(AWKWARD);
    let second = doc.items("User").nth(1).expect("two users").id();
    doc.remove_item(second);
    let expected = AWKWARD.replace(
        "\t\t<listitem>\r\n\t\t\t<variable name=\"Name\">asmith</variable>\r\n\t\t</listitem>\r\n",
        "",
    );
    assert_eq!(text(&doc), expected);
    assert_eq!(doc.items("User").count(), 1);
    doc.restore_item(second);
    assert_eq!(text(&doc), AWKWARD);
}

#[test]
fn a_missing_list_is_created_before_the_root_closing_tag() {
    let mut doc = parse(AWKWARD);
    doc.add_item(
        "Alias",
        &[("Name", "info"), ("DeliverTo", "jdoe@example.com")],
    )
    .expect("addable");
    let expected = AWKWARD.replace(
        "\t</table>\r\n</config>",
        "\t</table>\r\n\t<list name=\"Alias\">\r\n\t\t<listitem>\r\n\
         \t\t\t<variable name=\"Name\">info</variable>\r\n\
         \t\t\t<variable name=\"DeliverTo\">jdoe@example.com</variable>\r\n\
         \t\t</listitem>\r\n\t</list>\r\n</config>",
    );
    assert_eq!(text(&doc), expected);
}

#[test]
fn rename_token_matches_case_insensitively_and_keeps_spacing() {
    let mut doc = parse(AWKWARD);
    let id = first_user(&doc);
    let n = doc
        .rename_token(id, "Groups", "all", "everyone")
        .expect("renamable");
    assert_eq!(n, 1);
    assert_eq!(doc.item(id).get("Groups"), Some("sales, everyone ,dev"));
    assert_eq!(
        doc.rename_token(id, "Groups", "nobody", "x").expect("ok"),
        0
    );
    assert_eq!(doc.rename_token(id, "Missing", "a", "b").expect("ok"), 0);
}

#[test]
fn remove_token_matches_case_insensitively_and_keeps_the_rest() {
    let mut doc = parse(AWKWARD);
    let id = first_user(&doc);
    assert_eq!(doc.remove_token(id, "Groups", "ALL").expect("removable"), 1);
    assert_eq!(doc.item(id).get("Groups"), Some("sales,dev"));
    assert_eq!(doc.remove_token(id, "Groups", "nobody").expect("ok"), 0);
    assert_eq!(doc.remove_token(id, "Missing", "a").expect("ok"), 0);
    assert!(doc.is_modified());
}

#[test]
fn list_token_helpers() {
    assert_eq!(list_tokens(" a, ,b ,").collect::<Vec<_>>(), ["a", "b"]);
    assert!(list_contains("Sales,ALL", "all"));
    assert!(!list_contains("sales,allx", "all"));
    assert_eq!(
        replace_list_token("a,b,A", "a", "z"),
        ("z,b,z".to_owned(), 2)
    );
    for (value, token, want) in [
        ("a,b,A", "a", ("b", 2)),
        ("x, b ,c", "b", ("x,c", 1)),
        ("b, c", "b", (" c", 1)),
        ("b", "B", ("", 1)),
        ("a,b", "z", ("a,b", 0)),
    ] {
        assert_eq!(
            remove_list_token(value, token),
            (want.0.to_owned(), want.1),
            "{value}"
        );
    }
}

#[test]
fn malformed_xml_names_file_line_and_column() {
    let bad = "<config>\n  <list name=\"User\">\n    <listitem>\n  </list>\n</config>\n";
    let err = Document::parse(Path::new("/x/users.cfg"), bad.as_bytes().to_vec())
        .expect_err("mismatched tags");
    let ConfigError::Xml { line, column, .. } = &err else {
        panic!("expected an XML error, got {err:?}");
    };
    assert_eq!((*line, *column), (4, 3));
    assert!(
        err.to_string()
            .starts_with("/x/users.cfg:4:3: malformed XML"),
        "{err}"
    );
}

#[test]
fn invalid_utf8_names_its_position() {
    let mut bytes = b"<config>\n<list name=\"User\">".to_vec();
    bytes.push(0xff);
    bytes.extend_from_slice(b"</list></config>");
    let err = Document::parse(Path::new("users.cfg"), bytes).expect_err("not utf-8");
    assert_eq!(err.to_string(), "users.cfg:2:19: not valid UTF-8");
}

#[test]
fn a_list_without_a_name_is_a_structure_error_with_its_line() {
    let err = Document::parse(
        Path::new("users.cfg"),
        b"<config>\n\n<list></list></config>".to_vec(),
    )
    .expect_err("unnamed list");
    assert_eq!(err.to_string(), "users.cfg:3: list: has no name attribute");
}

#[test]
fn a_variable_holding_markup_is_kept_but_not_edited() {
    let src = "<config><list name=\"L\"><listitem><variable name=\"V\">a<b/>c</variable></listitem></list></config>";
    let mut doc = parse(src);
    let id = doc.items("L").next().expect("item").id();
    assert_eq!(doc.item(id).get("V"), Some("ac"));
    assert!(doc.set(id, "V", "x").is_err());
    assert_eq!(text(&doc), src);
}

/// users.cfg as other writers leave it (KERIO-FORMAT.md §1): a BOM (Notepad, .NET XDocument), no
/// XML declaration and `<x />` (Python ElementTree), single quotes (by hand), numeric references
/// for non-ASCII, CRLF, and an empty list and table written self-closed.
const FOREIGN: &str = concat!(
    "\u{feff}<config>\r\n",
    "  <list name='User'>\r\n",
    "    <listitem>\r\n",
    "      <variable name='Name'>jsm</variable>\r\n",
    "      <variable name=\"FullName\">J&#246;rg Sm&#xE9;th</variable>\r\n",
    "      <variable name='Description' />\r\n",
    "    </listitem>\r\n",
    "  </list>\r\n",
    "  <list name=\"Alias\" />\r\n",
    "  <table name='Directories'>\r\n",
    "    <variable name=\"StoreDir\">/srv/store</variable>\r\n",
    "  </table>\r\n",
    "  <table name=\"Empty\"/>\r\n",
    "</config>\r\n",
);

#[test]
fn foreign_shapes_parse_exactly_and_round_trip() {
    let doc = parse(FOREIGN);
    assert_eq!(doc.to_bytes(), FOREIGN.as_bytes());
    let user = doc.items("User").next().expect("a user");
    assert_eq!(user.get("Name"), Some("jsm"), "the BOM shifts nothing");
    assert_eq!(user.get("FullName"), Some("J\u{f6}rg Sm\u{e9}th"));
    assert_eq!(user.get("Description"), Some(""));
    assert_eq!(user.line(), 3);
    assert_eq!(
        doc.table("Directories").and_then(|t| t.get("StoreDir")),
        Some("/srv/store")
    );
    assert_eq!(doc.items("Alias").count(), 0);
    let names: Vec<_> = doc.section_names().collect();
    assert_eq!(names, ["User", "Alias", "Directories", "Empty"]);
}

#[test]
fn edits_keep_the_bom_crlf_and_the_quotes_of_a_self_closed_variable() {
    let mut doc = parse(FOREIGN);
    let id = first_user(&doc);
    doc.set(id, "Name", "jsmith").expect("settable");
    doc.set(id, "Description", "Sales").expect("settable");
    let expected = FOREIGN.replace(">jsm<", ">jsmith<").replace(
        "<variable name='Description' />",
        "<variable name='Description'>Sales</variable>",
    );
    assert_eq!(text(&doc), expected);
    assert!(text(&doc).starts_with('\u{feff}'));
    doc.set(id, "Name", "jsm").expect("settable");
    doc.set(id, "Description", "").expect("settable");
    assert_eq!(text(&doc), FOREIGN);
}

#[test]
fn adding_to_a_self_closed_list_expands_it_in_place() {
    let mut doc = parse(FOREIGN);
    let id = doc
        .add_item(
            "Alias",
            &[("Name", "info"), ("DeliverTo", "jsm@example.com")],
        )
        .expect("addable");
    let expected = FOREIGN.replace(
        "  <list name=\"Alias\" />\r\n",
        "  <list name=\"Alias\">\r\n\
         \x20   <listitem>\r\n\
         \x20     <variable name=\"Name\">info</variable>\r\n\
         \x20     <variable name=\"DeliverTo\">jsm@example.com</variable>\r\n\
         \x20   </listitem>\r\n\
         \x20 </list>\r\n",
    );
    assert_eq!(text(&doc), expected);
    let again = parse(&text(&doc));
    let names: Vec<_> = again.section_names().collect();
    assert_eq!(
        names,
        ["User", "Alias", "Directories", "Empty"],
        "one Alias list"
    );
    assert_eq!(again.items("Alias").count(), 1);
    doc.add_item("Alias", &[("Name", "sales")])
        .expect("addable");
    let again = parse(&text(&doc));
    let aliases: Vec<_> = again.items("Alias").filter_map(|a| a.get("Name")).collect();
    assert_eq!(aliases, ["info", "sales"]);
    doc.remove_item(id);
    let again = parse(&text(&doc));
    assert_eq!(again.items("Alias").count(), 1);
}

#[test]
fn setting_a_variable_of_a_self_closed_table_or_listitem_expands_it() {
    let mut doc = parse(FOREIGN);
    let table = doc.table("Empty").expect("the table").id();
    doc.set(table, "Path", "/srv/x").expect("settable");
    let expected = FOREIGN.replace(
        "  <table name=\"Empty\"/>\r\n",
        "  <table name=\"Empty\">\r\n    <variable name=\"Path\">/srv/x</variable>\r\n  </table>\r\n",
    );
    assert_eq!(text(&doc), expected);
    assert_eq!(
        parse(&text(&doc))
            .table("Empty")
            .and_then(|t| t.get("Path")),
        Some("/srv/x")
    );

    let inline = "<config><list name=\"L\"><listitem/><listitem /></list></config>";
    let mut doc = parse(inline);
    let ids: Vec<_> = doc.items("L").map(|i| i.id()).collect();
    doc.set(ids[1], "X", "1").expect("settable");
    assert_eq!(
        text(&doc),
        "<config><list name=\"L\"><listitem/><listitem><variable name=\"X\">1</variable></listitem></list></config>"
    );
}

#[test]
fn a_self_closed_list_on_one_line_with_its_root_stays_valid() {
    let src = "<config><list name=\"User\"><listitem><variable name=\"Name\">a</variable></listitem></list><list name=\"Alias\"/></config>";
    let mut doc = parse(src);
    doc.add_item("Alias", &[("Name", "b")]).expect("addable");
    let again = parse(&text(&doc));
    assert_eq!(again.section_names().collect::<Vec<_>>(), ["User", "Alias"]);
    assert_eq!(
        again
            .items("Alias")
            .filter_map(|a| a.get("Name"))
            .collect::<Vec<_>>(),
        ["b"]
    );
}

#[test]
fn a_carriage_return_alone_reads_as_a_line_feed() {
    let doc = parse(
        "<config><list name=\"L\"><listitem><variable name=\"V\">a\rb\r\nc</variable></listitem></list></config>",
    );
    let v = doc.items("L").next().and_then(|i| i.get("V"));
    assert_eq!(v, Some("a\nb\nc"));
}

#[test]
fn control_characters_are_refused_with_the_file_line_and_field() {
    let mut doc = parse(FOREIGN);
    let id = first_user(&doc);
    let err = doc.set(id, "FullName", "J\u{1b}[31m").expect_err("ESC");
    assert_eq!(
        err.to_string(),
        "users.cfg:3: FullName: control character U+001B is not allowed"
    );
    let err = doc.set(id, "Description", "two\nlines").expect_err("LF");
    assert_eq!(
        err.to_string(),
        "users.cfg:3: Description: line break U+000A is not allowed (a one-line value)"
    );
    let err = doc
        .add_item("Alias", &[("Name", "x"), ("Description", "a\u{85}b")])
        .expect_err("C1");
    assert_eq!(
        err.to_string(),
        "users.cfg: Description (new Alias item): control character U+0085 is not allowed"
    );
    assert_eq!(text(&doc), FOREIGN, "a refused edit changes nothing");
    // A variable the schema does not name may hold lines.
    doc.set(id, "Signature", "Best,\nJ\u{f6}rg")
        .expect("settable");
    assert!(doc.is_modified());
}

#[test]
fn a_value_the_file_already_holds_can_always_be_set_back() {
    let src = "<config><list name=\"L\"><listitem><variable name=\"Name\">a&#x85;b</variable></listitem></list></config>";
    let mut doc = parse(src);
    let id = doc.items("L").next().expect("item").id();
    assert_eq!(doc.item(id).get("Name"), Some("a\u{85}b"));
    doc.set(id, "Name", "a\u{85}b")
        .expect("the file's own value");
    assert_eq!(text(&doc), src);
}

// ---- properties over generated documents ----

fn value() -> impl Strategy<Value = String> {
    // Text with every character class that needs care: markup, entities, non-ASCII, spaces.
    proptest::string::string_regex("[a-zA-Z0-9 ,.@<>&\"'\u{e9}\u{263a}-]{0,12}").expect("regex")
}

fn name() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[A-Z][a-zA-Z_]{0,8}").expect("regex")
}

/// A generated config file: lists of items of variables, written with a random line ending,
/// indentation, comments, list attributes, character references and self-closing variables, and
/// in the shapes of other writers (KERIO-FORMAT.md §1): a BOM or not, an XML declaration or not,
/// single or double quotes, `<x/>` or `<x />`, hexadecimal or decimal references, and empty lists
/// written self-closed.
#[derive(Debug, Clone)]
struct Generated {
    text: String,
}

/// How a generated file is written, beyond its content.
#[derive(Debug, Clone)]
struct Shape {
    crlf: bool,
    unit: &'static str,
    bom: bool,
    declaration: bool,
    quote: char,
    /// `" />"` or `"/>"`.
    empty: &'static str,
}

fn shape() -> impl Strategy<Value = Shape> {
    (
        any::<bool>(),
        prop::sample::select(vec!["  ", "\t", "    ", ""]),
        any::<bool>(),
        any::<bool>(),
        prop::sample::select(vec!['"', '\'']),
        prop::sample::select(vec![" />", "/>"]),
    )
        .prop_map(|(crlf, unit, bom, declaration, quote, empty)| Shape {
            crlf,
            unit,
            bom,
            declaration,
            quote,
            empty,
        })
}

fn generated() -> impl Strategy<Value = Generated> {
    let var = (name(), value(), 0..5u8);
    let item = prop::collection::vec(var, 0..5);
    let list = (
        name(),
        prop::collection::vec(item, 0..4),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    );
    (prop::collection::vec(list, 0..4), shape()).prop_map(|(lists, shape)| {
        let Shape {
            crlf,
            unit,
            bom,
            declaration,
            quote: q,
            empty,
        } = shape;
        let nl = if crlf { "\r\n" } else { "\n" };
        let mut t = String::new();
        if bom {
            t.push('\u{feff}');
        }
        if declaration {
            t.push_str(&format!(
                "<?xml version={q}1.0{q} encoding={q}utf-8{q}?>{nl}"
            ));
        }
        t.push_str(&format!("<config>{nl}"));
        for (name, items, attr, comment, self_closed) in lists {
            let attr = if attr {
                format!(" identityCounter={q}3{q}")
            } else {
                String::new()
            };
            if items.is_empty() && self_closed {
                t.push_str(&format!("{unit}<list name={q}{name}{q}{attr}{empty}{nl}"));
                continue;
            }
            t.push_str(&format!("{unit}<list name={q}{name}{q}{attr}>{nl}"));
            if comment {
                t.push_str(&format!("{unit}{unit}<!-- c -->{nl}"));
            }
            for vars in items {
                t.push_str(&format!("{unit}{unit}<listitem>{nl}"));
                let mut seen = std::collections::HashSet::new();
                for (vname, v, style) in vars {
                    if !seen.insert(vname.clone()) {
                        continue; // a variable name appears once per item
                    }
                    // Character references for every non-ASCII character.
                    let refs = |hex: bool| -> String {
                        escape_text(&v)
                            .chars()
                            .map(|c| match (c.is_ascii(), hex) {
                                (true, _) => c.to_string(),
                                (false, true) => format!("&#x{:X};", c as u32),
                                (false, false) => format!("&#{};", c as u32),
                            })
                            .collect()
                    };
                    let body = match style {
                        0 => escape_text(&v),
                        1 => refs(true),
                        2 => escape_text(&v).replace('\'', "&apos;"),
                        4 => refs(false),
                        _ => String::new(),
                    };
                    if style == 3 {
                        t.push_str(&format!(
                            "{unit}{unit}{unit}<variable name={q}{vname}{q}{empty}{nl}"
                        ));
                    } else {
                        t.push_str(&format!(
                            "{unit}{unit}{unit}<variable name={q}{vname}{q}>{body}</variable>{nl}"
                        ));
                    }
                }
                t.push_str(&format!("{unit}{unit}</listitem>{nl}"));
            }
            t.push_str(&format!("{unit}</list>{nl}"));
        }
        t.push_str(&format!("</config>{nl}"));
        Generated { text: t }
    })
}

fn all_items(doc: &Document) -> Vec<ItemId> {
    let mut names: Vec<String> = doc.section_names().map(str::to_owned).collect();
    names.sort();
    names.dedup();
    names
        .iter()
        .flat_map(|n| doc.items(n).map(|i| i.id()).collect::<Vec<_>>())
        .collect()
}

proptest! {
    #[test]
    fn round_trip_is_identity(g in generated()) {
        let doc = parse(&g.text);
        prop_assert_eq!(text(&doc), g.text);
    }

    #[test]
    fn set_then_set_back_is_identity(g in generated(), pick in any::<prop::sample::Index>(), v in value()) {
        let mut doc = parse(&g.text);
        let items = all_items(&doc);
        prop_assume!(!items.is_empty());
        let id = items[pick.index(items.len())];
        let vars: Vec<(String, String)> =
            doc.item(id).variables().map(|(n, v)| (n.to_owned(), v.to_owned())).collect();
        prop_assume!(!vars.is_empty());
        let (name, old) = vars[pick.index(vars.len())].clone();
        doc.set(id, &name, &v).expect("settable");
        // The edited document is well-formed and holds the new value.
        let edited = parse(&text(&doc));
        let again = all_items(&edited);
        prop_assert_eq!(edited.item(again[items.iter().position(|i| *i == id).expect("same item")]).get(&name), Some(v.as_str()));
        doc.set(id, &name, &old).expect("settable");
        prop_assert_eq!(text(&doc), g.text);
    }

    #[test]
    fn remove_then_restore_is_identity(g in generated(), pick in any::<prop::sample::Index>()) {
        let mut doc = parse(&g.text);
        let items = all_items(&doc);
        prop_assume!(!items.is_empty());
        let id = items[pick.index(items.len())];
        doc.remove_item(id);
        let removed = parse(&text(&doc));
        prop_assert_eq!(all_items(&removed).len(), items.len() - 1);
        doc.restore_item(id);
        prop_assert_eq!(text(&doc), g.text);
    }

    #[test]
    fn add_then_remove_is_identity(g in generated(), list in name(), vars in prop::collection::vec((name(), value()), 0..4)) {
        let mut doc = parse(&g.text);
        let pairs: Vec<(&str, &str)> = vars.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let id = doc.add_item(&list, &pairs).expect("addable");
        let added = parse(&text(&doc));
        let last = added.items(&list).last().expect("the added item");
        prop_assert_eq!(last.variables().map(|(n, v)| (n.to_owned(), v.to_owned())).collect::<Vec<_>>(), vars);
        doc.remove_item(id);
        prop_assert_eq!(text(&doc), g.text);
    }

    #[test]
    fn adding_to_a_list_the_file_has_adds_no_list(g in generated(), pick in any::<prop::sample::Index>(), vars in prop::collection::vec((name(), value()), 0..4)) {
        let mut doc = parse(&g.text);
        let sections: Vec<String> = doc.section_names().map(str::to_owned).collect();
        prop_assume!(!sections.is_empty());
        let list = sections[pick.index(sections.len())].clone();
        let before = doc.items(&list).count();
        let pairs: Vec<(&str, &str)> = vars.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        doc.add_item(&list, &pairs).expect("addable");
        let out = text(&doc);
        prop_assert_eq!(out.starts_with('\u{feff}'), g.text.starts_with('\u{feff}'));
        let added = parse(&out);
        // A self-closed list is expanded, never doubled: the same lists, one more item.
        prop_assert_eq!(added.section_names().collect::<Vec<_>>(), sections);
        prop_assert_eq!(added.items(&list).count(), before + 1);
        let last = added.items(&list).last().expect("the added item");
        prop_assert_eq!(last.variables().map(|(n, v)| (n.to_owned(), v.to_owned())).collect::<Vec<_>>(), vars);
    }

    #[test]
    fn rename_token_then_back_is_identity(tokens in prop::collection::vec("[a-z]{1,5}", 1..5), new in "[A-Z]{1,5}") {
        // Renaming onto a name the list already has is refused by every tool: not invertible.
        prop_assume!(!tokens.iter().any(|t| t.eq_ignore_ascii_case(&new)));
        let value = tokens.join(",");
        let src = format!("<config><list name=\"G\"><listitem><variable name=\"Members\">{value}</variable></listitem></list></config>");
        let mut doc = parse(&src);
        let id = doc.items("G").next().expect("item").id();
        let old = tokens[0].clone();
        let n = doc.rename_token(id, "Members", &old, &new).expect("ok");
        prop_assert_eq!(n, tokens.iter().filter(|t| **t == old).count());
        doc.rename_token(id, "Members", &new, &old).expect("ok");
        prop_assert_eq!(text(&doc), src);
    }
}

#[test]
fn a_second_record_of_one_account_or_one_without_a_name_is_refused_with_its_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("mailserver.cfg"), "<config>\n</config>\n").expect("write");
    let user = |name: &str| {
        format!(
            "    <listitem>\n      <variable name=\"Name\">{name}</variable>\n      <variable name=\"Domain\">example.com</variable>\n    </listitem>\n"
        )
    };
    let write = |items: String| {
        std::fs::write(
            dir.path().join("users.cfg"),
            format!("<config>\n  <list name=\"User\">\n{items}  </list>\n</config>\n"),
        )
        .expect("write")
    };
    write(user("jdoe") + &user("JDoe"));
    let err = super::Config::load(dir.path()).expect_err("refused");
    assert_eq!(
        err.to_string(),
        format!(
            "{}:7: listitem: JDoe@example.com has a second record (the first at line 3); keep one, nothing was changed",
            dir.path().join("users.cfg").display()
        )
    );
    write(user("jdoe") + &user(""));
    let err = super::Config::load(dir.path()).expect_err("refused");
    assert_eq!(
        err.to_string(),
        format!(
            "{}:7: listitem: a User record with no Name; fix or remove it, nothing was changed",
            dir.path().join("users.cfg").display()
        )
    );
    write(user("jdoe") + &user("asmith"));
    super::Config::load(dir.path()).expect("two accounts are fine");
}

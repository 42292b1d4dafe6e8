//! Account names and addresses: the vendor's name rules, `name@domain`, and the lower-case key
//! names are compared by, as the server does.

use std::fmt;

use super::AccountError;

/// Checks a username against the rules of KERIO-FORMAT.md §2: `[A-Za-z0-9._-]`, not starting or
/// ending with `.`, no `..`, at most 64 characters. Returns why it is refused.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    if name.len() > 64 {
        return Err(format!("{} characters, more than 64", name.len()));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "{c:?} is not allowed (letters, digits, '.', '_' and '-' only)"
        ));
    }
    if name.starts_with('.') || name.ends_with('.') {
        return Err("a name may not start or end with '.'".into());
    }
    if name.contains("..") {
        return Err("a name may not hold '..'".into());
    }
    Ok(())
}

/// `name@domain`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    /// The part before `@`, as written (case kept).
    pub name: String,
    /// The mail domain, as written (case kept).
    pub domain: String,
}

impl Address {
    /// Parses `name@domain`; with `default_domain`, a bare `name` is taken in that domain.
    pub fn parse(text: &str, default_domain: Option<&str>) -> Result<Address, AccountError> {
        let bad = |why: &str| AccountError::BadAddress {
            text: text.to_owned(),
            why: why.to_owned(),
        };
        let text = text.trim();
        let (name, domain) = match (text.rsplit_once('@'), default_domain) {
            (Some((n, d)), _) => (n, d),
            (None, Some(d)) => (text, d),
            (None, None) => return Err(bad("give it as user@domain")),
        };
        check_name(name).map_err(|why| bad(&why))?;
        if domain.is_empty()
            || domain.starts_with('.')
            || domain.contains("..")
            || !domain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
        {
            return Err(bad("the domain is not a domain name"));
        }
        Ok(Address {
            name: name.to_owned(),
            domain: domain.to_owned(),
        })
    }

    /// Whether both name the same account: name and domain compared case-insensitively, as the
    /// server does.
    pub fn is(&self, other: &Address) -> bool {
        self.name.eq_ignore_ascii_case(&other.name)
            && self.domain.eq_ignore_ascii_case(&other.domain)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.domain)
    }
}

/// A `(name, domain)` in lower case: how names are compared, as the server does.
pub type NameKey = (String, String);

/// The [`NameKey`] of `name@domain`: both lower-cased (ASCII).
pub fn name_key(name: &str, domain: &str) -> NameKey {
    (name.to_ascii_lowercase(), domain.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rules() {
        for good in ["jdoe", "john.doe", "a-b_c", "A1", &"x".repeat(64)] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("", "the name is empty"),
            (
                "j doe",
                "' ' is not allowed (letters, digits, '.', '_' and '-' only)",
            ),
            (
                "a/b",
                "'/' is not allowed (letters, digits, '.', '_' and '-' only)",
            ),
            (
                "jöe",
                "'ö' is not allowed (letters, digits, '.', '_' and '-' only)",
            ),
            (".jdoe", "a name may not start or end with '.'"),
            ("jdoe.", "a name may not start or end with '.'"),
            ("j..doe", "a name may not hold '..'"),
            (&"x".repeat(65), "65 characters, more than 64"),
        ] {
            assert_eq!(check_name(bad), Err(why.to_owned()), "{bad}");
        }
    }

    #[test]
    fn addresses_parse_with_or_without_a_domain() {
        let a = Address::parse("jdoe@example.com", None).expect("parses");
        assert_eq!(
            (a.name.as_str(), a.domain.as_str()),
            ("jdoe", "example.com")
        );
        let b = Address::parse("JDoe", Some("Example.COM")).expect("bare");
        assert!(a.is(&b) && b.to_string() == "JDoe@Example.COM");
        let err = Address::parse("jdoe", None).expect_err("no domain");
        assert_eq!(
            err.to_string(),
            "\"jdoe\" is not an address: give it as user@domain"
        );
        let err = Address::parse("../x@example.com", None).expect_err("bad");
        assert!(err.to_string().contains("'/' is not allowed"), "{err}");
        assert!(Address::parse("x@../etc", None).is_err());
    }
}

//! "Did you mean …?": a name given on the command line that the install does not have is an
//! error that names the closest one it has, never an empty all-clear.

/// The candidate closest to `wanted` (case-insensitively), if one is close enough to be a typo:
/// at most a third of its length in edits, and at least one character in common at the start
/// or in shape.
pub fn closest<'a, I>(wanted: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let wanted_lower = wanted.to_lowercase();
    candidates
        .into_iter()
        .map(|c| {
            (
                strsim::damerau_levenshtein(&wanted_lower, &c.to_lowercase()),
                c,
            )
        })
        .filter(|(d, c)| *d > 0 && *d <= (c.chars().count().max(3) / 3).max(1))
        .min_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)))
        .map(|(_, c)| c)
}

/// `no <what> <wanted> (did you mean <closest>?)`, or without the question when nothing is
/// close.
pub fn unknown<'a, I>(what: &str, wanted: &str, candidates: I) -> String
where
    I: IntoIterator<Item = &'a str>,
{
    match closest(wanted, candidates) {
        Some(c) => format!("no {what} {wanted} (did you mean {c}?)"),
        None => format!("no {what} {wanted}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_finds_its_name_and_a_stranger_finds_none() {
        let domains = ["example.com", "example.org", "corp.example.net"];
        assert_eq!(closest("exmaple.com", domains), Some("example.com"));
        assert_eq!(closest("example.co", domains), Some("example.com"));
        assert_eq!(closest("EXAMPLE.ORG.", domains), Some("example.org"));
        assert_eq!(closest("unrelated.test", domains), None);
        assert_eq!(closest("example.com", domains), None, "not a typo: equal");
        assert_eq!(
            unknown(
                "user",
                "lhil@example.com",
                ["lhill@example.com", "dtaylor@example.com"]
            ),
            "no user lhil@example.com (did you mean lhill@example.com?)"
        );
        assert_eq!(unknown("domain", "x.test", domains), "no domain x.test");
    }
}

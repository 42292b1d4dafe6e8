//! Problems an admin must fix before a tool acts, as data: where each was found, what it is
//! about, and why. A planner collects every one of them and refuses with the whole list, so a
//! run reports them all at once; `--json` gets them as objects, the terminal as lines.

use std::fmt;

/// One thing in the way of a plan.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// Where it was found: `FILE:LINE` of an input, when it comes from one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// What it is about: an address, a column, a path, an option. Empty when the reason says it.
    pub subject: String,
    /// Why it stops the plan, in the admin's words.
    pub reason: String,
}

impl Problem {
    /// A problem about `subject` (an address, a path, an option).
    pub fn new(subject: impl fmt::Display, reason: impl fmt::Display) -> Problem {
        Problem {
            origin: None,
            subject: subject.to_string(),
            reason: reason.to_string(),
        }
    }

    /// A problem found at `origin` (`FILE:LINE`) of an input.
    pub fn at(
        origin: impl fmt::Display,
        subject: impl fmt::Display,
        reason: impl fmt::Display,
    ) -> Problem {
        Problem {
            origin: Some(origin.to_string()),
            ..Problem::new(subject, reason)
        }
    }

    /// The line of its `FILE:LINE` origin, for putting an input's problems in file order;
    /// `usize::MAX` (last) for one without a line.
    pub fn line(&self) -> usize {
        (self.origin.as_deref())
            .and_then(|o| o.rsplit(':').next()?.parse().ok())
            .unwrap_or(usize::MAX)
    }

    /// A problem whose reason says it all (an error from elsewhere).
    pub fn said(reason: impl fmt::Display) -> Problem {
        Problem::new("", reason)
    }
}

/// `ORIGIN: SUBJECT: REASON`, without the parts that are empty.
impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(origin) = &self.origin {
            write!(f, "{origin}: ")?;
        }
        if !self.subject.is_empty() {
            write!(f, "{}: ", self.subject)?;
        }
        f.write_str(&self.reason)
    }
}

/// Every problem of a refused plan, one per line, control characters shown escaped (a name
/// from a CSV must not move the cursor or hide the rest of the line).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::change::problem_lines(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_without_empty_parts_and_serialised_with_them_named() {
        let row = Problem::at("users.csv:3", "Name", "\"a b\": contains a space");
        assert_eq!(
            row.to_string(),
            "users.csv:3: Name: \"a b\": contains a space"
        );
        let user = Problem::new("jdoe@example.com", "no such user");
        assert_eq!(user.to_string(), "jdoe@example.com: no such user");
        assert_eq!(
            Problem::said("the disk is full").to_string(),
            "the disk is full"
        );
        let all = Problems(vec![row, Problem::new("x\u{1b}[2J", "bad")]);
        assert_eq!(
            all.to_string(),
            "users.csv:3: Name: \"a b\": contains a space\nx\\u{1b}[2J: bad"
        );
        assert_eq!(
            serde_json::to_string(&all).expect("serialises"),
            r#"[{"origin":"users.csv:3","subject":"Name","reason":"\"a b\": contains a space"},{"subject":"x\u001b[2J","reason":"bad"}]"#
        );
    }
}

//! kc-rename-user: renames an account end to end on a stopped server: the mailbox directory, the
//! User record, every reference in both config files, and the folder sharing in the store (ACL
//! entries in every `status.fld`, owners in every `folder.map`) and the calendar items' ORGANIZER
//! and ATTENDEE, which the vendor's procedure leaves to users to redo by hand. A thin front over
//! `kc_core::rename`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Parser;
use kc_cli::{DryRun, GlobalArgs, WriteArgs};
use kc_core::account::Address;
use kc_core::rename::{self, Options, Rename};

/// Rename a Kerio Connect account end to end, folder sharing included (the server must be stopped).
///
/// Renames the mailbox directory, the account and its password history, every reference in
/// users.cfg and mailserver.cfg (aliases, groups, mailing lists, forwards), the ACL entries in
/// every status.fld and the owners in every folder.map of the store, the old address where
/// calendar items name it as ORGANIZER or ATTENDEE (so that events stay editable; in the
/// account's own mailbox, and in other mailboxes' items that their index lists as calendar
/// items), and adds an alias from the old name to the new one. A verified backup of everything
/// it touches is taken first.
///
/// Examples:
///   kc-rename-user -n jdoe@example.com john.doe      (show the plan, change nothing)
///   kc-rename-user jdoe@example.com john.doe@example.org
///   kc-rename-user --map renames.csv                 (lines "old,new")
///
/// Exit codes: 0 done; 2 error or refused (nothing changed).
#[derive(Debug, Parser)]
#[command(
    name = "kc-rename-user",
    version,
    about,
    long_about,
    verbatim_doc_comment
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(flatten)]
    write: WriteArgs,
    /// The account to rename, user@domain
    #[arg(required_unless_present_any = ["map", "resume"], conflicts_with_all = ["map", "resume"])]
    old: Option<String>,
    /// The new name: a bare name (same domain) or name@domain (another domain of this server)
    #[arg(required_unless_present_any = ["map", "resume"])]
    new: Option<String>,
    /// Rename many accounts: a CSV file of "old,new" lines, checked as a whole first
    #[arg(long, value_name = "FILE.csv", conflicts_with = "resume")]
    map: Option<PathBuf>,
    /// Do not add an alias from the old address to the new one
    #[arg(long)]
    no_alias: bool,
    /// Leave calendar items as they are: do not rewrite the old address where events and
    /// invitations name it as ORGANIZER or ATTENDEE (they then cannot be edited or deleted)
    #[arg(long)]
    no_calendars: bool,
}

/// Reads a `--map` file: `old,new` per record (CSV quoting as any spreadsheet writes it); blank
/// lines and `#` comments are skipped, and a first line `old,new` is taken as a header. Returns
/// the renames of the good lines and a problem per bad one, `FILE:LINE: …`.
fn read_map(path: &Path) -> anyhow::Result<(Vec<Rename>, Vec<String>)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    let mut problems = Vec::new();
    // Line by line: the csv crate's positions leave comment lines uncounted, and an admin
    // needs the line the editor shows.
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let origin = format!("{}:{line}", path.display());
        let raw = raw.trim_start_matches('\u{feff}').trim();
        if raw.is_empty() || raw.starts_with('#') {
            continue;
        }
        // One line of CSV: quoting as any spreadsheet writes it.
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .trim(csv::Trim::All)
            .from_reader(raw.as_bytes());
        let record = match reader.records().next() {
            Some(Ok(r)) => r,
            Some(Err(e)) => {
                problems.push(format!("{origin}: {e}"));
                continue;
            }
            None => continue,
        };
        let fields: Vec<&str> = record.iter().collect();
        match fields.as_slice() {
            [o, n]
                if out.is_empty()
                    && o.eq_ignore_ascii_case("old")
                    && n.eq_ignore_ascii_case("new") => {}
            [old, new] => match parse_pair(old, new) {
                Ok((old, new)) => out.push(Rename { old, new, origin }),
                Err(e) => problems.push(format!("{origin}: {e:#}")),
            },
            other => problems.push(format!(
                "{origin}: expected two fields \"old,new\", found {}",
                other.len()
            )),
        }
    }
    if out.is_empty() && problems.is_empty() {
        bail!("{}: no renames in it", path.display());
    }
    Ok((out, problems))
}

/// The line number of a `FILE:LINE: …` problem, for putting a map's problems in file order.
fn line_of(problem: &str, path: &Path) -> usize {
    let rest = problem
        .strip_prefix(&format!("{}:", path.display()))
        .unwrap_or("");
    rest.split(':')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX)
}

fn parse_pair(old: &str, new: &str) -> anyhow::Result<(Address, Address)> {
    let old = Address::parse(old, None).context("OLD")?;
    let new = Address::parse(new, Some(&old.domain)).context("NEW")?;
    Ok((old, new))
}

fn main() -> ExitCode {
    kc_cli::run_tool(rename::TOOL, |cli: Cli| {
        let settings = cli.global.resolve()?.writing(&cli.write);
        if cli.write.resume {
            return kc_cli::resume(&settings);
        }
        let dry = DryRun::from(cli.write);
        let guard = kc_cli::guard(&settings, rename::TOOL, dry)?;
        let options = Options {
            alias: !cli.no_alias,
            calendars: !cli.no_calendars,
        };
        let renames = match (&cli.map, &cli.old, &cli.new) {
            (Some(map), _, _) => {
                let (renames, mut problems) = read_map(map)?;
                if !problems.is_empty() {
                    // Every bad line in one pass: those the plan would refuse too.
                    if let Err(rename::RenameError::Refused(more)) =
                        rename::plan(&settings.install, &renames, options)
                    {
                        problems.extend(more);
                    }
                    problems.sort_by_key(|p| line_of(p, map));
                    bail!(
                        "{}; nothing was changed",
                        kc_core::change::problem_lines(&problems)
                    );
                }
                renames
            }
            (None, Some(old), Some(new)) => {
                let (old, new) = parse_pair(old, new)?;
                vec![Rename {
                    old,
                    new,
                    origin: String::new(),
                }]
            }
            _ => bail!("give OLD and NEW, or --map FILE"),
        };
        let planned = rename::plan(&settings.install, &renames, options)?;
        kc_cli::carry_out(&settings, &planned.plan, dry, &guard)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        // As the binary presents it: with kc-cli's `completions` and `man`.
        kc_cli::command::<super::Cli>().debug_assert();
    }

    #[test]
    fn map_files_name_their_bad_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.csv");
        std::fs::write(
            &path,
            "old,new\n# a comment\njdoe@example.com,john\n\nbad name@example.com,x\na@b.c,d,e\n",
        )
        .expect("write");
        let (good, problems) = read_map(&path).expect("reads");
        let p = path.display();
        assert_eq!(
            problems,
            [
                format!(
                    "{p}:5: OLD: \"bad name@example.com\" is not an address: ' ' is not allowed (letters, digits, '.', '_' and '-' only)"
                ),
                format!("{p}:6: expected two fields \"old,new\", found 3"),
            ]
        );
        assert_eq!(good.len(), 1);
        assert_eq!(good[0].origin, format!("{p}:3"));
        std::fs::write(
            &path,
            "jdoe@example.com, john \nx@example.org,y@example.com\n",
        )
        .expect("write");
        let (ok, problems) = read_map(&path).expect("reads");
        assert!(problems.is_empty());
        assert_eq!(
            ok.iter()
                .map(|r| format!(
                    "{} {} {}",
                    r.old,
                    r.new,
                    r.origin.rsplit(':').next().unwrap_or("")
                ))
                .collect::<Vec<_>>(),
            [
                "jdoe@example.com john@example.com 1",
                "x@example.org y@example.com 2"
            ]
        );
    }
}

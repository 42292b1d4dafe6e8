//! kc-rename-user: renames an account end to end on a stopped server: the mailbox directory, the
//! User record, every reference in both config files, and the folder sharing in the store (ACL
//! entries in every `status.fld`, owners in every `folder.map`), which the vendor's procedure
//! leaves to users to redo by hand. A thin front over `kc_core::rename`.

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
/// every status.fld and the owners in every folder.map of the store, and adds an alias from the
/// old name to the new one. A verified backup of everything it touches is taken first.
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
}

/// Reads a `--map` file: `old,new` per record; blank lines and `#` comments are skipped, and a
/// first line `old,new` is taken as a header.
fn read_map(path: &Path) -> anyhow::Result<Vec<Rename>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    let mut problems = Vec::new();
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
    if !problems.is_empty() {
        bail!("{}; nothing was changed", problems.join("\n"));
    }
    if out.is_empty() {
        bail!("{}: no renames in it", path.display());
    }
    Ok(out)
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
        let renames = match (&cli.map, &cli.old, &cli.new) {
            (Some(map), _, _) => read_map(map)?,
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
        let options = Options {
            alias: !cli.no_alias,
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
        let err = read_map(&path).expect_err("bad lines").to_string();
        let p = path.display();
        assert_eq!(
            err,
            format!(
                "{p}:5: OLD: \"bad name@example.com\" is not an address: ' ' is not allowed (letters, digits, '.', '_' and '-' only)\n{p}:6: expected two fields \"old,new\", found 3; nothing was changed"
            )
        );
        std::fs::write(
            &path,
            "jdoe@example.com, john \nx@example.org,y@example.com\n",
        )
        .expect("write");
        let ok = read_map(&path).expect("reads");
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

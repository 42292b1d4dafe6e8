//! kc-rename-user: renames an account end to end on a stopped server: the mailbox directory, the
//! User record, every reference in both config files, and the folder sharing in the store (ACL
//! entries in every `status.fld`, owners in every `folder.map`) and the calendar items' ORGANIZER
//! and ATTENDEE, which the vendor's procedure leaves to users to redo by hand. A thin front over
//! `kc_core::rename`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::Parser;
use kc_cli::{DryRun, GlobalArgs, WriteArgs};
use kc_core::model::Model;
use kc_core::problem::{Problem, Problems};
use kc_core::rename::{self, Options, Rename, RenameError};

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
        let model = Model::load(&settings.install)?;
        let renames = match (&cli.map, &cli.old, &cli.new) {
            (Some(map), _, _) => {
                let (renames, mut problems) = rename::read_map(map)?;
                if !problems.is_empty() {
                    // Every bad line in one pass: those the plan would refuse too.
                    if let Err(RenameError::Refused(more)) = rename::plan(model, &renames, options)
                    {
                        problems.extend(more.0);
                    }
                    problems.sort_by_key(Problem::line);
                    let refused = RenameError::Refused(Problems(problems));
                    kc_cli::print_problems(&settings, refused.problems());
                    return Err(refused.into());
                }
                renames
            }
            (None, Some(old), Some(new)) => {
                let (old, new) = rename::parse_pair(old, new)
                    .map_err(|(field, why)| anyhow::anyhow!("{field}: {why}"))?;
                vec![Rename {
                    old,
                    new,
                    origin: String::new(),
                }]
            }
            _ => bail!("give OLD and NEW, or --map FILE"),
        };
        let planned = rename::plan(model, &renames, options)
            .inspect_err(|e| kc_cli::print_problems(&settings, e.problems()))?;
        kc_cli::carry_out(&settings, &planned.plan, dry, &guard)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_well_formed() {
        // As the binary presents it: with kc-cli's `completions` and `man`.
        kc_cli::command::<super::Cli>().debug_assert();
    }
}

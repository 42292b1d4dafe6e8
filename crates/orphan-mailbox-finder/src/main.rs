//! kc-orphan-mailbox-finder: finds mailbox directories with no account, and the inconsistencies
//! around them, reports them, and archives, transfers or re-adopts them through the change
//! protocol. A thin front over `kc_core::orphan`.

use std::borrow::Cow;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Parser;
use kc_cli::{DryRun, Format, GlobalArgs, Outcome, Settings, WriteArgs};
use kc_core::account::Address;
use kc_core::change::printable;
use kc_core::guard::{self, ServerState};
use kc_core::model::Model;
use kc_core::orphan::{self, Directory, Filter, Finding, Kind, Resolve};

/// Find mailbox directories without accounts, and the inconsistencies around them.
///
/// Kinds: orphan-mailbox (a directory with no account), orphan-domain (a domain directory with
/// no domain), case-mismatch (directory and account differ only by case), missing-mailbox (an
/// enabled account with no directory: never logged in), deleted-mailbox-folder (a
/// "Deleted mailbox — …" folder left by a transfer), unverifiable (mailboxes of a domain mapped
/// from a directory service; give --directory-export to check them).
///
/// The report only reads (and runs, with a warning, while the server does). The actions change
/// the orphan mailboxes (--archive also orphan domains), with the server stopped, and only with
/// --execute (else they print the plan).
///
/// Examples:
///   kc-orphan-mailbox-finder --older-than 365 --csv > orphans.csv
///   kc-orphan-mailbox-finder --domain example.com --archive --execute
///   kc-orphan-mailbox-finder --name jdoe --transfer-to boss@example.com --execute
///
/// Exit codes: 0 nothing found (or the action done); 1 findings reported; 2 error or refused.
#[derive(Debug, Parser)]
#[command(
    name = "kc-orphan-mailbox-finder",
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
    /// Only this domain
    #[arg(long, short = 'd', value_name = "DOMAIN")]
    domain: Option<String>,
    /// Only this mailbox name
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Only findings whose newest message is older than DAYS (or that hold none)
    #[arg(long, value_name = "DAYS")]
    older_than: Option<u64>,
    /// An LDIF export of the directory service, listing a mapped domain's accounts
    #[arg(long, value_name = "FILE.ldif")]
    directory_export: Option<PathBuf>,
    /// The report as CSV, with a header row
    #[arg(long, conflicts_with = "json")]
    csv: bool,
    /// Back up, then remove, the orphan mailboxes and orphan domain directories
    #[arg(long, group = "action")]
    archive: bool,
    /// Move each orphan mailbox under USER@DOMAIN as folder "Deleted mailbox — <name>@<domain>"
    #[arg(long, value_name = "USER@DOMAIN", group = "action")]
    transfer_to: Option<String>,
    /// Create a disabled account for each orphan mailbox, so the server re-attaches it
    #[arg(long, group = "action")]
    adopt: bool,
    /// Carry out the action (without it, the plan is printed and nothing changes)
    #[arg(long, requires = "action")]
    execute: bool,
}

const FIELDS: [&str; 7] = [
    "kind", "domain", "name", "path", "bytes", "messages", "newest",
];

/// `12 findings: 9 orphan-mailbox, 1 orphan-domain, 2 unverifiable`: a count per kind, so
/// that a few real orphans are not lost under many of another kind.
fn summary(found: &[Finding]) -> String {
    let mut counts: Vec<(orphan::Kind, usize)> = Vec::new();
    for f in found {
        match counts.iter_mut().find(|(k, _)| *k == f.kind) {
            Some((_, n)) => *n += 1,
            None => counts.push((f.kind, 1)),
        }
    }
    counts.sort();
    let each: Vec<String> = counts
        .iter()
        .map(|(k, n)| format!("{n} {}", k.as_str()))
        .collect();
    format!(
        "{}: {}: {}",
        orphan::TOOL,
        kc_cli::count(found.len(), "finding"),
        each.join(", ")
    )
}

/// A finding as a CSV row: the JSON fields, names as the table shows them (a control
/// character never reaches the terminal).
#[derive(serde::Serialize)]
struct CsvRow<'f> {
    kind: Kind,
    domain: Cow<'f, str>,
    name: Cow<'f, str>,
    path: Cow<'f, str>,
    bytes: u64,
    messages: u64,
    newest: Option<&'f str>,
}

impl CsvRow<'_> {
    fn of(f: &Finding) -> CsvRow<'_> {
        CsvRow {
            kind: f.kind,
            domain: printable(&f.domain),
            name: printable(&f.name),
            path: printable(&f.path),
            bytes: f.bytes,
            messages: f.messages,
            newest: f.newest.as_deref(),
        }
    }
}

fn report(settings: &Settings, csv_out: bool, found: &[Finding]) -> anyhow::Result<()> {
    if csv_out {
        let mut w = csv::Writer::from_writer(std::io::stdout().lock());
        if found.is_empty() {
            // The header alone: serialize writes it with the first row.
            w.write_record(FIELDS)?;
        }
        for f in found {
            w.serialize(CsvRow::of(f))?;
        }
        w.flush().context("writing to stdout")?;
        return Ok(());
    }
    match settings.format {
        Format::Json => {
            for f in found {
                kc_cli::print_json(f)?;
            }
        }
        Format::Human => {
            if found.is_empty() {
                settings.info("no findings");
                return Ok(());
            }
            kc_cli::outln!(
                "{:<22} {:<20} {:<20} {:>12} {:>8} {:<20} PATH",
                "KIND",
                "DOMAIN",
                "NAME",
                "SIZE",
                "MESSAGES",
                "NEWEST"
            )?;
            for f in found {
                kc_cli::outln!(
                    "{:<22} {:<20} {:<20} {:>12} {:>8} {:<20} {}",
                    f.kind.as_str(),
                    printable(&f.domain),
                    printable(&f.name),
                    kc_cli::human_bytes(f.bytes),
                    f.messages,
                    f.newest.as_deref().unwrap_or("-"),
                    printable(&f.path)
                )?;
            }
            settings.info(summary(found));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    kc_cli::run_tool(orphan::TOOL, |cli: Cli| {
        let settings = cli.global.resolve()?.writing(&cli.write);
        if cli.write.resume {
            return kc_cli::resume(&settings);
        }
        let action = match (&cli.transfer_to, cli.archive, cli.adopt) {
            (Some(to), ..) => Some(Resolve::TransferTo(
                Address::parse(to, None).context("--transfer-to")?,
            )),
            (None, true, _) => Some(Resolve::Archive),
            (None, _, true) => Some(Resolve::Adopt),
            _ => None,
        };
        if action.is_none() {
            let check = guard::check(&settings.install.root, &settings.pid_file);
            settings.note_other_servers(orphan::TOOL, &check.others);
            if check.state != ServerState::Stopped {
                settings.warn(
                    orphan::TOOL,
                    "the server is running: the store may change under the report",
                );
            }
        }
        let directory = cli
            .directory_export
            .as_deref()
            .map(Directory::load)
            .transpose()?;
        let filter = Filter {
            domain: cli.domain.clone(),
            name: cli.name.clone(),
            older_than_days: cli.older_than,
        };
        let dry = if cli.execute {
            DryRun::from(cli.write)
        } else {
            DryRun::Enabled
        };
        // An action holds the lock from before the scan its plan is made from.
        let guard = match action {
            Some(_) => Some(kc_cli::guard(&settings, orphan::TOOL, dry)?),
            None => None,
        };
        // One reading of the configuration for the scan and the plan made from it.
        let model = Model::load(&settings.install)?;
        let found = orphan::scan(&model, directory.as_ref(), &filter, &settings.progress())?;
        let Some(action) = action else {
            report(&settings, cli.csv, &found)?;
            return Ok(if found.is_empty() {
                Outcome::Success
            } else {
                Outcome::Found
            });
        };
        let resolvable = |k: orphan::Kind| {
            k == orphan::Kind::OrphanMailbox
                || (k == orphan::Kind::OrphanDomain && action == Resolve::Archive)
        };
        if !found.iter().any(|f| resolvable(f.kind)) {
            settings.info(format!(
                "{}: no orphan mailboxes: nothing to do",
                orphan::TOOL
            ));
            return Ok(Outcome::Success);
        }
        let plan = orphan::plan(model, &found, &action)
            .inspect_err(|e| kc_cli::print_problems(&settings, e.problems()))?;
        if dry == DryRun::Enabled && !cli.write.dry_run {
            settings.info("(add --execute to carry this out)");
        }
        if plan.steps.is_empty() {
            bail!("nothing to do");
        }
        let guard = guard.context("an action has its guard")?;
        kc_cli::carry_out(&settings, &plan, dry, &guard)
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

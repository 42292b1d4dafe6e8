//! kc-store: the store's consistency report (`check`) and the server's index rebuild asked for
//! offline (`reindex`, through the change protocol). A thin front over `kc_core::store_check`
//! and `kc_core::reindex`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use kc_cli::{DryRun, Format, GlobalArgs, Outcome, Settings, WriteArgs};
use kc_core::change::printable;
use kc_core::guard::{self, ServerState};
use kc_core::model::Model;
use kc_core::reindex;
use kc_core::store::scope::Selection;
use kc_core::store_check::{self, Report, TOOL};

/// Check a Kerio Connect store offline, and have the server rebuild folder indexes.
///
/// check: for every folder of every mailbox and of the public folders, index.fld against the
/// messages in #msgs (record-without-file, file-without-record, size-mismatch,
/// duplicate-record, bad-index-line, missing-index), missing-status, unreadable files,
/// malformed-file (folder.map), and the accounts named by status.fld and acl.fld ACLs, sub.fld
/// and folder.map that users.cfg does not have (acl-unknown-account,
/// subscription-unknown-account, folder-map-unknown-account). It only reads (and runs, with a
/// warning, while the server does).
///
/// reindex: with the server stopped, moves each selected folder's index.fld to index.bad and
/// search.fld to search.bad (never over an existing one: index.bad.1, …), so that the server
/// rebuilds them from #msgs when it starts. One change: backed up first, undone with
/// `kc-backup undo`.
///
/// Examples:
///   kc-store check --domain example.com
///   kc-store check --json > check.jsonl
///   kc-store reindex -n --from-check check.jsonl
///   kc-store reindex --user jdoe@example.com --folder INBOX
///
/// Exit codes: 0 clean (or done); 1 check found something; 2 error or refused (nothing changed).
#[derive(Debug, Parser)]
#[command(name = "kc-store", version, about, long_about, verbatim_doc_comment)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(flatten)]
    write: WriteArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Report what is inconsistent in the store (only reads)
    Check {
        /// Only this domain
        #[arg(long, short = 'd', value_name = "DOMAIN")]
        domain: Option<String>,
        /// Only this mailbox (NAME, or NAME@DOMAIN; #public for public folders)
        #[arg(long, short = 'u', value_name = "USER")]
        user: Option<String>,
        /// The report as CSV, with a header row
        #[arg(long, conflicts_with = "json")]
        csv: bool,
    },
    /// Move folders' index.fld and search.fld aside, so that the server rebuilds them
    Reindex {
        /// Only this domain
        #[arg(long, short = 'd', value_name = "DOMAIN")]
        domain: Option<String>,
        /// Only this mailbox (NAME, or NAME@DOMAIN; #public for public folders)
        #[arg(long, short = 'u', value_name = "USER")]
        user: Option<String>,
        /// Only this folder of the mailbox (INBOX/Projects)
        #[arg(long, value_name = "PATH", requires = "user")]
        folder: Option<PathBuf>,
        /// The folders a `kc-store check --json` report names (those a rebuilt index answers)
        #[arg(long, value_name = "FILE", conflicts_with_all = ["domain", "user", "folder"])]
        from_check: Option<PathBuf>,
    },
}

const FIELDS: [&str; 6] = ["kind", "domain", "user", "folder", "path", "detail"];

fn table(report: &Report) -> anyhow::Result<()> {
    let width = |get: &dyn Fn(&store_check::Finding) -> usize, title: &str| {
        report
            .findings
            .iter()
            .map(get)
            .chain([title.len()])
            .max()
            .unwrap_or(0)
            .min(40)
    };
    let wk = width(&|f| f.kind.as_str().len(), "KIND");
    let wd = width(&|f| f.domain.chars().count(), "DOMAIN");
    let wu = width(&|f| f.user.chars().count(), "USER");
    let wf = width(&|f| f.folder.chars().count(), "FOLDER");
    kc_cli::outln!(
        "{:<wk$}  {:<wd$}  {:<wu$}  {:<wf$}  DETAIL  |  PATH",
        "KIND",
        "DOMAIN",
        "USER",
        "FOLDER"
    )?;
    for f in &report.findings {
        kc_cli::outln!(
            "{:<wk$}  {:<wd$}  {:<wu$}  {:<wf$}  {}  |  {}",
            f.kind.as_str(),
            printable(&f.domain),
            printable(&f.user),
            printable(&f.folder),
            printable(&f.detail),
            printable(&f.path)
        )?;
    }
    kc_cli::outln!()?;
    let counts = report.counts();
    let wc = counts
        .iter()
        .map(|(k, _)| k.as_str().len())
        .max()
        .unwrap_or(0)
        .max(5);
    for (kind, n) in &counts {
        kc_cli::outln!("{:<wc$}  {n:>7}", kind.as_str())?;
    }
    kc_cli::outln!("{:<wc$}  {:>7}", "total", report.findings.len())
}

fn check(settings: &Settings, selection: Selection, csv_out: bool) -> anyhow::Result<Outcome> {
    let server = guard::check(&settings.install.root, &settings.pid_file);
    settings.note_other_servers(TOOL, &server.others);
    if server.state != ServerState::Stopped {
        settings.warn(
            TOOL,
            "the server is running: the store may change under the report",
        );
    }
    let model = Model::load(&settings.install)?;
    let report = store_check::check(&model, &selection, &settings.progress())?;
    if csv_out {
        let mut w = csv::Writer::from_writer(std::io::stdout().lock());
        w.write_record(FIELDS)?;
        for f in &report.findings {
            // Names as the table shows them: a control character never reaches the terminal.
            w.write_record([
                f.kind.as_str(),
                &printable(&f.domain),
                &printable(&f.user),
                &printable(&f.folder),
                &printable(&f.path),
                &printable(&f.detail),
            ])?;
        }
        w.flush().context("writing to stdout")?;
    } else {
        match settings.format {
            Format::Json => {
                for f in &report.findings {
                    kc_cli::print_json(f)?;
                }
            }
            Format::Human if report.findings.is_empty() => {}
            Format::Human => table(&report)?,
        }
    }
    settings.info(format!(
        "{TOOL}: checked {} folders ({} messages) in {} mailboxes and public-folder trees: {}",
        report.folders,
        report.messages,
        report.places,
        match report.findings.len() {
            0 => "no findings".to_owned(),
            n => kc_cli::count(n, "finding"),
        }
    ));
    Ok(if report.findings.is_empty() {
        Outcome::Success
    } else {
        Outcome::Found
    })
}

fn reindex(
    settings: &Settings,
    dry: DryRun,
    selection: Selection,
    folder: Option<PathBuf>,
    from_check: Option<PathBuf>,
) -> anyhow::Result<Outcome> {
    // The lock is held from before the store is read.
    let guard = kc_cli::guard(settings, TOOL, dry)?;
    let folders = match &from_check {
        Some(file) => {
            let targets = reindex::read_check(&settings.install, file)?;
            if targets.skipped > 0 {
                settings.info(format!(
                    "{TOOL}: {} of {} are not answered by a rebuilt index and are left out",
                    kc_cli::count(targets.skipped, "finding"),
                    file.display()
                ));
            }
            targets.folders
        }
        None => reindex::select(&settings.install, &selection, folder.as_deref())?,
    };
    if folders.is_empty() {
        settings.info(format!("{TOOL}: no folder to reindex; nothing changed"));
        return Ok(Outcome::Success);
    }
    let plan = reindex::plan(&settings.install, &folders);
    if plan.steps.is_empty() {
        for w in &plan.warnings {
            settings.warn(TOOL, w);
        }
        settings.info(format!("{TOOL}: nothing to change"));
        return Ok(Outcome::Success);
    }
    kc_cli::carry_out(settings, &plan, dry, &guard)
}

fn main() -> ExitCode {
    kc_cli::run_tool(TOOL, |cli: Cli| {
        let settings = cli.global.resolve()?;
        if cli.write.resume {
            return kc_cli::resume(&settings);
        }
        match cli.command {
            None => bail!("give a command (check, reindex) or --resume"),
            Some(Command::Check { domain, user, csv }) => {
                check(&settings, Selection { domain, user }, csv)
            }
            Some(Command::Reindex {
                domain,
                user,
                folder,
                from_check,
            }) => reindex(
                &settings,
                DryRun::from(cli.write),
                Selection { domain, user },
                folder,
                from_check,
            ),
        }
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

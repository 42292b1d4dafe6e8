//! kc-backup: full and differential backups of a stopped Kerio Connect server, their
//! verification, listing and selective restore. A thin front over `kc_core::archive`.

use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use kc_cli::{DryRun, Format, GlobalArgs, Outcome, Settings, Verbosity};
use kc_core::archive::{
    self, Backup, Compression, CreateOptions, Kind, Mask, RestoreOptions, Selection,
};
use kc_core::change::printable;
use kc_core::guard;

const TOOL: &str = "kc-backup";

/// Back up, verify and restore a stopped Kerio Connect server.
///
/// Backups are tar archives that GNU tar extracts as they are, with a manifest that
/// `sha256sum -c` accepts from the install root, named like the server's own: F (full),
/// D (differential), P (pre-change) and the UTC time, e.g. F20261122T101500Z.tar.gz.
///
/// Example: kc-backup --server /opt/kerio/mailserver create
///
/// Exit codes: 0 done; 1 verify found damage; 2 error or refused (nothing changed).
#[derive(Debug, Parser)]
#[command(name = "kc-backup", version, about, long_about)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum KindArg {
    Full,
    Diff,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CompressionArg {
    Gzip,
    Zstd,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Take a backup (the server must be stopped)
    Create {
        /// A full backup, or a differential of what changed since a full one
        #[arg(long, value_enum, default_value = "full")]
        kind: KindArg,
        /// The full backup a differential is based on [default: the newest full one]
        #[arg(long, value_name = "ID")]
        base: Option<String>,
        #[arg(long, value_enum, default_value = "gzip")]
        compression: CompressionArg,
        /// Compression level, as `gzip -N` (0-9) or `zstd -N` [default: 6 for gzip, as gzip and
        /// pigz; 3 for zstd]
        #[arg(long, value_name = "N")]
        level: Option<i32>,
        /// What to back up, as kmsrecover: all, cfg, mail, license, sslcert, settings, logs, queue
        #[arg(long, value_name = "LIST", default_value = "all", value_parser = parse_masks)]
        mask: Masks,
        /// Record unreadable files in the backup's .json and go on, instead of failing
        #[arg(long)]
        skip_unreadable: bool,
    },
    /// List the backups in the backup directory (a pre-change backup names its change)
    List,
    /// List the changes the tools made: when, which tool, what, and whether still in effect
    ///
    /// Oldest first, with each change's pre-change backup; its state is in effect, undone,
    /// rolled back (it failed and was taken back) or interrupted.
    Changes,
    /// Check a backup: every chunk decompresses and every file matches its SHA-256
    Verify {
        /// The backup's ID (F20261122T101500Z), archive path, or latest (the newest full or differential)
        backup: String,
        /// Compare the manifest with the live tree instead
        #[arg(long)]
        against_live: bool,
    },
    /// Restore a backup (a differential brings its full backup with it)
    Restore {
        /// The backup's ID, archive path, or latest (the newest full or differential)
        backup: String,
        /// A new (or empty) directory to restore into
        #[arg(
            long,
            value_name = "DIR",
            required_unless_present = "in_place",
            conflicts_with = "in_place"
        )]
        to: Option<PathBuf>,
        /// Restore onto the install itself (the server must be stopped)
        #[arg(long)]
        in_place: bool,
        /// Only this domain's mail
        #[arg(short = 'd', long, value_name = "DOMAIN")]
        domain: Option<String>,
        /// Only this user's mailbox (USER, with --domain, or USER@DOMAIN)
        #[arg(short = 'u', long, value_name = "USER")]
        user: Option<String>,
        /// Only this folder of the user's mailbox (e.g. INBOX/Projects)
        #[arg(short = 'f', long, value_name = "FOLDER", requires = "user")]
        folder: Option<String>,
        /// Only these parts, as kmsrecover: all, cfg, mail, license, sslcert, settings, logs, queue
        #[arg(short = 'm', long, value_name = "LIST", default_value = "all", value_parser = parse_masks)]
        mask: Masks,
    },
    /// Take back a change made by a kerio-toolkit tool, from its pre-change backup
    Undo {
        /// The change's ID (C20261122T101500Z), as the tool and the journal name it
        #[arg(
            value_name = "CHANGE-ID",
            required_unless_present = "last",
            conflicts_with = "last"
        )]
        change: Option<String>,
        /// The newest change not yet undone
        #[arg(long)]
        last: bool,
        /// Undo even though a path was edited since the change (what is there now is backed up
        /// first, and named)
        #[arg(long)]
        force: bool,
        /// Say which change would be taken back, and whether it can be, and change nothing
        #[arg(short = 'n', long)]
        dry_run: bool,
    },
}

/// A comma list of masks, as one argument.
#[derive(Debug, Clone)]
struct Masks(Vec<Mask>);

fn parse_masks(s: &str) -> Result<Masks, String> {
    Mask::parse_list(s).map(Masks)
}

fn main() -> ExitCode {
    kc_cli::run_tool("kc-backup", |cli: Cli| {
        let settings = cli.global.resolve()?;
        match cli.command {
            Command::Create {
                kind,
                base,
                compression,
                level,
                mask,
                skip_unreadable,
            } => create(
                &settings,
                kind,
                base,
                compression,
                level,
                mask.0,
                skip_unreadable,
            ),
            Command::List => list(&settings),
            Command::Changes => changes(&settings),
            Command::Undo {
                change,
                force,
                dry_run,
                ..
            } => undo(&settings, change.as_deref(), force, dry_run),
            Command::Verify {
                backup,
                against_live,
            } => verify(&settings, &backup, against_live),
            Command::Restore {
                backup,
                to,
                in_place,
                domain,
                user,
                folder,
                mask,
            } => restore(
                &settings, &backup, to, in_place, domain, user, folder, &mask.0,
            ),
        }
    })
}

fn mib(bytes: u64) -> String {
    kc_cli::human_bytes(bytes)
}

/// What a change's state means to an admin.
fn state(status: kc_core::change::Status) -> &'static str {
    use kc_core::change::Status;
    match status {
        Status::Done => "in effect",
        Status::Undone => "undone",
        Status::RolledBack => "rolled back",
        Status::Applying => "interrupted",
        Status::Undoing => "undo interrupted",
    }
}

fn changes(settings: &Settings) -> anyhow::Result<Outcome> {
    let (journals, unreadable) = kc_core::change::journals_listing(&settings.install)?;
    for why in &unreadable {
        settings.warn(
            TOOL,
            &format!(
                "{why}: this journal cannot be read, and every writer refuses while it is in kc-journal; if the changes below and the backups show it finished or undone, move it out (keep it)"
            ),
        );
    }
    for j in &journals {
        match settings.format {
            Format::Json => kc_cli::print_json(&serde_json::json!({
                "change": j.id,
                "started": j.started,
                "tool": j.tool,
                "description": j.description,
                "state": state(j.status),
                "backup": j.backup,
                "undone": j.undone,
                "paths": j.touched.len(),
            }))?,
            Format::Human => {
                if j.id == journals[0].id {
                    kc_cli::outln!(
                        "{:<18} {:<20} {:<16} {:<24} {:<18} WHAT",
                        "CHANGE",
                        "STARTED (UTC)",
                        "STATE",
                        "TOOL",
                        "BACKUP"
                    )?;
                }
                kc_cli::outln!(
                    "{:<18} {:<20} {:<16} {:<24} {:<18} {}",
                    j.id,
                    j.started.strftime("%Y-%m-%dT%H:%M:%S").to_string(),
                    state(j.status),
                    j.tool,
                    j.backup,
                    printable(&j.description)
                )?;
            }
        }
    }
    if journals.is_empty() && unreadable.is_empty() {
        settings.info(format!(
            "no changes recorded in {}",
            settings
                .install
                .root
                .join(kc_core::install::JOURNAL_DIR)
                .display()
        ));
    } else if let Some(unfinished) = journals.iter().find(|j| j.status.unfinished()) {
        settings.warn(
            TOOL,
            &format!(
                "change {} was interrupted: {}take it back with `kc-backup undo {}`",
                unfinished.id,
                // kc-backup's own changes (restore --in-place) have no --resume.
                if unfinished.tool == TOOL {
                    String::new()
                } else {
                    format!("finish it with `{} --resume` or ", unfinished.tool)
                },
                unfinished.id
            ),
        );
    }
    Ok(if unreadable.is_empty() {
        Outcome::Success
    } else {
        Outcome::Found
    })
}

fn describe(b: &Backup, changes: &[kc_core::change::Journal]) -> String {
    let m = &b.meta;
    let kind = match m.kind {
        Kind::Full => "full",
        Kind::Diff => "diff",
        Kind::PreChange => "pre-change",
    };
    let base = m
        .base
        .as_deref()
        .map(|b| format!(" (base {b})"))
        .unwrap_or_default();
    let change = changes
        .iter()
        .find(|j| j.backup == m.id)
        .map(|j| {
            format!(
                " (before {}, {} {})",
                j.id,
                j.tool,
                printable(&j.description)
            )
        })
        .unwrap_or_default();
    format!(
        "{}  {kind}{base}{change}  {} files  {} -> {}  {}",
        m.id,
        m.files,
        mib(m.bytes),
        mib(m.archive_bytes),
        b.archive.display()
    )
}

fn create(
    settings: &Settings,
    kind: KindArg,
    base: Option<String>,
    compression: CompressionArg,
    level: Option<i32>,
    masks: Vec<Mask>,
    skip_unreadable: bool,
) -> anyhow::Result<Outcome> {
    // Before anything is written: an archive made at another level than asked (and recorded)
    // would be a quiet lie.
    let (name, levels) = match compression {
        CompressionArg::Gzip => ("gzip", 0..=9),
        CompressionArg::Zstd => ("zstd", 1..=22),
    };
    if let Some(l) = level
        && !levels.contains(&l)
    {
        bail!(
            "--level {l}: {name} levels are {} to {}; nothing was written",
            levels.start(),
            levels.end()
        );
    }
    let root = &settings.install.root;
    let lock = guard::acquire(root, &settings.pid_file, TOOL)?;
    settings.note_other_servers(TOOL, lock.other_servers());
    // What a backup stopped by `kill -9` or a crash left; one still being written (another
    // process writing here, for another install) is not touched.
    match archive::remove_leftovers(&settings.backup_dir) {
        Ok(removed) => {
            for leftover in &removed {
                settings.note(
                    TOOL,
                    &format!(
                        "removed {}, left by a backup that stopped before it finished",
                        describe_leftover(leftover)
                    ),
                );
            }
        }
        Err(e) => settings.warn(
            TOOL,
            &format!("cannot remove what an interrupted backup left: {e}"),
        ),
    }
    let kind = match kind {
        KindArg::Full => Kind::Full,
        KindArg::Diff => Kind::Diff,
    };
    let base = match (kind, base) {
        (Kind::Diff, Some(id)) => {
            let b = archive::find(&settings.backup_dir, &id)?;
            if b.meta.kind != Kind::Full {
                bail!("{id} is a {:?} backup; a differential is based on a full one", b.meta.kind);
            }
            Some(b)
        }
        (Kind::Diff, None) => Some(
            archive::list(&settings.backup_dir)?
                .into_iter()
                .rev()
                .find(|b| b.meta.kind == Kind::Full)
                .with_context(|| format!("no full backup in {} to base a differential on; take one first with `kc-backup create`", settings.backup_dir.display()))?,
        ),
        (_, Some(_)) => bail!("--base goes with --kind diff"),
        (_, None) => None,
    };
    let compression = match compression {
        CompressionArg::Gzip => Compression::Gzip,
        CompressionArg::Zstd => Compression::Zstd,
    };
    let options = CreateOptions {
        kind,
        base,
        compression,
        level,
        masks,
        skip_unreadable,
        ..CreateOptions::default()
    };
    let started = std::time::Instant::now();
    let backup = archive::create(
        &settings.install,
        &settings.backup_dir,
        &options,
        &settings.progress(),
    )
    .context("backup failed; no backup was written")?;
    match settings.format {
        Format::Json => kc_cli::print_json(
            &serde_json::json!({"archive": backup.archive, "meta": backup.meta}),
        )?,
        Format::Human if settings.verbosity == Verbosity::Quiet => {}
        Format::Human => kc_cli::outln!("{}", describe(&backup, &[]))?,
    }
    for s in &backup.meta.skipped {
        settings.warn(TOOL, &format!("skipped {}: {}", s.path, s.error));
    }
    settings.info(format!(
        "verified and written in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(Outcome::Success)
}

fn undo(
    settings: &Settings,
    change: Option<&str>,
    force: bool,
    dry_run: bool,
) -> anyhow::Result<Outcome> {
    use kc_core::change::{self, UndoOptions};
    if dry_run {
        let journal = change::undo_target(&settings.install, change)?;
        let edited = change::edited_since(&settings.install, &journal)?;
        match settings.format {
            Format::Json => kc_cli::print_json(&serde_json::json!({
                "dry_run": true,
                "change": journal.id,
                "tool": journal.tool,
                "description": journal.description,
                "backup": journal.backup,
                "paths": journal.touched,
                "edited_since": edited,
            }))?,
            Format::Human => {
                kc_cli::outln!(
                    "WOULD undo {} ({}: {}) from backup {}",
                    journal.id,
                    journal.tool,
                    journal.description,
                    journal.backup
                )?;
                for path in &journal.touched {
                    kc_cli::outln!("  WOULD put back {}", path.display())?;
                }
                for e in &edited {
                    kc_cli::outln!(
                        "  edited since the change: {e} (undo refuses without --force)"
                    )?;
                }
            }
        }
        // The answer to "would it work?" is in the exit code too: 2, as the undo itself.
        if !edited.is_empty() && !force {
            bail!(
                "undo of {} would be refused: {} path{} edited since the change (see above); --force undoes anyway, backing up what it replaces first",
                journal.id,
                edited.len(),
                if edited.len() == 1 { " was" } else { "s were" }
            );
        }
        return Ok(Outcome::Success);
    }
    let progress = settings.progress();
    let undone = change::undo(
        &settings.change_context(&progress),
        change,
        UndoOptions { force },
    )?;
    for other in &undone.other_servers {
        settings.note(TOOL, other);
    }
    for w in &undone.warnings {
        settings.warn(TOOL, w);
    }
    match settings.format {
        Format::Json => kc_cli::print_json(&undone)?,
        Format::Human if settings.verbosity == Verbosity::Quiet => {}
        Format::Human => {
            kc_cli::outln!(
                "undone {} ({}: {}): {} paths put back as backup {} had them",
                undone.change,
                undone.tool,
                undone.description,
                undone.paths,
                undone.backup
            )?;
            if let Some(b) = &undone.replaced_backup {
                kc_cli::outln!("what the undo replaced is kept in backup {b}")?;
            }
        }
    }
    Ok(Outcome::Success)
}

fn list(settings: &Settings) -> anyhow::Result<Outcome> {
    let backups = archive::list(&settings.backup_dir)?;
    // Which change each pre-change backup was taken for (none when the journal is unreadable).
    let changes = kc_core::change::journals(&settings.install).unwrap_or_default();
    for (path, why) in archive::foreign(&settings.backup_dir)? {
        settings.warn(
            TOOL,
            &format!(
                "{} is not a kc-backup backup, left out: {why}",
                path.display()
            ),
        );
    }
    for leftover in archive::leftovers(&settings.backup_dir)? {
        settings.warn(
            TOOL,
            &format!(
                "{} is left by a backup that stopped before it finished; the next \
                 `kc-backup create` removes it",
                describe_leftover(&leftover)
            ),
        );
    }
    for b in &backups {
        match settings.format {
            Format::Json => {
                kc_cli::print_json(&serde_json::json!({"archive": b.archive, "meta": b.meta}))?
            }
            Format::Human => kc_cli::outln!("{}", describe(b, &changes))?,
        }
    }
    if backups.is_empty() {
        settings.info(format!("no backups in {}", settings.backup_dir.display()));
    }
    Ok(Outcome::Success)
}

/// `PATH (SIZE, last written TIME)`.
fn describe_leftover(leftover: &archive::Leftover) -> String {
    let when = leftover
        .modified
        .map(|t| format!(", last written {}", t.strftime("%Y-%m-%d %H:%M:%S UTC")))
        .unwrap_or_default();
    format!(
        "{} ({}{when})",
        leftover.path.display(),
        mib(leftover.bytes)
    )
}

fn verify(settings: &Settings, id: &str, against_live: bool) -> anyhow::Result<Outcome> {
    let backup = archive::find(&settings.backup_dir, id)?;
    let progress = settings.progress();
    let report = if against_live {
        archive::verify_against_live(&backup, &settings.install, &progress)?
    } else {
        archive::verify(&backup, &progress)?
    };
    match settings.format {
        Format::Json => {
            kc_cli::print_json(&serde_json::json!({"backup": backup.meta.id, "report": report}))?
        }
        Format::Human => {
            for problem in &report.damage {
                kc_cli::outln!("{problem}")?;
            }
        }
    }
    for link in &report.links_out {
        settings.warn(
            TOOL,
            &format!("{link}; restore puts it back as a link, never follows it"),
        );
    }
    let what = if against_live {
        "difference from the live tree"
    } else {
        "problem"
    };
    if report.damage.is_empty() {
        settings.info(format!(
            "{}: OK, {} files, {} checked",
            backup.meta.id,
            report.files,
            mib(report.bytes)
        ));
        Ok(Outcome::Success)
    } else {
        eprintln!(
            "kc-backup: {}: {}, the first: {}",
            backup.meta.id,
            kc_cli::count(report.damage.len(), what),
            report.damage[0]
        );
        Ok(Outcome::Found)
    }
}

/// `restore --in-place`: a change like any other (lock, plan checked whole, pre-change backup
/// of every path it will write, journal, undo), so `kc-backup undo --last` takes it back.
fn restore_in_place(
    settings: &Settings,
    backup: &archive::Backup,
    chain: &[archive::Backup],
    selection: &Selection,
) -> anyhow::Result<Outcome> {
    let guard = kc_cli::guard(settings, "kc-backup", DryRun::Disabled)?;
    let progress = settings.progress();
    // An in-place restore overwrites the install: prove every backup of the chain first.
    for b in chain {
        let report = archive::verify(b, &progress)?;
        if let Some(problem) = report.damage.first() {
            bail!("{} is damaged ({problem}); nothing was restored", b.meta.id);
        }
    }
    let paths: Vec<PathBuf> = archive::entry_paths(chain, selection)?
        .into_iter()
        .map(|p| PathBuf::from(std::ffi::OsString::from_vec(p)))
        .collect();
    if paths.is_empty() {
        bail!(
            "the selection matched nothing in {}; nothing was restored",
            backup.meta.id
        );
    }
    // The topmost missing directory above each path: undo removes it again.
    let mut creates = std::collections::BTreeSet::new();
    for path in &paths {
        let top = path
            .ancestors()
            .skip(1)
            .filter(|a| !a.as_os_str().is_empty())
            .take_while(|a| settings.install.resolve(a).symlink_metadata().is_err())
            .last();
        if let Some(top) = top {
            creates.insert(top.to_path_buf());
        }
    }
    let plan = kc_core::change::Plan {
        tool: "kc-backup".into(),
        description: format!("restore {} in place", backup.meta.id),
        steps: vec![kc_core::change::Step::Restore {
            archives: chain.iter().map(|b| b.archive.clone()).collect(),
            paths,
            creates: creates.into_iter().collect(),
        }],
        warnings: Vec::new(),
    };
    kc_cli::carry_out(settings, &plan, DryRun::Disabled, &guard)
}

/// Refuses a `--domain` or `--user` the backup does not hold, naming the closest it does: a
/// typo is an error, never "restored 0 files".
fn check_names(
    backup: &archive::Backup,
    chain: &[archive::Backup],
    manifests: &[Vec<(String, Vec<u8>)>],
    domain: Option<&str>,
    user: Option<&str>,
) -> anyhow::Result<()> {
    let Some(domain) = domain else {
        return Ok(());
    };
    let boxes = archive::mailboxes(chain, manifests);
    let domains: std::collections::BTreeSet<&str> = boxes.iter().map(|(d, _)| d.as_str()).collect();
    if !domains.iter().any(|d| d.eq_ignore_ascii_case(domain)) {
        bail!(
            "backup {}: {}",
            backup.meta.id,
            kc_core::suggest::unknown("domain", domain, domains.iter().copied())
        );
    }
    let Some(user) = user else {
        return Ok(());
    };
    let here: Vec<String> = boxes
        .iter()
        .filter(|(d, u)| d.eq_ignore_ascii_case(domain) && !u.starts_with('#'))
        .map(|(d, u)| format!("{u}@{d}"))
        .collect();
    let wanted = format!("{user}@{domain}");
    if !here.iter().any(|a| a.eq_ignore_ascii_case(&wanted)) {
        bail!(
            "backup {}: {}",
            backup.meta.id,
            kc_core::suggest::unknown("mailbox", &wanted, here.iter().map(String::as_str))
        );
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn restore(
    settings: &Settings,
    id: &str,
    to: Option<PathBuf>,
    in_place: bool,
    domain: Option<String>,
    user: Option<String>,
    folder: Option<String>,
    masks: &[Mask],
) -> anyhow::Result<Outcome> {
    let backup = archive::find(&settings.backup_dir, id)?;
    let chain = archive::chain(&backup, &settings.backup_dir)?;
    let (domain, user) = match (domain, user) {
        (d, Some(u)) if u.contains('@') => {
            let (name, dom) = u.split_once('@').expect("checked");
            if d.as_deref().is_some_and(|d| !d.eq_ignore_ascii_case(dom)) {
                bail!("--user {u} is not in --domain {}", d.unwrap_or_default());
            }
            (Some(dom.to_owned()), Some(name.to_owned()))
        }
        (None, Some(u)) => bail!("--user {u} needs --domain (or give it as user@domain)"),
        (d, u) => (d, u),
    };
    let selection = Selection::new(
        masks,
        &backup.meta.store_prefix,
        domain.as_deref(),
        user.as_deref(),
        folder.as_deref(),
    );
    // A narrowed selection that matches nothing is a mistake, never "restored 0 files": the
    // names and the selection are checked against the manifests, read once.
    if domain.is_some() || masks.iter().any(|m| *m != Mask::All) {
        let manifests = chain
            .iter()
            .map(|b| b.manifest())
            .collect::<Result<Vec<_>, _>>()?;
        check_names(
            &backup,
            &chain,
            &manifests,
            domain.as_deref(),
            user.as_deref(),
        )?;
        if !manifests
            .iter()
            .flatten()
            .any(|(_, path)| selection.matches(path))
        {
            bail!(
                "the selection matches no file in {}; nothing was restored",
                backup.meta.id
            );
        }
    }
    let progress = settings.progress();
    let options = if in_place {
        return restore_in_place(settings, &backup, &chain, &selection);
    } else {
        let to = to.expect("clap requires --to without --in-place");
        if to.exists()
            && std::fs::read_dir(&to)
                .with_context(|| format!("reading {}", to.display()))?
                .next()
                .is_some()
        {
            bail!(
                "{} is not empty; restore into a new or empty directory, or use --in-place",
                to.display()
            );
        }
        RestoreOptions {
            to,
            selection,
            store: None,
            preserve_owners: false,
        }
    };
    let report = archive::restore(&chain, &options, &progress)?;
    match settings.format {
        Format::Json => kc_cli::print_json(&report)?,
        Format::Human if settings.verbosity == Verbosity::Quiet => {}
        Format::Human => kc_cli::outln!(
            "restored {} into {}: {} files, {} directories, {}{}",
            report.backups.join(" + "),
            options.to.display(),
            report.files,
            report.dirs,
            mib(report.bytes),
            if report.deleted > 0 {
                format!(", {} deleted", report.deleted)
            } else {
                String::new()
            }
        )?,
    }
    Ok(Outcome::Success)
}

//! kc-cli: what every kerio-toolkit binary shares on the command line.
//!
//! Arguments come in two stages (as in ripgrep): [`GlobalArgs`] mirrors the flags of
//! ARCHITECTURE.md and is validated only for shape by clap; [`GlobalArgs::resolve`] turns it into
//! [`Settings`] (the install located, defaults filled in, the thread pool sized), which is all
//! the core ever sees. [`run`] wraps a tool's `main`: it prints `kc-<tool>: error: …` and maps
//! outcomes to the exit codes 0 (success), 1 (finished and found something), 2 (error or refused,
//! nothing changed) and 130 (interrupted).
//!
//! stdout carries data only; messages, warnings and progress go to stderr. Completions and man
//! pages come from [`generate`], answered by [`run_tool`] before the tool runs.

mod generate;
mod progress;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use kc_core::install::Install;

pub use generate::{ManPage, TOOLS, man_pages};
pub use progress::Bar;

/// The flags every binary takes, before or after its subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// The install root (holding mailserver.cfg and users.cfg) [default: /opt/kerio/mailserver]
    #[arg(long, env = "KC_SERVER", value_name = "DIR", global = true)]
    pub server: Option<PathBuf>,
    /// The store directory, when it is not the StoreDir of mailserver.cfg
    #[arg(long, value_name = "DIR", global = true)]
    pub store: Option<PathBuf>,
    /// Machine-readable output on stdout
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only errors (and the data asked for: tables, JSON, a dry run's plan)
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Say more (repeat for more detail)
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Never draw progress bars
    #[arg(long, global = true)]
    pub no_progress: bool,
    /// Worker threads [default: one per core]
    #[arg(short = 'j', long, value_name = "N", global = true, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    /// Where backups go [default: <server>/kc-backups]
    #[arg(long, value_name = "DIR", global = true)]
    pub backup_dir: Option<PathBuf>,
    /// The server's pid file, checked to refuse changes while it runs
    #[arg(long, value_name = "PATH", global = true, default_value = kc_core::guard::DEFAULT_PID_FILE)]
    pub pid_file: PathBuf,
}

/// What writers add: `-n/--dry-run`, and `--resume` to finish a change a crash interrupted.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct WriteArgs {
    /// Print what would be done and change nothing
    #[arg(short = 'n', long, global = true)]
    pub dry_run: bool,
    /// Finish the change a crash interrupted (instead of `kc-backup undo` of it)
    #[arg(long, global = true, conflicts_with = "dry_run")]
    pub resume: bool,
    /// With the plan, print a unified diff of every file it rewrites (passwords as xxxxxx)
    #[arg(long, global = true)]
    pub diff: bool,
}

pub use kc_core::change::DryRun;

impl From<WriteArgs> for DryRun {
    fn from(args: WriteArgs) -> DryRun {
        if args.dry_run {
            DryRun::Enabled
        } else {
            DryRun::Disabled
        }
    }
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
}

/// How chatty stderr is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose(u8),
}

/// The resolved settings: the second stage of the arguments.
#[derive(Debug, Clone)]
pub struct Settings {
    pub install: Install,
    pub format: Format,
    pub verbosity: Verbosity,
    /// Draw progress bars (stderr is a terminal, and neither -q, --json nor --no-progress).
    pub progress: bool,
    pub backup_dir: PathBuf,
    pub pid_file: PathBuf,
    /// Print a diff of what a plan rewrites (`--diff`).
    pub diff: bool,
}

impl GlobalArgs {
    /// Locates the install and fills in every default. Sizes rayon's global pool.
    pub fn resolve(&self) -> anyhow::Result<Settings> {
        let install = Install::locate(self.server.as_deref(), self.store.as_deref())?;
        if !self.quiet {
            for note in &install.notes {
                eprintln!("{}: note: {note}", tool_name());
            }
        }
        let settings = self.resolve_with(install, std::io::stderr().is_terminal());
        if let Some(n) = self.threads {
            // Fails only if the pool was already built, when the first size stands.
            let _ = rayon::ThreadPoolBuilder::new()
                .num_threads(usize::from(n))
                .build_global();
        }
        Ok(settings)
    }

    fn resolve_with(&self, install: Install, stderr_is_terminal: bool) -> Settings {
        let format = if self.json {
            Format::Json
        } else {
            Format::Human
        };
        let verbosity = match (self.quiet, self.verbose) {
            (true, _) => Verbosity::Quiet,
            (false, 0) => Verbosity::Normal,
            (false, n) => Verbosity::Verbose(n),
        };
        let progress = stderr_is_terminal && !self.quiet && !self.json && !self.no_progress;
        let backup_dir = self
            .backup_dir
            .clone()
            .unwrap_or_else(|| install.root.join("kc-backups"));
        Settings {
            install,
            format,
            verbosity,
            progress,
            backup_dir,
            pid_file: self.pid_file.clone(),
            diff: false,
        }
    }
}

impl Settings {
    /// The settings of a writer: what its [`WriteArgs`] add.
    pub fn writing(mut self, write: &WriteArgs) -> Settings {
        self.diff = write.diff;
        self
    }

    /// A progress reporter: a bar on stderr when allowed, else silent; with `-v`, each stage's
    /// duration on stderr.
    pub fn progress(&self) -> Bar {
        Bar::new(self.progress, self.verbosity > Verbosity::Normal)
    }

    /// Where changes of this run are carried out, taken back or finished, reporting to
    /// `progress`.
    pub fn change_context<'a>(
        &'a self,
        progress: &'a dyn kc_core::progress::Progress,
    ) -> kc_core::change::Context<'a> {
        kc_core::change::Context {
            install: &self.install,
            backup_dir: &self.backup_dir,
            pid_file: &self.pid_file,
            progress,
        }
    }

    /// Prints an informational line on stderr unless `-q`.
    pub fn info(&self, message: impl std::fmt::Display) {
        if self.verbosity > Verbosity::Quiet {
            eprintln!("{message}");
        }
    }

    /// Prints `<tool>: note: <text>` on stderr unless `-q`, control characters escaped.
    pub fn note(&self, tool: &str, text: &str) {
        if self.verbosity > Verbosity::Quiet {
            eprintln!("{tool}: note: {}", kc_core::change::printable(text));
        }
    }

    /// Says which `mailserver` processes of other installs the guard let be.
    pub fn note_other_servers(&self, tool: &str, others: &[kc_core::guard::OtherServer]) {
        for other in others {
            self.note(tool, &other.to_string());
        }
    }

    /// Prints `<tool>: warning: <text>` on stderr unless `-q`, control characters escaped.
    pub fn warn(&self, tool: &str, text: &str) {
        if self.verbosity > Verbosity::Quiet {
            eprintln!("{tool}: warning: {}", kc_core::change::printable(text));
        }
    }
}

/// A size for people in tables and messages: `431.50 KiB`, `3.20 GiB` (exact bytes stay in
/// `--json` and `--csv`).
pub fn human_bytes(bytes: u64) -> String {
    indicatif::HumanBytes(bytes).to_string()
}

/// How a tool's run ended, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done, nothing to report (exit 0).
    Success,
    /// Finished and found something: orphans, damage (exit 1).
    Found,
    /// Stopped by the user (exit 130).
    Interrupted,
}

/// Exit code for an error or refusal: nothing was changed.
pub const EXIT_ERROR: u8 = 2;

impl Outcome {
    pub fn code(self) -> u8 {
        match self {
            Outcome::Success => 0,
            Outcome::Found => 1,
            Outcome::Interrupted => 130,
        }
    }
}

/// The running binary's name (`kc-user`), for messages printed before a tool says who it is.
fn tool_name() -> String {
    std::env::args_os()
        .next()
        .map(PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "kerio-toolkit".into())
}

/// The line printed for an error: `kc-<tool>: error: <cause>: <cause>…`.
pub fn error_line(tool: &str, err: &anyhow::Error) -> String {
    // A name from the install (a directory called with an escape sequence) never drives the
    // terminal: control characters are shown as `\u{…}`.
    let text = format!("{err:#}");
    format!("{tool}: error: {}", kc_core::change::printable_lines(&text))
}

/// Writes one line of data on stdout, as `println!` does, but returning an error instead of
/// panicking when stdout is gone (`kc-user list | head -1`): [`run`] then ends quietly.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        ::std::writeln!(::std::io::stdout().lock(), $($arg)*).map_err($crate::stdout_error)
    }};
}

/// The error of a write to stdout, for [`outln!`].
pub fn stdout_error(err: std::io::Error) -> anyhow::Error {
    anyhow::Error::new(err).context("writing to stdout")
}

/// Whether an error is stdout closed by its reader (a pipe into `head`): not a failure.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    let pipe = |e: &std::io::Error| e.kind() == std::io::ErrorKind::BrokenPipe;
    // A csv::Error holds its io::Error without giving it as a source.
    err.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(pipe)
            || cause
                .downcast_ref::<csv::Error>()
                .is_some_and(|e| matches!(e.kind(), csv::ErrorKind::Io(io) if pipe(io)))
    })
}

/// Runs a tool's body and turns its result into the process's exit code, printing errors on
/// stderr as `kc-<tool>: error: …`. stdout closed by its reader ends the tool quietly, exit 0,
/// as in ripgrep: what the reader wanted it had.
pub fn run(tool: &str, body: impl FnOnce() -> anyhow::Result<Outcome>) -> ExitCode {
    match body() {
        Ok(outcome) => ExitCode::from(outcome.code()),
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            // clap's own errors (usage, --help, --version) print and exit as clap decides.
            if let Some(clap_err) = err.downcast_ref::<clap::Error>() {
                let _ = clap_err.print();
                return ExitCode::from(if clap_err.use_stderr() { EXIT_ERROR } else { 0 });
            }
            eprintln!("{}", error_line(tool, &err));
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Ctrl-C, SIGTERM or SIGHUP: the partial files of a backup being written are removed (its own,
/// or a writer's pre-change backup), the tool says so and exits 130. A change whose steps had
/// begun is left to its journal, as a crash would leave it: the next run refuses until
/// `--resume` or `kc-backup undo`.
fn on_interrupt(tool: &str) {
    let tool = tool.to_owned();
    // Fails only if a handler is already set (a tool calling run_tool twice): that one stands.
    let _ = ctrlc::set_handler(move || {
        let abandoned = kc_core::archive::abandon();
        // Over a progress bar, from the start of a clean line.
        let clear = if std::io::stderr().is_terminal() {
            "\r\x1b[2K"
        } else {
            ""
        };
        eprintln!("{clear}{}", interrupted_line(&tool, &abandoned.removed));
        // `abandoned` is still held: no backup gets its name between the removal and the exit.
        std::process::exit(i32::from(Outcome::Interrupted.code()));
    });
}

/// What a tool says when a signal stops it.
fn interrupted_line(tool: &str, removed: &[kc_core::archive::Removed]) -> String {
    if removed.is_empty() {
        return format!("{tool}: interrupted");
    }
    let files: Vec<String> = removed
        .iter()
        .map(|r| format!("{} ({})", r.path.display(), human_bytes(r.bytes)))
        .collect();
    format!(
        "{tool}: interrupted; removed the unfinished backup: {}",
        kc_core::change::printable(&files.join(", "))
    )
}

/// What `--version` says after the tool's name: the version and the git commit it was built from.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("KC_GIT_COMMIT"), ")");

/// Said at the end of every tool's `--help`.
const MORE_HELP: &str = "Shell completions and man pages are generated from these definitions:\n  \
     <tool> completions bash|zsh|fish > FILE      <tool> man > <tool>.1\n  \
     <tool> man --dir DIR   (every page: the tool's and one per subcommand)\n\
     Docs: docs/<tool>.md in the kerio-toolkit repository.";

/// The tool's clap command as every binary presents it: the version with its commit, the
/// closing lines of `--help`, and the hidden `completions` and `man` subcommands.
pub fn command<T: clap::CommandFactory>() -> clap::Command {
    generate::with_generators(T::command().version(VERSION).after_long_help(MORE_HELP))
}

/// A tool's `main`: parses the command line (a usage error is exit code 2, said the same way by
/// every binary), answers `completions` and `man` itself, and otherwise runs `body` with the
/// parsed arguments, as [`run`] does.
pub fn run_tool<T: clap::Parser>(
    tool: &str,
    body: impl FnOnce(T) -> anyhow::Result<Outcome>,
) -> ExitCode {
    on_interrupt(tool);
    run(tool, || {
        let args = std::env::args_os();
        match parse_from::<T>(args, &mut std::io::stdout().lock())? {
            Some(cli) => body(cli),
            None => Ok(Outcome::Success),
        }
    })
}

/// The tool's arguments, or `None` when the command line asked for completions or man pages
/// (written to `out`, or to `man --dir`).
fn parse_from<T: clap::Parser>(
    args: impl IntoIterator<Item = std::ffi::OsString>,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<Option<T>> {
    let cmd = command::<T>();
    let matches = cmd.clone().try_get_matches_from(args)?;
    if generate::answer(&cmd, &matches, out)? {
        return Ok(None);
    }
    T::from_arg_matches(&matches)
        .map(Some)
        .map_err(anyhow::Error::from)
}

/// The guard a writer holds from before it reads what it plans from until its change is done:
/// the server is stopped and the install's lock is ours (none for a dry run, which only reads).
/// Refuses while an earlier change is unfinished.
#[derive(Debug)]
pub struct Guard(Option<kc_core::guard::InstallLock>);

/// Takes the [`Guard`] for `tool`.
pub fn guard(settings: &Settings, tool: &str, dry_run: DryRun) -> anyhow::Result<Guard> {
    let lock = match dry_run {
        DryRun::Enabled => None,
        DryRun::Disabled => {
            let lock = kc_core::change::lock(&settings.install, &settings.pid_file, tool)?;
            settings.note_other_servers(tool, lock.other_servers());
            Some(lock)
        }
    };
    kc_core::change::check_unfinished(&settings.install)?;
    Ok(Guard(lock))
}

/// Prints a unified diff of every file the plan rewrites, as it is now against what the plan
/// writes: text files line by line, others as one line saying they differ. Secrets in config
/// lines (a `Password` variable, a `D3S:` value) are shown as `xxxxxx` on both sides.
pub fn print_diff(settings: &Settings, plan: &kc_core::change::Plan) -> anyhow::Result<()> {
    use kc_core::change::Step;
    for step in &plan.steps {
        let Step::WriteFile { path, content, .. } = step else {
            continue;
        };
        let real = settings.install.resolve(path);
        let old = match std::fs::read(&real) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("reading {}", real.display())));
            }
        };
        let name = kc_core::change::printable(&path.to_string_lossy()).into_owned();
        let (Ok(old), Ok(new)) = (std::str::from_utf8(&old), std::str::from_utf8(content)) else {
            outln!("Binary files a/{name} and b/{name} differ")?;
            continue;
        };
        let (old, new) = (mask_secrets(old), mask_secrets(new));
        let diff = similar::TextDiff::from_lines(&old, &new);
        let text = diff
            .unified_diff()
            .context_radius(3)
            .header(&format!("a/{name}"), &format!("b/{name}"))
            .to_string();
        // Names from the install never drive the terminal; line breaks are the diff's own.
        let mut out = std::io::stdout().lock();
        std::io::Write::write_all(&mut out, kc_core::change::printable_lines(&text).as_bytes())
            .map_err(stdout_error)?;
    }
    Ok(())
}

/// `text` with every secret shown as `xxxxxx`: the content of each `<variable name="…">` that
/// [`kc_core::audit::is_secret`] calls secret, however the element is spaced, quoted or split
/// over lines, and then any value in a server password form (`D3S:…`, `NUL:…`, `SHA:…`)
/// wherever it stands.
fn mask_secrets(text: &str) -> String {
    let text = mask_secret_variables(text);
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = find_password_form(rest) {
        out.push_str(&rest[..at]);
        let value = &rest[at..];
        let end = value
            .find(|c: char| c.is_whitespace() || "<>\"'".contains(c))
            .unwrap_or(value.len());
        out.push_str("xxxxxx");
        rest = &value[end..];
    }
    out.push_str(rest);
    out
}

/// Where the first value in a server password form (`D3S:`, `NUL:`, `SHA:`, any case) starts.
fn find_password_form(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    (0..bytes.len()).find(|&i| {
        kc_core::config::schema::PASSWORD_FORMS.iter().any(|f| {
            bytes
                .get(i..i + f.len())
                .is_some_and(|b| b.eq_ignore_ascii_case(f.as_bytes()))
        })
    })
}

fn mask_secret_variables(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("<variable") {
        let (before, tag) = rest.split_at(at);
        out.push_str(before);
        // `<variable name = 'X' …>content</variable>`
        let parsed = (|| {
            let after = tag["<variable".len()..].trim_start();
            let after = after.strip_prefix("name")?.trim_start();
            let after = after.strip_prefix('=')?.trim_start();
            let quote = after.chars().next().filter(|q| *q == '"' || *q == '\'')?;
            let name_end = after[1..].find(quote)? + 1;
            let name = &after[1..name_end];
            let open = tag.len() - after.len() + name_end + after[name_end..].find('>')? + 1;
            if tag[..open].ends_with("/>") {
                return None;
            }
            let close = open + tag[open..].find("</variable")?;
            Some((name, open, close))
        })();
        match parsed {
            Some((name, open, close))
                if kc_core::audit::is_secret(name, tag[open..close].trim()) =>
            {
                out.push_str(&tag[..open]);
                out.push_str("xxxxxx");
                rest = &tag[close..];
            }
            _ => {
                out.push_str("<variable");
                rest = &tag["<variable".len()..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Prints a dry run's plan, or carries the plan out through the change protocol under `guard`.
pub fn carry_out(
    settings: &Settings,
    plan: &kc_core::change::Plan,
    dry_run: DryRun,
    guard: &Guard,
) -> anyhow::Result<Outcome> {
    let tool = plan.tool.as_str();
    // The diff is for people: never inside JSON output.
    let diff = settings.diff && settings.format == Format::Human;
    if dry_run == DryRun::Enabled {
        match settings.format {
            Format::Json => print_json(&serde_json::json!({ "dry_run": true, "plan": plan }))?,
            Format::Human => {
                outln!(
                    "{}: {} (dry run: nothing is changed)",
                    tool,
                    plan.description
                )?;
                for line in plan.lines(DryRun::Enabled) {
                    outln!("  {line}")?;
                }
                if diff {
                    print_diff(settings, plan)?;
                }
            }
        }
        // A dry run predicts a refusal the real run would make (a link out of the install).
        let progress = settings.progress();
        kc_core::change::would_apply(&settings.change_context(&progress), plan)
            .context("the change would be refused")?;
        for warning in &plan.warnings {
            settings.warn(tool, warning);
        }
        return Ok(Outcome::Success);
    }
    for warning in &plan.warnings {
        settings.warn(tool, warning);
    }
    if diff {
        print_diff(settings, plan)?;
    }
    let progress = settings.progress();
    let applied = match &guard.0 {
        Some(lock) => {
            kc_core::change::apply_locked(&settings.change_context(&progress), lock, plan)?
        }
        None => anyhow::bail!("internal: a change was carried out without the install's lock"),
    };
    print_applied(settings, plan, &applied)
}

fn print_applied(
    settings: &Settings,
    plan: &kc_core::change::Plan,
    applied: &kc_core::change::Applied,
) -> anyhow::Result<Outcome> {
    match settings.format {
        Format::Json => print_json(&serde_json::json!({ "applied": applied, "plan": plan }))?,
        // -q: the change is made and the exit code says so; nothing more.
        Format::Human if settings.verbosity == Verbosity::Quiet => {}
        Format::Human => {
            outln!("{}: {}", plan.tool, plan.description)?;
            for line in plan.lines(DryRun::Disabled) {
                outln!("  {line}")?;
            }
            outln!(
                "done: change {}, pre-change backup {}; take it back with: kc-backup undo {}",
                applied.change,
                applied.backup,
                applied.change
            )?;
        }
    }
    Ok(Outcome::Success)
}

/// `--resume`: finishes the change a crash interrupted.
pub fn resume(settings: &Settings) -> anyhow::Result<Outcome> {
    let progress = settings.progress();
    let applied = kc_core::change::resume(&settings.change_context(&progress), None)?;
    for other in &applied.other_servers {
        settings.note(&tool_name(), other);
    }
    match settings.format {
        Format::Json => print_json(&applied)?,
        Format::Human if settings.verbosity == Verbosity::Quiet => {}
        Format::Human => outln!(
            "resumed and finished change {} ({} steps); take it back with: kc-backup undo {}",
            applied.change,
            applied.steps,
            applied.change
        )?,
    }
    Ok(Outcome::Success)
}

/// `1 finding`, `2 findings`: a count with its noun (plural by `s`).
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// With `--json`, the problems of a refused plan, one JSON object a line on stdout
/// (`{"problem":{"origin":…,"subject":…,"reason":…}}`), so that a script gets them as data;
/// the error itself still goes to stderr and the exit code is 2.
pub fn print_problems(settings: &Settings, problems: Option<&kc_core::problem::Problems>) {
    if settings.format != Format::Json {
        return;
    }
    for problem in problems.iter().flat_map(|p| &p.0) {
        // Best effort: the refusal on stderr says it all if stdout is gone.
        let _ = print_json(&serde_json::json!({ "problem": problem }));
    }
}

/// Writes a value as one line of JSON on stdout.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value).context("writing JSON to stdout")?;
    writeln!(out).context("writing to stdout")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn counts_say_one_without_a_plural() {
        assert_eq!(count(1, "problem"), "1 problem");
        assert_eq!(count(0, "finding"), "0 findings");
        assert_eq!(count(8, "finding"), "8 findings");
    }

    #[test]
    fn every_secret_is_masked_however_the_file_is_laid_out() {
        let text = "<variable name=\"Account_enabled\">1</variable><variable name=\"Password\">D3S:ab12</variable>\n\
            <variable  name = 'PIN' >\n4444\n</variable>\n\
            <variable name=\"Other\">see nul:plain-text and SHA:00ff</variable>\n\
            <variable name=\"Password\"/>\n\
            <variable name=\"FullName\">Null Point</variable>\n";
        assert_eq!(
            mask_secrets(text),
            "<variable name=\"Account_enabled\">1</variable><variable name=\"Password\">xxxxxx</variable>\n\
            <variable  name = 'PIN' >xxxxxx</variable>\n\
            <variable name=\"Other\">see xxxxxx and xxxxxx</variable>\n\
            <variable name=\"Password\"/>\n\
            <variable name=\"FullName\">Null Point</variable>\n"
        );
    }

    #[derive(Debug, Parser)]
    #[command(name = "t")]
    struct Cli {
        #[command(flatten)]
        global: GlobalArgs,
        #[command(flatten)]
        write: WriteArgs,
        #[command(subcommand)]
        command: Command,
    }

    #[derive(Debug, clap::Subcommand)]
    enum Command {
        Go,
    }

    /// A tool shaped like kc-rename-user: positional arguments, no subcommands of its own.
    #[derive(Debug, Parser)]
    #[command(name = "kc-pos")]
    struct Positional {
        #[command(flatten)]
        global: GlobalArgs,
        #[arg(required_unless_present = "other")]
        old: Option<String>,
        #[arg(required_unless_present = "other")]
        new: Option<String>,
        #[arg(long)]
        other: bool,
    }

    fn parse<T: Parser>(args: &[&str]) -> (Option<T>, String) {
        let mut out = Vec::new();
        let args = args.iter().map(std::ffi::OsString::from);
        let cli = parse_from::<T>(args, &mut out).expect("parses");
        (cli, String::from_utf8(out).expect("UTF-8"))
    }

    #[test]
    fn completions_and_man_are_subcommands_of_every_shape_of_tool() {
        command::<Cli>().debug_assert();
        command::<Positional>().debug_assert();
        // Global flags before a tool's own subcommand still work; `man` anywhere a subcommand goes.
        let (cli, _) = parse::<Cli>(&["t", "--server", "/a", "go"]);
        assert!(cli.is_some());
        let (cli, page) = parse::<Cli>(&["t", "--server", "/a", "man"]);
        assert!(cli.is_none() && page.starts_with(".ie"), "{page}");
        assert!(page.contains(".TH t 1"), "{page}");
        let (cli, script) = parse::<Positional>(&["t", "completions", "bash"]);
        assert!(cli.is_none() && script.contains("kc-pos"), "{script}");
        // `man` needs none of the tool's required arguments...
        let (cli, page) = parse::<Positional>(&["t", "man"]);
        assert!(cli.is_none() && page.contains(".TH kc-pos 1"), "{page}");
        // ...and after a positional argument it is a value, not a subcommand.
        let (cli, out) = parse::<Positional>(&["t", "jdoe@example.com", "man"]);
        let cli = cli.expect("a rename to `man`");
        assert_eq!(cli.new.as_deref(), Some("man"));
        assert!(out.is_empty() && cli.global.server.is_none() && !cli.other);
        assert!(
            parse_from::<Positional>(
                ["t", "completions", "tcsh"].map(Into::into),
                &mut Vec::new()
            )
            .is_err()
        );
        // Hidden: neither the usage nor --help of a tool changes.
        let help = command::<Positional>().render_long_help().to_string();
        assert!(
            !help.contains("Commands:") && help.contains("Usage: kc-pos [OPTIONS] [OLD] [NEW]"),
            "{help}"
        );
        assert!(help.contains("man --dir DIR"), "{help}");
    }

    #[test]
    fn man_dir_writes_a_page_per_subcommand_and_see_also_names_only_those() {
        let tmp = tempfile::tempdir().expect("a temp dir");
        let dir = tmp.path().join("man1");
        let args = ["t", "man", "--dir", dir.to_str().expect("UTF-8")];
        let (cli, out) = parse::<Cli>(&args);
        assert!(cli.is_none() && out.is_empty());
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .expect("written")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["t-go.1", "t.1"]);
        let main = std::fs::read_to_string(dir.join("t.1")).expect("t.1");
        assert!(
            main.ends_with(".SH \"SEE ALSO\"\n\\fBt\\-go\\fR(1)\n"),
            "{main}"
        );
        let sub = std::fs::read_to_string(dir.join("t-go.1")).expect("t-go.1");
        let th = format!(".TH t-go 1 {} \"kerio-toolkit ", env!("KC_GIT_DATE"));
        assert!(sub.contains(&th), "{sub}");
        assert!(
            sub.contains("\\-\\-server"),
            "global flags on every page: {sub}"
        );
        assert!(sub.ends_with("\\fBt\\fR(1)\n"), "{sub}");
    }

    fn install() -> Install {
        Install {
            root: "/srv/kerio".into(),
            mailserver_cfg: "/srv/kerio/mailserver.cfg".into(),
            users_cfg: "/srv/kerio/users.cfg".into(),
            store: "/srv/kerio/store".into(),
            store_source: kc_core::install::StoreSource::Default,
            store_prefix: "store".into(),
            store_outside: false,
            logs: "store/logs".into(),
            notes: Vec::new(),
        }
    }

    #[test]
    fn global_flags_go_before_or_after_the_subcommand() {
        let before = Cli::try_parse_from(["t", "--server", "/a", "-j", "3", "--json", "go"])
            .expect("parses");
        let after = Cli::try_parse_from(["t", "go", "--server", "/a", "-j", "3", "--json", "-n"])
            .expect("parses");
        assert_eq!(before.global.server, after.global.server);
        assert_eq!(
            (before.global.threads, after.global.threads),
            (Some(3), Some(3))
        );
        assert!(after.write.dry_run && !before.write.dry_run);
        assert_eq!(DryRun::from(after.write), DryRun::Enabled);
        assert!(Cli::try_parse_from(["t", "go", "-j", "0"]).is_err());
        assert!(Cli::try_parse_from(["t", "go", "-q", "-v"]).is_err());
    }

    #[test]
    fn defaults_resolve() {
        let cli = Cli::try_parse_from(["t", "go"]).expect("parses");
        let s = cli.global.resolve_with(install(), true);
        assert_eq!(s.backup_dir, PathBuf::from("/srv/kerio/kc-backups"));
        assert_eq!(s.pid_file, PathBuf::from("/var/run/kms.pid"));
        assert_eq!(
            (s.format, s.verbosity, s.progress),
            (Format::Human, Verbosity::Normal, true)
        );
        // No bar when stderr is not a terminal, or with --json, -q or --no-progress.
        assert!(!cli.global.resolve_with(install(), false).progress);
        for flag in ["--json", "-q", "--no-progress"] {
            let cli = Cli::try_parse_from(["t", "go", flag]).expect("parses");
            assert!(!cli.global.resolve_with(install(), true).progress, "{flag}");
        }
        let cli = Cli::try_parse_from(["t", "go", "-vv", "--backup-dir", "/b"]).expect("parses");
        let s = cli.global.resolve_with(install(), false);
        assert_eq!(
            (s.verbosity, s.backup_dir),
            (Verbosity::Verbose(2), PathBuf::from("/b"))
        );
    }

    #[test]
    fn exit_codes_and_error_line() {
        assert_eq!(
            [Outcome::Success, Outcome::Found, Outcome::Interrupted].map(Outcome::code),
            [0, 1, 130]
        );
        let err = anyhow::anyhow!("no such user").context("renaming jdoe@example.com");
        assert_eq!(
            error_line("kc-rename-user", &err),
            "kc-rename-user: error: renaming jdoe@example.com: no such user"
        );
    }
}

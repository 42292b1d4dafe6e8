//! Shell completions and man pages, generated from each tool's own clap definitions, so they
//! can never disagree with what the tool parses.
//!
//! Every tool answers two hidden subcommands that kc-cli adds to its command ([`with_generators`])
//! and handles itself, before the tool locates an install (they run on a build machine that has
//! none): `<tool> completions SHELL` prints a completion script, `<tool> man` prints the tool's
//! page, and `<tool> man --dir DIR` writes every page: the tool's and one per subcommand,
//! named `<tool>-<subcommand>.1` as clap_mangen names them. Packages are built from the latter.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Arg, ArgMatches, Command};
use clap_mangen::roff::{Roff, bold, roman};

/// The tools kerio-toolkit installs, named in each other's SEE ALSO.
pub const TOOLS: [&str; 6] = [
    "kc-backup",
    "kc-rename-user",
    "kc-bulk-import",
    "kc-orphan-mailbox-finder",
    "kc-user",
    "kc-store",
];

const COMPLETIONS: &str = "completions";
const MAN: &str = "man";

/// Adds the `completions` and `man` subcommands to a tool's command.
///
/// They are hidden (the closing lines of `--help` name them), so a tool's usage, help and man
/// page stay as the tool defines them. A tool that takes positional arguments and has no
/// subcommands of its own (`kc-rename-user OLD NEW`) only sees them as its first argument, so
/// `kc-rename-user jdoe@example.com man` still renames to `man`; a tool with subcommands keeps
/// accepting global flags before any of them.
pub(crate) fn with_generators(cmd: Command) -> Command {
    let own_subcommands = cmd.has_subcommands();
    let positionals = cmd.get_positionals().next().is_some();
    let cmd = cmd
        .subcommand(
            Command::new(COMPLETIONS)
                .hide(true)
                .about("Print a shell completion script")
                .arg(
                    Arg::new("shell")
                        .required(true)
                        .value_name("SHELL")
                        .value_parser(clap::value_parser!(clap_complete::Shell)),
                ),
        )
        .subcommand(
            Command::new(MAN)
                .hide(true)
                .about("Print the man page, or write every page (one per subcommand too) into DIR")
                .arg(
                    Arg::new("dir")
                        .long("dir")
                        .value_name("DIR")
                        .value_parser(clap::value_parser!(PathBuf)),
                ),
        )
        // `<tool> man` needs none of the tool's required arguments.
        .subcommand_negates_reqs(true);
    if own_subcommands {
        cmd
    } else {
        // No `help` subcommand appears where the tool had none.
        cmd.disable_help_subcommand(true)
            .args_conflicts_with_subcommands(positionals)
    }
}

/// Answers `completions` or `man` when the command line asked for one: `Ok(true)` when it did
/// (and the output is written), `Ok(false)` when the tool has work to do.
pub(crate) fn answer(
    cmd: &Command,
    matches: &ArgMatches,
    out: &mut dyn Write,
) -> anyhow::Result<bool> {
    match matches.subcommand() {
        Some((COMPLETIONS, sub)) => {
            let shell = *sub
                .get_one::<clap_complete::Shell>("shell")
                .expect("SHELL is required");
            let mut cmd = cmd.clone();
            let name = cmd.get_name().to_owned();
            clap_complete::generate(shell, &mut cmd, name, out);
            Ok(true)
        }
        Some((MAN, sub)) => {
            let pages = man_pages(cmd.clone())?;
            match sub.get_one::<PathBuf>("dir") {
                Some(dir) => write_pages(&pages, dir)?,
                None => out
                    .write_all(&pages[0].text)
                    .context("writing the man page to stdout")?,
            }
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// One man page: its file name (`kc-backup-restore.1`) and its roff text.
#[derive(Debug, Clone)]
pub struct ManPage {
    pub file_name: String,
    pub text: Vec<u8>,
}

/// Every man page of a tool: its own first, then one per visible subcommand (and theirs, at any
/// depth). Each ends with a SEE ALSO naming only pages kerio-toolkit makes: a tool's page names
/// its subcommands' pages and the other tools; a subcommand's page names its parent's.
pub fn man_pages(cmd: Command) -> anyhow::Result<Vec<ManPage>> {
    // Built once from the top, so each subcommand carries the global flags and is named
    // `<tool>-<subcommand>`; no page for clap's `help` subcommand.
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let mut pages = Vec::new();
    add_pages(&cmd, None, &mut pages)?;
    Ok(pages)
}

fn page_name(cmd: &Command) -> &str {
    cmd.get_display_name().unwrap_or_else(|| cmd.get_name())
}

fn add_pages(cmd: &Command, parent: Option<&str>, pages: &mut Vec<ManPage>) -> anyhow::Result<()> {
    let name = page_name(cmd).to_owned();
    let subcommands: Vec<&Command> = cmd.get_subcommands().filter(|s| !s.is_hide_set()).collect();
    let mut see_also: Vec<String> = parent.map(str::to_owned).into_iter().collect();
    see_also.extend(subcommands.iter().map(|s| page_name(s).to_owned()));
    if parent.is_none() && TOOLS.contains(&name.as_str()) {
        see_also.extend(
            TOOLS
                .iter()
                .filter(|t| **t != name)
                .map(|t| (*t).to_owned()),
        );
    }
    let mut text = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .date(env!("KC_GIT_DATE"))
        .source(format!("kerio-toolkit {}", env!("CARGO_PKG_VERSION")))
        .manual("kerio-toolkit")
        .render(&mut text)
        .with_context(|| format!("rendering the man page of {name}"))?;
    text.extend(see_also_section(&see_also).into_bytes());
    pages.push(ManPage {
        file_name: format!("{name}.1"),
        text,
    });
    for sub in subcommands {
        add_pages(sub, Some(&name), pages)?;
    }
    Ok(())
}

fn see_also_section(names: &[String]) -> String {
    let mut roff = Roff::default();
    roff.control("SH", ["SEE ALSO"]);
    let mut line = Vec::new();
    for (i, name) in names.iter().enumerate() {
        line.push(bold(name.as_str()));
        line.push(roman(if i + 1 < names.len() { "(1), " } else { "(1)" }));
    }
    roff.text(line);
    roff.to_roff()
}

fn write_pages(pages: &[ManPage], dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for page in pages {
        let path = dir.join(&page.file_name);
        std::fs::write(&path, &page.text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

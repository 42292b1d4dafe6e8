//! kc-fixture: writes a synthetic Kerio Connect install, deterministic for a seed.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use kc_cli::Outcome;

/// Write a realistic Kerio Connect install of any size, the same bytes for the same seed.
///
/// Example: kc-fixture --out /tmp/kerio --users 300 --seed 3
///
/// Prints a JSON summary on stdout: counts, every inconsistency planted on purpose (orphan
/// mailboxes, an orphan domain, a case-mismatched directory, an account without a mailbox, a
/// "Deleted mailbox" folder), the shapes written ("shapes") and where they put the store, the
/// stale store and the volume ("paths", absolute; null when not used). Exit codes: 0 written,
/// 2 error (nothing is overwritten).
///
/// The shapes of real installs are off by default. --store-outside and --symlink-store write
/// beside DIR: DIR-store and DIR-volume, which must be absent or empty too.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// Where to write the install (must not exist, or be empty)
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Accounts, over all domains
    #[arg(long, default_value_t = 15)]
    users: usize,
    /// Mail domains; with two or more, the last is mapped from a directory service
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..))]
    domains: u16,
    /// Average messages per mailbox
    #[arg(long, default_value_t = 6)]
    messages_per_user: usize,
    /// Seed of the random choices: the same seed writes the same bytes
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Largest message in bytes (the tail of the size distribution is cut there)
    #[arg(long, default_value_t = 8 << 20)]
    max_message_size: usize,
    /// Write the config files only, no store
    #[arg(long)]
    configs_only: bool,
    /// Percent of attachments that are text documents (CSV exports, prose) in base64, which
    /// compress under the base64; the others are random bytes (as PDFs, images and zipped office
    /// files). 0 writes the same bytes as without the option
    #[arg(long, value_name = "PERCENT", default_value_t = 0,
          value_parser = clap::value_parser!(u8).range(0..=100))]
    text_attachments: u8,
    /// Write the committed demo install (fixtures/demo): its size and seed, ignoring the others
    /// (the shapes below still apply)
    #[arg(long)]
    demo: bool,
    /// Write the store to DIR-store, outside the root, name it (absolute) in mailserver.cfg's
    /// Directories/StoreDir, and leave a stale, smaller DIR/store behind that no tool may read
    #[arg(long, conflicts_with = "symlink_store")]
    store_outside: bool,
    /// Make users.cfg and mailserver.cfg symlinks to files in DIR-volume (Docker's layout)
    #[arg(long)]
    symlink_configs: bool,
    /// Make DIR/store a symlink to DIR-volume/store, where the store is written
    #[arg(long)]
    symlink_store: bool,
    /// Start users.cfg and mailserver.cfg with a UTF-8 BOM and end their lines with CRLF
    #[arg(long)]
    bom_crlf: bool,
    /// Write mailserver.cfg as Python ElementTree does (no declaration, <x />, &#228;), and
    /// users.cfg as .NET XDocument does (<x />), with an empty <list name="Alias" />
    #[arg(long)]
    elementtree: bool,
    /// Public folders at store/mail/#public with an acl.fld, and sub.fld files naming other
    /// users' addresses
    #[arg(long)]
    global_public: bool,
    /// Calendar items in every mailbox's Calendar and INBOX naming other mailboxes as organizer
    /// and attendees (folded, quoted-printable, base64, and one damaged item)
    #[arg(long)]
    calendars: bool,
    /// Worker threads [default: one per core]
    #[arg(short = 'j', long, value_name = "N")]
    threads: Option<usize>,
}

fn main() -> ExitCode {
    kc_cli::run_tool("kc-fixture", |cli: Cli| {
        if let Some(n) = cli.threads {
            let _ = rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build_global();
        }
        let shapes = kc_testkit::Shapes {
            store_outside: cli.store_outside,
            symlink_configs: cli.symlink_configs,
            symlink_store: cli.symlink_store,
            bom_crlf: cli.bom_crlf,
            elementtree: cli.elementtree,
            global_public: cli.global_public,
        };
        let options = if cli.demo {
            kc_testkit::Options {
                shapes,
                calendars: cli.calendars,
                ..kc_testkit::Options::demo()
            }
        } else {
            kc_testkit::Options {
                users: cli.users,
                domains: usize::from(cli.domains),
                messages_per_user: cli.messages_per_user,
                seed: cli.seed,
                max_message_size: cli.max_message_size,
                configs_only: cli.configs_only,
                text_attachments: cli.text_attachments,
                shapes,
                calendars: cli.calendars,
            }
        };
        let summary = kc_testkit::generate(&cli.out, &options)?;
        kc_cli::print_json(&summary)?;
        Ok(Outcome::Success)
    })
}

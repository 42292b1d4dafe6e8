//! kc-fixture: writes a synthetic Kerio Connect install, deterministic for a seed.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use kc_cli::Outcome;

/// Write a realistic Kerio Connect install of any size, the same bytes for the same seed.
///
/// Example: kc-fixture --out /tmp/kerio --users 300 --seed 3
///
/// Prints a JSON summary on stdout: counts, and every inconsistency planted on purpose (orphan
/// mailboxes, an orphan domain, a case-mismatched directory, an account without a mailbox, a
/// "Deleted mailbox" folder). Exit codes: 0 written, 2 error (nothing is overwritten).
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
    /// Write the committed demo install (fixtures/demo): its size and seed, ignoring the others
    #[arg(long)]
    demo: bool,
    /// Worker threads [default: one per core]
    #[arg(short = 'j', long, value_name = "N")]
    threads: Option<usize>,
}

fn main() -> ExitCode {
    kc_cli::run("kc-fixture", || {
        let cli: Cli = kc_cli::parse()?;
        if let Some(n) = cli.threads {
            let _ = rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build_global();
        }
        let options = if cli.demo {
            kc_testkit::Options::demo()
        } else {
            kc_testkit::Options {
                users: cli.users,
                domains: usize::from(cli.domains),
                messages_per_user: cli.messages_per_user,
                seed: cli.seed,
                max_message_size: cli.max_message_size,
                configs_only: cli.configs_only,
            }
        };
        let summary = kc_testkit::generate(&cli.out, &options)?;
        kc_cli::print_json(&summary)?;
        Ok(Outcome::Success)
    })
}

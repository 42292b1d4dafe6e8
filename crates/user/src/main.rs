//! kc-user: the account actions of the vendor's console, offline: disable, enable, remove (with
//! the mailbox kept, deleted or moved to another account) and list. A thin front over
//! `kc_core::user`.

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use kc_cli::{DryRun, Format, GlobalArgs, Outcome, Settings, WriteArgs};
use kc_core::account::Address;
use kc_core::model::Model;
use kc_core::user::{self, Action, MailboxFate};

/// Disable, enable, remove and list Kerio Connect accounts (the server must be stopped to change).
///
/// A disabled account cannot log in but keeps every message and setting. Removal keeps, deletes
/// or moves the mailbox, as the administration console offers; removals are logged in
/// warning.log. As in the console, an account mapped from a directory service can be disabled
/// and enabled, and removing one only disables it. Changes are written to config.log in the
/// server's own form (insert/update/delete User set …). A verified backup of everything touched
/// is taken first.
///
/// Examples:
///   kc-user list --domain example.com
///   kc-user disable jdoe@example.com asmith@example.com
///   kc-user -n remove jdoe@example.com --mailbox transfer:boss@example.com --purge-settings
///
/// Exit codes: 0 done; 2 error or refused (nothing changed).
#[derive(Debug, Parser)]
#[command(name = "kc-user", version, about, long_about, verbatim_doc_comment)]
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
    /// Disable accounts (Account_enabled 0): they keep their mail and settings
    Disable {
        /// user@domain
        #[arg(required = true, value_name = "ADDR")]
        addresses: Vec<String>,
    },
    /// Enable accounts (Account_enabled 1)
    Enable {
        #[arg(required = true, value_name = "ADDR")]
        addresses: Vec<String>,
    },
    /// Remove accounts
    Remove {
        #[arg(required = true, value_name = "ADDR")]
        addresses: Vec<String>,
        /// keep (re-attached if the name is created again), delete, or transfer:USER@DOMAIN
        /// (moved under that account as folder "Deleted mailbox — <user>@<domain>"). Required
        /// for a local account; an account mapped from a directory service is only disabled, as
        /// the console does, and its mailbox is left alone unless this is given
        #[arg(long, value_name = "FATE", value_parser = parse_fate)]
        mailbox: Option<MailboxFate>,
        /// Also remove group memberships, mailing-list entries, aliases delivering only to
        /// them, other users' forwards, and folder sharing naming them (else: warnings)
        #[arg(long)]
        purge_settings: bool,
    },
    /// List accounts: name, domain, full name, enabled, rights, data source, mailbox bytes
    List {
        #[arg(long, short = 'd', value_name = "DOMAIN")]
        domain: Option<String>,
    },
}

fn parse_fate(text: &str) -> Result<MailboxFate, String> {
    match text {
        "keep" => Ok(MailboxFate::Keep),
        "delete" => Ok(MailboxFate::Delete),
        _ => match text.strip_prefix("transfer:") {
            Some(to) => Address::parse(to, None)
                .map(MailboxFate::Transfer)
                .map_err(|e| e.to_string()),
            None => Err("keep, delete or transfer:USER@DOMAIN".into()),
        },
    }
}

fn addresses(texts: &[String]) -> anyhow::Result<Vec<Address>> {
    texts
        .iter()
        .map(|t| Address::parse(t, None).with_context(|| format!("ADDR {t}")))
        .collect()
}

/// The console's words for `Rights` [C: 0 none, 1 read-only administration, 3 full].
fn rights(value: u8) -> std::borrow::Cow<'static, str> {
    match value {
        0 => "none".into(),
        1 => "read-only".into(),
        3 => "full".into(),
        other => other.to_string().into(),
    }
}

fn list(settings: &Settings, domain: Option<&str>) -> anyhow::Result<Outcome> {
    let model = Model::load(&settings.install)?;
    let rows = user::list(&model, domain, &settings.progress())?;
    match settings.format {
        Format::Json => {
            for row in &rows {
                kc_cli::print_json(row)?;
            }
        }
        Format::Human => {
            kc_cli::outln!(
                "{:<24} {:<20} {:<24} {:<8} {:<10} {:<6} {:>12}",
                "NAME",
                "DOMAIN",
                "FULL NAME",
                "ENABLED",
                "RIGHTS",
                "SOURCE",
                "MAILBOX"
            )?;
            for r in &rows {
                kc_cli::outln!(
                    "{:<24} {:<20} {:<24} {:<8} {:<10} {:<6} {:>12}",
                    r.name,
                    r.domain,
                    r.full_name,
                    if r.enabled { "yes" } else { "no" },
                    rights(r.rights),
                    r.data_source,
                    r.mailbox_bytes
                        .map_or_else(|| "-".to_owned(), kc_cli::human_bytes)
                )?;
            }
        }
    }
    Ok(Outcome::Success)
}

fn main() -> ExitCode {
    kc_cli::run_tool(user::TOOL, |cli: Cli| {
        let settings = cli.global.resolve()?.writing(&cli.write);
        if cli.write.resume {
            return kc_cli::resume(&settings);
        }
        let (who, action) = match cli.command {
            None => bail!("give a command (disable, enable, remove, list) or --resume"),
            Some(Command::List { domain }) => return list(&settings, domain.as_deref()),
            Some(Command::Disable { addresses: a }) => (addresses(&a)?, Action::Disable),
            Some(Command::Enable { addresses: a }) => (addresses(&a)?, Action::Enable),
            Some(Command::Remove {
                addresses: a,
                mailbox,
                purge_settings,
            }) => (
                addresses(&a)?,
                Action::Remove {
                    mailbox,
                    purge: purge_settings,
                },
            ),
        };
        let dry = DryRun::from(cli.write);
        let guard = kc_cli::guard(&settings, user::TOOL, dry)?;
        let plan = user::plan(Model::load(&settings.install)?, &who, &action)
            .inspect_err(|e| kc_cli::print_problems(&settings, e.problems()))?;
        if plan.steps.is_empty() {
            for w in &plan.warnings {
                settings.warn(user::TOOL, w);
            }
            settings.info("kc-user: nothing to change");
            return Ok(Outcome::Success);
        }
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

//! kc-bulk-import: creates many accounts at once from the vendor's CSV, a TOML file, or another
//! installation's users.cfg, validating every row before anything is written. A thin front over
//! `kc_core::import`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Parser;
use kc_cli::{DryRun, GlobalArgs, WriteArgs};
use kc_core::import::{self, Migration, Options};
use kc_core::model::Model;

/// Create many accounts from the vendor's CSV, a TOML file, or another server's users.cfg.
///
/// Every row is checked first (names, duplicates against the file and the server, addresses,
/// groups, the domain's password policy, the licence); any failure is reported as
/// FILE:LINE: COLUMN: message, for every failing row, and nothing is written.
///
/// CSV: a header row naming the columns Name (required), Password, FullName, Description,
/// MailAddress, Groups in any order; ';' with comma multi-values, or ',' with quoted ones.
/// TOML: [[user]] tables with those keys, any User variable this server knows, and optional domain
/// and template.
///
/// Examples:
///   kc-bulk-import users.csv --domain example.com --template "Sales staff" -n
///   kc-bulk-import users.csv --domain example.com --generate-passwords --credentials-out new.csv
///   kc-bulk-import --from-users-cfg /mnt/old/users.cfg --domain example.com
///
/// Exit codes: 0 done; 2 error or refused (nothing changed).
#[derive(Debug, Parser)]
#[command(
    name = "kc-bulk-import",
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
    /// The accounts: a .csv or .toml file
    #[arg(required_unless_present_any = ["from_users_cfg", "resume"], conflicts_with = "from_users_cfg")]
    file: Option<PathBuf>,
    /// The domain of the accounts (a TOML user may name its own)
    #[arg(long, short = 'd', value_name = "DOMAIN")]
    domain: Option<String>,
    /// A user template of mailserver.cfg (general, or of the domain) giving the defaults
    #[arg(long, value_name = "NAME")]
    template: Option<String>,
    /// Create the groups the rows name that do not exist
    #[arg(long)]
    create_groups: bool,
    /// Give a strong random password to every row without one
    #[arg(long, requires = "credentials_out")]
    generate_passwords: bool,
    /// Where the generated passwords go (address,password), created with mode 0600
    #[arg(long, value_name = "FILE", requires = "generate_passwords")]
    credentials_out: Option<PathBuf>,
    /// Refuse the import if more enabled accounts than this would exist
    #[arg(long, value_name = "N")]
    license_limit: Option<usize>,
    /// Migrate the users (of --domain, or all) of another installation's users.cfg, with their
    /// password hashes, groups, aliases and password history
    #[arg(long, value_name = "FILE")]
    from_users_cfg: Option<PathBuf>,
}

/// Creates the credentials file (mode 0600, never over an existing file) and writes it.
fn write_credentials(path: &Path, credentials: &[(String, String)]) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {} (it must not exist)", path.display()))?;
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["address", "password"])?;
    for (a, p) in credentials {
        w.write_record([a, p])?;
    }
    let bytes = w.into_inner().context("CSV")?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

fn main() -> ExitCode {
    kc_cli::run_tool(import::TOOL, |cli: Cli| {
        let settings = cli.global.resolve()?.writing(&cli.write);
        if cli.write.resume {
            return kc_cli::resume(&settings);
        }
        let dry = DryRun::from(cli.write);
        let guard = kc_cli::guard(&settings, import::TOOL, dry)?;
        if let Some(out) = &cli.credentials_out
            && out.exists()
        {
            bail!(
                "{} exists; the credentials file is never overwritten; nothing was changed",
                out.display()
            );
        }
        let read = match (&cli.file, &cli.from_users_cfg) {
            (_, Some(cfg)) => import::read_users_cfg(cfg, cli.domain.as_deref()),
            (Some(file), None) => {
                let is_toml = file
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
                let rows = if is_toml {
                    import::read_toml(file)
                } else {
                    import::read_csv(file)
                };
                rows.map(|rows| (rows, Migration::default()))
            }
            (None, None) => bail!("give FILE or --from-users-cfg"),
        };
        let (rows, migration) =
            read.inspect_err(|e| kc_cli::print_problems(&settings, e.problems()))?;
        let options = Options {
            domain: cli.domain.clone(),
            template: cli.template.clone(),
            create_groups: cli.create_groups,
            generate_passwords: cli.generate_passwords,
            license_limit: cli.license_limit,
        };
        let model = Model::load(&settings.install)?;
        let imported = import::plan(model, &rows, &migration, &options)
            .inspect_err(|e| kc_cli::print_problems(&settings, e.problems()))?;
        if imported.accounts == 0 {
            settings.info("kc-bulk-import: no accounts to import");
            return Ok(kc_cli::Outcome::Success);
        }
        if dry == DryRun::Enabled {
            return kc_cli::carry_out(&settings, &imported.plan, dry, &guard);
        }
        if let Some(out) = &cli.credentials_out {
            write_credentials(out, &imported.credentials)?;
        }
        match kc_cli::carry_out(&settings, &imported.plan, dry, &guard) {
            Ok(outcome) => Ok(outcome),
            Err(e) => {
                // The passwords of accounts that were not created are of no use.
                if let Some(out) = &cli.credentials_out {
                    let _ = std::fs::remove_file(out);
                }
                Err(e)
            }
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

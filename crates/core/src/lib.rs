//! kc-core: everything the kerio-toolkit binaries do, as library calls.
//!
//! The binaries are thin fronts over this crate. Nothing here prints or exits: functions return
//! values and errors, write through `&mut dyn Write` where they must, and report progress through
//! [`progress::Progress`], whose default is silent.
//!
//! - [`install`] finds a server's root, config files and store.
//! - [`config`] holds `mailserver.cfg` and `users.cfg` as byte-preserving documents, with typed
//!   views through the one [`config::schema`] table of the assumed names.
//! - [`store`] walks domains, mailboxes and folders in parallel, with the codecs of the files
//!   that name addresses: `status.fld` (and `#public/acl.fld`), `folder.map`, `sub.fld`.
//! - [`archive`] writes, verifies and restores backups.
//! - [`change`] carries out a tool's plan: guard, pre-change backup, journal, atomic steps,
//!   rollback and undo.
//! - [`account`] names and addresses, where a mailbox is, and the store files naming an address.
//! - [`rename`] plans an account's rename across the configs and the store.
//! - [`user`] plans disabling, enabling and removing accounts, and lists them.
//! - [`store_check`] reports the store's consistency: indexes against messages, missing
//!   status files, references to accounts that do not exist.
//! - [`reindex`] plans moving folders' indexes aside, so that the server rebuilds them.
//! - [`orphan`] finds mailboxes without accounts (and their kin) and plans their resolution.
//! - [`import`] reads and validates account imports (CSV, TOML, another users.cfg) and plans them.
//! - [`audit`] writes what the tools change into the server's own Config and Warning logs.
//! - [`password`] checks passwords against the secure policy and generates them.
//! - [`suggest`] names the closest known name when one given is not on the install.
//! - [`guard`] refuses to let a writer run while the server does, and holds the install lock.
//! - [`model`] is what the planners read: an install's layout and configs, loaded once.
//! - [`problem`] is a refusal as data: where, about what, and why.
//! - [`hash`] is SHA-256 in the manifests' hex form.

#![warn(missing_docs)]

pub mod account;
pub mod archive;
pub mod audit;
pub mod change;
pub mod config;
mod csv_lines;
pub mod guard;
pub mod hash;
pub mod import;
pub mod install;
pub mod model;
pub mod orphan;
pub mod password;
pub mod problem;
pub mod progress;
pub mod reindex;
pub mod rename;
pub mod store;
pub mod store_check;
pub mod suggest;
pub mod user;

#[cfg(test)]
mod tests {
    /// The README's Layout section is where a newcomer learns the modules: it names each one.
    #[test]
    fn the_readme_layout_names_every_module() {
        let readme = include_str!("../../../README.md");
        let layout = readme
            .split("\n## Layout\n")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .expect("README.md has a Layout section");
        let missing: Vec<&str> = include_str!("lib.rs")
            .lines()
            .filter_map(|l| l.trim_start_matches("pub ").strip_prefix("mod "))
            .filter_map(|m| m.strip_suffix(';'))
            .filter(|m| *m != "csv_lines" && !layout.contains(&format!("`{m}`")))
            .collect();
        assert!(missing.is_empty(), "not in README's Layout: {missing:?}");
    }
}

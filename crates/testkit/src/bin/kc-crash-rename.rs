//! kc-crash-rename: drives the change protocol with a rename-shaped plan, for crash tests.
//!
//! `kc-crash-rename ROOT USER@DOMAIN NEWNAME AUDIT-LINE` renames the account in users.cfg, its
//! mailbox directory, every `A<old>@<domain>` ACL entry and folder.map owner in the store, and
//! appends the given audit line, through `kc_core::change::apply`. Tests run it with
//! `KC_CRASH_AFTER_STEP=N` or kill it, then check that undo or resume gives a whole install.
//! It is test infrastructure, not the real kc-rename-user.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use kc_core::change::{self, Plan, Step};
use kc_core::config::Config;
use kc_core::install::Install;
use kc_core::progress::Silent;
use kc_core::store::{self, folder_map::FolderMap, status_fld::StatusFld};

fn plan(root: &Path, address: &str, new: &str, line: &str) -> anyhow::Result<Plan> {
    let (old, domain) = address.split_once('@').context("USER@DOMAIN")?;
    let mut config = Config::load(root)?;
    let id = config.user(old, domain).context("no such user")?.id();
    config.users.set(id, "Name", new)?;
    let mut steps = vec![Step::save_document("users.cfg", &config.users)];
    let mail = PathBuf::from("store/mail").join(domain);
    let (old_addr, new_addr) = (format!("{old}@{domain}"), format!("{new}@{domain}"));
    for file in
        store::folder_level_files(&root.join(&mail), &[store::STATUS_FLD, store::FOLDER_MAP])?
    {
        let rel = file.strip_prefix(root)?.to_path_buf();
        let bytes = std::fs::read(&file)?;
        let read = kc_core::change::Expect::read(&bytes);
        let rewritten = if file.ends_with(store::STATUS_FLD) {
            let mut s = StatusFld::parse(bytes);
            (s.rename(&old_addr, &new_addr) > 0).then(|| s.into_bytes())
        } else {
            let (b, n) = FolderMap::parse(&file, bytes)?.renamed(&old_addr, &new_addr);
            (n > 0).then_some(b)
        };
        if let Some(bytes) = rewritten {
            // Files inside the mailbox are written before it is renamed (Plan::check).
            steps.push(Step::write_file(rel, bytes, read));
        }
    }
    steps.push(Step::Rename {
        from: mail.join(old),
        to: mail.join(new),
    });
    steps.push(Step::AppendLines {
        path: "store/logs/config.log".into(),
        lines: vec![line.to_owned()],
    });
    Ok(Plan {
        tool: "kc-crash-rename".into(),
        description: format!("rename {address} to {new}"),
        steps,
        warnings: vec![],
    })
}

fn main() -> ExitCode {
    kc_cli::run("kc-crash-rename", || {
        let args: Vec<String> = std::env::args().skip(1).collect();
        if let [flag, root] = args.as_slice()
            && flag == "--undo"
        {
            // `kc-backup undo --last`, here so that KC_CRASH_IN_SWAP can stop it.
            let root = Path::new(root);
            let install = Install::locate(Some(root), None)?;
            let (backups, pid) = (root.join("kc-backups"), root.join("no.pid"));
            let cx = change::Context {
                install: &install,
                backup_dir: &backups,
                pid_file: &pid,
                progress: &Silent,
            };
            let undone = change::undo(&cx, None, Default::default())?;
            println!("{}", undone.change);
            return Ok(kc_cli::Outcome::Success);
        }
        let [root, address, new, line] = args.as_slice() else {
            anyhow::bail!("usage: kc-crash-rename ROOT USER@DOMAIN NEWNAME AUDIT-LINE");
        };
        let root = Path::new(root);
        let install = Install::locate(Some(root), None)?;
        change::check_unfinished(&install)?;
        let plan = plan(root, address, new, line)?;
        let (backups, pid) = (root.join("kc-backups"), root.join("no.pid"));
        let cx = change::Context {
            install: &install,
            backup_dir: &backups,
            pid_file: &pid,
            progress: &Silent,
        };
        let applied = change::apply(&cx, &plan)?;
        println!("{} {}", applied.change, applied.steps);
        Ok(kc_cli::Outcome::Success)
    })
}

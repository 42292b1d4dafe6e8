//! The guard every writer passes first: the server must be stopped, and no other run of the
//! toolkit may be working on the same install.
//!
//! The server reads its config at start and rewrites it from memory at stop (KERIO-FORMAT.md §1),
//! so an edit made while it runs is lost or, worse, half-kept. "Running" means: the pid file
//! names a live process called `mailserver`, or any live process on the host is called
//! `mailserver` (found by scanning `/proc`). A pid file naming a dead process, or a process of
//! another name, is stale and means stopped (§7).
//!
//! The lock is an advisory exclusive lock on `<root>/.kc.lock`, held until the [`InstallLock`]
//! is dropped (or the process dies: the kernel releases it, so a crash never leaves it stuck).
//! The file holds the holder's pid and tool, for the message the next run prints.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The process name of the server on Linux and macOS [T/A]; `mailserver.exe` on Windows [C].
pub const SERVER_PROCESS: &str = "mailserver";
/// The pid file of the Linux service unit [T].
pub const DEFAULT_PID_FILE: &str = "/var/run/kms.pid";
/// The lock file, relative to the install root.
pub const LOCK_FILE: &str = ".kc.lock";

#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error(
        "the Kerio Connect server is running ({why}); stop it first (systemctl stop kerio-connect): \
         it rewrites its config files when it stops, so offline changes would be lost"
    )]
    ServerRunning { pid: u32, why: String },
    #[error(
        "{path} is held by another kerio-toolkit run ({holder}); wait for it to finish, \
         nothing was changed"
    )]
    Locked { path: PathBuf, holder: String },
    #[error("cannot take the lock {path}")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Whether the server runs, and how we know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerState {
    Stopped,
    Running { pid: u32, why: String },
}

/// Looks at the pid file and the process table.
pub fn server_state(pid_file: &Path) -> ServerState {
    if let Some(pid) = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
    {
        match process_name_of(pid) {
            Some(name) if is_server_name(&name) => {
                return ServerState::Running {
                    pid,
                    why: format!("{} names live process {pid} `{name}`", pid_file.display()),
                };
            }
            // No /proc to ask: a pid file is all we have, so believe it.
            None if !cfg!(target_os = "linux") => {
                return ServerState::Running {
                    pid,
                    why: format!(
                        "{} names process {pid}; remove it if the server is stopped",
                        pid_file.display()
                    ),
                };
            }
            _ => {} // stale
        }
    }
    match find_server_process() {
        Some((pid, name)) => ServerState::Running {
            pid,
            why: format!("process {pid} `{name}` is live"),
        },
        None => ServerState::Stopped,
    }
}

fn is_server_name(name: &str) -> bool {
    name == SERVER_PROCESS || name.eq_ignore_ascii_case("mailserver.exe")
}

/// The name of a live process: its `comm`, or the base name of its argv[0].
fn process_name_of(pid: u32) -> Option<String> {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let comm = std::fs::read_to_string(proc_dir.join("comm")).ok()?;
    let comm = comm.trim_end_matches('\n').to_owned();
    if is_server_name(&comm) {
        return Some(comm);
    }
    let cmdline = std::fs::read(proc_dir.join("cmdline")).unwrap_or_default();
    let argv0 = cmdline.split(|&b| b == 0).next().unwrap_or_default();
    let base = Path::new(std::str::from_utf8(argv0).unwrap_or_default())
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    Some(if is_server_name(base) {
        base.to_owned()
    } else {
        comm
    })
}

fn find_server_process() -> Option<(u32, String)> {
    let entries = std::fs::read_dir("/proc").ok()?;
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != std::process::id())
        .find_map(|pid| {
            let name = process_name_of(pid)?;
            is_server_name(&name).then_some((pid, name))
        })
}

/// Refuses unless the server is stopped.
pub fn ensure_stopped(pid_file: &Path) -> Result<(), GuardError> {
    match server_state(pid_file) {
        ServerState::Stopped => Ok(()),
        ServerState::Running { pid, why } => Err(GuardError::ServerRunning { pid, why }),
    }
}

/// The exclusive lock on an install, released when dropped.
#[derive(Debug)]
pub struct InstallLock {
    path: PathBuf,
    _file: File,
}

impl InstallLock {
    /// Takes the lock on `<root>/.kc.lock` without waiting.
    pub fn acquire(root: &Path, tool: &str) -> Result<InstallLock, GuardError> {
        let path = root.join(LOCK_FILE);
        let lock_err = |source| GuardError::Lock {
            path: path.clone(),
            source,
        };
        use std::os::unix::fs::OpenOptionsExt;
        // Never through a link: a `.kc.lock` planted as a symlink would have us truncate and
        // write whatever it points at.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false) // the holder's pid stays readable until we own the lock
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| {
                if e.raw_os_error() == Some(libc::ELOOP) {
                    lock_err(std::io::Error::other(
                        "it is a symbolic link; remove it (the lock file is the toolkit's own)",
                    ))
                } else {
                    lock_err(e)
                }
            })?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let holder = if holder.is_empty() {
                    "pid unknown".to_owned()
                } else {
                    holder.to_owned()
                };
                return Err(GuardError::Locked { path, holder });
            }
            Err(TryLockError::Error(e)) => return Err(lock_err(e)),
        }
        file.set_len(0).map_err(lock_err)?;
        file.rewind().map_err(lock_err)?;
        writeln!(file, "pid {} {tool}", std::process::id()).map_err(lock_err)?;
        file.sync_all().map_err(lock_err)?;
        Ok(InstallLock { path, _file: file })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Both checks a writer needs: the server is stopped, and the lock is ours.
pub fn acquire(root: &Path, pid_file: &Path, tool: &str) -> Result<InstallLock, GuardError> {
    ensure_stopped(pid_file)?;
    let lock = InstallLock::acquire(root, tool)?;
    // Checked again under the lock: the server may have started while we waited.
    ensure_stopped(pid_file)?;
    Ok(lock)
}

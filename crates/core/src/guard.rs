//! The guard every writer passes first: the server must be stopped, and no other run of the
//! toolkit may be working on the same install.
//!
//! The server reads its config at start and rewrites it from memory at stop (KERIO-FORMAT.md §1),
//! so an edit made while it runs is lost or, worse, half-kept. "Running" means: the pid file
//! names a live process called `mailserver`, or a live process called `mailserver` (found by
//! scanning `/proc`) serves this install. A pid file naming a dead process, or a process of
//! another name, is stale and means stopped (§7).
//!
//! A `mailserver` process serves this install when its command-line argument (the vendor's unit
//! runs `/opt/kerio/mailserver/mailserver /opt/kerio/mailserver`), its working directory or its
//! program's directory is the install root. They are compared as files (device and inode), so a
//! root reached through a symbolic link, or a server in a container, matches. One that serves
//! another install (a copy to practise on, on a host where the real server runs) does not stop a
//! run; it is reported in [`ServerCheck::others`] for the tools to say so. One whose install
//! cannot be told (its working directory unreadable to a user other than root) counts as ours:
//! the guard fails closed.
//!
//! The lock is an advisory exclusive lock on `<root>/.kc.lock`, held until the [`InstallLock`]
//! is dropped (or the process dies: the kernel releases it, so a crash never leaves it stuck).
//! The file holds the holder's pid and tool, for the message the next run prints.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The process name of the server on Linux and macOS [T/A]; `mailserver.exe` on Windows [C].
pub const SERVER_PROCESS: &str = "mailserver";
/// The pid file of the Linux service unit [T].
pub const DEFAULT_PID_FILE: &str = "/var/run/kms.pid";
/// The lock file, relative to the install root.
pub const LOCK_FILE: &str = ".kc.lock";

/// Why a writer may not run now.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// The install's server runs.
    #[error(
        "the Kerio Connect server is running ({why}); stop it first (systemctl stop kerio-connect): \
         it rewrites its config files when it stops, so offline changes would be lost"
    )]
    ServerRunning {
        /// The server's process.
        pid: u32,
        /// How the guard knows: the pid file, or which of the process's paths is the root.
        why: String,
    },
    /// Another run of the toolkit holds the install's lock.
    #[error(
        "{path} is held by another kerio-toolkit run ({holder}); wait for it to finish, \
         nothing was changed"
    )]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// What the lock file says of its holder: its pid and tool.
        holder: String,
    },
    /// The lock file could not be created, opened or locked.
    #[error("cannot take the lock {path}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// Why it could not be taken.
        #[source]
        source: std::io::Error,
    },
}

/// Whether the server runs, and how we know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerState {
    /// No live `mailserver` process serves this install (or might).
    Stopped,
    /// A live `mailserver` process serves this install, or cannot be told not to.
    Running {
        /// The server's process.
        pid: u32,
        /// How the guard knows, for the message.
        why: String,
    },
}

/// A live `mailserver` process that serves another install, and so was let be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherServer {
    /// Its process.
    pub pid: u32,
    /// Its process name: `mailserver`, or `mailserver.exe`.
    pub name: String,
    /// The install it seems to serve: its directory argument, else its program's directory,
    /// else its working directory.
    pub serves: PathBuf,
    /// This install's root, as given.
    pub root: PathBuf,
}

impl std::fmt::Display for OtherServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a {} process (pid {}, {}) runs for another install; not counted as running here: \
             neither its argument, its working directory nor its program's directory is {}",
            self.name,
            self.pid,
            self.serves.display(),
            self.root.display()
        )
    }
}

/// What [`check`] found: the state, and the servers of other installs it let be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerCheck {
    /// Whether this install's server runs.
    pub state: ServerState,
    /// The live `mailserver` processes of other installs, let be.
    pub others: Vec<OtherServer>,
}

/// Whether the server of the install at `root` runs: the pid file, then the process table.
pub fn server_state(root: &Path, pid_file: &Path) -> ServerState {
    check(root, pid_file).state
}

/// Looks at the pid file and the process table, and says which `mailserver` processes serve
/// other installs.
pub fn check(root: &Path, pid_file: &Path) -> ServerCheck {
    if let Some(pid) = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
    {
        match process_name_of(pid) {
            Some(name) if is_server_name(&name) => {
                return ServerCheck {
                    state: ServerState::Running {
                        pid,
                        why: format!("{} names live process {pid} `{name}`", pid_file.display()),
                    },
                    others: Vec::new(),
                };
            }
            // No /proc to ask: a pid file is all we have, so believe it.
            None if !cfg!(target_os = "linux") => {
                return ServerCheck {
                    state: ServerState::Running {
                        pid,
                        why: format!(
                            "{} names process {pid}; remove it if the server is stopped",
                            pid_file.display()
                        ),
                    },
                    others: Vec::new(),
                };
            }
            _ => {} // stale
        }
    }
    let mut others = Vec::new();
    for (pid, name) in server_processes() {
        let proc_dir = PathBuf::from(format!("/proc/{pid}"));
        match serves(root, &Evidence::of(&proc_dir)) {
            Serves::This { how } => {
                return ServerCheck {
                    state: ServerState::Running {
                        pid,
                        why: format!(
                            "process {pid} `{name}` serves this install: {how} {}",
                            root.display()
                        ),
                    },
                    others: Vec::new(),
                };
            }
            Serves::Unknown { reason } => {
                return ServerCheck {
                    state: ServerState::Running {
                        pid,
                        why: format!(
                            "process {pid} `{name}` is live, and whether it serves this install \
                             cannot be told: {reason}; as root the toolkit can tell"
                        ),
                    },
                    others: Vec::new(),
                };
            }
            Serves::Other { serves } => others.push(OtherServer {
                pid,
                name,
                serves,
                root: root.to_owned(),
            }),
            Serves::Gone => {}
        }
    }
    ServerCheck {
        state: ServerState::Stopped,
        others,
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

/// Every live process called `mailserver` but this one, lowest pid first.
fn server_processes() -> Vec<(u32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found: Vec<(u32, String)> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != std::process::id())
        .filter_map(|pid| {
            let name = process_name_of(pid)?;
            is_server_name(&name).then_some((pid, name))
        })
        .collect();
    found.sort();
    found
}

/// What `/proc/PID` tells of the install a process serves.
#[derive(Debug)]
struct Evidence {
    /// `/proc/PID`, for messages.
    proc_dir: PathBuf,
    /// Its command-line arguments after the program, as paths.
    args: Vec<PathBuf>,
    /// Its working directory: the link's text, and the directory it leads to.
    cwd: std::io::Result<(PathBuf, FileId)>,
    /// The directory its program is in.
    exe_dir: std::io::Result<(PathBuf, FileId)>,
}

/// A file's identity: two paths to the same directory (a symlinked root, a path seen from
/// inside a container) have the same one.
type FileId = (u64, u64);

fn file_id(path: &Path) -> std::io::Result<FileId> {
    std::fs::metadata(path).map(|m| (m.dev(), m.ino()))
}

impl Evidence {
    fn of(proc_dir: &Path) -> Evidence {
        use std::os::unix::ffi::OsStrExt;
        let cmdline = std::fs::read(proc_dir.join("cmdline")).unwrap_or_default();
        let args = cmdline
            .split(|&b| b == 0)
            .skip(1)
            .filter(|a| !a.is_empty())
            .map(|a| PathBuf::from(std::ffi::OsStr::from_bytes(a)))
            .collect();
        // The link itself leads to the directory even where its text would not (another mount
        // namespace), so the identity comes from following it.
        let link = proc_dir.join("cwd");
        let cwd = std::fs::read_link(&link).and_then(|text| Ok((text, file_id(&link)?)));
        let exe_dir = std::fs::read_link(proc_dir.join("exe")).and_then(|exe| {
            let dir = exe.parent().unwrap_or(Path::new("/")).to_owned();
            // Through the process's own root, for a server in a container.
            let id = file_id(
                &proc_dir
                    .join("root")
                    .join(dir.strip_prefix("/").unwrap_or(&dir)),
            )?;
            Ok((dir, id))
        });
        Evidence {
            proc_dir: proc_dir.to_owned(),
            args,
            cwd,
            exe_dir,
        }
    }
}

/// Which install a `mailserver` process serves, as far as can be told.
#[derive(Debug, PartialEq, Eq)]
enum Serves {
    /// This one, and how we know ("its argument is").
    This { how: &'static str },
    /// Another, most likely the one named.
    Other { serves: PathBuf },
    /// It cannot be told: some of its `/proc` entries could not be read.
    Unknown { reason: String },
    /// The process ended while we looked.
    Gone,
}

/// Compares what `/proc` tells of a process with the install at `root`.
fn serves(root: &Path, evidence: &Evidence) -> Serves {
    let Ok(root_id) = file_id(root) else {
        // No root to compare with: the caller's own check of the install fails later. Count
        // the process as ours, as for any doubt.
        return Serves::Unknown {
            reason: format!("{} cannot be read", root.display()),
        };
    };
    // An argument relative to its working directory is read from there.
    let arg_dirs: Vec<(PathBuf, FileId)> = evidence
        .args
        .iter()
        .filter_map(|a| {
            let path = match &evidence.cwd {
                Ok(_) if a.is_relative() => evidence.proc_dir.join("cwd").join(a),
                _ => a.clone(),
            };
            std::fs::metadata(&path)
                .ok()
                .filter(|m| m.is_dir())
                .map(|m| (a.clone(), (m.dev(), m.ino())))
        })
        .collect();
    if arg_dirs.iter().any(|(_, id)| *id == root_id) {
        return Serves::This {
            how: "its argument is",
        };
    }
    if evidence.cwd.as_ref().is_ok_and(|(_, id)| *id == root_id) {
        return Serves::This {
            how: "its working directory is",
        };
    }
    if evidence
        .exe_dir
        .as_ref()
        .is_ok_and(|(_, id)| *id == root_id)
    {
        return Serves::This {
            how: "its program is in",
        };
    }
    for (what, result) in [
        ("cwd", evidence.cwd.as_ref().map(|_| ())),
        ("exe", evidence.exe_dir.as_ref().map(|_| ())),
    ] {
        if let Err(e) = result {
            if e.kind() == std::io::ErrorKind::NotFound && !evidence.proc_dir.exists() {
                return Serves::Gone;
            }
            return Serves::Unknown {
                reason: format!(
                    "cannot read {}: {e}",
                    evidence.proc_dir.join(what).display()
                ),
            };
        }
    }
    let serves = arg_dirs
        .into_iter()
        .map(|(path, _)| path)
        .chain(evidence.exe_dir.as_ref().ok().map(|(p, _)| p.clone()))
        .next()
        .unwrap_or_default();
    Serves::Other { serves }
}

/// Refuses unless the server of the install at `root` is stopped; else the servers of other
/// installs it let be.
pub fn ensure_stopped(root: &Path, pid_file: &Path) -> Result<Vec<OtherServer>, GuardError> {
    let ServerCheck { state, others } = check(root, pid_file);
    match state {
        ServerState::Stopped => Ok(others),
        ServerState::Running { pid, why } => Err(GuardError::ServerRunning { pid, why }),
    }
}

/// The exclusive lock on an install, released when dropped.
#[derive(Debug)]
pub struct InstallLock {
    path: PathBuf,
    _file: File,
    others: Vec<OtherServer>,
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
        Ok(InstallLock {
            path,
            _file: file,
            others: Vec::new(),
        })
    }

    /// The lock file, `<root>/.kc.lock`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The `mailserver` processes of other installs the guard saw and let be, for the tool to
    /// say so.
    pub fn other_servers(&self) -> &[OtherServer] {
        &self.others
    }
}

/// Both checks a writer needs: the server is stopped, and the lock is ours.
pub fn acquire(root: &Path, pid_file: &Path, tool: &str) -> Result<InstallLock, GuardError> {
    ensure_stopped(root, pid_file)?;
    let mut lock = InstallLock::acquire(root, tool)?;
    // Checked again under the lock: the server may have started while we waited.
    lock.others = ensure_stopped(root, pid_file)?;
    Ok(lock)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evidence(dir: &Path, args: &[&Path], cwd: std::io::Result<&Path>) -> Evidence {
        let id = |p: &Path| Ok((p.to_owned(), file_id(p)?));
        Evidence {
            proc_dir: dir.join("proc/42"),
            args: args.iter().map(|a| a.to_path_buf()).collect(),
            cwd: cwd.and_then(id),
            exe_dir: id(dir),
        }
    }

    #[test]
    fn a_server_whose_install_cannot_be_told_counts_as_ours() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("kerio");
        let other = dir.path().join("other");
        std::fs::create_dir(&root).expect("mkdir");
        std::fs::create_dir(&other).expect("mkdir");
        std::fs::create_dir_all(dir.path().join("proc/42")).expect("mkdir");
        let denied = || Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied));

        // Its working directory unreadable, and nothing else says it is ours: refused.
        match serves(&root, &evidence(dir.path(), &[&other], denied())) {
            Serves::Unknown { reason } => assert_eq!(
                reason,
                format!(
                    "cannot read {}: permission denied",
                    dir.path().join("proc/42/cwd").display()
                )
            ),
            found => panic!("{found:?}"),
        }
        // Its argument is ours: that is enough.
        assert_eq!(
            serves(&root, &evidence(dir.path(), &[&root], denied())),
            Serves::This {
                how: "its argument is"
            }
        );
        // All readable and none ours: another install, named by its argument.
        assert_eq!(
            serves(&root, &evidence(dir.path(), &[&other], Ok(&other))),
            Serves::Other {
                serves: other.clone()
            }
        );
        // Gone while we looked.
        std::fs::remove_dir(dir.path().join("proc/42")).expect("rmdir");
        let gone = || Err(std::io::Error::from(std::io::ErrorKind::NotFound));
        assert_eq!(
            serves(&root, &evidence(dir.path(), &[&other], gone())),
            Serves::Gone
        );
    }
}

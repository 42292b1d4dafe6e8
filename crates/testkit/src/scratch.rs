//! Test harness over generated installs: [`Scratch`] (an install with a pristine copy to compare
//! against, and the siblings a shape wrote beside it), tree comparison, the path of a workspace
//! binary, [`LockHolder`] (another process holding an install's lock), and [`Turn`] (which
//! tests of one binary may run the tools side by side).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError};

use crate::{Options, Summary, temp_install};

/// What a tree holds at one path, for [`compare_trees`].
#[derive(Debug, PartialEq, Eq)]
enum Node {
    Dir(u32),
    File(u32, PathBuf),
    Link(PathBuf),
}

fn nodes(root: &Path, exclude: &[&str]) -> BTreeMap<PathBuf, Node> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeMap::new();
    let walk = walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .filter_entry(|e| {
            !exclude
                .iter()
                .any(|x| e.file_name() == std::ffi::OsStr::new(x))
        });
    for entry in walk.flatten() {
        let rel = entry
            .path()
            .strip_prefix(root)
            .expect("under the root")
            .to_path_buf();
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        let mode = meta.permissions().mode() & 0o7777;
        let node = if meta.is_dir() {
            Node::Dir(mode)
        } else if meta.file_type().is_symlink() {
            Node::Link(std::fs::read_link(entry.path()).unwrap_or_default())
        } else {
            Node::File(mode, entry.path().to_path_buf())
        };
        out.insert(rel, node);
    }
    out
}

/// Every path where two trees differ: only in one of them, of another kind or mode, other bytes
/// (or link target). Entries named in `exclude` are left out with everything below them. Sorted.
pub fn differences(a: &Path, b: &Path, exclude: &[&str]) -> Vec<PathBuf> {
    let (na, nb) = (nodes(a, exclude), nodes(b, exclude));
    let mut out: Vec<PathBuf> = Vec::new();
    for (path, node) in &na {
        let same = match (node, nb.get(path)) {
            (_, None) => false,
            (Node::File(ma, pa), Some(Node::File(mb, pb))) => {
                ma == mb && std::fs::read(pa).ok() == std::fs::read(pb).ok()
            }
            (x, Some(y)) => x == y,
        };
        if !same {
            out.push(path.clone());
        }
    }
    out.extend(nb.keys().filter(|p| !na.contains_key(*p)).cloned());
    out.sort();
    out
}

/// Compares two trees: the same relative paths, each of the same kind and mode, with the same
/// bytes (or link target). Entries named in `exclude` are left out with everything below them.
/// Says the first few differences.
pub fn compare_trees(a: &Path, b: &Path, exclude: &[&str]) -> Result<(), String> {
    let diff = differences(a, b, exclude);
    if diff.is_empty() {
        return Ok(());
    }
    let (na, nb) = (nodes(a, exclude), nodes(b, exclude));
    let problems: Vec<String> = diff
        .iter()
        .take(10)
        .map(|path| match (na.get(path), nb.get(path)) {
            (None, _) => format!("only in {}: {}", b.display(), path.display()),
            (_, None) => format!("only in {}: {}", a.display(), path.display()),
            (Some(Node::File(ma, _)), Some(Node::File(mb, _))) if ma != mb => {
                format!("{}: mode {ma:o} vs {mb:o}", path.display())
            }
            (Some(Node::File(..)), Some(Node::File(..))) => {
                format!("{}: contents differ", path.display())
            }
            (Some(x), Some(y)) => format!("{}: {x:?} vs {y:?}", path.display()),
        })
        .collect();
    Err(problems.join("\n"))
}

/// What the toolkit itself adds to an install: left out when comparing with a pristine copy.
pub const TOOLKIT_FILES: [&str; 3] = ["kc-backups", "kc-journal", ".kc.lock"];

/// A generated install in a temporary directory, with a pristine copy to compare against.
#[derive(Debug)]
pub struct Scratch {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    /// The install as generated, never touched.
    pub before: PathBuf,
    pub summary: Summary,
    /// A pid file that does not exist: the server is stopped.
    pub pid_file: PathBuf,
    /// The directories a shape wrote beside the root (`kerio-store`, `kerio-volume`), each with
    /// its pristine copy: `(live, pristine)`.
    pub siblings: Vec<(PathBuf, PathBuf)>,
    _turn: Turn,
}

/// `cp -a FROM TO`: a copy keeping modes, times, owners and links, for snapshots in tests.
pub fn copy_tree(from: &Path, to: &Path) {
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp runs");
    assert!(copied.success(), "cp -a {}", from.display());
}

impl Scratch {
    /// A fresh install, for a test that runs the tools side by side with the other tests of its
    /// binary ([`Turn::shared`]).
    pub fn new(options: &Options) -> Scratch {
        Scratch::with_turn(options, Turn::shared)
    }

    /// A fresh install, for a test that starts a live `mailserver` process: no other test of its
    /// binary runs a tool meanwhile ([`Turn::alone`]).
    pub fn alone(options: &Options) -> Scratch {
        Scratch::with_turn(options, Turn::alone)
    }

    fn with_turn(options: &Options, turn: fn() -> Turn) -> Scratch {
        let (dir, summary) = temp_install(options).expect("the fixture generates");
        let root = dir.path().join("kerio");
        let before = dir.path().join("before");
        copy_tree(&root, &before);
        let paths = &summary.paths;
        let outside = paths.stale_store.as_ref().and(paths.store.clone());
        let siblings = [outside, paths.volume.clone()]
            .into_iter()
            .flatten()
            .map(|live| {
                let mut name = std::ffi::OsString::from("before-");
                name.push(live.file_name().expect("a sibling has a name"));
                let pristine = dir.path().join(name);
                copy_tree(&live, &pristine);
                (live, pristine)
            })
            .collect();
        let pid_file = dir.path().join("no-server.pid");
        Scratch {
            _dir: dir,
            root,
            before,
            summary,
            pid_file,
            siblings,
            _turn: turn(),
        }
    }

    /// The paths that differ from the pristine copy, toolkit files left out: relative to the
    /// root, or under a sibling's name (`kerio-store/mail/…`).
    pub fn changed(&self) -> Vec<PathBuf> {
        let mut out = differences(&self.before, &self.root, &TOOLKIT_FILES);
        for (live, pristine) in &self.siblings {
            let name = Path::new(live.file_name().expect("a sibling has a name"));
            out.extend(
                differences(pristine, live, &TOOLKIT_FILES)
                    .into_iter()
                    .map(|p| name.join(p)),
            );
        }
        out
    }

    /// Panics unless the install (and what a shape put beside it) is byte for byte as generated.
    pub fn assert_unchanged(&self) {
        let mut diffs = Vec::new();
        if let Err(diff) = compare_trees(&self.before, &self.root, &TOOLKIT_FILES) {
            diffs.push(diff);
        }
        for (live, pristine) in &self.siblings {
            if let Err(diff) = compare_trees(pristine, live, &TOOLKIT_FILES) {
                diffs.push(diff);
            }
        }
        if !diffs.is_empty() {
            panic!("the install changed:\n{}", diffs.join("\n"));
        }
    }

    /// A command for one of the toolkit's binaries (built by cargo for this test), pointed at
    /// this install with the server stopped.
    pub fn tool(&self, bin: &str) -> std::process::Command {
        let mut cmd = std::process::Command::new(bin_path(bin));
        cmd.env("KC_SERVER", &self.root)
            .arg("--pid-file")
            .arg(&self.pid_file)
            .arg("--no-progress");
        cmd
    }

    /// Takes back the newest change not yet undone, as `kc-backup undo --last` does.
    pub fn undo_last(&self) {
        let install = kc_core::install::Install::locate(Some(&self.root), None)
            .expect("the install is there");
        let cx = kc_core::change::Context {
            install: &install,
            backup_dir: &self.root.join(kc_core::install::BACKUP_DIR),
            pid_file: &self.pid_file,
            progress: &kc_core::progress::Silent,
        };
        kc_core::change::undo(&cx, None, Default::default()).expect("undo");
    }

    pub fn read(&self, rel: impl AsRef<Path>) -> String {
        let path = self.root.join(rel);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The lines a log (`store/logs/config.log`) gained since the copy was made, without their
    /// `[date] ` prefix: `kc-user - update User set …`.
    pub fn new_log_lines(&self, rel: impl AsRef<Path>) -> Vec<String> {
        let rel = rel.as_ref();
        let before = std::fs::read_to_string(self.before.join(rel)).unwrap_or_default();
        let now = self.read(rel);
        assert!(now.starts_with(&before), "{} was rewritten", rel.display());
        now[before.len()..]
            .lines()
            .map(|l| match l.split_once("] ") {
                Some((date, text)) if date.starts_with('[') => text.to_owned(),
                _ => panic!("not a log line: {l:?}"),
            })
            .collect()
    }
}

/// The folder-level share files (`status.fld`, `folder.map`, `acl.fld`, `sub.fld`) under
/// `<root>/store/mail` whose text names `needle` (compared in lower case), relative to `root`.
pub fn share_files_naming(root: &Path, needle: &str) -> Vec<PathBuf> {
    kc_core::store::folder_level_files(
        &root.join("store/mail"),
        &["status.fld", "folder.map", "acl.fld", "sub.fld"],
    )
    .expect("walk")
    .into_iter()
    .filter(|f| {
        std::fs::read_to_string(f)
            .expect("read")
            .to_lowercase()
            .contains(needle)
    })
    .map(|f| f.strip_prefix(root).expect("under").to_path_buf())
    .collect()
}

/// The path of a workspace binary next to the running test's executable (`target/<profile>/`).
pub fn bin_path(bin: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows where it is");
    let dir = exe
        .parent()
        .and_then(|d| {
            if d.ends_with("deps") {
                d.parent()
            } else {
                Some(d)
            }
        })
        .expect("target/<profile>");
    dir.join(bin)
}

/// Another process holding an install's lock (`flock -o` on `<root>/.kc.lock`, with `holder`
/// written in it as a run of the toolkit writes its pid), until dropped.
#[derive(Debug)]
pub struct LockHolder(std::process::Child);

impl LockHolder {
    pub fn hold(root: &Path, holder: &str) -> LockHolder {
        let lock = root.join(kc_core::guard::LOCK_FILE);
        std::fs::write(&lock, format!("{holder}\n")).expect("the lock file is writable");
        let child = std::process::Command::new("flock")
            .arg("-o")
            .arg(&lock)
            .args(["sleep", "60"])
            .spawn()
            .expect("flock(1) runs");
        // Until flock has the lock, a test could take it itself.
        for _ in 0..100 {
            let free = std::fs::File::open(&lock).is_ok_and(|f| f.try_lock().is_ok());
            if !free {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        LockHolder(child)
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A live process called `mailserver`, as the vendor's unit starts the server: a shell script of
/// that name run with `arg` as its argument, in `cwd`, waiting on its input. Killed when dropped.
#[derive(Debug)]
pub struct FakeServer {
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl FakeServer {
    pub fn serving(arg: &Path, cwd: &Path) -> FakeServer {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let exe = dir.path().join(kc_core::guard::SERVER_PROCESS);
        std::fs::write(&exe, "#!/bin/sh\nread line\n").expect("the script is written");
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let child = std::process::Command::new(&exe)
            .arg(arg)
            .current_dir(cwd)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("the fake server starts");
        // Until the kernel shows its name, the guard could miss it.
        for _ in 0..400 {
            let comm =
                std::fs::read_to_string(format!("/proc/{}/comm", child.id())).unwrap_or_default();
            if comm.trim() == kc_core::guard::SERVER_PROCESS {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        FakeServer { child, _dir: dir }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Shared by the tests of one binary that run the tools, held alone by one that starts a live
/// `mailserver` process (a [`FakeServer`]): every tool run on the machine sees such a process,
/// and notes it ("a mailserver process … runs for another install") or refuses, so no other test
/// may run a tool beside it. Cargo runs test binaries one at a time; the tests of one binary run
/// in its threads.
static TURNS: RwLock<()> = RwLock::new(());

/// A test's turn at running the tools, held until dropped: shared with the other tests of its
/// binary, or alone. A [`Scratch`] holds one; a test without a Scratch that runs a tool takes
/// [`Turn::shared`] itself.
#[derive(Debug)]
pub struct Turn {
    _shared: Option<RwLockReadGuard<'static, ()>>,
    _alone: Option<RwLockWriteGuard<'static, ()>>,
}

impl Turn {
    /// Side by side with other shared turns; waits while a test holds its turn alone. A test may
    /// hold several (two Scratches).
    pub fn shared() -> Turn {
        Turn {
            _shared: Some(TURNS.read().unwrap_or_else(PoisonError::into_inner)),
            _alone: None,
        }
    }

    /// Once no other test holds a turn, and none may take one until this is dropped. The calling
    /// test must hold no other turn.
    pub fn alone() -> Turn {
        // Asked for again and again rather than waited for: a waiting writer would stop new
        // readers, and a test taking its second shared turn would then wait on itself.
        loop {
            let alone = match TURNS.try_write() {
                Ok(alone) => alone,
                Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                Err(TryLockError::WouldBlock) => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    continue;
                }
            };
            return Turn {
                _shared: None,
                _alone: Some(alone),
            };
        }
    }
}

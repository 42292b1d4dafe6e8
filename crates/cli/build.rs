//! Puts the git commit the tools are built from into `KC_GIT_COMMIT`, for `--version`, and its
//! date into `KC_GIT_DATE`, for the man pages (the same date for every build of one commit).

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=KC_GIT_COMMIT={commit}");
    // A man page's .TH needs some date: an empty one would shift the fields after it.
    let date = git(&["log", "-1", "--format=%cs"]).unwrap_or_else(|| "unknown date".into());
    println!("cargo:rustc-env=KC_GIT_DATE={date}");
    // Built again when HEAD moves: HEAD itself (a worktree has its own), and the branch it points
    // to, loose or packed (in the common git dir, which a worktree shares). Only files that exist
    // are named: cargo takes a missing one as changed, and built every binary again on every
    // run (minutes, with the dist profile's LTO). A loose branch that gets packed goes missing,
    // which is such a change, and the next run names packed-refs instead.
    let dir = git(&["rev-parse", "--absolute-git-dir"]);
    let common = git(&["rev-parse", "--path-format=absolute", "--git-common-dir"]);
    if let (Some(dir), Some(common)) = (dir, common) {
        let mut watched = vec![format!("{dir}/HEAD"), format!("{common}/packed-refs")];
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watched.push(format!("{common}/{branch}"));
        }
        for path in watched {
            if std::path::Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}

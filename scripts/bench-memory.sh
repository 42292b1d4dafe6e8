#!/usr/bin/env bash
# Peak memory against the number of files (issue 19): the same commands on two stores a decade
# apart in files (same users, 10x the messages per mailbox, tiny messages), peak RSS from GNU
# time, wall beside `tar -I "zstd -T0 -3"`. Prints a Markdown report for BENCHMARKS.md.
#
#   flock /tmp/kc-build.lock scripts/bench-memory.sh [WORKDIR]   (default /tmp/kc-bench-mem)
#
# Needs ~5 GiB free at the large size (the store, its backups, one restore); everything is
# removed at the end. Single runs (warm page cache): RSS is stable, wall times swing 10-30% here.
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-/tmp/kc-bench-mem}
USERS=${USERS:-500}
SMALL=${SMALL:-150}
LARGE=${LARGE:-1900}
[ -x /usr/bin/time ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time zstd >/dev/null; }
cargo build --release -q --workspace --bins
T=${CARGO_TARGET_DIR:-$PWD/target}/release
rm -rf "$W" && mkdir -p "$W"
trap 'rm -rf "$W"' EXIT

# "<peak RSS KiB> <wall s>" of a command, its output thrown away; fails if the command does.
measure() {
  /usr/bin/time -o "$W/time.out" -f "%M %e" "$@" >/dev/null 2>"$W/err.out" || {
    local rc=$?; cat "$W/err.out" >&2; exit $rc
  }
  tail -1 "$W/time.out"
}
# The same for a report that exits 1 when it finds something (the fixture plants findings).
measure_report() {
  /usr/bin/time -o "$W/time.out" -f "%M %e" "$@" >/dev/null 2>"$W/err.out" || {
    local rc=$?; [ $rc -eq 1 ] || { cat "$W/err.out" >&2; exit $rc; }
  }
  tail -1 "$W/time.out"
}

run_size() {
  local name=$1 msgs=$2 S="$W/$1/kerio" K="$W/$1/kb"
  mkdir -p "$W/$name"
  "$T/kc-fixture" --out "$S" --users "$USERS" --messages-per-user "$msgs" --max-message-size 300 >/dev/null
  local files; files=$(find "$S" -type f | wc -l)
  tar -C "$W/$name" -cf /dev/null kerio  # warm the page cache
  local B="$T/kc-backup --server $S --no-progress -q --backup-dir $K"
  echo "files $files"
  echo "tar $(measure tar -C "$W/$name" -I 'zstd -T0 -3' -cf "$W/$name/ref.tar.zst" kerio)"
  rm -f "$W/$name/ref.tar.zst"
  echo "full $(measure $B create --compression zstd)"
  # 1% of the messages changed, 0.1% deleted.
  sleep 2
  find "$S/store/mail" -name '*.eml' | awk 'NR % 100 == 0' | xargs -d '\n' touch
  find "$S/store/mail" -name '*.eml' | awk 'NR % 1000 == 7' | xargs -d '\n' rm -f
  echo "diff $(measure $B create --compression zstd --kind diff)"
  local F D; F=$(ls "$K"/F*.tar.zst); D=$(ls "$K"/D*.tar.zst)
  echo "verify $(measure $B verify "$F")"
  echo "userlist $(measure "$T/kc-user" --server "$S" --no-progress list)"
  echo "orphans $(measure_report "$T/kc-orphan-mailbox-finder" --server "$S" --no-progress)"
  echo "storecheck $(measure_report "$T/kc-store" --server "$S" --no-progress check)"
  "$T/kc-user" --server "$S" --no-progress -q --backup-dir "$K" disable fking@example.com >/dev/null
  echo "undo $(measure $B undo --last)"
  echo "restore $(measure $B restore "$D" --to "$W/$name/restored")"
  rm -rf "$W/$name"
}

run_size small "$SMALL" > "$W/small.txt"
run_size large "$LARGE" > "$W/large.txt"

python3 - "$W/small.txt" "$W/large.txt" "$USERS" "$SMALL" "$LARGE" <<'PY'
import sys
def load(p):
    return {l.split()[0]: l.split()[1:] for l in open(p)}
s, l = load(sys.argv[1]), load(sys.argv[2])
users, small, large = sys.argv[3:6]
print(f"Stores: `kc-fixture --users {users} --max-message-size 300`, `--messages-per-user {small}` "
      f"({int(s['files'][0]):,} files) and `{large}` ({int(l['files'][0]):,} files).")
print()
print("| command | peak RSS small | peak RSS large | ratio | wall small | wall large | large vs tar+zstd |")
print("|---|---|---|---|---|---|---|")
names = [("tar", '`tar -I "zstd -T0 -3"`'), ("full", "`kc-backup create` (zstd)"),
         ("diff", "`kc-backup create --kind diff` (1% touched, 0.1% deleted)"),
         ("verify", "`kc-backup verify` (full)"), ("restore", "`kc-backup restore` (full + diff)"),
         ("undo", "`kc-backup undo --last` (of `kc-user disable`)"),
         ("orphans", "`kc-orphan-mailbox-finder`"), ("userlist", "`kc-user list`"),
         ("storecheck", "`kc-store check`")]
for key, label in names:
    (rs, ws), (rl, wl) = s[key], l[key]
    rs, rl, ws, wl = int(rs) / 1024, int(rl) / 1024, float(ws), float(wl)
    vs = ""
    if key in ("full", "verify"):
        vs = "%.2f x" % (wl / float(l["tar"][1]))
    print(f"| {label} | {rs:.0f} MiB | {rl:.0f} MiB | **{rl / rs:.2f}** | {ws:.2f} s | {wl:.2f} s | {vs} |")
PY

#!/usr/bin/env bash
# Benchmarks the writer tools on generated installs, in one run on this machine, and prints a
# Markdown report for BENCHMARKS.md:
#   - kc-rename-user on two installs that differ only in the bytes of the messages (1x, 10x);
#   - kc-orphan-mailbox-finder's whole report, and kc-store check, against `du -s` of the same
#     store;
#   - kc-bulk-import of 10,000 CSV rows into a users.cfg of 50,000 users.
#
#   scripts/bench-tools.sh [WORKDIR]     (default /tmp/kc-bench-tools; needs ~4 GiB free)
#
# Wall times are hyperfine means (warm page cache). Needs hyperfine and GNU time (apt-get when
# missing).
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-/tmp/kc-bench-tools}
need=(); command -v hyperfine >/dev/null || need+=(hyperfine); [ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; fi
cargo build --release -q --workspace --bins
T=$(realpath "${CARGO_TARGET_DIR:-target}")/release
rm -rf "$W" && mkdir -p "$W"
mean() { python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['results']; print(' '.join('%.3f' % x['mean'] for x in r))" "$1"; }
ratio() { python3 -c "print('%.2f' % ($1 / $2))"; }
mib() { python3 -c "print('%.0f' % ($1 / 1048576))"; }
NOPID="--pid-file $W/no.pid --no-progress -q"

# --- kc-rename-user: the same 1,000 users and folders, 10x the messages (and bytes) in one.
for x in 1 10; do
  $T/kc-fixture --out "$W/r$x" --users 1000 --messages-per-user $((x * 4)) --max-message-size 65536 --seed 5 -j 1 > "$W/r$x.json"
done
user=$(python3 -c "import re,sys; t=open('$W/r1/users.cfg').read(); print(re.findall(r'<variable name=\"Name\">([a-z.]+)</variable>\s*<variable name=\"Domain\">example.com</variable>', t)[3])")
msgbytes() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['message_bytes'])" "$1"; }
r1=$(msgbytes "$W/r1.json"); r10=$(msgbytes "$W/r10.json")
folders=$(find "$W/r1/store/mail" -name status.fld | wc -l); folders10=$(find "$W/r10/store/mail" -name status.fld | wc -l)
hyperfine --runs 10 --warmup 2 --export-json "$W/rename.json" \
  --prepare "$T/kc-backup --server $W/r1 $NOPID undo --last || true" \
  -n 1x "$T/kc-rename-user --server $W/r1 $NOPID $user@example.com $user.renamed" \
  --prepare "$T/kc-backup --server $W/r10 $NOPID undo --last || true" \
  -n 10x "$T/kc-rename-user --server $W/r10 $NOPID $user@example.com $user.renamed" >/dev/null
read -r ren1 ren10 <<<"$(mean "$W/rename.json")"

# --- kc-orphan-mailbox-finder: 2,000 mailboxes, ~400k files, against du -s.
$T/kc-fixture --out "$W/o" --users 2000 --messages-per-user 150 --max-message-size 16384 --seed 9 -j 1 > "$W/o.json"
ofiles=$(find "$W/o/store" -type f | wc -l)
hyperfine --runs 3 --warmup 1 --export-json "$W/orphan.json" \
  -i -n finder "$T/kc-orphan-mailbox-finder --server $W/o $NOPID --json" \
  -n "du -s" "du -s $W/o/store" >/dev/null
read -r orph du <<<"$(mean "$W/orphan.json")"

# --- kc-store check: every folder's index against its messages, on the same store.
hyperfine --runs 5 --warmup 1 --export-json "$W/check.json" \
  -n check "$T/kc-store --server $W/o $NOPID check --json" \
  -n "du -s" "du -s $W/o/store" >/dev/null
read -r chk du2 <<<"$(mean "$W/check.json")"
chk_rss=$(/usr/bin/time -f %M "$T/kc-store" --server "$W/o" $NOPID check --json 2>&1 >/dev/null | tail -1)

# --- kc-bulk-import: 10,000 rows into 50,000 users.
$T/kc-fixture --out "$W/c50k" --users 50000 --configs-only > /dev/null
mkdir -p "$W/c50k/store"
python3 -c "
print('Name;Password;FullName;Description;MailAddress;Groups')
for i in range(10000): print(f'bulk{i:05d};Str0ng-pass{i};Bulk User {i};Imported;bulk{i:05d},b.{i:05d};sales')
" > "$W/10k.csv"
hyperfine --runs 5 --warmup 1 --export-json "$W/import.json" \
  --prepare "$T/kc-backup --server $W/c50k $NOPID undo --last || true" \
  -n import "$T/kc-bulk-import --server $W/c50k $NOPID $W/10k.csv --domain example.com" >/dev/null
read -r imp <<<"$(mean "$W/import.json")"
cfg=$(stat -c %s "$W/c50k/users.cfg")

cat <<EOF
Run on $(date -u +%Y-%m-%d) on $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB, $(uname -r); warm page cache; hyperfine means.

### kc-rename-user: independent of other users' message bytes (target: 10x vs 1x differ by < 10%)
1,000 users, $folders folders (10x: $folders10); $user@example.com renamed (full change: pre-change backup, journal, steps).
| install | message bytes | wall |
|---|---|---|
| 1x | $(mib "$r1") MiB | ${ren1} s |
| 10x | $(mib "$r10") MiB | ${ren10} s |
| ratio 10x / 1x | $(ratio "$r10" "$r1") | **$(ratio "$ren10" "$ren1")** |

### kc-orphan-mailbox-finder: whole report (target: <= 1.5 x du -s)
2,000 mailboxes, $ofiles files.
| tool | wall | ratio |
|---|---|---|
| kc-orphan-mailbox-finder --json | ${orph} s | **$(ratio "$orph" "$du") x du -s** |
| du -s | ${du} s | 1.00 |

### kc-store check: a clean store, every folder (target: <= 1.5 x du -s)
2,000 mailboxes, $ofiles files; peak RSS $(mib $((chk_rss * 1024))) MiB.
| tool | wall | ratio |
|---|---|---|
| kc-store check --json | ${chk} s | **$(ratio "$chk" "$du2") x du -s** |
| du -s | ${du2} s | 1.00 |

### kc-bulk-import: 10,000 rows into 50,000 users (target: < 2 s)
users.cfg of $(mib "$cfg") MiB; validation, plan, pre-change backup, write, audit lines.
| run | wall |
|---|---|
| import (apply) | **${imp} s** |
EOF

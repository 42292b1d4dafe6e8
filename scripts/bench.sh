#!/usr/bin/env bash
# Benchmarks kc-backup (and the config model, and kc-fixture) against the standard tools, in one
# run on this machine, and prints a Markdown report for BENCHMARKS.md.
#
#   scripts/bench.sh [WORKDIR]     (default /tmp/kc-bench; needs ~8 GiB free; removed at the end)
#
# Wall times are hyperfine means over 3 runs after a warm-up (warm page cache); peak RSS from
# GNU time. Needs: pigz, zstd, hyperfine, GNU time, restic, borg (installed with apt-get when
# missing). Binaries are built into $CARGO_TARGET_DIR (default target/). Run it under the build
# lock when other builds share the machine: flock /tmp/kc-build.lock scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-/tmp/kc-bench}
need=()
for t in pigz zstd hyperfine restic; do command -v $t >/dev/null || need+=($t); done
command -v borg >/dev/null || need+=(borgbackup)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; fi
cargo build --release -q -p kc-backup -p kc-testkit -p kc-core --examples --bins
T=${CARGO_TARGET_DIR:-$PWD/target}
KB=$T/release/kc-backup
FX=$T/release/kc-fixture
rm -rf "$W" && mkdir -p "$W"
trap 'rm -rf "$W"' EXIT
mean() { python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['results']; print(' '.join('%.3f' % x['mean'] for x in r))" "$1"; }
rss() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }
size() { stat -c %s "$1"; }

# --- the store: >= 600 MiB in >= 50k files, mail whose bytes are mostly base64 attachments, 30%
# of them text documents (which still compress under the base64) and the rest random bytes (as
# PDFs, images and zipped office files)
FXARGS="--users 2000 --messages-per-user 16 --text-attachments 30"
$FX --out "$W/kerio" $FXARGS -j 1 > "$W/fixture.json"
files=$(find "$W/kerio" -type f | wc -l); bytes=$(du -sb "$W/kerio" | cut -f1)
b64=$(python3 - "$W/kerio" <<'PY'
import os, sys
att = tot = 0
for root, _, names in os.walk(sys.argv[1]):
    for n in names:
        p = os.path.join(root, n); tot += os.path.getsize(p)
        if n.endswith('.eml'):
            data = open(p, 'rb').read(); i = data.find(b'Content-Transfer-Encoding: base64')
            if i >= 0: att += len(data) - i
print('%.0f' % (100 * att / tot))
PY
)
tar -C "$W" -cf /dev/null kerio   # warm the page cache
B="$KB --server $W/kerio --no-progress -q"
# restic (repository format 2: compressed, its default "auto" zstd) and borg (zstd,3, no
# encryption), each into a new repository in the work dir every run, as a first backup is.
export RESTIC_PASSWORD=bench RESTIC_CACHE_DIR=$W/restic-cache BORG_BASE_DIR=$W/borg-base
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
fresh="rm -rf $W/out $W/kb $W/restic $W/borg $W/restic-cache $W/borg-base && mkdir -p $W/out"
restic_init="restic init -q --repository-version 2 --repo $W/restic >/dev/null"
borg_init="borg init -e none $W/borg"

hyperfine --runs 3 --warmup 1 --export-json "$W/create.json" \
  --prepare "$fresh" "tar -C $W -czf $W/out/gzip.tar.gz kerio" \
  --prepare "$fresh" "tar -C $W -I pigz -cf $W/out/pigz.tar.gz kerio" \
  --prepare "$fresh" "tar -C $W -I 'zstd -T0 -3' -cf $W/out/zstd.tar.zst kerio" \
  --prepare "$fresh" "$B --backup-dir $W/kb create" \
  --prepare "$fresh" "$B --backup-dir $W/kb create --compression zstd" \
  --prepare "$fresh && $restic_init" "restic -q --repo $W/restic backup $W/kerio" \
  --prepare "$fresh && $borg_init" "borg create --compression zstd,3 $W/borg::a $W/kerio" >/dev/null
read -r t_tgz t_pigz t_zstd t_kbg t_kbz t_restic t_borg < <(mean "$W/create.json")
echo "create: $t_tgz $t_pigz $t_zstd $t_kbg $t_kbz $t_restic $t_borg" >&2
# Each run's prepare removed the repositories: one more backup each, for their sizes.
sh -c "$fresh && $restic_init" && restic -q --repo "$W/restic" backup "$W/kerio"
s_restic=$(du -sb "$W/restic" | cut -f1)
sh -c "$fresh && $borg_init" && borg create --compression zstd,3 "$W/borg::a" "$W/kerio"
s_borg=$(du -sb "$W/borg" | cut -f1)
rm -rf "$W/restic" "$W/borg" "$W/restic-cache" "$W/borg-base"
mkdir -p "$W/out" && rm -rf "$W/kb"
tar -C "$W" -I pigz -cf "$W/out/pigz.tar.gz" kerio
tar -C "$W" -I 'zstd -T0 -3' -cf "$W/out/zstd.tar.zst" kerio
r_pigz=$(rss tar -C "$W" -I pigz -cf "$W/out/pigz2.tar.gz" kerio)
r_kbg=$(rss $B --backup-dir "$W/kbg" create)
r_kbz=$(rss $B --backup-dir "$W/kbz" create --compression zstd)
g=$(ls "$W"/kbg/F*.tar.gz); z=$(ls "$W"/kbz/F*.tar.zst)
s_pigz=$(size "$W/out/pigz.tar.gz"); s_zstd=$(size "$W/out/zstd.tar.zst"); s_kbg=$(size "$g"); s_kbz=$(size "$z")

hyperfine --runs 3 --warmup 1 --export-json "$W/verify.json" \
  "gzip -t $W/out/pigz.tar.gz" "gzip -t $g" "$B --backup-dir $W/kbg verify $g" "$B --backup-dir $W/kbz verify $z" >/dev/null
read -r t_gzt_pigz t_gzt t_vg t_vz < <(mean "$W/verify.json")
r_vg=$(rss $B --backup-dir "$W/kbg" verify "$g")

# --- differential after touching 1% of the files
find "$W/kerio/store/mail" -name '*.eml' | awk 'NR % 100 == 0' > "$W/touch.list"
sleep 2; xargs -a "$W/touch.list" -d '\n' touch
t_full=$t_kbg
hyperfine --runs 3 --export-json "$W/diff.json" --prepare "rm -f $W/kbg/D*" "$B --backup-dir $W/kbg create --kind diff" >/dev/null
read -r t_diff < <(mean "$W/diff.json")

# --- one 2 GiB file
mkdir -p "$W/big/store/mail/example.com/big/INBOX/#msgs"
cp "$W/kerio/mailserver.cfg" "$W/kerio/users.cfg" "$W/big/"
head -c $((2 << 30)) /dev/urandom > "$W/big/store/mail/example.com/big/INBOX/#msgs/00000001.eml"
r_big=$(rss $KB --server "$W/big" --no-progress -q --backup-dir "$W/kbbig" create --compression zstd)
r_bigv=$(rss $KB --server "$W/big" --no-progress -q --backup-dir "$W/kbbig" verify "$(ls "$W"/kbbig/F*.tar.zst)")

# --- the config model: a 50,000-user users.cfg
$FX --out "$W/c50k" --users 50000 --configs-only > /dev/null
hyperfine --runs 5 --warmup 1 --export-json "$W/cfg.json" "$T/release/examples/load-config $W/c50k" >/dev/null
read -r t_cfg < <(mean "$W/cfg.json")
r_cfg=$(rss "$T/release/examples/load-config" "$W/c50k")
cfg_size=$(size "$W/c50k/users.cfg")

ratio() { python3 -c "print('%.2f' % ($1 / $2))"; }
mib() { python3 -c "print('%.0f' % ($1 / 1048576))"; }
cat <<MD
Run on $(date -u +%Y-%m-%d) on $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB, $(uname -r); warm page cache; hyperfine means of 3 runs.
Store: \`kc-fixture $FXARGS\`: $(mib "$bytes") MiB in $files files, $b64% of the bytes base64 attachments.

### kc-backup create (targets: gzip wall <= 0.67 x pigz at size <= 1.03 x; zstd wall <= 1.15 x; RSS <= 256 MiB)

| command | wall s | vs pigz | size MiB | size vs reference | peak RSS MiB |
|---|---|---|---|---|---|
| \`tar -czf\` | $t_tgz | $(ratio "$t_tgz" "$t_pigz") | | | |
| \`tar -I pigz\` | $t_pigz | 1.00 | $(mib "$s_pigz") | 1.00 | $(mib $((r_pigz * 1024))) |
| \`tar -I "zstd -T0 -3"\` | $t_zstd | $(ratio "$t_zstd" "$t_pigz") | $(mib "$s_zstd") | 1.00 (zstd) | |
| \`kc-backup create\` (gzip, level 6) | $t_kbg | **$(ratio "$t_kbg" "$t_pigz")** | $(mib "$s_kbg") | **$(ratio "$s_kbg" "$s_pigz")** x pigz | $(mib $((r_kbg * 1024))) |
| \`kc-backup create --compression zstd\` | $t_kbz | **$(ratio "$t_kbz" "$t_zstd")** x zstd | $(mib "$s_kbz") | $(ratio "$s_kbz" "$s_zstd") x zstd | $(mib $((r_kbz * 1024))) |
| \`restic backup\` ($(restic version | cut -d' ' -f2), new repository, compression auto) | $t_restic | $(ratio "$t_restic" "$t_pigz") | $(mib "$s_restic") | $(ratio "$s_restic" "$s_pigz") x pigz | |
| \`borg create --compression zstd,3\` ($(borg --version | cut -d' ' -f2), new repository) | $t_borg | $(ratio "$t_borg" "$t_pigz") | $(mib "$s_borg") | $(ratio "$s_borg" "$s_pigz") x pigz | |

kc-backup's times include what tar does not do: SHA-256 of every file, the manifest, fsync, and reading every chunk back and checking it before the archive gets its name. restic and borg hash every file too (and deduplicate); restic also encrypts. Their sizes are the whole repository.

### verify (target: <= 1.0 x gzip -t)

| command | wall s | vs \`gzip -t\` |
|---|---|---|
| \`gzip -t\` (pigz's archive) | $t_gzt_pigz | |
| \`gzip -t\` (kc-backup's archive) | $t_gzt | 1.00 |
| \`kc-backup verify\` (gzip) | $t_vg | **$(ratio "$t_vg" "$t_gzt")** (peak RSS $(mib $((r_vg * 1024))) MiB) |
| \`kc-backup verify\` (zstd) | $t_vz | $(ratio "$t_vz" "$t_gzt") |

\`kc-backup verify\` decompresses every chunk and re-hashes every file with SHA-256; \`gzip -t\` only decompresses.

### differential after touching 1% of the files (target: <= 0.15 x the full backup)

| | wall s | vs full |
|---|---|---|
| full (gzip) | $t_full | 1.00 |
| differential | $t_diff | **$(ratio "$t_diff" "$t_full")** |

### one 2 GiB file (target: peak RSS <= 256 MiB)

create (zstd): $(mib $((r_big * 1024))) MiB; verify: $(mib $((r_bigv * 1024))) MiB.

### config model: users.cfg of 50,000 users ($(mib "$cfg_size") MiB)

load both files, build the views, serialise back: $t_cfg s, peak RSS $(mib $((r_cfg * 1024))) MiB.
MD

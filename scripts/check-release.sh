#!/usr/bin/env bash
# The release build, as an admin installs it, must carry no test-only hook: with
# KC_CRASH_AFTER_STEP set, a change still runs to its end (the hook exists only where tests are
# built, through kc-testkit's dev-dependency). Run by .ci/run after the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --quiet
bin="${CARGO_TARGET_DIR:-target}/release"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$bin/kc-fixture" --out "$dir/kerio" --demo >/dev/null
KC_CRASH_AFTER_STEP=1 "$bin/kc-user" --server "$dir/kerio" --pid-file "$dir/none.pid" -q \
  disable tnovak@example.com >/dev/null
status=$(grep -h '"status"' "$dir"/kerio/kc-journal/C*.json)
case "$status" in
  *'"done"'*) echo "release binaries ignore KC_CRASH_AFTER_STEP"; echo "check-release: 1 passed, 0 failed" ;;
  *) echo "the change stopped: $status"; echo "check-release: 0 passed, 1 failed"; exit 1 ;;
esac

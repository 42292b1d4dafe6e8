#!/usr/bin/env bash
# Regenerates fixtures/demo, the small install committed as text. A test fails when the committed
# copy differs from what the generator writes, so run this after changing kc-testkit.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf fixtures/demo
cargo run --quiet -p kc-testkit --bin kc-fixture -- --out fixtures/demo --demo >/dev/null
echo "fixtures/demo regenerated ($(find fixtures/demo -type f | wc -l) files)"

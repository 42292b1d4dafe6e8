#!/usr/bin/env bash
# Builds the packages (scripts/package.sh) and checks what an admin gets from them: the .deb
# unpacked into a scratch root (`dpkg -x`) gives six working tools, every man page (each tool's
# and each subcommand's) and the three completion scripts of each tool where the package says,
# the docs and the licence; the .rpm holds the same files. Run by .ci/run after the tests; needs
# dpkg-deb, dpkg-shlibdeps (dpkg-dev) and rpm. Honours CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

tools=(kc-backup kc-rename-user kc-bulk-import kc-orphan-mailbox-finder kc-user kc-store)
packages=$(bash scripts/package.sh)
deb=$(grep '\.deb$' <<<"$packages")
rpm=$(grep '\.rpm$' <<<"$packages")

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
dpkg -x "$deb" "$root/install"

passed=0
failed=0
check() { # check WHAT COMMAND…: counts the command's success, names it if it fails
  local what=$1
  shift
  if "$@" >/dev/null 2>&1; then
    passed=$((passed + 1))
  else
    echo "FAILED: $what"
    failed=$((failed + 1))
  fi
}
has() { grep -qF -- "$2" <<<"$1"; }
runs_and_names() { # runs_and_names TOOL ARG: exit 0, and stdout names the tool
  local out
  out=$("$root/install/usr/bin/$1" "$2") && has "$out" "$1"
}
page_shows() { # page_shows FILE NAME: the gzipped page renders, with its name
  if command -v man >/dev/null; then
    MANWIDTH=80 man -P cat -l "$1" 2>/dev/null | grep -q "^NAME" &&
      MANWIDTH=80 man -P cat -l "$1" 2>/dev/null | grep -qF "$2"
  else
    zcat "$1" | head -5 | grep -qF ".TH $2 1"
  fi
}

man1="$root/install/usr/share/man/man1"
doc="$root/install/usr/share/doc/kerio-toolkit"
for t in "${tools[@]}"; do
  bin="$root/install/usr/bin/$t"
  check "$t is installed, executable" test -x "$bin"
  check "$t --version" runs_and_names "$t" --version
  check "$t --help" runs_and_names "$t" --help
  # Every page the tool makes is installed, gzipped, and shows in man; its subcommands (as
  # --help lists them) each have one.
  "$bin" man --dir "$root/made/$t"
  for page in "$root/made/$t"/*.1; do
    name=$(basename "$page" .1)
    check "$man1/$name.1.gz" page_shows "$man1/$name.1.gz" "$name"
  done
  for sub in $("$bin" --help | sed -n '/^Commands:/,/^$/{s/^  \([a-z-]*\) .*/\1/p}'); do
    [ "$sub" = help ] || check "$man1/$t-$sub.1.gz" test -s "$man1/$t-$sub.1.gz"
  done
  check "bash completion of $t" grep -q "$t" "$root/install/usr/share/bash-completion/completions/$t"
  check "zsh completion of $t" grep -q "#compdef $t" "$root/install/usr/share/zsh/vendor-completions/_$t"
  check "fish completion of $t" grep -q "complete -c $t" "$root/install/usr/share/fish/vendor_completions.d/$t.fish"
done
check "kc-fixture (a test tool) is not packaged" test ! -e "$root/install/usr/bin/kc-fixture"
for f in README.md BENCHMARKS.md docs/README.md docs/kc-backup.md LICENSE-MIT LICENSE-APACHE copyright; do
  check "$doc/$f" test -s "$doc/$f"
done
check "the .deb depends on libc6" has "$(dpkg-deb -f "$deb" Depends)" libc6
check "the .rpm requires libc" has "$(rpm -qp --requires "$rpm" 2>/dev/null)" libc.so.6

# The same files in both packages (directories aside); zsh's completions go where each family
# looks for them.
dpkg -c "$deb" | awk '$1 !~ /^d/ { print substr($6, 2) }' | sort >"$root/deb.list"
rpm -qlp "$rpm" 2>/dev/null | sed 's#^/usr/share/zsh/site-functions/#/usr/share/zsh/vendor-completions/#' |
  sort >"$root/rpm.list"
check "rpm -qlp lists the files dpkg -c lists" diff "$root/deb.list" "$root/rpm.list"
diff "$root/deb.list" "$root/rpm.list" || true

echo "check-package: $(wc -l <"$root/deb.list") files in each package: $deb, $rpm"
echo "check-package: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

#!/usr/bin/env bash
# Builds the Raspberry Pi release binaries into target/dist/:
#
#   scripts/build-release.sh [TARGET...]
#
#   target/dist/webperf3-<version>-aarch64-unknown-linux-musl     64-bit Pi OS
#   target/dist/webperf3-<version>-armv7-unknown-linux-musleabihf  32-bit Pi OS
#   target/dist/SHA256SUMS
#
# With no arguments it builds both targets; armv7 is skipped, with a warning,
# when its standard library is not installed
# (rustup target add armv7-unknown-linux-musleabihf). Targets named on the
# command line must build. Linking uses rust-lld (see .cargo/config.toml), so
# no C cross toolchain is needed. Each binary is checked with `file` to be a
# static executable for its architecture.

set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly REPO_ROOT
readonly DIST=$REPO_ROOT/target/dist
readonly DEFAULT_TARGETS=(aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf)

say() { printf 'build-release: %s\n' "$*"; }
die() { say "error: $*" >&2; exit 1; }

for tool in cargo rustc file sha256sum; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found"
done

# The package version, from the [package] table of Cargo.toml.
VERSION=$(awk '
    /^\[/ { in_package = ($0 == "[package]") }
    in_package && /^version *=/ { gsub(/.*= *"|".*/, ""); print; exit }
' "$REPO_ROOT/Cargo.toml")
[[ -n $VERSION ]] || die "no version in Cargo.toml"
readonly VERSION

# Is the standard library for $1 installed for the toolchain used here?
have_std() {
    [[ -d "$(cd "$REPO_ROOT" && rustc --print sysroot)/lib/rustlib/$1/lib" ]]
}

# What `file` must say about a binary for each target.
arch_of() {
    case $1 in
        aarch64-*) echo "ARM aarch64" ;;
        armv7-* | arm-*) echo "ARM, EABI5" ;;
        x86_64-*) echo "x86-64" ;;
        *) die "no architecture check known for $1" ;;
    esac
}

if [[ $# -gt 0 ]]; then
    targets=("$@")
    explicit=1
else
    targets=("${DEFAULT_TARGETS[@]}")
    explicit=0
fi

mkdir -p "$DIST"
built=()
for target in "${targets[@]}"; do
    if ! have_std "$target"; then
        if ((explicit)); then
            die "the standard library for $target is not installed: rustup target add $target"
        fi
        say "warning: skipping $target: its standard library is not installed (rustup target add $target)" >&2
        continue
    fi
    say "building $target"
    (cd "$REPO_ROOT" && cargo build --release --locked --target "$target")
    src=$REPO_ROOT/target/$target/release/webperf3
    info=$(file -b "$src")
    [[ $info == *"$(arch_of "$target")"* ]] || die "$src is not a $(arch_of "$target") executable: $info"
    [[ $info == *"statically linked"* || $info == *"static-pie linked"* ]] ||
        die "$src is not statically linked: $info"
    name=webperf3-$VERSION-$target
    cp -f "$src" "$DIST/$name"
    chmod 755 "$DIST/$name"
    built+=("$name")
done

((${#built[@]} > 0)) || die "nothing was built"

(cd "$DIST" && sha256sum -- "${built[@]}" >SHA256SUMS)

say "in $DIST:"
for name in "${built[@]}"; do
    bytes=$(stat -c %s "$DIST/$name")
    printf '  %-52s %9d bytes  %5s MiB\n' "$name" "$bytes" \
        "$(awk -v b="$bytes" 'BEGIN { printf "%.2f", b / 1048576 }')"
done
printf '  %s\n' SHA256SUMS

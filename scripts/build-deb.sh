#!/usr/bin/env bash
# Build the Debian package with cargo-deb and print the path of the .deb on
# the last line of stdout (progress goes to stderr).
#
#   1. cargo build --release (the binary that is packaged);
#   2. cargo run --example gen_assets: man pages, bash/zsh completions and the
#      commented-out /etc/sitebackup/config.toml, written to
#      <target dir>/release/deb-assets (Cargo.toml's assets refer to it as
#      target/release/deb-assets);
#   3. cargo deb --no-build, configured by [package.metadata.deb];
#   4. adds DEBIAN/md5sums, which cargo-deb does not write.
#
# Installs cargo-deb (pinned below) with `cargo install --locked` when it is
# missing or another version. Honours CARGO_TARGET_DIR. SOURCE_DATE_EPOCH
# (default: the last commit's time) dates the man pages.
set -euo pipefail

CARGO_DEB_VERSION=3.8.0

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$repo_root"

log() {
	printf '[build-deb] %s\n' "$*" >&2
}

cargo_bin=${CARGO_HOME:-$HOME/.cargo}/bin
case ":$PATH:" in
*":$cargo_bin:"*) ;;
*) PATH=$cargo_bin:$PATH ;;
esac
export PATH

# `cargo deb --version` prints e.g. "3.8.0".
have_version=$(cargo deb --version 2>/dev/null | head -n 1) || true
if [[ $have_version != *"$CARGO_DEB_VERSION"* ]]; then
	log "installing cargo-deb $CARGO_DEB_VERSION (found: '${have_version:-none}')"
	cargo install "cargo-deb@$CARGO_DEB_VERSION" --locked >&2
fi

if [[ -z ${SOURCE_DATE_EPOCH:-} ]]; then
	SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH

target_dir=$(cargo metadata --format-version 1 --no-deps --locked |
	sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
[[ -d $target_dir ]] || mkdir -p "$target_dir"
assets=$target_dir/release/deb-assets

log "cargo build --release"
cargo build --release --locked --bin sitebackup >&2

log "generating man pages, completions and config.toml into $assets"
rm -rf "$assets"
cargo run --quiet --locked --example gen_assets -- "$assets" >&2
# cargo-deb only compresses the man pages it did not find under target/.
gzip -9 --no-name "$assets"/man/*.1 "$assets"/man/*.5

log "cargo deb --no-build"
deb=$(cargo deb --no-build --locked | tail -n 1)
[[ -f $deb ]] || {
	log "ERROR: cargo deb did not report a .deb (got: '$deb')"
	exit 1
}
# cargo-deb writes no md5sums; `dpkg --verify` and debsums need them.
# Unpack, add DEBIAN/md5sums, pack again (same files, modes and owners).
repack=$(mktemp -d "${TMPDIR:-/tmp}/sb-build-deb.XXXXXX")
trap 'rm -rf "$repack"' EXIT
dpkg-deb -R "$deb" "$repack/pkg"
(cd "$repack/pkg" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z |
	xargs -0 md5sum >DEBIAN/md5sums)
chmod 0644 "$repack/pkg/DEBIAN/md5sums"
dpkg-deb --root-owner-group -Zxz --build "$repack/pkg" "$deb" >&2
log "built $deb"
printf '%s\n' "$deb"

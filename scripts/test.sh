#!/usr/bin/env bash
# The project's test command: dependencies, formatting, lints, then the whole
# test suite against a private Garage + s3s-fs + MariaDB rig (scripts/test-env.sh).
# Extra arguments are passed to the test runner (cargo nextest run, or
# cargo test when cargo-nextest is not installed).
# SB_KEEP_RIG_DIR=1 keeps the rig's directory (server logs) after the run.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$repo_root"

section() {
	printf '\n==== %s ====\n' "$*"
}

# Tools installed by cargo install (garage, s3s-fs, cargo-nextest) live here.
cargo_bin=${CARGO_HOME:-$HOME/.cargo}/bin
case ":$PATH:" in
*":$cargo_bin:"*) ;;
*) PATH=$cargo_bin:$PATH ;;
esac
export PATH

section "install dependencies"
scripts/install-deps.sh

section "cargo fmt --check"
cargo fmt --all -- --check

section "cargo clippy"
cargo clippy --all-targets -- -D warnings

section "module graph (no cycles)"
python3 scripts/module-graph.py

section "start test servers (garage, s3s-fs, mariadb)"
rig_dir=$(mktemp -d "${TMPDIR:-/tmp}/sb-rig.XXXXXX")
cleanup() {
	local rc=$?
	section "stop test servers"
	scripts/test-env.sh stop "$rig_dir" || rc=1
	if [[ ${SB_KEEP_RIG_DIR:-0} == 1 ]]; then
		printf 'rig directory kept: %s\n' "$rig_dir"
	else
		rm -rf "$rig_dir"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
scripts/test-env.sh start "$rig_dir"
# shellcheck disable=SC1091 # written by test-env.sh start
. "$rig_dir/env"

if cargo nextest --version >/dev/null 2>&1; then
	section "cargo nextest run${*:+ $*}"
	cargo nextest run "$@"
else
	section "cargo test${*:+ $*}"
	cargo test "$@"
fi

# The Debian package: build, lintian, systemd-analyze verify, and (as root)
# an install → --version → remove → purge cycle. Skipped only when extra
# arguments select a subset of tests.
if [[ $# -eq 0 ]]; then
	section "debian package: build, lintian, systemd-analyze, dpkg cycle"
	scripts/check-deb.sh
fi

#!/usr/bin/env bash
# Install what the test rig needs, skipping whatever is already there:
#   garage 2.5.0    (cargo install garage@2.5.0 --locked, ~12 min on 2 idle cores, 712 s measured)
#   s3s-fs 0.14.1   (cargo install s3s-fs --version 0.14.1 --features binary
#                    --locked, ~3 min on 2 idle cores): a second, independent
#                    S3 server for the tests
#   mariadb-server  (Debian packages; the test rig runs its own private
#                    instance, so the system service is never started here)
#   curl, zstd      (Debian packages)
#   aws             (pip install awscli)
# Safe to run repeatedly.
set -euo pipefail

GARAGE_VERSION=2.5.0
S3S_FS_VERSION=0.14.1

log() {
	printf '[install-deps] %s\n' "$*" >&2
}

die() {
	printf '[install-deps] ERROR: %s\n' "$*" >&2
	exit 1
}

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
	command -v sudo >/dev/null 2>&1 || die "not root and no sudo: cannot install system packages"
	SUDO=(sudo)
fi

have() {
	command -v "$1" >/dev/null 2>&1
}

# Debian puts the daemons in /usr/sbin, which a non-root PATH may lack.
have_sbin() {
	have "$1" || [[ -x /usr/sbin/$1 ]]
}

APT_UPDATED=0
apt_install() {
	if ((APT_UPDATED == 0)); then
		log "apt-get update"
		"${SUDO[@]}" apt-get update -qq
		APT_UPDATED=1
	fi
	log "apt-get install $*"
	"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends "$@"
}

# ---- garage ----
cargo_bin=${CARGO_HOME:-$HOME/.cargo}/bin
garage_bin=""
if have garage; then
	garage_bin=$(command -v garage)
elif [[ -x $cargo_bin/garage ]]; then
	garage_bin=$cargo_bin/garage
fi
garage_version=""
if [[ -n $garage_bin ]]; then
	# `garage --version` prints e.g. "garage v2.5.0 [features: ...]"
	garage_version=$("$garage_bin" --version 2>/dev/null | head -n 1) || true
fi
if [[ $garage_version =~ (^|[^0-9.])v?${GARAGE_VERSION//./\\.}([^0-9.]|$) ]]; then
	log "garage $GARAGE_VERSION present: $garage_bin"
else
	have cargo || die "cargo not found: cannot install garage"
	log "installing garage $GARAGE_VERSION with cargo (found: '${garage_version:-none}'); this takes a while"
	cargo install "garage@$GARAGE_VERSION" --locked
fi

# ---- s3s-fs ----
s3s_bin=""
if have s3s-fs; then
	s3s_bin=$(command -v s3s-fs)
elif [[ -x $cargo_bin/s3s-fs ]]; then
	s3s_bin=$cargo_bin/s3s-fs
fi
s3s_version=""
if [[ -n $s3s_bin ]]; then
	# `s3s-fs --version` prints "s3s-fs 0.14.1"
	s3s_version=$("$s3s_bin" --version 2>/dev/null | head -n 1) || true
fi
if [[ $s3s_version == "s3s-fs $S3S_FS_VERSION" ]]; then
	log "s3s-fs $S3S_FS_VERSION present: $s3s_bin"
else
	have cargo || die "cargo not found: cannot install s3s-fs"
	log "installing s3s-fs $S3S_FS_VERSION with cargo (found: '${s3s_version:-none}')"
	cargo install s3s-fs --version "$S3S_FS_VERSION" --features binary --locked
fi

# ---- system packages ----
pkgs=()
have_sbin mariadbd || pkgs+=(mariadb-server)
if ! have mariadb || ! have mariadb-dump; then
	pkgs+=(mariadb-client)
fi
have zstd || pkgs+=(zstd)
have curl || pkgs+=(curl)
if ((${#pkgs[@]} > 0)); then
	# The package's postinst may try to start the system service; in a
	# container without systemd that is refused or harmless. Our tests never
	# use it: scripts/test-env.sh runs a private instance.
	apt_install "${pkgs[@]}"
else
	log "mariadb, zstd and curl present"
fi

# ---- aws cli ----
if have aws; then
	log "aws cli present: $(command -v aws)"
else
	if have pip3; then
		pip=(pip3)
	elif have pip; then
		pip=(pip)
	elif have python3; then
		pip=(python3 -m pip)
	else
		apt_install python3-pip
		pip=(python3 -m pip)
	fi
	log "installing awscli with ${pip[*]}"
	"${pip[@]}" install --quiet awscli ||
		"${pip[@]}" install --quiet --break-system-packages awscli
	# pyenv installs console scripts behind shims that need a rehash.
	if have pyenv; then
		pyenv rehash || true
	fi
	have aws || die "awscli installed but 'aws' is not on PATH"
fi

log "all dependencies present"

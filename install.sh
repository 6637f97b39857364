#!/bin/sh
# Installs lobster-relay from the release archives, without sudo.
#
#   curl -fsSL https://releases.powerlobster.com/lobster-relay/install.sh | sh
#   curl -fsSL .../install.sh | sh -s -- --to /usr/local/bin --version 0.2.0
#   sh install.sh --uninstall
#
# Picks the archive for this machine (Linux: glibc -> *-unknown-linux-gnu,
# falling back to *-unknown-linux-musl, fully static; musl -> *-musl; macOS:
# *-apple-darwin), downloads it and SHA256SUMS, and installs only if the
# archive's SHA-256 matches its SHA256SUMS entry and the binary runs: a
# mismatch, a missing entry or a partial download installs nothing.
#
# Where from (a plain static file host; docs/install.md):
#   {base}/latest                                        the latest version
#   {base}/{version}/SHA256SUMS                          sha256sum format
#   {base}/{version}/lobster-relay-{version}-{target}.tar.gz
# LOBSTER_RELAY_DOWNLOAD_URL overrides {base}; LOBSTER_RELAY_VERSION (or
# --version) pins the version instead of reading {base}/latest.
#
# Installs DIR/lobster-relay (DIR: --to, default ~/.local/bin) and, when DIR
# ends in /bin, the completions and man pages under DIR/../share, where
# bash-completion, zsh, fish and man look for them.
set -eu

DEFAULT_BASE="https://releases.powerlobster.com/lobster-relay"
NAME="lobster-relay"

say() { printf '%s\n' "$*" >&2; }
die() {
    printf 'lobster-relay install: error: %s\n' "$*" >&2
    exit 1
}

usage() {
    cat <<'EOF'
Install lobster-relay from its release archives (checksums verified).

Usage: install.sh [--to DIR] [--version VERSION] [--no-completions]
       install.sh --uninstall [--to DIR]

  --to DIR          install the binary into DIR (default: ~/.local/bin)
  --version VERSION install this version (default: LOBSTER_RELAY_VERSION,
                    else the latest)
  --no-completions  install only the binary (no completions, no man pages)
  --uninstall       remove what this script installs into DIR and DIR/../share
  -h, --help        this help

Environment: LOBSTER_RELAY_DOWNLOAD_URL (release location),
LOBSTER_RELAY_VERSION (version to install).
EOF
}

to=""
version="${LOBSTER_RELAY_VERSION:-}"
uninstall=false
completions=true
while [ $# -gt 0 ]; do
    case "$1" in
        --to)
            [ $# -ge 2 ] || die "--to needs a directory"
            to="$2"
            shift 2
            ;;
        --to=*)
            to="${1#--to=}"
            shift
            ;;
        --version)
            [ $# -ge 2 ] || die "--version needs a version"
            version="$2"
            shift 2
            ;;
        --version=*)
            version="${1#--version=}"
            shift
            ;;
        --no-completions)
            completions=false
            shift
            ;;
        --uninstall)
            uninstall=true
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *) die "unknown option: $1 (see --help)" ;;
    esac
done

if [ -z "$to" ]; then
    [ -n "${HOME:-}" ] || die "HOME is not set: name the directory with --to DIR"
    to="$HOME/.local/bin"
fi
case "$to" in
    /*) ;;
    *) to="$(pwd)/$to" ;;
esac
# Completions and man pages go beside the binary's bin/ (PREFIX/share/...),
# else into the user's data dir.
case "$to" in
    */bin | */bin/) share="$(dirname "${to%/}")/share" ;;
    *) share="${XDG_DATA_HOME:-${HOME:-/nonexistent}/.local/share}" ;;
esac
bash_completion="$share/bash-completion/completions/$NAME"
zsh_completion="$share/zsh/site-functions/_$NAME"
fish_completion="$share/fish/vendor_completions.d/$NAME.fish"
man_dir="$share/man/man1"

if [ "$uninstall" = true ]; then
    removed=0
    for file in "$to/$NAME" "$bash_completion" "$zsh_completion" "$fish_completion" \
        "$man_dir/$NAME.1" "$man_dir/$NAME"-*.1; do
        if [ -f "$file" ]; then
            rm -f "$file" || die "cannot remove $file (no write permission?)"
            say "removed $file"
            removed=$((removed + 1))
        fi
    done
    if [ "$removed" -eq 0 ]; then
        say "lobster-relay is not installed in $to: nothing to remove"
    else
        say "lobster-relay uninstalled; your config and stored API keys are kept (lobster-relay logout removes a key)"
    fi
    exit 0
fi

# ---- platform -------------------------------------------------------------

os="$(uname -s 2>/dev/null || echo unknown)"
arch="$(uname -m 2>/dev/null || echo unknown)"
case "$arch" in
    x86_64 | amd64) arch=x86_64 ;;
    aarch64 | arm64) arch=aarch64 ;;
    *) die "unsupported platform: $os on $arch (archives exist for x86_64 and arm64 on Linux and macOS); build from source: cargo install --locked --path cli" ;;
esac
case "$os" in
    Linux)
        # glibc takes the -gnu build, else (not listed, or it does not run
        # here) the static -musl one; musl systems (Alpine, ...) take -musl.
        # A glibc system may have musl's loader too (Debian's musl package).
        if getconf GNU_LIBC_VERSION >/dev/null 2>&1; then
            targets="$arch-unknown-linux-gnu $arch-unknown-linux-musl"
        elif { command -v ldd >/dev/null 2>&1 && ldd --version 2>&1 | grep -qi musl; } ||
            ls /lib/ld-musl-* >/dev/null 2>&1; then
            targets="$arch-unknown-linux-musl"
        else
            targets="$arch-unknown-linux-gnu $arch-unknown-linux-musl"
        fi
        ;;
    Darwin)
        # An x86_64 shell under Rosetta on Apple silicon: take the native build.
        if [ "$arch" = x86_64 ] && [ "$(sysctl -n sysctl.proc_translated 2>/dev/null || echo 0)" = 1 ]; then
            arch=aarch64
        fi
        targets="$arch-apple-darwin"
        ;;
    *) die "unsupported platform: $os on $arch (archives exist for Linux and macOS); build from source: cargo install --locked --path cli" ;;
esac

# ---- tools ----------------------------------------------------------------

if command -v curl >/dev/null 2>&1; then
    downloader=curl
elif command -v wget >/dev/null 2>&1; then
    downloader=wget
else
    die "neither curl nor wget is installed: install one of them and run this again"
fi
if command -v sha256sum >/dev/null 2>&1; then
    sha256() { sha256sum "$1" | awk '{print $1}'; }
elif command -v shasum >/dev/null 2>&1; then
    sha256() { shasum -a 256 "$1" | awk '{print $1}'; }
elif command -v openssl >/dev/null 2>&1; then
    sha256() { openssl dgst -sha256 "$1" | awk '{print $NF}'; }
else
    die "no sha256sum, shasum or openssl to verify the download with"
fi
command -v tar >/dev/null 2>&1 || die "tar is not installed"

# download URL FILE: fails (non-zero) on an HTTP error or a cut-off
# transfer; the downloader's complaint goes to $tmp/download.err (see why).
download() {
    case "$downloader" in
        curl) curl --fail --silent --show-error --location --retry 2 \
            --connect-timeout 20 --output "$2" "$1" 2>"$tmp/download.err" ;;
        wget) wget --quiet --tries=3 --timeout=20 --output-document="$2" "$1" 2>"$tmp/download.err" ;;
    esac
}
# why: the last download's error, as a short suffix for a one-line message.
why() {
    reason="$(grep -v '^[[:space:]]*$' "$tmp/download.err" 2>/dev/null | tail -n 1 | tr -d '\r')"
    [ -z "$reason" ] || printf ' (%s)' "$reason"
}

# ---- install dir (checked before downloading anything) ---------------------

mkdir -p "$to" 2>/dev/null || die "cannot create $to (no write permission?): pick another directory with --to DIR"
if [ ! -d "$to" ] || [ ! -w "$to" ]; then
    die "no write permission for $to: pick another directory with --to DIR"
fi

tmp="$(mktemp -d 2>/dev/null || mktemp -d -t lobster-relay)" || die "cannot create a temporary directory"
staged=""
cleanup() {
    rm -rf "$tmp"
    [ -z "$staged" ] || rm -f "$staged"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- version and checksums ------------------------------------------------

base="${LOBSTER_RELAY_DOWNLOAD_URL:-$DEFAULT_BASE}"
base="${base%/}"
if [ -z "$version" ]; then
    download "$base/latest" "$tmp/latest" || die "could not read the latest version from $base/latest$(why)"
    version="$(head -n 1 "$tmp/latest" | tr -d ' \r\t')"
fi
version="${version#v}"
case "$version" in
    "" | *[!0-9A-Za-z.+-]*) die "not a version: '$version' (from LOBSTER_RELAY_VERSION, --version or $base/latest)" ;;
esac

download "$base/$version/SHA256SUMS" "$tmp/SHA256SUMS" ||
    die "could not download $base/$version/SHA256SUMS$(why): is $version released?"

# expected_sum ARCHIVE: its checksum in SHA256SUMS, empty when not listed.
expected_sum() {
    awk -v f="$1" '($2 == f || $2 == "*" f) && $1 ~ /^[0-9a-fA-F]+$/ && length($1) == 64 { print tolower($1); exit }' "$tmp/SHA256SUMS"
}

# ---- download, verify, unpack, try (first target listed in SHA256SUMS) -----

installed_target=""
listed=false
for target in $targets; do
    archive="$NAME-$version-$target.tar.gz"
    sum="$(expected_sum "$archive")"
    if [ -z "$sum" ]; then
        continue
    fi
    listed=true
    say "downloading $base/$version/$archive"
    download "$base/$version/$archive" "$tmp/$archive" ||
        die "download of $archive failed or was cut off$(why): nothing installed"
    actual="$(sha256 "$tmp/$archive")"
    [ "$actual" = "$sum" ] ||
        die "checksum mismatch for $archive (expected $sum, got $actual): nothing installed"
    mkdir "$tmp/$target"
    tar -xzf "$tmp/$archive" -C "$tmp/$target" ||
        die "could not unpack $archive: nothing installed"
    dir="$tmp/$target/$NAME-$version-$target"
    [ -f "$dir/$NAME" ] || die "$archive holds no $NAME-$version-$target/$NAME: nothing installed"
    chmod 0755 "$dir/$NAME"
    if "$dir/$NAME" --version >/dev/null 2>&1; then
        installed_target="$target"
        break
    fi
    say "the $target build does not run here; trying the next one"
done
if [ -z "$installed_target" ]; then
    # shellcheck disable=SC2086 # one word per target
    wanted="$(printf '%s or ' $targets)"
    wanted="${wanted% or }"
    [ "$listed" = true ] || die "$base/$version/SHA256SUMS lists no archive for $wanted: nothing installed"
    die "the $wanted build does not run on this machine: nothing installed"
fi
target="$installed_target"

# ---- install ----------------------------------------------------------------

# The binary replaces any old one in one rename: never half a file at $to/$NAME.
staged="$to/.$NAME.install.$$"
cp "$dir/$NAME" "$staged" 2>/dev/null || die "no write permission for $to: pick another directory with --to DIR"
chmod 0755 "$staged"
mv -f "$staged" "$to/$NAME" || die "could not move the binary into $to: nothing installed"
staged=""
say "installed lobster-relay $version ($target) as $to/$NAME"

# put SOURCE DEST: installs an extra file; a failure is a warning only.
put() {
    if [ -f "$1" ] && mkdir -p "$(dirname "$2")" 2>/dev/null && cp "$1" "$2" 2>/dev/null; then
        say "  $2"
    else
        say "  (skipped $2: not writable)"
    fi
}
if [ "$completions" = true ]; then
    say "completions and man pages:"
    put "$dir/completions/$NAME.bash" "$bash_completion"
    put "$dir/completions/_$NAME" "$zsh_completion"
    put "$dir/completions/$NAME.fish" "$fish_completion"
    for page in "$dir"/man/*.1; do
        [ -f "$page" ] || continue
        mkdir -p "$man_dir" 2>/dev/null || true
        cp "$page" "$man_dir/" 2>/dev/null || true
    done
    if [ -f "$man_dir/$NAME.1" ]; then
        say "  $man_dir/$NAME.1 (and one page per command: man lobster-relay-listen, ...)"
    fi
    case "${SHELL:-}" in
        */zsh)
            say "zsh: if completion does not work, add to ~/.zshrc before compinit:"
            say "  fpath=($share/zsh/site-functions \$fpath)"
            ;;
    esac
fi

# ---- PATH -----------------------------------------------------------------

case ":${PATH:-}:" in
    *":$to:"* | *":${to%/}:"*)
        say "run: lobster-relay --help"
        ;;
    *)
        say "$to is not on your PATH; add it:"
        case "${SHELL:-}" in
            */zsh) say "  echo 'export PATH=\"$to:\$PATH\"' >> ~/.zshrc && exec zsh" ;;
            */fish) say "  fish_add_path $to" ;;
            */bash) say "  echo 'export PATH=\"$to:\$PATH\"' >> ~/.bashrc && exec bash" ;;
            *) say "  echo 'export PATH=\"$to:\$PATH\"' >> ~/.profile   (then log in again)" ;;
        esac
        ;;
esac

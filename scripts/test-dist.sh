#!/usr/bin/env bash
# The distribution files work: shellcheck on install.sh and scripts/*.sh,
# `ruby -c` on the Homebrew formula, then scripts/release.sh packages an
# already-built binary for the host target (no release build: default
# target/debug/lobster-relay, or LOBSTER_RELAY_BIN), a loopback HTTP server
# serves the archives, and install.sh installs from it into temp dirs:
#
#   - latest and pinned versions install, the installed binary runs, and
#     completions and man pages land under DIR/../share; --uninstall removes them
#   - a corrupted archive, a wrong checksum, an archive that is not a
#     tarball, a missing SHA256SUMS entry and a cut-off download each exit
#     non-zero with a one-line error and install nothing
#   - an unsupported OS or CPU, no curl/wget, no write permission: one line
#   - the formula release.sh writes names each platform's archive with its
#     SHA-256 from SHA256SUMS
#
# Needs: shellcheck, ruby, python3, curl, tar, strip (apt-get installs the
# first two when missing and running as root). About a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"

fail() { echo "test-dist: FAIL: $*" >&2; exit 1; }
pass() { echo "test-dist: ok: $*" >&2; }

need=()
command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)
command -v ruby >/dev/null 2>&1 || need+=(ruby)
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || fail "missing ${need[*]} (apt-get install ${need[*]})"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
for tool in python3 curl tar gzip; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is needed"
done

echo "== shellcheck install.sh scripts/*.sh" >&2
shellcheck install.sh scripts/*.sh
pass "shellcheck"

echo "== ruby -c homebrew/lobster-relay.rb" >&2
ruby -c homebrew/lobster-relay.rb >/dev/null
pass "formula syntax"

tmp="$(mktemp -d /tmp/lobster-test-dist.XXXXXX)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# ---- archives of an already-built binary ------------------------------------

bin="${LOBSTER_RELAY_BIN:-$repo/target/debug/lobster-relay}"
if [ ! -x "$bin" ]; then
  echo "== no $bin: cargo build (debug)" >&2
  cargo build --locked -p lobster-relay --bin lobster-relay
fi
# A debug binary is ~250 MB, mostly debug info: package a stripped copy.
cp "$bin" "$tmp/lobster-relay"
if command -v strip >/dev/null 2>&1; then strip "$tmp/lobster-relay"; fi
info="$("$tmp/lobster-relay" version --json)"
version="$(echo "$info" | sed -n 's/.*"version":"\([^"]*\)".*/\1/p')"
host="$(echo "$info" | sed -n 's/.*"target":"\([^"]*\)".*/\1/p')"
if [ -z "$version" ] || [ -z "$host" ]; then fail "lobster-relay version --json: $info"; fi

echo "== scripts/release.sh $version --binary (host target $host)" >&2
good="$tmp/www/good"
scripts/release.sh "$version" --binary "$tmp/lobster-relay" --out "$good" 2>"$tmp/release.log" ||
  { cat "$tmp/release.log" >&2; fail "release.sh"; }
archive_name="lobster-relay-$version-$host.tar.gz"
archive="$good/$version/$archive_name"
[ -f "$archive" ] || fail "no $archive"
[ "$(cat "$good/latest")" = "$version" ] || fail "latest does not hold $version"
(cd "$good/$version" && sha256sum -c --quiet SHA256SUMS) || fail "SHA256SUMS does not match"
listing="$(tar -tzf "$archive")"
for entry in lobster-relay LICENSE-MIT LICENSE-APACHE README.md completions/lobster-relay.bash \
  completions/_lobster-relay completions/lobster-relay.fish man/lobster-relay.1 man/lobster-relay-listen.1; do
  echo "$listing" | grep -qx "lobster-relay-$version-$host/$entry" || fail "$archive_name lacks $entry"
done
[ "$(echo "$listing" | cut -d/ -f1 | sort -u)" = "lobster-relay-$version-$host" ] ||
  fail "$archive_name must hold exactly one folder"
pass "release.sh: $archive_name ($(wc -c <"$archive") bytes), SHA256SUMS, latest"

# ---- the formula names each platform's archive and its sum -------------------

# formula_entries FILE: "os arch url sha256" per platform, read by loading the
# formula against a stub of Homebrew's DSL.
formula_entries() {
  ruby -e '
    class Formula
      @@ctx = []
      def self.entries; @@entries ||= []; end
      def self.desc(*) end
      def self.homepage(*) end
      def self.license(*) end
      def self.version(v = nil) @@version = v if v; @@version end
      def self.on_macos; @@ctx.push("macos"); yield; @@ctx.pop; end
      def self.on_linux; @@ctx.push("linux"); yield; @@ctx.pop; end
      def self.on_arm; @@ctx.push("arm64"); yield; @@ctx.pop; end
      def self.on_intel; @@ctx.push("x86_64"); yield; @@ctx.pop; end
      def self.url(u) entries << [@@ctx.join(" "), u]; end
      def self.sha256(s) entries.last << s; end
      def self.test(*) end
    end
    load ARGV[0]
    abort "version #{Formula.version.inspect}" unless Formula.version
    Formula.entries.each { |e| puts e.join(" ") }
  ' "$1"
}
zeros="$(printf '%064d' 0)"
check_shape() { # FILE: four platforms, each with the archive of its own target
  local file="$1" platform arch url sum
  formula_entries "$file" >"$tmp/entries" || fail "cannot load $file"
  [ "$(wc -l <"$tmp/entries")" -eq 4 ] || fail "$file: want 4 platforms, got: $(cat "$tmp/entries")"
  while read -r platform arch url sum; do
    case "$platform $arch ${url##*/}" in
      "macos arm64 "*-aarch64-apple-darwin.tar.gz | "macos x86_64 "*-x86_64-apple-darwin.tar.gz | \
        "linux arm64 "*-aarch64-unknown-linux-*.tar.gz | "linux x86_64 "*-x86_64-unknown-linux-*.tar.gz) ;;
      *) fail "$file: $platform $arch gets ${url##*/}" ;;
    esac
    [[ "$sum" =~ ^[0-9a-f]{64}$ ]] || fail "$file: $platform $arch: sha256 '$sum'"
  done <"$tmp/entries"
}
check_formula() { # FILE SITE_VERSION_DIR BASE: urls under BASE/VERSION, sums from SHA256SUMS
  local file="$1" dir="$2" base="$3" platform arch url sum name expected
  check_shape "$file"
  while read -r platform arch url sum; do
    name="${url##*/}"
    [ "$url" = "$base/$version/$name" ] || fail "$file: $platform $arch url $url is not under $base/$version"
    expected="$(awk -v f="$name" '$2 == f { print $1 }' "$dir/SHA256SUMS")"
    if [ -n "$expected" ]; then
      [ "$sum" = "$expected" ] || fail "$file: sha256 of $name is $sum, SHA256SUMS says $expected"
      [ "$sum" = "$(sha256sum "$dir/$name" | cut -d' ' -f1)" ] || fail "$file: $name changed"
    else
      [ "$sum" = "$zeros" ] || fail "$file: $name was not built, yet has sha256 $sum"
    fi
  done <"$tmp/entries"
}
echo "== formula written by release.sh" >&2
# The checked-in copy holds the last release's sums (or zeros): its shape only.
check_shape homebrew/lobster-relay.rb
check_formula "$good/lobster-relay.rb" "$good/$version" "$(sed -n 's/^DEFAULT_BASE="\(.*\)"$/\1/p' install.sh)"
ruby -c "$good/lobster-relay.rb" >/dev/null
# Every platform: stand-in archives for the four formula targets, summed
# and filled in by `release.sh --no-build`, as after the macOS machine's turn.
fake="$tmp/fake"
mkdir -p "$fake/$version"
for t in aarch64-apple-darwin x86_64-apple-darwin aarch64-unknown-linux-gnu x86_64-unknown-linux-musl; do
  echo "stand-in $t" | gzip -n >"$fake/$version/lobster-relay-$version-$t.tar.gz"
done
scripts/release.sh "$version" --no-build --out "$fake" --base https://dl.example.test/lr/ 2>"$tmp/release.log" ||
  { cat "$tmp/release.log" >&2; fail "release.sh --no-build"; }
! grep -q 'no sums yet' "$tmp/release.log" || fail "release.sh --no-build missed an archive: $(cat "$tmp/release.log")"
check_formula "$fake/lobster-relay.rb" "$fake/$version" "https://dl.example.test/lr"
ruby -c "$fake/lobster-relay.rb" >/dev/null
pass "formula: urls and sha256 match the archives (host build, and all four platforms)"

# ---- broken download locations ------------------------------------------------

site() { # NAME: a copy of the good site to break
  mkdir -p "$tmp/www/$1"
  cp -r "$good/latest" "$good/$version" "$tmp/www/$1/"
}
site corrupt # bytes flipped in the middle; SHA256SUMS as released
size="$(wc -c <"$archive")"
printf 'XXXXXXXX' | dd of="$tmp/www/corrupt/$version/$archive_name" bs=1 seek=$((size / 2)) conv=notrunc status=none
site wrongsum # the archive as released; SHA256SUMS names another sum
sed -i "s/^[0-9a-f]\{64\}\(  $archive_name\)$/$(printf '%064d' 0 | tr 0 a)\1/" "$tmp/www/wrongsum/$version/SHA256SUMS"
site nottar # not a tarball, but its sum is listed: the unpack fails
head -c 4096 /dev/urandom >"$tmp/www/nottar/$version/$archive_name"
(cd "$tmp/www/nottar/$version" && sha256sum "$archive_name" >SHA256SUMS)
site noentry # SHA256SUMS lists only some other target
(cd "$tmp/www/noentry/$version" && mv "$archive_name" "lobster-relay-$version-riscv64gc-unknown-linux-gnu.tar.gz" &&
  sha256sum ./*.tar.gz | sed 's|  \./|  |' >SHA256SUMS)

# On x86_64/aarch64 glibc Linux: the -musl fallback. "muslonly" publishes
# only a -musl archive; "gnubroken" a -gnu one whose binary does not run
# and a good -musl one. (The packaged binary stands in for the musl build.)
fallback=""
case "$host" in
  *-unknown-linux-gnu) fallback="${host%-gnu}-musl" ;;
esac
if [ -n "$fallback" ]; then
  repack() { # SITE TARGET [BROKEN]: the good archive's content as TARGET's archive
    local dir="lobster-relay-$version-$2"
    rm -rf "$tmp/repack" && mkdir -p "$tmp/repack" "$tmp/www/$1/$version"
    tar -xzf "$archive" -C "$tmp/repack"
    if [ "$2" != "$host" ]; then mv "$tmp/repack/lobster-relay-$version-$host" "$tmp/repack/$dir"; fi
    if [ -n "${3:-}" ]; then printf '#!/bin/sh\nexit 1\n' >"$tmp/repack/$dir/lobster-relay"; fi
    tar -cf - -C "$tmp/repack" "$dir" | gzip -1 >"$tmp/www/$1/$version/$dir.tar.gz"
  }
  repack muslonly "$fallback"
  repack gnubroken "$host" broken
  cp "$tmp/www/muslonly/$version/lobster-relay-$version-$fallback.tar.gz" "$tmp/www/gnubroken/$version/"
  for s in muslonly gnubroken; do
    scripts/release.sh "$version" --no-build --out "$tmp/www/$s" 2>"$tmp/release.log" ||
      { cat "$tmp/release.log" >&2; fail "release.sh --no-build ($s)"; }
  done
fi

# ---- a loopback file server (port 0) ----------------------------------------------

cat >"$tmp/serve.py" <<'EOF'
# Serves DIR like `python3 -m http.server`; under /truncate/ a .tar.gz is
# announced at its full Content-Length and cut off halfway.
import functools, http.server, os, sys

class Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if not self.path.startswith("/truncate/"):
            return super().do_GET()
        path = self.translate_path(self.path[len("/truncate"):])
        if not os.path.isfile(path):
            return self.send_error(404)
        with open(path, "rb") as f:
            data = f.read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data if not path.endswith(".tar.gz") else data[: len(data) // 2])
        self.wfile.flush()
        self.close_connection = True

server = http.server.ThreadingHTTPServer(
    ("127.0.0.1", 0), functools.partial(Handler, directory=sys.argv[1]))
with open(sys.argv[2] + ".part", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(sys.argv[2] + ".part", sys.argv[2])
server.serve_forever()
EOF
python3 "$tmp/serve.py" "$tmp/www" "$tmp/port" 2>"$tmp/serve.log" &
server_pid=$!
port=""
for _ in $(seq 1 100); do # 10 s
  if [ -s "$tmp/port" ]; then
    port="$(cat "$tmp/port")"
    curl -fsS "http://127.0.0.1:$port/good/latest" >/dev/null 2>&1 && break
  fi
  kill -0 "$server_pid" 2>/dev/null || fail "the file server died: $(cat "$tmp/serve.log")"
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/good/latest" >/dev/null || fail "the file server did not answer within 10 s"
url="http://127.0.0.1:$port"
pass "serving $tmp/www on $url"

# ---- install.sh ------------------------------------------------------------------

n=0
# run_install NAME BASE PIN [ARGS...]: install.sh (version PIN, or the latest
# when empty) into a fresh temp HOME and --to HOME/.local/bin; sets $home,
# $to, $status, $err.
run_install() {
  local name="$1" base="$2" pin="$3"
  shift 3
  n=$((n + 1))
  home="$tmp/home$n-$name"
  to="$home/.local/bin"
  mkdir -p "$home"
  status=0
  env -u XDG_DATA_HOME -u LOBSTER_RELAY_VERSION HOME="$home" SHELL=/bin/bash \
    LOBSTER_RELAY_DOWNLOAD_URL="$base" ${pin:+LOBSTER_RELAY_VERSION="$pin"} \
    sh install.sh --to "$to" "$@" >"$home/out" 2>"$home/err" || status=$?
  err="$(cat "$home/err")"
}
assert_nothing_installed() { # what the failed run left: nothing but empty dirs
  local left
  left="$(find "$home" -path "$home/out" -prune -o -path "$home/err" -prune -o -type f -print)"
  [ -z "$left" ] || fail "$1: left files behind: $left"
}
only_error_line() { # LABEL PATTERN: non-zero exit, and stderr is one line matching PATTERN
  if [ "$status" -eq 0 ] || [ "$(echo "$err" | wc -l)" -ne 1 ] || ! echo "$err" | grep -q "$2"; then
    fail "$1: exit $status: $err"
  fi
}
assert_one_line_error() { # the failure ends in one "error:" line
  [ "$status" -ne 0 ] || fail "$1: exit 0; stderr: $err"
  echo "$err" | tail -n 1 | grep -q '^lobster-relay install: error: ' || fail "$1: last line is not the error: $err"
  [ "$(echo "$err" | grep -c 'error:')" -eq 1 ] || fail "$1: more than one error line: $err"
}

echo "== install.sh: latest from $url/good" >&2
start_ns="$(date +%s%N)"
run_install latest "$url/good" ""
[ "$status" -eq 0 ] || fail "install.sh (latest) exit $status: $err"
installed_version="$("$to/lobster-relay" --version)" || fail "installed lobster-relay --version failed"
took_ms=$((($(date +%s%N) - start_ns) / 1000000))
echo "$installed_version" | grep -q "^lobster-relay $version (" || fail "--version said: $installed_version"
share="$home/.local/share"
for f in "$share/bash-completion/completions/lobster-relay" "$share/zsh/site-functions/_lobster-relay" \
  "$share/fish/vendor_completions.d/lobster-relay.fish" "$share/man/man1/lobster-relay.1" \
  "$share/man/man1/lobster-relay-listen.1"; do
  [ -s "$f" ] || fail "install.sh did not install $f"
done
echo "$err" | grep -q "installed lobster-relay $version ($host) as $to/lobster-relay" || fail "install.sh did not say what it did: $err"
echo "$err" | grep -q "is not on your PATH" || fail "install.sh gave no PATH advice: $err"
[ "$(find "$to" -mindepth 1)" = "$to/lobster-relay" ] || fail "stray files in $to: $(find "$to" -mindepth 1)"
pass "latest: $installed_version, install.sh to a running --version in ${took_ms} ms"

echo "== install.sh --uninstall" >&2
env HOME="$home" sh install.sh --uninstall --to "$to" 2>"$home/err" || fail "--uninstall: $(cat "$home/err")"
left="$(find "$home" -type f ! -name out ! -name err)"
[ -z "$left" ] || fail "--uninstall left: $left"
pass "--uninstall removed the binary, completions and man pages"

echo "== install.sh: pinned with LOBSTER_RELAY_VERSION, no completions" >&2
run_install pinned "$url/good" "$version" --no-completions
[ "$status" -eq 0 ] || fail "install.sh (pinned) exit $status: $err"
"$to/lobster-relay" version --json | grep -q "\"version\":\"$version\"" || fail "pinned install does not run"
[ ! -e "$home/.local/share" ] || fail "--no-completions installed $(find "$home/.local/share" -type f)"
pass "pinned $version"

if [ -n "$fallback" ]; then
  echo "== install.sh: glibc falls back to $fallback" >&2
  run_install muslonly "$url/muslonly" ""
  [ "$status" -eq 0 ] || fail "muslonly: exit $status: $err"
  echo "$err" | grep -q "($fallback)" || fail "muslonly: did not install $fallback: $err"
  "$to/lobster-relay" --version >/dev/null || fail "muslonly: the installed binary does not run"
  pass "only a -musl archive published: installed $fallback"
  run_install gnubroken "$url/gnubroken" ""
  [ "$status" -eq 0 ] || fail "gnubroken: exit $status: $err"
  echo "$err" | grep -q "the $host build does not run here" || fail "gnubroken: no word of the failed -gnu build: $err"
  echo "$err" | grep -q "($fallback)" || fail "gnubroken: did not install $fallback: $err"
  "$to/lobster-relay" --version >/dev/null || fail "gnubroken: the installed binary does not run"
  pass "the -gnu build does not run: installed $fallback instead"
fi

echo "== install.sh: broken downloads install nothing" >&2
for case in corrupt:"checksum mismatch" wrongsum:"checksum mismatch" nottar:"could not unpack" \
  noentry:"lists no archive" truncate/good:"failed or was cut off"; do
  where="${case%%:*}" want="${case#*:}"
  run_install "${where%%/*}" "$url/$where" "$version"
  assert_one_line_error "$where"
  echo "$err" | grep -q "$want" || fail "$where: want '$want' in: $err"
  assert_nothing_installed "$where"
  pass "$where: exit $status, nothing installed: $(echo "$err" | tail -n 1)"
done
run_install nolatest "$url/missing" ""
assert_one_line_error "no latest"
assert_nothing_installed "no latest"
pass "no latest file: $(echo "$err" | tail -n 1)"
run_install unreleased "$url/good" 9.9.9
assert_one_line_error "unreleased version"
pass "unreleased version: $(echo "$err" | tail -n 1)"

echo "== install.sh: unsupported platform, no downloader, no write permission" >&2
fakebin="$tmp/fake-uname"
mkdir -p "$fakebin"
cat >"$fakebin/uname" <<'EOF'
#!/bin/sh
case "$1" in
  -s) echo "${FAKE_OS:-Linux}" ;;
  -m) echo "${FAKE_ARCH:-x86_64}" ;;
  *) echo "${FAKE_OS:-Linux}" ;;
esac
EOF
chmod +x "$fakebin/uname"
for fake_platform in FreeBSD:x86_64 Linux:riscv64 Darwin:ppc; do
  status=0
  err="$(FAKE_OS="${fake_platform%:*}" FAKE_ARCH="${fake_platform#*:}" PATH="$fakebin:$PATH" HOME="$tmp/h-uname" \
    LOBSTER_RELAY_DOWNLOAD_URL="$url/good" sh install.sh 2>&1 >/dev/null)" || status=$?
  only_error_line "$fake_platform" 'error: unsupported platform'
  pass "$fake_platform: $err"
done
[ ! -e "$tmp/h-uname" ] || fail "an unsupported platform created $(find "$tmp/h-uname")"

# Everything of PATH except curl and wget.
nodl="$tmp/no-downloader"
mkdir -p "$nodl"
IFS=: read -r -a path_dirs <<<"$PATH"
for d in "${path_dirs[@]}"; do
  [ -d "$d" ] || continue
  for f in "$d"/*; do
    b="${f##*/}"
    case "$b" in curl | wget) continue ;; esac
    if [ -x "$f" ] && [ ! -e "$nodl/$b" ]; then ln -s "$f" "$nodl/$b"; fi
  done
done
status=0
err="$(PATH="$nodl" HOME="$tmp/h-nodl" LOBSTER_RELAY_DOWNLOAD_URL="$url/good" sh install.sh 2>&1 >/dev/null)" || status=$?
only_error_line "no curl/wget" 'error: neither curl nor wget'
pass "no curl/wget: $err"
if command -v wget >/dev/null 2>&1; then
  ln -s "$(command -v wget)" "$nodl/wget"
  home="$tmp/home-wget"
  status=0
  err="$(PATH="$nodl" HOME="$home" SHELL=/bin/sh LOBSTER_RELAY_DOWNLOAD_URL="$url/good" \
    sh install.sh --no-completions 2>&1 >/dev/null)" || status=$?
  [ "$status" -eq 0 ] || fail "install with wget: exit $status: $err"
  "$home/.local/bin/lobster-relay" --version >/dev/null || fail "install with wget: the binary does not run"
  status=0
  err="$(PATH="$nodl" HOME="$home" LOBSTER_RELAY_DOWNLOAD_URL="$url/truncate/good" LOBSTER_RELAY_VERSION="$version" \
    sh install.sh --to "$home/other" 2>&1 >/dev/null)" || status=$?
  assert_one_line_error "cut off, with wget"
  [ -z "$(find "$home/other" -type f)" ] || fail "cut off, with wget: left $(find "$home/other" -type f)"
  pass "with wget instead of curl: installs, and a cut-off download installs nothing"
fi

if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1; then
  # As nobody, into a directory root owns.
  ro="$(mktemp -d /tmp/lobster-test-dist-ro.XXXXXX)"
  chmod 0755 "$ro"
  cp install.sh "$ro/install.sh"
  mkdir -p "$ro/bin"
  status=0
  err="$(cd "$ro" && setpriv --reuid=65534 --regid=65534 --clear-groups env HOME="$ro" \
    LOBSTER_RELAY_DOWNLOAD_URL="$url/good" sh install.sh --to "$ro/bin" 2>&1 >/dev/null)" || status=$?
  rm -rf "$ro"
  only_error_line "no write permission" 'error: no write permission'
  pass "no write permission: $err"
else
  status=0
  err="$(HOME="$tmp" LOBSTER_RELAY_DOWNLOAD_URL="$url/good" sh install.sh --to /proc/lobster-relay 2>&1 >/dev/null)" || status=$?
  only_error_line "unwritable --to" 'error: cannot create'
  pass "unwritable --to: $err"
fi

echo "test-dist: all passed (install.sh to a running --version: ${took_ms} ms, loopback, $(wc -c <"$archive") byte archive)" >&2

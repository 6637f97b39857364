# Homebrew formula for lobster-relay, published as Formula/lobster-relay.rb
# in the tap repository powerlobster/homebrew-tap:
#
#   brew install powerlobster/tap/lobster-relay
#
# It installs the prebuilt release archives (no Rust toolchain needed).
# `scripts/release.sh VERSION` writes a filled-in copy of this file: the
# `version`, every `url` (found by the target triple it ends in) and the
# `sha256` on the line after it, from the archives it made. An all-zero
# sha256 marks an archive that release did not have: brew refuses it.
# docs/install.md describes the release steps.
class LobsterRelay < Formula
  desc "Receive webhooks behind NAT: agent CLI and relay server in one binary"
  homepage "https://github.com/powerlobster/lobster-relay"
  version "0.1.0"
  license any_of: ["MIT", "Apache-2.0"]

  on_macos do
    on_arm do
      url "https://releases.powerlobster.com/lobster-relay/0.1.0/lobster-relay-0.1.0-aarch64-apple-darwin.tar.gz"
      sha256 "0000000000000000000000000000000000000000000000000000000000000000"
    end
    on_intel do
      url "https://releases.powerlobster.com/lobster-relay/0.1.0/lobster-relay-0.1.0-x86_64-apple-darwin.tar.gz"
      sha256 "0000000000000000000000000000000000000000000000000000000000000000"
    end
  end

  on_linux do
    on_arm do
      url "https://releases.powerlobster.com/lobster-relay/0.1.0/lobster-relay-0.1.0-aarch64-unknown-linux-gnu.tar.gz"
      sha256 "0000000000000000000000000000000000000000000000000000000000000000"
    end
    on_intel do
      # The static build: it runs whatever glibc the machine has.
      url "https://releases.powerlobster.com/lobster-relay/0.1.0/lobster-relay-0.1.0-x86_64-unknown-linux-musl.tar.gz"
      sha256 "0000000000000000000000000000000000000000000000000000000000000000"
    end
  end

  def install
    bin.install "lobster-relay"
    bash_completion.install "completions/lobster-relay.bash" => "lobster-relay"
    zsh_completion.install "completions/_lobster-relay"
    fish_completion.install "completions/lobster-relay.fish"
    man1.install Dir["man/*.1"]
  end

  test do
    assert_match version.to_s, shell_output("#{bin}/lobster-relay --version")
    assert_match "--forward", shell_output("#{bin}/lobster-relay listen --help")
    system bin/"lobster-relay", "version", "--json"
  end
end

//! The `lobster-relay` binary; everything lives in the `lobster_cli` library.

fn main() -> std::process::ExitCode {
    lobster_cli::main()
}

//! The `lobster-relay` binary; everything lives in the `lobster_cli` library.

/// The static (musl) build, the one in the container image, allocates with
/// mimalloc. On musl's own malloc the relay spent 1.7x the CPU per webhook
/// and accepted 30% fewer a second; on mimalloc it costs what the glibc
/// build does ("The static build's allocator" in docs/performance.md). The
/// glibc builds keep glibc's allocator: mimalloc bought them no CPU.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    lobster_cli::main()
}

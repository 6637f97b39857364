//! `completions SHELL` and the hidden `man`: text generated from the clap
//! definitions, so they never drift from the real flags.
//!
//! Both render into memory first and then write to stdout, so a closed pipe
//! (`| head`) is an ordinary write error (exit 0), not a panic inside the
//! generator.

use clap::CommandFactory as _;
use clap_complete::Shell;

use crate::cli::{Cli, CompletionsArgs, ManArgs};
use crate::ui::print_raw;

/// Runs `completions`.
pub fn completions(args: &CompletionsArgs) -> anyhow::Result<()> {
    print_raw(&completion_script(args.shell))?;
    Ok(())
}

/// The completion script for `shell`.
///
/// clap_complete's bash script names the top command `lobster__relay` when
/// it tracks what was typed, but labels the cases below it
/// `lobster__subcmd__relay__subcmd__...` (it splits the dash of the binary
/// name like a subcommand), so nothing below the top level ever completed
/// (`lobster-relay listen --f<TAB>`). The labels are renamed to match.
pub fn completion_script(shell: Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "lobster-relay", &mut out);
    if shell == Shell::Bash {
        let text =
            String::from_utf8_lossy(&out).replace("lobster__subcmd__relay__", "lobster__relay__");
        return text.into_bytes();
    }
    out
}

/// Runs `man`.
pub fn man(args: &ManArgs, ui: &crate::ui::Ui) -> anyhow::Result<()> {
    let command = Cli::command();
    match &args.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            clap_mangen::generate_to(command, dir)?;
            ui.status(format!("Wrote the man pages to {}", dir.display()));
        }
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(command).render(&mut out)?;
            print_raw(&out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_know_the_commands() {
        let text = String::from_utf8(completion_script(Shell::Bash)).unwrap();
        for command in ["login", "listen", "wait", "events", "trigger", "status"] {
            assert!(text.contains(command), "{command} missing");
        }
    }

    /// Sources the bash script in a real bash and drives its function the
    /// way bash does on TAB, at the top level and below it.
    #[test]
    fn bash_completes_below_the_top_level() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("lobster-relay.bash");
        std::fs::write(&script, completion_script(Shell::Bash)).unwrap();
        let complete = |words: &str| {
            let driver = format!(
                "source '{}'; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
                 _lobster__relay lobster-relay \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; \
                 echo \"${{COMPREPLY[*]}}\"",
                script.display()
            );
            let out = std::process::Command::new("bash")
                .args(["-c", &driver])
                .output()
                .expect("bash runs");
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        assert_eq!(complete("lobster-relay li"), "listen");
        assert_eq!(
            complete("lobster-relay listen --forward-t"),
            "--forward-timeout"
        );
        assert!(complete("lobster-relay events ''").contains("replay"));
        assert_eq!(complete("lobster-relay admin create-a"), "create-agent");
    }

    /// Runs `shell -c script`; `None` (with a line saying so) where the
    /// shell is not installed (CI installs zsh and fish).
    fn run_shell(shell: &str, script: &str) -> Option<String> {
        match std::process::Command::new(shell)
            .args(["-c", script])
            .output()
        {
            Ok(out) => Some(String::from_utf8_lossy(&out.stdout).trim().to_owned()),
            Err(_) => {
                eprintln!("SKIPPED: {shell} is not installed; its completion script was not tried");
                None
            }
        }
    }

    /// fish completes below the top level with the script as generated.
    #[test]
    fn fish_completes_below_the_top_level() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("lobster-relay.fish");
        std::fs::write(&script, completion_script(Shell::Fish)).unwrap();
        let complete = |line: &str| {
            run_shell(
                "fish",
                &format!("source '{}'; complete -C '{line}'", script.display()),
            )
        };
        let Some(top) = complete("lobster-relay ev") else {
            return;
        };
        assert!(top.starts_with("events\t"), "{top}");
        let below = complete("lobster-relay listen --forward-t").unwrap_or_default();
        assert!(below.starts_with("--forward-timeout\t"), "{below}");
    }

    /// zsh loads the script under compinit and binds it to the command.
    #[test]
    fn zsh_loads_the_completion_for_the_command() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("_lobster-relay"),
            completion_script(Shell::Zsh),
        )
        .unwrap();
        let driver = format!(
            "fpath=('{}' $fpath); autoload -U compinit; compinit -u -D; \
             autoload -U _lobster-relay; _lobster-relay 2>/dev/null; \
             print -- ${{_comps[lobster-relay]}} ${{+functions[_lobster-relay_commands]}}",
            dir.path().display()
        );
        let Some(out) = run_shell("zsh", &driver) else {
            return;
        };
        assert_eq!(out, "_lobster-relay 1", "{out}");
    }

    #[test]
    fn man_pages_cover_every_visible_command() {
        let dir = tempfile::tempdir().unwrap();
        let args = ManArgs {
            out_dir: Some(dir.path().to_owned()),
        };
        man(&args, &crate::ui::Ui::silent()).unwrap();
        for page in [
            "lobster-relay.1",
            "lobster-relay-listen.1",
            "lobster-relay-login.1",
            "lobster-relay-events-list.1",
        ] {
            assert!(dir.path().join(page).is_file(), "{page} missing");
        }
        assert!(
            !dir.path().join("lobster-relay-man.1").exists(),
            "man is hidden"
        );
    }
}

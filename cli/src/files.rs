//! Files in the config dir: where it is, and writing a file atomically.
//!
//! Files are written to a temporary file in the same directory (mode 0600
//! on Unix), flushed to disk, then renamed over the old one, so a crash or
//! a full disk never leaves a half-written `credentials.toml` behind.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::exit::Fatal;

/// The directory holding `config.toml` and `credentials.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigDir {
    path: PathBuf,
}

impl ConfigDir {
    /// `--config-dir` / `LOBSTER_RELAY_CONFIG_DIR` if given, else the
    /// platform's config dir (`~/.config/lobster-relay` on Linux).
    pub fn resolve(given: Option<&Path>) -> Result<Self, Fatal> {
        if let Some(path) = given {
            return Ok(Self::at(path));
        }
        match directories::ProjectDirs::from("com", "powerlobster", "lobster-relay") {
            Some(dirs) => Ok(Self::at(dirs.config_dir())),
            None => Err(Fatal::usage(
                "could not find a config directory (no home directory)",
                "pass --config-dir DIR or set LOBSTER_RELAY_CONFIG_DIR",
            )),
        }
    }

    /// A config dir at `path`.
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `config.toml`: the default relay and `listen` defaults.
    pub fn config_file(&self) -> PathBuf {
        self.path.join("config.toml")
    }

    /// `credentials.toml`: API keys when no OS keyring is available.
    pub fn credentials_file(&self) -> PathBuf {
        self.path.join("credentials.toml")
    }

    /// Creates the directory (mode 0700 on Unix) if it is missing.
    pub fn create(&self) -> anyhow::Result<()> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt as _;
            builder.mode(0o700);
        }
        builder
            .create(&self.path)
            .with_context(|| format!("could not create the config dir {}", self.path.display()))
    }
}

/// Replaces `path` with `contents` atomically; the file ends up with mode
/// 0600 on Unix, whatever it had before.
pub fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let failed = || format!("could not write {}", path.display());
    // tempfile creates the file with mode 0600 on Unix.
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .with_context(failed)?;
    temp.write_all(contents.as_bytes()).with_context(failed)?;
    temp.as_file().sync_all().with_context(failed)?;
    temp.persist(path)
        .map_err(|err| err.error)
        .with_context(failed)?;
    // The rename is durable once the directory is synced too.
    #[cfg(unix)]
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Reads a file that may not exist yet: `None` when it does not.
pub fn read_optional(path: &Path) -> anyhow::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("could not read {}", path.display())),
    }
}

/// True when others than the owner may read the file (Unix only).
pub fn readable_by_others(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(path).is_ok_and(|meta| meta.permissions().mode() & 0o077 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replace_the_file_whole_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.toml");
        write_private(&path, "one").unwrap();
        write_private(&path, "two").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two");
        assert!(!readable_by_others(&path));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, ["credentials.toml"], "no temp files left");
    }

    #[cfg(unix)]
    #[test]
    fn a_world_readable_file_becomes_private_on_write() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.toml");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(readable_by_others(&path));
        write_private(&path, "new").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn missing_files_read_as_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_optional(&dir.path().join("nope")).unwrap(), None);
    }

    #[test]
    fn a_given_dir_wins_and_names_its_files() {
        let dir = ConfigDir::resolve(Some(Path::new("/tmp/x"))).unwrap();
        assert_eq!(dir.config_file(), Path::new("/tmp/x/config.toml"));
        assert_eq!(dir.credentials_file(), Path::new("/tmp/x/credentials.toml"));
    }
}

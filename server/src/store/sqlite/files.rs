//! The database's files on disk: private permissions, and one relay per
//! database.
//!
//! Without `--encryption-key` the database holds workspace secrets in the
//! clear, and every event body: the data dir is created 0700 and the
//! database 0600 before SQLite opens it (SQLite gives its `-wal` and `-shm`
//! files the database file's mode). Files made wider by hand are reported
//! at start, not changed: an operator may have a reason.
//!
//! Two relays writing one SQLite database would each believe they hold
//! every lease: a lock file (`relay.db.lock`, an exclusive `flock`) makes
//! the second one stop at start with an error saying so. The lock goes
//! with the process, however it ends (kill -9 included).

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::store::StoreError;

/// Holds the database's lock file for as long as it lives.
#[derive(Debug)]
pub struct DatabaseLock {
    _file: File,
}

/// Creates `dir` (and its parents) private to this user if it is missing.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Creates the database file 0600 if it is missing, so SQLite's own files
/// follow suit.
pub fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(err),
    }
}

/// Takes the database's lock, or says which process-wide problem stops us.
pub fn lock(db: &Path) -> Result<DatabaseLock, StoreError> {
    let path = lock_path(db);
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(&path).map_err(|e| {
        StoreError::Database(format!("cannot open the lock file {}: {e}", path.display()))
    })?;
    match file.try_lock() {
        Ok(()) => Ok(DatabaseLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Database(format!(
            "another lobster-relay is already running on {} (it holds {}): stop it first, or give this one another --data-dir",
            db.display(),
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Database(format!(
            "cannot lock {}: {e}",
            path.display()
        ))),
    }
}

fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// The database's files (and its directory) that others can read: one
/// warning each, naming the file, its mode and the fix.
pub fn permission_warnings(db: &Path) -> Vec<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mut files: Vec<(PathBuf, u32)> = Vec::new();
        if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
            files.push((dir.to_owned(), 0o700));
        }
        for suffix in ["", "-wal", "-shm"] {
            let mut name = db.as_os_str().to_owned();
            name.push(suffix);
            files.push((PathBuf::from(name), 0o600));
        }
        files
            .into_iter()
            .filter_map(|(path, want)| {
                let mode = std::fs::metadata(&path).ok()?.permissions().mode() & 0o777;
                (mode & 0o077 != 0).then(|| {
                    format!(
                        "{} is readable by other users (mode {mode:o}); it holds event bodies and secrets: chmod {want:o} it",
                        path.display()
                    )
                })
            })
            .collect()
    }
    #[cfg(not(unix))]
    {
        let _ = db;
        Vec::new()
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn new_files_are_private_and_wide_ones_are_reported() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data");
        create_private_dir(&dir).unwrap();
        let db = dir.join("relay.db");
        create_private_file(&db).unwrap();
        assert_eq!((mode(&dir), mode(&db)), (0o700, 0o600));
        assert!(permission_warnings(&db).is_empty());

        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        let warnings = permission_warnings(&db);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("mode 644") && warnings[0].contains("chmod 600"));
    }

    #[test]
    fn a_second_lock_on_one_database_is_refused_until_the_first_goes() {
        let root = tempfile::tempdir().unwrap();
        let db = root.path().join("relay.db");
        let first = lock(&db).unwrap();
        let err = lock(&db).unwrap_err().to_string();
        assert!(
            err.contains("another lobster-relay is already running"),
            "{err}"
        );
        drop(first);
        lock(&db).unwrap();
    }
}

//! The data directory holds the SQLite database (password hashes, every message), the signing
//! key and uploaded files: natter creates it readable by its own user only (0700), whatever the
//! umask. A directory that already exists is left as the operator made it (they may share it
//! with a backup group on purpose), but a warning says when others can read it.

use std::path::Path;

use anyhow::Context;

/// Creates `dir` and its missing parents with mode 0700, or checks an existing one.
pub fn prepare(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        warn_if_shared(dir);
        return Ok(());
    }
    create_private_dir(dir).with_context(|| format!("cannot create data dir {}", dir.display()))
}

/// `mkdir -p -m 0700`.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

#[cfg(unix)]
fn warn_if_shared(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(metadata) = std::fs::metadata(dir) {
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                dir = %dir.display(),
                mode = format!("{mode:o}"),
                "the data dir is open to other users (it holds the database and uploaded files); `chmod 700` it"
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_dir: &Path) {}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn creates_private_directories_and_leaves_existing_ones() {
        let root = std::env::temp_dir().join(format!("natter-data-dir-{}", std::process::id()));
        let nested = root.join("a/b");
        prepare(&nested).expect("creates");
        for dir in [&root, &root.join("a"), &nested] {
            let mode = std::fs::metadata(dir).expect("exists").permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", dir.display());
        }
        std::fs::set_permissions(&nested, std::fs::Permissions::from_mode(0o750)).expect("chmod");
        prepare(&nested).expect("an existing dir is fine");
        let mode = std::fs::metadata(&nested).expect("exists").permissions().mode() & 0o777;
        assert_eq!(mode, 0o750, "not changed behind the operator's back");
        std::fs::remove_dir_all(&root).expect("clean up");
    }
}

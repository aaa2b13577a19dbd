//! The access-token signing secret: configured, or generated once and kept in the data dir.

use anyhow::Context;
use tokio::io::AsyncWriteExt;

use crate::config::Config;

pub(crate) async fn jwt_secret(config: &Config) -> anyhow::Result<Vec<u8>> {
    if !config.auth.jwt_secret.is_empty() {
        return Ok(config.auth.jwt_secret.expose().as_bytes().to_vec());
    }
    let path = config.server.data_dir.join("jwt.key");
    if let Some(secret) = read_key(&path).await? {
        return Ok(secret);
    }
    // Written whole under another name, then linked into place: a process killed meanwhile never
    // leaves a partial key behind (which would stop every later start), and of two processes
    // starting at once one key wins and both use it.
    let secret = hex::encode(rand::random::<[u8; 32]>());
    let temp = config.server.data_dir.join(format!("jwt.key.{}.tmp", hex::encode(rand::random::<[u8; 8]>())));
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(&temp).await.with_context(|| format!("cannot create {}", temp.display()))?;
    file.write_all(secret.as_bytes()).await?;
    file.sync_all().await?;
    drop(file);
    let linked = tokio::fs::hard_link(&temp, &path).await;
    let _ = tokio::fs::remove_file(&temp).await;
    match linked {
        Ok(()) => Ok(secret.into_bytes()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            read_key(&path).await?.with_context(|| format!("{} vanished", path.display()))
        }
        Err(error) => Err(error).with_context(|| format!("cannot create {}", path.display())),
    }
}

/// The key kept at `path`, or `None` when there is none yet.
async fn read_key(path: &std::path::Path) -> anyhow::Result<Option<Vec<u8>>> {
    match tokio::fs::read_to_string(path).await {
        Ok(text) if text.trim().len() >= 32 => Ok(Some(text.trim().as_bytes().to_vec())),
        Ok(_) => anyhow::bail!("{} is too short to be a signing key", path.display()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
    }
}

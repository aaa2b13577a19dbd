//! The access-token signing secret: configured, or generated once and kept in the data dir.

use anyhow::Context;
use tokio::io::AsyncWriteExt;

use crate::config::Config;

pub(crate) async fn jwt_secret(config: &Config) -> anyhow::Result<Vec<u8>> {
    if !config.auth.jwt_secret.is_empty() {
        return Ok(config.auth.jwt_secret.expose().as_bytes().to_vec());
    }
    let path = config.server.data_dir.join("jwt.key");
    match tokio::fs::read_to_string(&path).await {
        Ok(text) if text.trim().len() >= 32 => return Ok(text.trim().as_bytes().to_vec()),
        Ok(_) => anyhow::bail!("{} is too short to be a signing key", path.display()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", path.display())),
    }
    let secret = hex::encode(rand::random::<[u8; 32]>());
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(&path).await.with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(secret.as_bytes()).await?;
    file.sync_all().await?;
    Ok(secret.into_bytes())
}

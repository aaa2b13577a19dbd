//! What natter writes to disk is its own user's only: a data dir it creates is 0700, the SQLite
//! database and its WAL 0600, uploaded files 0600 in 0700 directories, whatever the umask (the
//! test process runs under the usual 022, which alone would give 0755 and 0644).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::json;

use crate::common::{Backend, binary, client_msg_id, spawn_app_on_with};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_data_dir_and_what_natter_writes_in_it_are_private() {
    // Inside the harness's own temp dir (removed with the app), but created by natter.
    let mut data_dir = std::path::PathBuf::new();
    let app = spawn_app_on_with(Backend::Sqlite, |config| {
        config.server.data_dir = config.server.data_dir.join("fresh").join("data");
        data_dir = config.server.data_dir.clone();
    })
    .await;
    let (alice, bob) = (app.register("alice").await, app.register("bob").await);
    let direct = app.make_friends(&alice, &bob).await;
    let file = app.upload_ok(&alice, "notes.bin", "application/octet-stream", binary(5000)).await;
    let body = json!({ "client_msg_id": client_msg_id(), "kind": "file", "file_id": file.id, "text": "private" });
    app.send_message(&alice, &direct, body).await.expect_status(201);

    for dir in [data_dir.parent().expect("a parent"), &data_dir, &data_dir.join("files"), &data_dir.join("search")] {
        assert_eq!(mode(dir), 0o700, "{}", dir.display());
    }
    for path in [
        data_dir.join("natter.db"),
        data_dir.join("natter.db-wal"),
        data_dir.join("natter.db-shm"),
        data_dir.join("jwt.key"),
        data_dir.join("files").join("files").join(&file.id),
    ] {
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
}

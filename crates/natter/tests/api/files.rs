//! Files: uploads and downloads (on the local directory and on S3), limits, sniffing, who may
//! read what, and image, file and voice messages.

use natter_proto::{FileView, MessageView, UserView};
use serde_json::json;

use crate::common::{
    Backend, BlobBackend, TestApp, TestUser, binary, client_msg_id, on_both_backends, on_both_blob_stores, png,
    sha256_hex, spawn_app_on_with, spawn_app_with, unknown_id, wav,
};

async fn send_file(app: &TestApp, user: &TestUser, conversation: &str, kind: &str, file: &str) -> crate::common::Resp {
    let body = json!({ "client_msg_id": client_msg_id(), "kind": kind, "file_id": file });
    app.send_message(user, conversation, body).await
}

on_both_blob_stores!(round_trip_with_ranges_and_etag, limits_answer_413_and_store_nothing);

async fn round_trip_with_ranges_and_etag(blobs: BlobBackend) {
    let app = spawn_app_with(|c| blobs.apply(c)).await;
    let alice = app.register("alice").await;
    // Far beyond the gateway's 64 KiB JSON body limit: uploads have their own.
    let bytes = binary(300 * 1024 + 7);
    let uploaded = app.upload_ok(&alice, "report 2026/Q3 «final».bin", "application/pdf", bytes.clone()).await;
    assert_eq!(uploaded.size, bytes.len() as i64);
    assert_eq!(uploaded.sha256, sha256_hex(&bytes));
    assert_eq!(uploaded.mime, "application/octet-stream", "the claim is not trusted: the bytes are no PDF");
    assert_eq!(uploaded.name, "Q3 «final».bin", "no path survives");
    assert_eq!((uploaded.width, uploaded.thumbnail_id.as_ref()), (None, None));

    let path = format!("/files/{}", uploaded.id);
    let whole = app.fetch(&alice, &path, &[]).await;
    assert_eq!(whole.status, 200);
    assert!(whole.body == bytes, "the bytes come back unchanged");
    assert_eq!(whole.header("content-length"), Some(bytes.len().to_string().as_str()));
    assert_eq!(whole.header("content-type"), Some("application/octet-stream"));
    assert_eq!(whole.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    let etag = format!("\"{}\"", uploaded.sha256);
    assert_eq!(whole.header("etag"), Some(etag.as_str()));
    assert_eq!(
        whole.header("content-disposition"),
        Some("attachment; filename=\"Q3 _final_.bin\"; filename*=UTF-8''Q3%20%C2%ABfinal%C2%BB.bin")
    );

    let cached = app.fetch(&alice, &path, &[("if-none-match", &etag)]).await;
    assert_eq!((cached.status, cached.body.len()), (304, 0));
    let stale = app.fetch(&alice, &path, &[("if-none-match", "\"something-else\"")]).await;
    assert_eq!(stale.status, 200);

    let first = app.fetch(&alice, &path, &[("range", "bytes=0-99")]).await;
    assert_eq!(first.status, 206);
    assert_eq!(first.body, &bytes[..100]);
    assert_eq!(first.header("content-range"), Some(format!("bytes 0-99/{}", bytes.len()).as_str()));
    assert_eq!(first.header("content-length"), Some("100"));
    let suffix = app.fetch(&alice, &path, &[("range", "bytes=-10")]).await;
    assert_eq!(suffix.status, 206);
    assert_eq!(suffix.body, &bytes[bytes.len() - 10..]);
    let middle = app.fetch(&alice, &path, &[("range", "bytes=200000-")]).await;
    assert_eq!((middle.status, middle.body.as_slice()), (206, &bytes[200_000..]));
    let beyond = app.fetch(&alice, &path, &[("range", &format!("bytes={}-", bytes.len()))]).await;
    assert_eq!((beyond.status, beyond.code().as_deref()), (416, Some("range_not_satisfiable")));
    assert_eq!(beyond.header("content-range"), Some(format!("bytes */{}", bytes.len()).as_str()));

    let meta: FileView = app.get(&alice, &format!("/files/{}/meta", uploaded.id)).await.expect(200);
    assert_eq!(meta, uploaded);
    app.get(&alice, &format!("/files/{}/thumbnail", uploaded.id)).await.expect_error(404, "not_found");
    app.get(&alice, &format!("/files/{}", unknown_id())).await.expect_error(404, "not_found");
}

async fn limits_answer_413_and_store_nothing(blobs: BlobBackend) {
    let app = spawn_app_with(|c| {
        blobs.apply(c);
        c.files.max_upload_bytes = 64 * 1024;
        c.files.quota_bytes = 100 * 1024;
    })
    .await;
    let alice = app.register("alice").await;
    app.upload(&alice, "big.bin", "application/octet-stream", binary(200 * 1024))
        .await
        .expect_error(413, "file_too_large");
    app.upload(&alice, "big.bin", "application/octet-stream", binary(64 * 1024 + 1))
        .await
        .expect_error(413, "file_too_large");
    let exact = app.upload_ok(&alice, "exact.bin", "application/octet-stream", binary(64 * 1024)).await;
    assert_eq!(exact.size, 64 * 1024, "exactly the limit is allowed");
    // 64 KiB of the 100 KiB quota are used: 40 KiB more would cross it, 36 KiB fills it.
    app.upload(&alice, "more.bin", "application/octet-stream", binary(40 * 1024))
        .await
        .expect_error(413, "quota_exceeded");
    app.upload_ok(&alice, "fill.bin", "application/octet-stream", binary(36 * 1024)).await;
    app.upload(&alice, "one.bin", "application/octet-stream", vec![0x80]).await.expect_error(413, "quota_exceeded");
    let bob = app.register("bob").await;
    app.upload_ok(&bob, "own.bin", "application/octet-stream", binary(1000)).await;
    let missing = app
        .send(
            app.http
                .post(app.api_url("/files"))
                .bearer_auth(&alice.access_token)
                .multipart(reqwest::multipart::Form::new().text("other", "no file part")),
        )
        .await;
    missing.expect_error(400, "file_required");
    let unauthenticated = app.send(app.http.post(app.api_url("/files"))).await;
    unauthenticated.expect_error(401, "unauthorized");
    if let BlobBackend::Local = blobs {
        let count = |dir: &str| std::fs::read_dir(app.data_dir().join(dir)).map_or(0, |entries| entries.count());
        assert_eq!(count("files/files"), 3, "only the three accepted uploads left blobs");
        // `.tmp` holds this process's own directory and its lock; only files below it are writes.
        let unfinished: usize = std::fs::read_dir(app.data_dir().join("files/.tmp"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|entry| entry.path().is_dir())
            .map(|dir| std::fs::read_dir(dir.path()).map_or(0, |entries| entries.count()))
            .sum();
        assert_eq!(unfinished, 0, "no temporary file is left behind");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_type_comes_from_the_bytes_and_html_is_never_inline() {
    let app = spawn_app_with(|_| {}).await;
    let alice = app.register("alice").await;
    let picture = png(64, 48);
    let claimed_text = app.upload_ok(&alice, "notes.txt", "text/plain", picture.clone()).await;
    assert_eq!(claimed_text.mime, "image/png");
    assert_eq!((claimed_text.width, claimed_text.height), (Some(64), Some(48)));
    let served = app.fetch(&alice, &format!("/files/{}", claimed_text.id), &[]).await;
    assert_eq!(served.header("content-type"), Some("image/png"));
    assert!(served.header("content-disposition").is_some_and(|d| d.starts_with("inline;")));

    let page = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>".to_vec();
    let html = app.upload_ok(&alice, "cat.png", "image/png", page).await;
    assert_eq!(html.mime, "text/html");
    assert_eq!(html.width, None);
    let served = app.fetch(&alice, &format!("/files/{}", html.id), &[]).await;
    assert_eq!(served.status, 200);
    let disposition = served.header("content-disposition").expect("a disposition");
    assert!(disposition.starts_with("attachment;"), "HTML is never shown in place: {disposition}");
    assert_eq!(served.header("x-content-type-options"), Some("nosniff"));
    assert!(served.header("content-security-policy").is_some_and(|csp| csp.contains("sandbox")));

    let text = app.upload_ok(&alice, "a.txt", "application/octet-stream", "plain words, ünïcödé".into()).await;
    assert_eq!(text.mime, "text/plain");

    let openapi = app.get_root("/openapi.json").await;
    let paths = openapi.body["paths"].as_object().expect("the document has paths");
    for path in ["/api/v1/files", "/api/v1/files/{id}", "/api/v1/files/{id}/meta", "/api/v1/files/{id}/thumbnail"] {
        assert!(paths.contains_key(path), "OpenAPI documents {path}");
    }
}

on_both_backends!(only_members_who_saw_the_file_may_read_it, image_messages_carry_size_and_thumbnail);

async fn only_members_who_saw_the_file_may_read_it(backend: Backend) {
    let app = spawn_app_on_with(backend, |_| {}).await;
    let (alice, bob, carol) = (app.register("alice").await, app.register("bob").await, app.register("carol").await);
    let direct = app.make_friends(&alice, &bob).await;
    app.make_friends(&alice, &carol).await;
    let file = app.upload_ok(&alice, "plan.pdf", "application/pdf", b"%PDF-1.4 a plan".to_vec()).await;
    let path = format!("/files/{}", file.id);
    app.fetch(&alice, &path, &[]).await;
    for (who, when) in [(&bob, "before it is sent"), (&carol, "a stranger to the file")] {
        let denied = app.fetch(who, &path, &[]).await;
        assert_eq!((denied.status, denied.code().as_deref()), (404, Some("not_found")), "{} {when}", who.username);
        app.get(who, &format!("{path}/meta")).await.expect_error(404, "not_found");
    }

    let sent: MessageView = send_file(&app, &alice, &direct, "file", &file.id).await.expect(201);
    assert_eq!(sent.file.as_ref(), Some(&file), "the entry describes its file");
    let fetched = app.fetch(&bob, &path, &[]).await;
    assert_eq!((fetched.status, fetched.body.as_slice()), (200, b"%PDF-1.4 a plan".as_slice()));
    assert_eq!(fetched.header("content-type"), Some("application/pdf"));
    assert_eq!(app.fetch(&carol, &path, &[]).await.status, 404, "not a member of that conversation");

    // A group member who joins after the entry cannot see it, so cannot read its file either.
    let group = app.create_group(&alice, "plans", &[&bob]).await;
    let shared = app.upload_ok(&alice, "shared.pdf", "application/pdf", b"%PDF-1.4 shared".to_vec()).await;
    send_file(&app, &alice, &group.id, "file", &shared.id).await.expect_status(201);
    app.add_members(&alice, &group.id, &[&carol]).await.expect_success();
    assert_eq!(app.fetch(&carol, &format!("/files/{}", shared.id), &[]).await.status, 404);
    assert_eq!(app.fetch(&bob, &format!("/files/{}", shared.id), &[]).await.status, 200);

    // Only your own files can be sent.
    send_file(&app, &bob, &direct, "file", &file.id).await.expect_error(400, "file_not_found");
    send_file(&app, &alice, &direct, "file", &unknown_id()).await.expect_error(400, "file_not_found");
    let anonymous = app.send(app.http.get(app.api_url(&path))).await;
    anonymous.expect_error(401, "unauthorized");
}

async fn image_messages_carry_size_and_thumbnail(backend: Backend) {
    let app = spawn_app_on_with(backend, |_| {}).await;
    let (alice, bob) = (app.register("alice").await, app.register("bob").await);
    let direct = app.make_friends(&alice, &bob).await;
    let mut bob_ws = app.connect_ws(&bob).await;
    let image = app.upload_ok(&alice, "view.png", "image/png", png(800, 600)).await;
    assert_eq!((image.width, image.height), (Some(800), Some(600)));
    let thumbnail_id = image.thumbnail_id.clone().expect("an image gets a thumbnail");

    let body = json!({ "client_msg_id": client_msg_id(), "kind": "image", "file_id": image.id, "text": "the view" });
    let sent: MessageView = app.send_message(&alice, &direct, body).await.expect(201);
    assert_eq!((sent.kind.as_str(), sent.text.as_deref()), ("image", Some("the view")));
    assert_eq!(sent.file_id.as_deref(), Some(image.id.as_str()));
    assert_eq!(sent.file.as_ref(), Some(&image));
    let pushed = bob_ws.next_message().await;
    assert_eq!(pushed.file.as_ref(), Some(&image), "the push carries the file too");
    let history = app.history_after(&bob, &direct, 0, 50).await;
    let entry = history.messages.iter().find(|m| m.seq == sent.seq).expect("in history");
    assert_eq!(entry.file.as_ref(), Some(&image), "and so does history");

    for path in [format!("/files/{}/thumbnail", image.id), format!("/files/{thumbnail_id}")] {
        let thumb = app.fetch(&bob, &path, &[]).await;
        assert_eq!((thumb.status, thumb.header("content-type")), (200, Some("image/jpeg")), "{path}");
        let decoded = image::load_from_memory(&thumb.body).expect("the thumbnail decodes");
        assert_eq!((decoded.width(), decoded.height()), (320, 240), "{path}: fits 320 px, keeps 4:3");
    }
    let thumb_meta: FileView = app.get(&bob, &format!("/files/{thumbnail_id}/meta")).await.expect(200);
    assert_eq!((thumb_meta.width, thumb_meta.height), (Some(320), Some(240)));
    let stranger = app.register("stranger").await;
    assert_eq!(app.fetch(&stranger, &format!("/files/{thumbnail_id}"), &[]).await.status, 404);

    // A recalled entry takes its file with it.
    app.delete(&alice, &format!("/conversations/{direct}/messages/{}", sent.seq)).await.expect_success();
    assert_eq!(app.fetch(&bob, &format!("/files/{}", image.id), &[]).await.status, 404);
    let history = app.history_after(&bob, &direct, 0, 50).await;
    let entry = history.messages.iter().find(|m| m.seq == sent.seq).expect("in history");
    assert_eq!((entry.file.as_ref(), entry.file_id.as_ref()), (None, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voice_messages_have_a_duration_and_kinds_must_match_files() {
    let app = spawn_app_with(|_| {}).await;
    let (alice, bob) = (app.register("alice").await, app.register("bob").await);
    let direct = app.make_friends(&alice, &bob).await;
    let voice = app.upload_ok(&alice, "memo.wav", "audio/wav", wav(1500)).await;
    assert_eq!(voice.mime, "audio/x-wav");
    assert_eq!(voice.duration_ms, Some(1500));
    let mut alice_ws = app.connect_ws(&alice).await;
    let frame = json!({ "type": "send", "id": "v-1", "conversation_id": direct, "client_msg_id": client_msg_id(),
                        "kind": "voice", "file_id": voice.id });
    alice_ws.send_json(frame).await;
    let acked = alice_ws.next_of_type("sent").await;
    assert_eq!(acked["id"], "v-1");
    let sent: MessageView = serde_json::from_value(acked["message"].clone()).expect("a message view");
    assert_eq!(sent.kind, "voice");
    assert_eq!(sent.file.as_ref(), Some(&voice), "sent over the WebSocket, acknowledged with its file");
    assert_eq!(sent.file.as_ref().and_then(|f| f.duration_ms), Some(1500));
    let audio = app.fetch(&bob, &format!("/files/{}", voice.id), &[]).await;
    assert_eq!(audio.header("content-type"), Some("audio/x-wav"));
    assert!(audio.header("content-disposition").is_some_and(|d| d.starts_with("inline;")));

    let picture = app.upload_ok(&alice, "p.png", "image/png", png(10, 10)).await;
    let doc = app.upload_ok(&alice, "d.bin", "application/octet-stream", binary(10)).await;
    send_file(&app, &alice, &direct, "voice", &picture.id).await.expect_error(400, "file_kind_mismatch");
    send_file(&app, &alice, &direct, "image", &voice.id).await.expect_error(400, "file_kind_mismatch");
    send_file(&app, &alice, &direct, "image", &doc.id).await.expect_error(400, "file_kind_mismatch");
    send_file(&app, &alice, &direct, "file", &picture.id).await.expect_status(201);
    let no_file = json!({ "client_msg_id": client_msg_id(), "kind": "voice" });
    app.send_message(&alice, &direct, no_file).await.expect_error(400, "file_required");
    let text_with_file = json!({ "client_msg_id": client_msg_id(), "kind": "text", "text": "hi", "file_id": doc.id });
    app.send_message(&alice, &direct, text_with_file).await.expect_error(400, "unexpected_file_id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avatars_must_be_own_images_and_are_readable_by_everyone() {
    let app = spawn_app_with(|_| {}).await;
    let (alice, bob, stranger) = (app.register("alice").await, app.register("bob").await, app.register("zed").await);
    let face = app.upload_ok(&alice, "face.png", "image/png", png(200, 200)).await;
    let doc = app.upload_ok(&alice, "d.bin", "application/octet-stream", binary(10)).await;
    assert_eq!(app.fetch(&stranger, &format!("/files/{}", face.id), &[]).await.status, 404);

    app.patch(&alice, "/users/me", json!({ "avatar": doc.id })).await.expect_error(400, "invalid_avatar");
    app.patch(&bob, "/users/me", json!({ "avatar": face.id })).await.expect_error(400, "invalid_avatar");
    app.patch(&alice, "/users/me", json!({ "avatar": unknown_id() })).await.expect_error(400, "invalid_avatar");
    let me: UserView = app.patch(&alice, "/users/me", json!({ "avatar": face.id })).await.expect(200);
    assert_eq!(me.avatar.as_deref(), Some(face.id.as_str()));
    assert_eq!(app.fetch(&stranger, &format!("/files/{}", face.id), &[]).await.status, 200);
    let thumb = face.thumbnail_id.clone().expect("a thumbnail");
    assert_eq!(app.fetch(&stranger, &format!("/files/{thumb}"), &[]).await.status, 200, "and its thumbnail");

    app.make_friends(&alice, &bob).await;
    let logo = app.upload_ok(&alice, "logo.png", "image/png", png(50, 50)).await;
    let body = json!({ "kind": "group", "name": "g", "member_ids": [bob.id], "avatar": doc.id });
    app.post(&alice, "/conversations", body).await.expect_error(400, "invalid_avatar");
    let group = app.create_group(&alice, "g", &[&bob]).await;
    app.patch(&alice, &format!("/conversations/{}", group.id), json!({ "avatar": doc.id }))
        .await
        .expect_error(400, "invalid_avatar");
    assert_eq!(app.fetch(&stranger, &format!("/files/{}", logo.id), &[]).await.status, 404);
    app.patch(&alice, &format!("/conversations/{}", group.id), json!({ "avatar": logo.id })).await.expect_status(200);
    assert_eq!(app.fetch(&stranger, &format!("/files/{}", logo.id), &[]).await.status, 200);
}

//! Files: records, the quota sum, the read-access rule, and entries carrying their file.

use natter_core::ids::{FileId, Seq};
use natter_core::model::{FileRecord, MemberRole, MessageKind, User};
use natter_core::store::prelude::*;
use natter_core::store::{Effect, ProfileUpdate, StoreError};

use crate::fixtures::{append, at, event, group, member, system, text, user};
use crate::harness::TestDb;

fn record(owner: &User, size: i64, thumbnail: Option<&FileRecord>) -> FileRecord {
    FileRecord {
        id: FileId::generate(),
        owner_id: owner.id.clone(),
        name: "cat.png".into(),
        mime: "image/png".into(),
        size,
        sha256: "ab".repeat(32),
        blob_key: format!("files/{}", uuid::Uuid::new_v4().simple()),
        width: Some(640),
        height: Some(480),
        duration_ms: None,
        thumbnail_id: thumbnail.map(|t| t.id.clone()),
        created_at: at(5),
    }
}

async fn stored(store: &dyn Store, file: FileRecord) -> FileRecord {
    store.create_file(&file).await.expect("create file");
    file
}

pub(crate) async fn files_are_stored_counted_and_deleted(db: &TestDb) {
    let store = &db.store;
    let (a, b) = (user(store, "ann", "Ann").await, user(store, "ben", "Ben").await);
    assert_eq!(store.storage_used(&a.id).await.expect("used"), 0);
    let thumb = stored(store, record(&a, 100, None)).await;
    let mut image = record(&a, 5_000_000_000, Some(&thumb));
    image.duration_ms = None;
    let image = stored(store, image).await;
    let mut voice = record(&b, 7, None);
    (voice.mime, voice.width, voice.height, voice.duration_ms) = ("audio/x-wav".into(), None, None, Some(1500));
    let voice = stored(store, voice).await;

    assert_eq!(store.file(&image.id).await.expect("get"), Some(image.clone()), "reads back exactly");
    assert_eq!(store.file(&voice.id).await.expect("get"), Some(voice.clone()));
    assert_eq!(store.file(&FileId::generate()).await.expect("get"), None);
    assert!(matches!(store.create_file(&image).await, Err(StoreError::Conflict("file"))));
    assert_eq!(store.storage_used(&a.id).await.expect("used"), 5_000_000_100, "sizes beyond 32 bits add up");
    assert_eq!(store.storage_used(&b.id).await.expect("used"), 7);

    assert!(store.delete_file(&voice.id).await.expect("delete"));
    assert!(!store.delete_file(&voice.id).await.expect("delete again"));
    assert_eq!(store.storage_used(&b.id).await.expect("used"), 0);
}

pub(crate) async fn file_access_follows_entries_membership_and_avatars(db: &TestDb) {
    let store = &db.store;
    let (a, b, c, d) = (
        user(store, "ann", "Ann").await,
        user(store, "ben", "Ben").await,
        user(store, "cy", "Cy").await,
        user(store, "di", "Di").await,
    );
    let thumb = stored(store, record(&a, 10, None)).await;
    let image = stored(store, record(&a, 1000, Some(&thumb))).await;
    let readable = |file: &FileRecord, who: &User| {
        let (id, user) = (file.id.clone(), who.id.clone());
        async move { store.file_readable(&id, &user).await.expect("readable") }
    };
    assert!(readable(&image, &a).await && readable(&thumb, &a).await, "the uploader reads both");
    assert!(!readable(&image, &b).await && !readable(&thumb, &b).await, "nobody else, before it is sent");

    let (g, _) = group(store, "g", &a, &[&b], at(1)).await;
    let mut message = text(&g.id, &a, "look", at(2));
    (message.kind, message.file_id) = (MessageKind::Image, Some(image.id.to_string()));
    let sent = append(store, message, Effect::None).await;
    assert!(readable(&image, &b).await && readable(&thumb, &b).await, "a member reads it and its thumbnail");
    assert!(!readable(&image, &c).await, "a non-member does not");

    let history = store.messages_after(&g.id, Seq::ZERO, Seq::ZERO, 10).await.expect("history");
    let entry = history.iter().find(|m| m.seq == sent.seq).expect("the entry");
    assert_eq!(entry.file.as_ref(), Some(&image), "reads attach the file record");
    let at_seq = store.message_at(&g.id, sent.seq).await.expect("at").expect("exists");
    assert_eq!(at_seq.file.as_ref(), Some(&image));
    let list = store.conversations_of(&b.id).await.expect("list");
    assert_eq!(list[0].last_message.as_ref().and_then(|m| m.file.as_ref()), Some(&image));

    system(
        store,
        &g.id,
        &a,
        "members_added",
        Effect::AddMembers(vec![member(&g.id, &c, MemberRole::Member, at(3))]),
        at(3),
    )
    .await;
    assert!(!readable(&image, &c).await, "a later member cannot see entries from before they joined");

    event(store, &g.id, &a, MessageKind::Recall, Some(sent.seq), Effect::Recall { target_seq: sent.seq }, at(4)).await;
    assert!(!readable(&image, &b).await, "a recalled entry no longer shares its file");

    let avatar = stored(store, record(&d, 10, None)).await;
    assert!(!readable(&avatar, &b).await);
    let update = ProfileUpdate { avatar: Some(Some(avatar.id.to_string())), ..ProfileUpdate::default() };
    store.update_profile(&d.id, update).await.expect("set avatar");
    assert!(readable(&avatar, &b).await && readable(&avatar, &c).await, "a user's avatar is readable by anyone");

    let group_avatar = stored(store, record(&a, 10, None)).await;
    let change =
        Effect::UpdateConversation { name: None, announcement: None, avatar: Some(Some(group_avatar.id.to_string())) };
    system(store, &g.id, &a, "avatar_changed", change, at(5)).await;
    assert!(readable(&group_avatar, &d).await, "a group's avatar is readable by anyone");
    system(store, &g.id, &a, "dissolved", Effect::Dissolve, at(6)).await;
    assert!(!readable(&group_avatar, &d).await, "not once the group is dissolved");
    assert!(readable(&group_avatar, &a).await, "its uploader still reads it");
}

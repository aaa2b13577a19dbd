//! Effects: the change an entry records is applied in the transaction that appends it.

use natter_core::ids::Seq;
use natter_core::model::{MemberRole, MessageKind};
use natter_core::store::prelude::*;
use natter_core::store::{AppendOutcome, Effect};

use crate::fixtures::{at, event, group, member, send, system, user};
use crate::harness::TestDb;

pub(crate) async fn membership_effects(db: &TestDb) {
    let store = &db.store;
    let (a, b, c) = (user(store, "ann", "Ann").await, user(store, "ben", "Ben").await, user(store, "cy", "Cy").await);
    let (g, _) = group(store, "g", &a, &[&b], at(0)).await;
    send(store, &g.id, &a, "before c", at(1)).await;
    let mut before = store.member_ids(&g.id).await.expect("ids");
    before.sort();
    let mut expected = vec![a.id.clone(), b.id.clone()];
    expected.sort();
    assert_eq!(before, expected, "read before the change, so an adapter that caches has it cached");

    let added = system(
        store,
        &g.id,
        &a,
        "members_added",
        Effect::AddMembers(vec![member(&g.id, &c, MemberRole::Member, at(2))]),
        at(2),
    )
    .await;
    assert_eq!(added.seq, Seq::new(3));
    let joined = store.member(&g.id, &c.id).await.expect("member").expect("c is a member");
    assert_eq!((joined.role, joined.joined_seq, joined.read_seq), (MemberRole::Member, Seq::new(3), Seq::new(3)));
    let (conversation, member) = store.membership(&g.id, &c.id).await.expect("membership").expect("a member");
    assert_eq!(member, joined);
    assert_eq!(Some(conversation), store.conversation(&g.id).await.expect("get"));
    assert_eq!(store.member_count(&g.id).await.expect("count"), 3);
    assert!(store.member_ids(&g.id).await.expect("ids").contains(&c.id), "an added member is seen at once");

    system(store, &g.id, &a, "role_changed", Effect::SetRole(b.id.clone(), MemberRole::Admin), at(3)).await;
    assert_eq!(store.member(&g.id, &b.id).await.expect("member").expect("member").role, MemberRole::Admin);

    let transfer = Effect::TransferOwnership { from: a.id.clone(), to: b.id.clone() };
    system(store, &g.id, &a, "owner_changed", transfer, at(4)).await;
    assert_eq!(store.member(&g.id, &a.id).await.expect("member").expect("member").role, MemberRole::Admin);
    assert_eq!(store.member(&g.id, &b.id).await.expect("member").expect("member").role, MemberRole::Owner);
    assert_eq!(store.conversation(&g.id).await.expect("get").expect("exists").owner_id, Some(b.id.clone()));
    // members() lists by role: owner, admins, members.
    let listed: Vec<_> = store.members(&g.id).await.expect("members").into_iter().map(|m| m.user_id).collect();
    assert_eq!(listed, [b.id.clone(), a.id.clone(), c.id.clone()]);

    let removed = system(store, &g.id, &b, "member_removed", Effect::RemoveMember(c.id.clone()), at(5)).await;
    assert_eq!(removed.seq, Seq::new(6));
    assert_eq!(store.member(&g.id, &c.id).await.expect("member"), None);
    assert_eq!(store.membership(&g.id, &c.id).await.expect("membership"), None);
    assert_eq!(store.member_count(&g.id).await.expect("count"), 2);
    let mut ids = store.member_ids(&g.id).await.expect("ids");
    ids.sort();
    let mut expected = vec![a.id.clone(), b.id.clone()];
    expected.sort();
    assert_eq!(ids, expected);
    assert!(store.conversations_of(&c.id).await.expect("list").is_empty(), "a removed member no longer lists it");
}

pub(crate) async fn conversation_effects(db: &TestDb) {
    let store = &db.store;
    let (a, b) = (user(store, "dan", "Dan").await, user(store, "eve", "Eve").await);
    let (g, _) = group(store, "old", &a, &[&b], at(0)).await;

    let update = Effect::UpdateConversation {
        name: Some("new".into()),
        announcement: None,
        avatar: Some(Some("file-1".into())),
    };
    system(store, &g.id, &a, "updated", update, at(10)).await;
    let changed = store.conversation(&g.id).await.expect("get").expect("exists");
    assert_eq!(changed.name, "new");
    assert_eq!(changed.announcement.as_deref(), Some("welcome"), "an absent field is left alone");
    assert_eq!(changed.avatar.as_deref(), Some("file-1"));
    assert_eq!((changed.last_seq, changed.updated_at), (Seq::new(2), at(10)));

    let update = Effect::UpdateConversation { name: None, announcement: Some("read the rules".into()), avatar: None };
    system(store, &g.id, &a, "updated", update, at(11)).await;
    let changed = store.conversation(&g.id).await.expect("get").expect("exists");
    assert_eq!((changed.name.as_str(), changed.avatar.as_deref()), ("new", Some("file-1")));
    assert_eq!(changed.announcement.as_deref(), Some("read the rules"));

    let clear = Effect::UpdateConversation { name: None, announcement: None, avatar: Some(None) };
    system(store, &g.id, &a, "updated", clear, at(12)).await;
    assert_eq!(store.conversation(&g.id).await.expect("get").expect("exists").avatar, None);

    system(store, &g.id, &a, "dissolved", Effect::Dissolve, at(13)).await;
    let gone = store.conversation(&g.id).await.expect("get").expect("kept for history");
    assert!(gone.dissolved);
    assert_eq!(gone.last_seq, Seq::new(5));
    assert!(store.members(&g.id).await.expect("members").is_empty());
    assert!(store.conversations_of(&a.id).await.expect("list").is_empty());
    assert!(store.conversations_of(&b.id).await.expect("list").is_empty());
}

pub(crate) async fn edit_and_recall(db: &TestDb) {
    let store = &db.store;
    let (a, b) = (user(store, "fay", "Fay").await, user(store, "gus", "Gus").await);
    let (g, _) = group(store, "g", &a, &[&b], at(0)).await;
    let original = send(store, &g.id, &a, "helo", at(1)).await;
    let other = send(store, &g.id, &b, "untouched", at(2)).await;

    let edit = Effect::Edit { target_seq: original.seq, text: "hello".into() };
    let entry = event(store, &g.id, &a, MessageKind::Edit, Some(original.seq), edit, at(5)).await;
    assert_eq!((entry.seq, entry.kind, entry.target_seq), (Seq::new(4), MessageKind::Edit, Some(original.seq)));
    let edited = store.message_at(&g.id, original.seq).await.expect("at").expect("stored");
    assert_eq!(edited.text.as_deref(), Some("hello"));
    assert_eq!(edited.edited_at, Some(at(5)));
    assert_eq!((edited.id, edited.seq, edited.created_at), (original.id.clone(), original.seq, original.created_at));
    assert_eq!(
        store.message_at(&g.id, other.seq).await.expect("at").expect("stored"),
        other,
        "only the target changes"
    );

    let recall = Effect::Recall { target_seq: original.seq };
    event(store, &g.id, &a, MessageKind::Recall, Some(original.seq), recall, at(6)).await;
    let recalled = store.message_at(&g.id, original.seq).await.expect("at").expect("stored");
    assert!(recalled.recalled);
    assert_eq!((recalled.text, recalled.file_id), (None, None));

    // An edit that reaches a recalled entry does not bring its text back.
    let late = Effect::Edit { target_seq: original.seq, text: "back again".into() };
    event(store, &g.id, &a, MessageKind::Edit, Some(original.seq), late, at(7)).await;
    let still = store.message_at(&g.id, original.seq).await.expect("at").expect("stored");
    assert!(still.recalled);
    assert_eq!(still.text, None);
    // The log keeps every event, in order: a device catching up replays them.
    let log = store.messages_after(&g.id, original.seq, Seq::ZERO, 10).await.expect("page");
    let kinds: Vec<_> = log.iter().map(|m| m.kind).collect();
    assert_eq!(kinds, [MessageKind::Text, MessageKind::Edit, MessageKind::Recall, MessageKind::Edit]);
}

pub(crate) async fn reactions(db: &TestDb) {
    let store = &db.store;
    let (a, b) = (user(store, "hal", "Hal").await, user(store, "ivy", "Ivy").await);
    let (g, _) = group(store, "g", &a, &[&b], at(0)).await;
    let target = send(store, &g.id, &a, "react to me", at(1)).await;
    let seq = target.seq;
    let add = |emoji: &str| Effect::AddReaction { target_seq: seq, emoji: emoji.to_owned() };

    event(store, &g.id, &b, MessageKind::Reaction, Some(seq), add("👍"), at(2)).await;
    event(store, &g.id, &a, MessageKind::Reaction, Some(seq), add("👍"), at(3)).await;
    event(store, &g.id, &b, MessageKind::Reaction, Some(seq), add("😂"), at(4)).await;
    // The same person adding the same emoji again is an entry in the log but not a second reaction.
    let again = event(store, &g.id, &b, MessageKind::Reaction, Some(seq), add("👍"), at(5)).await;
    assert_eq!(again.seq, Seq::new(6));
    let current = store.message_at(&g.id, seq).await.expect("at").expect("stored").reactions;
    assert_eq!(
        current,
        vec![("👍".to_owned(), b.id.clone()), ("👍".to_owned(), a.id.clone()), ("😂".to_owned(), b.id.clone())]
    );

    let remove = Effect::RemoveReaction { target_seq: seq, emoji: "👍".into() };
    event(store, &g.id, &b, MessageKind::Reaction, Some(seq), remove.clone(), at(6)).await;
    let current = store.message_at(&g.id, seq).await.expect("at").expect("stored").reactions;
    assert_eq!(current, vec![("👍".to_owned(), a.id.clone()), ("😂".to_owned(), b.id.clone())]);
    // Removing what is not there changes nothing.
    event(store, &g.id, &b, MessageKind::Reaction, Some(seq), remove, at(7)).await;
    let page = store.messages_after(&g.id, Seq::ZERO, Seq::ZERO, 50).await.expect("page");
    let in_page = page.iter().find(|m| m.seq == seq).expect("in page");
    assert_eq!(in_page.reactions, current);
    assert!(page.iter().filter(|m| m.kind == MessageKind::Reaction).all(|m| m.reactions.is_empty()));
}

/// PostgreSQL is shared: a member list one process remembers must follow a change another
/// process commits (the `members_version` the triggers move), for added and removed members and
/// for a group made with many members in one statement.
pub(crate) async fn member_lists_follow_changes_made_by_another_process(db: &TestDb) {
    if db.url.starts_with("sqlite:") {
        // One process owns a SQLite database (its cache sees every change): nothing to share.
        return;
    }
    let (node1, node2) = (&db.store, &natter_store::SqlStore::connect(&db.url, 4).await.expect("a second store"));
    let (a, b, c) = (user(node1, "ann", "Ann").await, user(node1, "ben", "Ben").await, user(node1, "cy", "Cy").await);
    let (g, _) = group(node1, "g", &a, &[&b], at(0)).await;
    let sorted = |mut ids: Vec<natter_core::ids::UserId>| {
        ids.sort();
        ids
    };
    let ab = sorted(vec![a.id.clone(), b.id.clone()]);
    // Both remember [a, b].
    assert_eq!(sorted(node1.member_ids(&g.id).await.expect("ids")), ab);
    assert_eq!(sorted(node2.member_ids(&g.id).await.expect("ids")), ab);
    // Node 2 adds c; node 1 sees it at once.
    let add = Effect::AddMembers(vec![member(&g.id, &c, MemberRole::Member, at(1))]);
    system(node2, &g.id, &a, "members_added", add, at(1)).await;
    let abc = sorted(vec![a.id.clone(), b.id.clone(), c.id.clone()]);
    assert_eq!(sorted(node1.member_ids(&g.id).await.expect("ids")), abc, "node 1 follows node 2's addition");
    // Node 1 removes b; node 2 sees it at once.
    system(node1, &g.id, &a, "member_removed", Effect::RemoveMember(b.id.clone()), at(2)).await;
    let ac = sorted(vec![a.id.clone(), c.id.clone()]);
    assert_eq!(sorted(node2.member_ids(&g.id).await.expect("ids")), ac, "node 2 follows node 1's removal");
    assert_eq!(sorted(node1.member_ids(&g.id).await.expect("ids")), ac);
    // A role change is no membership change: the lists stay.
    system(node2, &g.id, &a, "role_changed", Effect::SetRole(c.id.clone(), MemberRole::Admin), at(3)).await;
    assert_eq!(sorted(node1.member_ids(&g.id).await.expect("ids")), ac);
    node2.close().await;
}

/// Two runs of one transcription job race to append the voice message's transcript under its
/// key (`transcripts::transcript_key`): one entry is stored, the other run gets it back.
pub(crate) async fn a_transcript_appended_twice_is_stored_once(db: &TestDb) {
    let store = db.store.clone();
    let (a, b) = (user(&store, "ann", "Ann").await, user(&store, "ben", "Ben").await);
    let (g, _) = group(&store, "g", &a, &[&b], at(0)).await;
    let voice = natter_core::store::blank_message(g.id.clone(), a.id.clone(), MessageKind::Voice, at(1));
    let voice = crate::fixtures::append(&store, voice, Effect::None).await;
    let key = natter_core::service::transcripts::transcript_key(&voice.id);
    let entry = |text: &str| {
        let mut entry = natter_core::store::blank_message(g.id.clone(), a.id.clone(), MessageKind::Transcript, at(2));
        entry.target_seq = Some(voice.seq);
        entry.text = Some(text.into());
        entry.client_msg_id = Some(key.clone());
        natter_core::store::NewEntry {
            effect: Effect::Transcript { target_seq: voice.seq, text: text.into() },
            message: entry,
        }
    };
    let runs = [entry("first run"), entry("second run")].map(|new| {
        let store = store.clone();
        tokio::spawn(async move { store.append(new).await.expect("append") })
    });
    let mut stored = Vec::new();
    let mut returned = Vec::new();
    for run in runs {
        match run.await.expect("task") {
            AppendOutcome::Appended(entry) => stored.push(entry),
            AppendOutcome::Duplicate(entry) => returned.push(entry),
            AppendOutcome::ConversationGone => panic!("the conversation exists"),
        }
    }
    assert_eq!((stored.len(), returned.len()), (1, 1), "one stored, one answered with it");
    assert_eq!(returned[0].id, stored[0].id);
    assert_eq!(
        store.conversation(&g.id).await.expect("get").expect("exists").last_seq,
        voice.seq.next(),
        "no seq used twice"
    );
    let voice = store.message_at(&g.id, voice.seq).await.expect("read").expect("the voice message");
    assert_eq!(voice.transcript, stored[0].text, "the effect of the stored entry, not the other");
    assert_eq!(
        store.message_by_client_id(&a.id, &key).await.expect("lookup").map(|m| m.id),
        Some(stored[0].id.clone())
    );
}

use std::sync::Arc;

use natter_core::ids::{ConversationId, Seq};
use natter_core::model::{MessageKind, SystemEvent};
use natter_core::store::prelude::*;
use natter_core::store::{AppendOutcome, Effect, NewEntry};

use crate::fixtures::{at, befriend, event, group, send, seqs, system, text, user};
use crate::harness::TestDb;

pub(crate) async fn append_is_gap_free_under_concurrency(db: &TestDb) {
    let store = Arc::new(db.store.clone());
    let (a, b) = (user(&*store, "ali", "Ali").await, user(&*store, "bob", "Bob").await);
    let direct = befriend(&*store, &a, &b, at(0)).await;

    let mut tasks = Vec::new();
    for i in 0..100 {
        let store = Arc::clone(&store);
        let sender = if i % 2 == 0 { a.clone() } else { b.clone() };
        let direct = direct.clone();
        tasks.push(tokio::spawn(async move {
            let message = text(&direct, &sender, &format!("m{i}"), at(i));
            store.append(NewEntry { message, effect: Effect::None }).await
        }));
    }
    let mut assigned = Vec::new();
    for task in tasks {
        match task.await.expect("task").expect("append") {
            AppendOutcome::Appended(message) => assigned.push(message.seq),
            other => panic!("expected Appended, got {other:?}"),
        }
    }
    assigned.sort();
    assert_eq!(assigned, (1..=100).map(Seq::new).collect::<Vec<_>>());
    let stored = store.messages_after(&direct, Seq::ZERO, Seq::ZERO, 200).await.expect("page");
    assert_eq!(seqs(&stored), (1..=100).collect::<Vec<_>>());
    assert_eq!(store.conversation(&direct).await.expect("get").expect("exists").last_seq, Seq::new(100));
    // Each sender's marker is at their own newest entry.
    for user in [&a, &b] {
        let newest = stored.iter().filter(|m| m.sender_id == user.id).map(|m| m.seq).max().expect("sent some");
        let member = store.member(&direct, &user.id).await.expect("member").expect("member");
        assert_eq!(member.read_seq, newest);
    }
}

/// Many conversations appended to at once (PostgreSQL batches these into shared statements;
/// SQLite commits them together): every conversation stays gap-free, a resend inside a batch is
/// answered with its original, and a dissolved conversation in a batch refuses only its entry.
pub(crate) async fn appends_to_many_conversations_at_once(db: &TestDb) {
    let store = Arc::new(db.store.clone());
    let owner = user(&*store, "many", "Many").await;
    let other = user(&*store, "more", "More").await;
    let mut groups = Vec::new();
    for n in 0..20 {
        groups.push(group(&*store, &format!("g{n}"), &owner, &[&other], at(0)).await.0.id);
    }
    let gone = groups.pop().expect("twenty");
    system(&*store, &gone, &owner, "dissolved", Effect::Dissolve, at(1)).await;
    let mut first = text(&groups[0], &owner, "first", at(2));
    first.client_msg_id = Some("resent".into());
    let first = match store.append(NewEntry { message: first, effect: Effect::None }).await.expect("append") {
        AppendOutcome::Appended(first) => first,
        other => panic!("expected Appended, got {other:?}"),
    };

    let mut tasks = Vec::new();
    for round in 0..10 {
        for (index, conversation) in groups.iter().chain([&gone]).enumerate() {
            let store = Arc::clone(&store);
            let mut message = text(conversation, &owner, &format!("{index}-{round}"), at(10 + round));
            if round == 5 && index == 0 {
                message.client_msg_id = Some("resent".into());
            }
            tasks.push(tokio::spawn(async move { store.append(NewEntry { message, effect: Effect::None }).await }));
        }
    }
    let (mut appended, mut duplicates, mut refused) = (0, Vec::new(), 0);
    for task in tasks {
        match task.await.expect("task").expect("append") {
            AppendOutcome::Appended(_) => appended += 1,
            AppendOutcome::Duplicate(message) => duplicates.push(message),
            AppendOutcome::ConversationGone => refused += 1,
        }
    }
    assert_eq!((appended, refused), (19 * 10 - 1, 10));
    assert_eq!(duplicates, [first]);
    for (index, conversation) in groups.iter().enumerate() {
        // The creation entry and ten sends; group 0 has the entry sent before the burst and one
        // send fewer (the resend).
        let last = 11;
        let stored = store.messages_after(conversation, Seq::ZERO, Seq::ZERO, 100).await.expect("page");
        assert_eq!(seqs(&stored), (1..=last).collect::<Vec<_>>(), "group {index}");
        assert_eq!(store.conversation(conversation).await.expect("get").expect("exists").last_seq, Seq::new(last));
    }
    assert_eq!(store.conversation(&gone).await.expect("get").expect("kept").last_seq, Seq::new(2));
}

pub(crate) async fn append_is_idempotent_per_sender_and_client_id(db: &TestDb) {
    let store = &db.store;
    let (a, b) = (user(store, "cal", "Cal").await, user(store, "dee", "Dee").await);
    let (g, _) = group(store, "g", &a, &[&b], at(0)).await;
    let mut message = text(&g.id, &a, "hello", at(10));
    message.client_msg_id = Some("same".into());
    message.mentions = vec![b.id.clone()];
    message.reply_to = Some(Seq::new(1));
    let first = match store.append(NewEntry { message: message.clone(), effect: Effect::None }).await.expect("append") {
        AppendOutcome::Appended(first) => first,
        other => panic!("expected Appended, got {other:?}"),
    };
    assert_eq!(first, natter_core::model::Message { seq: Seq::new(2), ..message.clone() });

    // The same sender and client id: the original, nothing stored, whatever the new body says.
    let mut resend = text(&g.id, &a, "hello again", at(11));
    resend.client_msg_id = Some("same".into());
    let outcome = store.append(NewEntry { message: resend, effect: Effect::None }).await.expect("append");
    assert_eq!(outcome, AppendOutcome::Duplicate(first.clone()));
    assert_eq!(store.conversation(&g.id).await.expect("get").expect("exists").last_seq, Seq::new(2));
    assert_eq!(store.message_by_client_id(&a.id, "same").await.expect("lookup"), Some(first.clone()));
    assert_eq!(store.message_by_client_id(&b.id, "same").await.expect("lookup"), None);

    // Another sender may use the same client id.
    let mut other = text(&g.id, &b, "hi", at(12));
    other.client_msg_id = Some("same".into());
    let other = match store.append(NewEntry { message: other, effect: Effect::None }).await.expect("append") {
        AppendOutcome::Appended(other) => other,
        outcome => panic!("expected Appended, got {outcome:?}"),
    };
    assert_eq!(other.seq, Seq::new(3));
    // Entries without a client id (events) never collide.
    system(store, &g.id, &a, "renamed", Effect::None, at(13)).await;
    system(store, &g.id, &a, "renamed", Effect::None, at(14)).await;
    assert_eq!(store.message_at(&g.id, Seq::new(5)).await.expect("at").expect("stored").client_msg_id, None);
}

pub(crate) async fn concurrent_resends_store_one_entry(db: &TestDb) {
    let store = Arc::new(db.store.clone());
    let (a, b) = (user(&*store, "eli", "Eli").await, user(&*store, "fox", "Fox").await);
    let direct = befriend(&*store, &a, &b, at(0)).await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = Arc::clone(&store);
        let mut message = text(&direct, &a, "once", at(i));
        message.client_msg_id = Some("retry".into());
        tasks.push(tokio::spawn(async move { store.append(NewEntry { message, effect: Effect::None }).await }));
    }
    let mut appended = Vec::new();
    let mut duplicates = Vec::new();
    for task in tasks {
        match task.await.expect("task").expect("append") {
            AppendOutcome::Appended(message) => appended.push(message),
            AppendOutcome::Duplicate(message) => duplicates.push(message),
            AppendOutcome::ConversationGone => panic!("the conversation exists"),
        }
    }
    assert_eq!(appended.len(), 1, "exactly one append stores the entry");
    assert_eq!(duplicates.len(), 19);
    assert!(duplicates.iter().all(|d| d == &appended[0]));
    assert_eq!(store.conversation(&direct).await.expect("get").expect("exists").last_seq, Seq::new(1));
    assert_eq!(seqs(&store.messages_after(&direct, Seq::ZERO, Seq::ZERO, 10).await.expect("page")), [1]);
}

pub(crate) async fn append_to_missing_or_dissolved_conversation(db: &TestDb) {
    let store = &db.store;
    let (a, b) = (user(store, "gil", "Gil").await, user(store, "hu", "Hu").await);
    let missing = text(&ConversationId::from("nope"), &a, "x", at(1));
    let outcome = store.append(NewEntry { message: missing, effect: Effect::None }).await.expect("append");
    assert_eq!(outcome, AppendOutcome::ConversationGone);

    let (g, _) = group(store, "g", &a, &[&b], at(0)).await;
    let last = system(store, &g.id, &a, "dissolved", Effect::Dissolve, at(2)).await;
    assert_eq!(last.seq, Seq::new(2));
    let conversation = store.conversation(&g.id).await.expect("get").expect("kept");
    assert!(conversation.dissolved);
    assert_eq!(store.member_count(&g.id).await.expect("count"), 0);
    let late = text(&g.id, &b, "late", at(3));
    let outcome = store.append(NewEntry { message: late, effect: Effect::None }).await.expect("append");
    assert_eq!(outcome, AppendOutcome::ConversationGone);
    // A refused append takes no seq.
    assert_eq!(store.conversation(&g.id).await.expect("get").expect("kept").last_seq, Seq::new(2));
    assert_eq!(store.message_at(&g.id, Seq::new(3)).await.expect("at"), None);
}

pub(crate) async fn paging_both_ways_with_min_seq(db: &TestDb) {
    let store = &db.store;
    let (a, b) = (user(store, "ida", "Ida").await, user(store, "jo", "Jo").await);
    let (g, _) = group(store, "g", &a, &[&b], at(0)).await;
    for i in 2..=11 {
        send(store, &g.id, if i % 2 == 0 { &a } else { &b }, &format!("m{i}"), at(i)).await;
    }
    let like = Effect::AddReaction { target_seq: Seq::new(5), emoji: "🎉".into() };
    event(store, &g.id, &b, MessageKind::Reaction, Some(Seq::new(5)), like, at(20)).await;
    let id = &g.id;

    assert_eq!(seqs(&store.messages_after(id, Seq::ZERO, Seq::ZERO, 3).await.expect("page")), [1, 2, 3]);
    assert_eq!(seqs(&store.messages_after(id, Seq::new(9), Seq::ZERO, 50).await.expect("page")), [10, 11, 12]);
    assert!(store.messages_after(id, Seq::new(12), Seq::ZERO, 50).await.expect("page").is_empty());
    assert_eq!(seqs(&store.messages_before(id, Seq::new(i64::MAX), Seq::ZERO, 3).await.expect("page")), [12, 11, 10]);
    assert_eq!(seqs(&store.messages_before(id, Seq::new(3), Seq::ZERO, 10).await.expect("page")), [2, 1]);
    assert!(store.messages_before(id, Seq::new(1), Seq::ZERO, 10).await.expect("page").is_empty());
    // min_seq hides what came before a member joined.
    assert_eq!(seqs(&store.messages_after(id, Seq::ZERO, Seq::new(5), 3).await.expect("page")), [5, 6, 7]);
    assert_eq!(seqs(&store.messages_before(id, Seq::new(7), Seq::new(5), 10).await.expect("page")), [6, 5]);
    assert!(store.messages_before(id, Seq::new(5), Seq::new(5), 10).await.expect("page").is_empty());
    assert!(
        store.messages_after(&ConversationId::from("nope"), Seq::ZERO, Seq::ZERO, 10).await.expect("page").is_empty()
    );

    // Pages carry the current reactions, and equal single reads.
    let page = store.messages_after(id, Seq::new(3), Seq::ZERO, 4).await.expect("page");
    let five = page.iter().find(|m| m.seq == Seq::new(5)).expect("in page");
    assert_eq!(five.reactions, vec![("🎉".to_owned(), b.id.clone())]);
    assert!(page.iter().filter(|m| m.seq != Seq::new(5)).all(|m| m.reactions.is_empty()));
    for message in &page {
        assert_eq!(store.message_at(id, message.seq).await.expect("at").as_ref(), Some(message));
    }
    assert_eq!(store.message_at(id, Seq::new(99)).await.expect("at"), None);
}

pub(crate) async fn mark_read_never_moves_back(db: &TestDb) {
    let store = &db.store;
    let (a, b, c) = (user(store, "kim", "Kim").await, user(store, "lu", "Lu").await, user(store, "mo", "Mo").await);
    let (g, _) = group(store, "g", &a, &[&b], at(0)).await;
    for i in 2..=6 {
        send(store, &g.id, &a, &format!("m{i}"), at(i)).await;
    }
    send(store, &g.id, &b, "mine", at(7)).await;
    let event =
        SystemEvent { event: "renamed".into(), actor_id: a.id.clone(), user_ids: vec![], name: None, role: None };
    let rename = Effect::UpdateConversation { name: Some("h".into()), announcement: None, avatar: None };
    let renamed = natter_core::store::system_message(g.id.clone(), event, at(8));
    store.append(NewEntry { message: renamed, effect: rename }).await.expect("append");
    // b: seq 7 is b's own (b's marker moved there); 8 is a system entry. Nothing unread.
    assert_eq!(store.member(&g.id, &b.id).await.expect("member").expect("member").read_seq, Seq::new(7));

    assert_eq!(store.mark_read(&g.id, &b.id, Seq::new(3)).await.expect("read"), Some((Seq::new(7), 0)));
    // a's view: marker at 8 (own entry); moving back is refused.
    assert_eq!(store.mark_read(&g.id, &a.id, Seq::new(2)).await.expect("read"), Some((Seq::new(8), 0)));

    let (h, _) = group(store, "h", &a, &[&c], at(10)).await;
    for i in 2..=6 {
        send(store, &h.id, &a, &format!("n{i}"), at(10 + i)).await;
    }
    assert_eq!(store.mark_read(&h.id, &c.id, Seq::new(3)).await.expect("read"), Some((Seq::new(3), 3)));
    assert_eq!(store.mark_read(&h.id, &c.id, Seq::new(2)).await.expect("read"), Some((Seq::new(3), 3)));
    // Past the end: the marker stops at last_seq.
    assert_eq!(store.mark_read(&h.id, &c.id, Seq::new(1000)).await.expect("read"), Some((Seq::new(6), 0)));
    assert_eq!(store.member(&h.id, &c.id).await.expect("member").expect("member").read_seq, Seq::new(6));
    assert_eq!(store.mark_read(&h.id, &b.id, Seq::new(3)).await.expect("read"), None);
    assert_eq!(store.mark_read(&ConversationId::from("nope"), &a.id, Seq::new(3)).await.expect("read"), None);
}

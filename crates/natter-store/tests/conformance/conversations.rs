use natter_core::ids::{ConversationId, Seq, UserId};
use natter_core::model::{ConversationSummary, MemberRole, MessageKind, SystemEvent};
use natter_core::store::prelude::*;
use natter_core::store::{Effect, StoreError};

use crate::fixtures::{at, befriend, event, group, member, send, system, text, user};
use crate::harness::TestDb;

pub(crate) async fn create_group_stores_the_first_entry(db: &TestDb) {
    let store = &db.store;
    let (o, p, q) =
        (user(store, "olga", "Olga").await, user(store, "pete", "Pete").await, user(store, "quin", "Quin").await);
    let (conversation, first) = group(store, "team", &o, &[&p, &q], at(10)).await;

    assert_eq!((first.seq, first.kind, &first.conversation_id), (Seq::new(1), MessageKind::System, &conversation.id));
    let expected_event = SystemEvent {
        event: "group_created".into(),
        actor_id: o.id.clone(),
        user_ids: vec![p.id.clone(), q.id.clone()],
        name: Some("team".into()),
        role: None,
    };
    assert_eq!(first.system, Some(expected_event));
    assert_eq!(first.sender_id, o.id);
    assert_eq!(store.message_at(&conversation.id, Seq::new(1)).await.expect("at"), Some(first.clone()));
    assert_eq!(store.conversation(&conversation.id).await.expect("get"), Some(conversation.clone()));

    let members = store.members(&conversation.id).await.expect("members");
    let mut plain = vec![p.id.clone(), q.id.clone()];
    plain.sort();
    let order: Vec<UserId> = members.iter().map(|m| m.user_id.clone()).collect();
    assert_eq!(order, [vec![o.id.clone()], plain.clone()].concat());
    assert_eq!(members[0].role, MemberRole::Owner);
    assert!(members[1..].iter().all(|m| m.role == MemberRole::Member));
    assert!(
        members
            .iter()
            .all(|m| m.joined_seq == Seq::ZERO && m.read_seq == Seq::new(1) && m.joined_at == at(10) && !m.muted)
    );
    let mut ids = store.member_ids(&conversation.id).await.expect("ids");
    ids.sort();
    let mut all = vec![o.id.clone(), p.id.clone(), q.id.clone()];
    all.sort();
    assert_eq!(ids, all);
    assert_eq!(store.member_count(&conversation.id).await.expect("count"), 3);
    assert_eq!(
        store.member(&conversation.id, &p.id).await.expect("member"),
        Some(members[1..].iter().find(|m| m.user_id == p.id).expect("p").clone())
    );
    assert_eq!(store.member(&conversation.id, &UserId::from("nobody")).await.expect("member"), None);

    // All or nothing: an unknown member fails the whole creation.
    let mut broken = conversation.clone();
    broken.id = ConversationId::generate();
    let ghost = natter_core::model::User { id: UserId::from("ghost"), ..p.clone() };
    let members =
        [member(&broken.id, &o, MemberRole::Owner, at(20)), member(&broken.id, &ghost, MemberRole::Member, at(20))];
    let result = store.create_group(&broken, &members, &text(&broken.id, &o, "x", at(20))).await;
    assert!(matches!(result, Err(StoreError::Backend(_))), "{result:?}");
    assert_eq!(store.conversation(&broken.id).await.expect("get"), None);
    assert_eq!(store.member_count(&broken.id).await.expect("count"), 0);
}

fn find<'a>(list: &'a [ConversationSummary], id: &ConversationId) -> &'a ConversationSummary {
    list.iter().find(|s| &s.conversation.id == id).expect("listed")
}

fn order(list: &[ConversationSummary]) -> Vec<ConversationId> {
    list.iter().map(|s| s.conversation.id.clone()).collect()
}

pub(crate) async fn conversations_of_orders_counts_and_shows_last_message(db: &TestDb) {
    let store = &db.store;
    let (a, b, c) = (user(store, "abe", "Abe").await, user(store, "bea", "Bea").await, user(store, "cy", "Cy").await);
    let (g1, _) = group(store, "one", &a, &[&b], at(10)).await;
    let direct = befriend(store, &a, &b, at(20)).await;
    let (g2, g2_first) = group(store, "two", &c, &[&a], at(30)).await;
    send(store, &g1.id, &a, "mine", at(40)).await;
    send(store, &g1.id, &b, "b1", at(41)).await;
    let b2 = send(store, &g1.id, &b, "b2", at(42)).await;
    let hello = send(store, &direct, &b, "hello", at(50)).await;
    let like = Effect::AddReaction { target_seq: Seq::new(1), emoji: "👍".into() };
    event(store, &direct, &b, MessageKind::Reaction, Some(Seq::new(1)), like, at(51)).await;
    let (gone, _) = group(store, "gone", &a, &[&b], at(60)).await;
    system(store, &gone.id, &a, "dissolved", Effect::Dissolve, at(61)).await;

    let list = store.conversations_of(&a.id).await.expect("list");
    assert_eq!(order(&list), [direct.clone(), g1.id.clone(), g2.id.clone()]);
    let d = find(&list, &direct);
    assert_eq!((d.me.user_id.clone(), d.member_count, d.unread_count), (a.id.clone(), 2, 1));
    assert_eq!(d.conversation.last_seq, Seq::new(2));
    assert_eq!(d.conversation.updated_at, at(51));
    assert_eq!(d.peer.as_ref(), Some(&b));
    let last = d.last_message.as_ref().expect("a last message");
    assert_eq!(last, &natter_core::model::Message { reactions: vec![("👍".into(), b.id.clone())], ..hello.clone() });
    let one = find(&list, &g1.id);
    assert_eq!((one.member_count, one.unread_count, one.me.read_seq, one.peer.clone()), (2, 2, Seq::new(2), None));
    assert_eq!(one.last_message.as_ref(), Some(&b2));
    let two = find(&list, &g2.id);
    assert_eq!((two.unread_count, two.last_message.as_ref()), (0, Some(&g2_first)));
    assert_eq!(two.me.role, MemberRole::Member);

    // An edit is not unread and not the last message, but the last message shows it.
    let edit = Effect::Edit { target_seq: b2.seq, text: "b2!".into() };
    event(store, &g1.id, &b, MessageKind::Edit, Some(b2.seq), edit, at(70)).await;
    let list = store.conversations_of(&a.id).await.expect("list");
    assert_eq!(order(&list), [g1.id.clone(), direct.clone(), g2.id.clone()]);
    let one = find(&list, &g1.id);
    assert_eq!(one.unread_count, 2);
    let last = one.last_message.as_ref().expect("last");
    assert_eq!((last.seq, last.text.as_deref(), last.edited_at), (b2.seq, Some("b2!"), Some(at(70))));

    // A recalled message is no longer unread.
    event(store, &g1.id, &b, MessageKind::Recall, Some(b2.seq), Effect::Recall { target_seq: b2.seq }, at(75)).await;
    let list = store.conversations_of(&a.id).await.expect("list");
    assert_eq!(find(&list, &g1.id).unread_count, 1);
    let (_, unread) = store.mark_read(&g1.id, &a.id, Seq::ZERO).await.expect("mark read").expect("a member");
    assert_eq!(unread, 1, "mark_read's unread count leaves the recalled message out too");

    // A member who joins later sees the entry that added them as the last message.
    let joined = system(
        store,
        &g1.id,
        &a,
        "members_added",
        Effect::AddMembers(vec![member(&g1.id, &c, MemberRole::Member, at(80))]),
        at(80),
    )
    .await;
    let list = store.conversations_of(&c.id).await.expect("list");
    assert_eq!(order(&list), [g1.id.clone(), g2.id.clone()]);
    let one = find(&list, &g1.id);
    assert_eq!(
        (one.me.joined_seq, one.me.read_seq, one.unread_count, one.member_count),
        (joined.seq, joined.seq, 0, 3)
    );
    assert_eq!(one.last_message.as_ref(), Some(&joined));

    assert!(store.conversations_of(&UserId::from("nobody")).await.expect("list").is_empty());
}

pub(crate) async fn summary_and_mute(db: &TestDb) {
    let store = &db.store;
    let (a, b, c) = (user(store, "ada", "Ada").await, user(store, "bo", "Bo").await, user(store, "cid", "Cid").await);
    let (g, _) = group(store, "g", &a, &[&b], at(10)).await;
    let direct = befriend(store, &a, &c, at(20)).await;
    send(store, &g.id, &b, "hi", at(30)).await;

    let list = store.conversations_of(&a.id).await.expect("list");
    for id in [&g.id, &direct] {
        assert_eq!(store.summary(id, &a.id).await.expect("summary").as_ref(), Some(find(&list, id)));
    }
    let d = store.summary(&direct, &c.id).await.expect("summary").expect("member");
    assert_eq!((d.peer.as_ref(), d.last_message.as_ref(), d.unread_count), (Some(&a), None, 0));
    assert_eq!(store.summary(&g.id, &c.id).await.expect("summary"), None);
    assert_eq!(store.summary(&ConversationId::from("nope"), &a.id).await.expect("summary"), None);

    store.set_muted(&g.id, &a.id, true).await.expect("mute");
    assert!(store.summary(&g.id, &a.id).await.expect("summary").expect("member").me.muted);
    assert!(store.member(&g.id, &a.id).await.expect("member").expect("member").muted);
    assert!(!store.member(&g.id, &b.id).await.expect("member").expect("member").muted);
    store.set_muted(&g.id, &a.id, false).await.expect("unmute");
    assert!(!store.summary(&g.id, &a.id).await.expect("summary").expect("member").me.muted);
}

use natter_core::ids::{FriendRequestId, Seq};
use natter_core::model::{ConversationKind, FriendRequestStatus, MemberRole, User};
use natter_core::store::prelude::*;
use natter_core::store::{Effect, RequestDirection, StoreError};

use crate::fixtures::{at, befriend, friend_request, new_direct, send, system, user};
use crate::harness::TestDb;

fn usernames(users: &[User]) -> Vec<&str> {
    users.iter().map(|u| u.username.as_str()).collect()
}

pub(crate) async fn friend_request_lifecycle(db: &TestDb) {
    let store = &db.store;
    let (a, b, c) = (user(store, "ann", "Ann").await, user(store, "ben", "Ben").await, user(store, "cat", "Cat").await);

    let first = friend_request(&a, &b, at(10));
    store.create_friend_request(&first).await.expect("create");
    assert_eq!(store.friend_request(&first.id).await.expect("get"), Some(first.clone()));
    assert_eq!(store.friend_request(&FriendRequestId::from("nope")).await.expect("get"), None);
    // One pending request per pair, whichever way.
    for (from, to) in [(&a, &b), (&b, &a)] {
        let again = store.create_friend_request(&friend_request(from, to, at(11))).await;
        assert!(matches!(again, Err(StoreError::Conflict("friend_request"))), "{again:?}");
    }
    assert_eq!(store.pending_request_between(&b.id, &a.id).await.expect("between"), Some(first.clone()));
    assert_eq!(store.pending_request_between(&a.id, &c.id).await.expect("between"), None);

    let rejected = store
        .close_friend_request(&first.id, FriendRequestStatus::Rejected, at(20))
        .await
        .expect("close")
        .expect("was pending");
    assert_eq!(
        (rejected.status, rejected.updated_at, rejected.created_at),
        (FriendRequestStatus::Rejected, at(20), at(10))
    );
    assert_eq!(
        store.close_friend_request(&first.id, FriendRequestStatus::Cancelled, at(21)).await.expect("close"),
        None
    );
    assert_eq!(store.pending_request_between(&a.id, &b.id).await.expect("between"), None);

    // Closed requests stay listed; newest first.
    let second = friend_request(&b, &a, at(30));
    store.create_friend_request(&second).await.expect("create after close");
    let third = friend_request(&c, &a, at(40));
    store.create_friend_request(&third).await.expect("create");
    let incoming = store.friend_requests_of(&a.id, RequestDirection::Incoming).await.expect("incoming");
    assert_eq!(incoming.iter().map(|r| r.id.clone()).collect::<Vec<_>>(), [third.id.clone(), second.id.clone()]);
    let outgoing = store.friend_requests_of(&a.id, RequestDirection::Outgoing).await.expect("outgoing");
    assert_eq!(outgoing, vec![rejected]);

    let cancelled = store
        .close_friend_request(&third.id, FriendRequestStatus::Cancelled, at(41))
        .await
        .expect("close")
        .expect("pending");
    assert_eq!(cancelled.status, FriendRequestStatus::Cancelled);
    assert!(store.accept_friend_request(&third.id, &new_direct(at(42)), at(42)).await.expect("accept").is_none());
    assert!(!store.are_friends(&a.id, &c.id).await.expect("friends?"));
}

pub(crate) async fn accept_creates_the_direct_conversation_and_revives_it(db: &TestDb) {
    let store = &db.store;
    let (a, b) = (user(store, "dan", "Dan").await, user(store, "eve", "Eve").await);
    let request = friend_request(&a, &b, at(10));
    store.create_friend_request(&request).await.expect("create");
    let proposed = new_direct(at(20));
    let (accepted, conversation_id) =
        store.accept_friend_request(&request.id, &proposed, at(20)).await.expect("accept").expect("pending");
    assert_eq!(conversation_id, proposed.id);
    assert_eq!((accepted.status, accepted.updated_at), (FriendRequestStatus::Accepted, at(20)));
    assert!(store.accept_friend_request(&request.id, &new_direct(at(21)), at(21)).await.expect("accept").is_none());

    assert!(store.are_friends(&a.id, &b.id).await.expect("friends?"));
    assert!(store.are_friends(&b.id, &a.id).await.expect("friends?"));
    let friends = store.friends_of(&a.id).await.expect("friends");
    assert_eq!(friends.len(), 1);
    assert_eq!((&friends[0].user, friends[0].since, &friends[0].conversation_id), (&b, at(20), &conversation_id));

    let conversation = store.direct_conversation(&b.id, &a.id).await.expect("direct").expect("exists");
    assert_eq!(conversation, proposed);
    assert_eq!(conversation.kind, ConversationKind::Direct);
    let members = store.members(&conversation_id).await.expect("members");
    assert_eq!(members.len(), 2);
    assert!(
        members.iter().all(|m| m.role == MemberRole::Member && m.joined_seq == Seq::ZERO && m.read_seq == Seq::ZERO)
    );

    // Removing the friendship keeps the conversation; accepting again revives the same one.
    send(store, &conversation_id, &a, "one", at(30)).await;
    send(store, &conversation_id, &a, "two", at(31)).await;
    assert!(store.remove_friendship(&b.id, &a.id).await.expect("remove"));
    assert!(!store.remove_friendship(&a.id, &b.id).await.expect("remove again"));
    assert!(!store.are_friends(&a.id, &b.id).await.expect("friends?"));
    assert!(store.friends_of(&b.id).await.expect("friends").is_empty());
    // Even a member who is gone from it is brought back, with what was there read.
    system(store, &conversation_id, &b, "member_left", Effect::RemoveMember(b.id.clone()), at(32)).await;
    assert_eq!(store.member_ids(&conversation_id).await.expect("ids"), vec![a.id.clone()]);

    let conversation_id_again = befriend(store, &b, &a, at(40)).await;
    assert_eq!(conversation_id_again, conversation_id);
    let back = store.member(&conversation_id, &b.id).await.expect("member").expect("member again");
    assert_eq!((back.read_seq, back.joined_seq, back.role), (Seq::new(3), Seq::ZERO, MemberRole::Member));
    // A member who stayed keeps their marker.
    assert_eq!(store.member(&conversation_id, &a.id).await.expect("member").expect("member").read_seq, Seq::new(2));
    assert_eq!(store.friends_of(&b.id).await.expect("friends")[0].conversation_id, conversation_id);
    assert_eq!(store.conversation(&conversation_id).await.expect("get").expect("exists").last_seq, Seq::new(3));
}

pub(crate) async fn blocks_end_friendship_and_cancel_requests(db: &TestDb) {
    let store = &db.store;
    let (a, b, c) = (user(store, "fay", "Fay").await, user(store, "gus", "Gus").await, user(store, "hal", "Hal").await);
    let direct = befriend(store, &a, &b, at(10)).await;
    let peer = |user: &natter_core::model::User, friends, blocked| natter_core::store::DirectPeer {
        user: user.id.clone(),
        friends,
        blocked,
    };
    assert_eq!(peer_of(store, &direct, &a).await, Some(peer(&b, true, false)));
    assert_eq!(peer_of(store, &direct, &b).await, Some(peer(&a, true, false)));
    let pending = friend_request(&c, &a, at(20));
    store.create_friend_request(&pending).await.expect("create");

    store.block_user(&a.id, &b.id, at(30)).await.expect("block");
    // The pair stay members of their direct conversation; the send rules see the block.
    assert_eq!(peer_of(store, &direct, &b).await, Some(peer(&a, false, true)));
    store.block_user(&a.id, &b.id, at(31)).await.expect("block is idempotent");
    assert!(!store.are_friends(&a.id, &b.id).await.expect("friends?"));
    assert!(!store.are_friends(&b.id, &a.id).await.expect("friends?"));
    assert!(store.is_blocked_between(&b.id, &a.id).await.expect("blocked?"));
    assert!(store.is_blocked_between(&a.id, &b.id).await.expect("blocked?"));
    assert!(!store.is_blocked_between(&a.id, &c.id).await.expect("blocked?"));

    store.block_user(&a.id, &c.id, at(40)).await.expect("block");
    let cancelled = store.friend_request(&pending.id).await.expect("get").expect("exists");
    assert_eq!((cancelled.status, cancelled.updated_at), (FriendRequestStatus::Cancelled, at(40)));
    assert_eq!(usernames(&store.blocked_by(&a.id).await.expect("blocked")), ["hal", "gus"]);
    assert!(store.blocked_by(&b.id).await.expect("blocked").is_empty());

    assert!(store.unblock_user(&a.id, &b.id).await.expect("unblock"));
    assert!(!store.unblock_user(&a.id, &b.id).await.expect("unblock again"));
    assert!(!store.is_blocked_between(&a.id, &b.id).await.expect("blocked?"));
    // Unblocking does not restore the friendship.
    assert!(!store.are_friends(&a.id, &b.id).await.expect("friends?"));
    assert_eq!(peer_of(store, &direct, &a).await, Some(peer(&b, false, false)));
}

/// `me`'s peer in `direct` by `direct_peer`, checked against `send_context`, which must answer
/// the same peer with the conversation and `me`'s membership.
async fn peer_of(
    store: &impl natter_core::store::Store,
    direct: &natter_core::ids::ConversationId,
    me: &natter_core::model::User,
) -> Option<natter_core::store::DirectPeer> {
    let peer = store.direct_peer(direct, &me.id).await.expect("peer");
    let (conversation, member, context_peer) =
        store.send_context(direct, &me.id).await.expect("context").expect("a member");
    assert_eq!((&conversation.id, &member.user_id), (direct, &me.id));
    assert_eq!(context_peer, peer, "send_context's peer");
    peer
}

pub(crate) async fn send_context_of_groups_and_strangers(db: &TestDb) {
    let store = &db.store;
    let (a, b, c) = (user(store, "ivy", "Ivy").await, user(store, "jay", "Jay").await, user(store, "kit", "Kit").await);
    let (g, _) = crate::fixtures::group(store, "g", &a, &[&b], at(0)).await;
    let (conversation, member, peer) = store.send_context(&g.id, &b.id).await.expect("context").expect("a member");
    assert_eq!(
        (conversation, member.user_id, peer),
        (store.conversation(&g.id).await.expect("get").expect("exists"), b.id.clone(), None)
    );
    assert_eq!(store.send_context(&g.id, &c.id).await.expect("context"), None, "not a member");
    let direct = befriend(store, &a, &b, at(10)).await;
    assert_eq!(store.send_context(&direct, &c.id).await.expect("context"), None, "not a member");
    assert!(peer_of(store, &direct, &a).await.is_some_and(|peer| peer.user == b.id && peer.friends));
}

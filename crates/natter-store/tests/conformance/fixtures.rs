//! Builders for the rows the tests need. Times are whole seconds from a fixed base, so they
//! survive the stores' millisecond precision unchanged and order deterministically.

use chrono::DateTime;
use natter_core::ids::{ConversationId, FriendRequestId, Seq, UserId};
use natter_core::model::{
    Conversation, ConversationKind, FriendRequest, FriendRequestStatus, Member, MemberRole, Message, MessageKind,
    SystemEvent, Time, User, UserRole,
};
use natter_core::store::prelude::*;
use natter_core::store::{AppendOutcome, Effect, NewEntry, NewUser, blank_message, system_message};

/// `seconds` after a fixed instant.
pub(crate) fn at(seconds: i64) -> Time {
    DateTime::from_timestamp(1_700_000_000 + seconds, 0).expect("a valid time")
}

pub(crate) async fn user(store: &dyn Store, username: &str, nickname: &str) -> User {
    let user = User {
        id: UserId::generate(),
        username: username.to_owned(),
        nickname: nickname.to_owned(),
        bio: String::new(),
        avatar: None,
        role: UserRole::User,
        created_at: at(0),
        disabled: false,
    };
    store.create_user(NewUser { user, password_hash: format!("hash-of-{username}") }).await.expect("create user")
}

pub(crate) fn friend_request(from: &User, to: &User, when: Time) -> FriendRequest {
    FriendRequest {
        id: FriendRequestId::generate(),
        from_user: from.id.clone(),
        to_user: to.id.clone(),
        message: format!("hi from {}", from.username),
        status: FriendRequestStatus::Pending,
        created_at: when,
        updated_at: when,
    }
}

pub(crate) fn new_direct(when: Time) -> Conversation {
    Conversation {
        id: ConversationId::generate(),
        kind: ConversationKind::Direct,
        name: String::new(),
        avatar: None,
        owner_id: None,
        announcement: None,
        last_seq: Seq::ZERO,
        created_at: when,
        updated_at: when,
        dissolved: false,
    }
}

/// `a` asks, `b` accepts: returns their direct conversation.
pub(crate) async fn befriend(store: &dyn Store, a: &User, b: &User, when: Time) -> ConversationId {
    let request = friend_request(a, b, when);
    store.create_friend_request(&request).await.expect("create request");
    let (_, conversation) = store
        .accept_friend_request(&request.id, &new_direct(when), when)
        .await
        .expect("accept request")
        .expect("the request was pending");
    conversation
}

pub(crate) fn member(conversation: &ConversationId, user: &User, role: MemberRole, when: Time) -> Member {
    Member {
        conversation_id: conversation.clone(),
        user_id: user.id.clone(),
        role,
        joined_at: when,
        joined_seq: Seq::ZERO,
        read_seq: Seq::ZERO,
        muted: false,
    }
}

/// A group owned by `owner` with `others` as plain members; returns it and its first entry.
pub(crate) async fn group(
    store: &dyn Store,
    name: &str,
    owner: &User,
    others: &[&User],
    when: Time,
) -> (Conversation, Message) {
    let conversation = Conversation {
        id: ConversationId::generate(),
        kind: ConversationKind::Group,
        name: name.to_owned(),
        avatar: None,
        owner_id: Some(owner.id.clone()),
        announcement: Some("welcome".to_owned()),
        last_seq: Seq::FIRST,
        created_at: when,
        updated_at: when,
        dissolved: false,
    };
    let mut members = vec![member(&conversation.id, owner, MemberRole::Owner, when)];
    members.extend(others.iter().map(|u| member(&conversation.id, u, MemberRole::Member, when)));
    let event = SystemEvent {
        event: "group_created".into(),
        actor_id: owner.id.clone(),
        user_ids: others.iter().map(|u| u.id.clone()).collect(),
        name: Some(name.to_owned()),
        role: None,
    };
    let first = system_message(conversation.id.clone(), event, when);
    let stored = store.create_group(&conversation, &members, &first).await.expect("create group");
    (conversation, stored)
}

pub(crate) fn text(conversation: &ConversationId, sender: &User, body: &str, when: Time) -> Message {
    let mut message = blank_message(conversation.clone(), sender.id.clone(), MessageKind::Text, when);
    message.text = Some(body.to_owned());
    message.client_msg_id = Some(format!("c-{}", message.id));
    message
}

pub(crate) async fn append(store: &dyn Store, message: Message, effect: Effect) -> Message {
    match store.append(NewEntry { message, effect }).await.expect("append") {
        AppendOutcome::Appended(message) => message,
        other => panic!("expected Appended, got {other:?}"),
    }
}

/// Appends a text message and returns it as stored.
pub(crate) async fn send(
    store: &dyn Store,
    conversation: &ConversationId,
    sender: &User,
    body: &str,
    when: Time,
) -> Message {
    append(store, text(conversation, sender, body, when), Effect::None).await
}

/// Appends an event entry of `kind` about `target_seq` with `effect`.
pub(crate) async fn event(
    store: &dyn Store,
    conversation: &ConversationId,
    sender: &User,
    kind: MessageKind,
    target_seq: Option<Seq>,
    effect: Effect,
    when: Time,
) -> Message {
    let mut message = blank_message(conversation.clone(), sender.id.clone(), kind, when);
    message.target_seq = target_seq;
    append(store, message, effect).await
}

/// Appends a `system` entry with `effect`.
pub(crate) async fn system(
    store: &dyn Store,
    conversation: &ConversationId,
    actor: &User,
    name: &str,
    effect: Effect,
    when: Time,
) -> Message {
    let event =
        SystemEvent { event: name.to_owned(), actor_id: actor.id.clone(), user_ids: vec![], name: None, role: None };
    append(store, system_message(conversation.clone(), event, when), effect).await
}

pub(crate) fn seqs(messages: &[Message]) -> Vec<i64> {
    messages.iter().map(|m| m.seq.get()).collect()
}

//! Explicit conversions from domain types to wire types (natter-proto).

use natter_proto as proto;

use crate::ids::Seq;
use crate::model::{ConversationKind, ConversationSummary, FileRecord, FriendRequest, Member, Message, Session, User};

pub fn user_view(user: &User) -> proto::UserView {
    proto::UserView {
        id: user.id.0.clone(),
        username: user.username.clone(),
        nickname: user.nickname.clone(),
        bio: user.bio.clone(),
        avatar: user.avatar.clone(),
        role: user.role.as_str().to_owned(),
        created_at: user.created_at,
    }
}

pub fn session_view(session: &Session, current: &crate::ids::SessionId) -> proto::SessionView {
    proto::SessionView {
        id: session.id.0.clone(),
        device_name: session.device_name.clone(),
        created_at: session.created_at,
        last_used_at: session.last_used_at,
        current: &session.id == current,
    }
}

pub fn message_view(message: &Message) -> proto::MessageView {
    let mut reactions: Vec<proto::ReactionSummary> = Vec::new();
    for (emoji, user) in &message.reactions {
        match reactions.iter_mut().find(|r| &r.emoji == emoji) {
            Some(summary) => {
                summary.count += 1;
                summary.user_ids.push(user.0.clone());
            }
            None => reactions.push(proto::ReactionSummary {
                emoji: emoji.clone(),
                count: 1,
                user_ids: vec![user.0.clone()],
            }),
        }
    }
    proto::MessageView {
        id: message.id.0.clone(),
        conversation_id: message.conversation_id.0.clone(),
        seq: message.seq.get(),
        sender_id: message.sender_id.0.clone(),
        kind: message.kind.as_str().to_owned(),
        client_msg_id: message.client_msg_id.clone(),
        text: message.text.clone(),
        file_id: message.file_id.clone(),
        file: message.file.as_ref().filter(|_| !message.recalled).map(file_view),
        reply_to: message.reply_to.map(Seq::get),
        mentions: message.mentions.iter().map(|id| id.0.clone()).collect(),
        target_seq: message.target_seq.map(Seq::get),
        emoji: message.emoji.clone(),
        op: message.op.clone(),
        system: message.system.as_ref().map(|event| proto::SystemEvent {
            event: event.event.clone(),
            actor_id: event.actor_id.0.clone(),
            user_ids: event.user_ids.iter().map(|id| id.0.clone()).collect(),
            name: event.name.clone(),
            role: event.role.clone(),
        }),
        edited_at: message.edited_at,
        recalled: message.recalled,
        transcript: message.transcript.clone(),
        reactions,
        created_at: message.created_at,
    }
}

pub fn file_view(file: &FileRecord) -> proto::FileView {
    proto::FileView {
        id: file.id.0.clone(),
        name: file.name.clone(),
        mime: file.mime.clone(),
        size: file.size,
        sha256: file.sha256.clone(),
        width: file.width,
        height: file.height,
        duration_ms: file.duration_ms,
        thumbnail_id: file.thumbnail_id.as_ref().map(|id| id.0.clone()),
        created_at: file.created_at,
    }
}

pub fn conversation_view(summary: &ConversationSummary) -> proto::ConversationView {
    let conversation = &summary.conversation;
    let name = match (conversation.kind, &summary.peer) {
        (ConversationKind::Direct, Some(peer)) => peer.nickname.clone(),
        _ => conversation.name.clone(),
    };
    proto::ConversationView {
        id: conversation.id.0.clone(),
        kind: conversation.kind.as_str().to_owned(),
        name,
        avatar: conversation.avatar.clone(),
        owner_id: conversation.owner_id.as_ref().map(|id| id.0.clone()),
        announcement: conversation.announcement.clone(),
        member_count: summary.member_count,
        last_seq: conversation.last_seq.get(),
        read_seq: summary.me.read_seq.get(),
        unread_count: summary.unread_count,
        last_message: summary.last_message.as_ref().map(message_view),
        role: summary.me.role.as_str().to_owned(),
        muted: summary.me.muted,
        peer: summary.peer.as_ref().map(user_view),
        created_at: conversation.created_at,
        updated_at: conversation.updated_at,
    }
}

pub fn member_view(member: &Member, user: &User) -> proto::MemberView {
    proto::MemberView {
        user: user_view(user),
        role: member.role.as_str().to_owned(),
        joined_at: member.joined_at,
        read_seq: member.read_seq.get(),
    }
}

pub fn friend_request_view(request: &FriendRequest, from: &User, to: &User) -> proto::FriendRequestView {
    proto::FriendRequestView {
        id: request.id.0.clone(),
        from_user: user_view(from),
        to_user: user_view(to),
        message: request.message.clone(),
        status: request.status.as_str().to_owned(),
        created_at: request.created_at,
        updated_at: request.updated_at,
    }
}

/// Where an entry sits in its conversation's log, for ordered delivery.
pub fn position(message: &Message) -> crate::bus::LogPosition {
    crate::bus::LogPosition::new(message.conversation_id.clone(), message.seq)
}

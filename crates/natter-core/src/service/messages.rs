//! The message log: send (idempotent by `client_msg_id`), history, read markers, edits,
//! recalls, reactions and typing.

use std::collections::HashMap;
use std::time::Duration;

use natter_proto::ServerFrame;
use parking_lot::Mutex;
use tokio::time::Instant;

use super::conversations::require_role;
use super::files::owned_file;
use super::log::Recipients;
use super::{Deps, is_group, rules, throttle};
use crate::error::{DomainError, DomainResult, ErrorCode, Thing};
use crate::ids::{ConversationId, Seq, UserId};
use crate::model::{Conversation, FileRecord, Member, MemberRole, Message, MessageKind};
use crate::store::{AppendOutcome, DirectPeer, Effect, NewEntry, blank_message};

pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 200;

/// At most one `typing` relay per user and conversation within this time. Clients repeat
/// "typing" every few seconds while the user types (the web client every 3 s), so nothing is
/// lost; a client that floods typing frames costs one map lookup per frame and reaches no one.
const TYPING_INTERVAL: Duration = Duration::from_secs(2);

pub struct MessageService {
    deps: Deps,
    typing_relayed: Mutex<HashMap<(UserId, ConversationId), Instant>>,
}

/// A send as asked by a client.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct SendInput {
    pub client_msg_id: String,
    pub kind: String,
    pub text: Option<String>,
    pub file_id: Option<String>,
    pub reply_to: Option<Seq>,
    pub mentions: Vec<UserId>,
}

/// Which way to page through history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Page {
    /// Ascending from just after this seq (sync).
    After(Seq),
    /// Newest first from just before this seq (`None`: from the newest).
    Before(Option<Seq>),
}

/// A send's result: the stored entry, and whether this call stored it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Sent {
    pub message: Message,
    pub created: bool,
}

impl MessageService {
    pub fn new(deps: Deps) -> Self {
        Self { deps, typing_relayed: Mutex::default() }
    }

    pub async fn send(&self, me: &UserId, conversation_id: &ConversationId, input: SendInput) -> DomainResult<Sent> {
        rules::check_client_msg_id(&input.client_msg_id)?;
        let kind = MessageKind::parse(&input.kind)
            .filter(|k| k.is_content())
            .ok_or_else(|| DomainError::invalid(ErrorCode::InvalidKind, "kind must be text, image, file or voice"))?;
        let text = match kind {
            MessageKind::Text => {
                if input.file_id.is_some() {
                    return Err(DomainError::invalid(ErrorCode::UnexpectedFileId, "a text message has no file_id"));
                }
                Some(rules::check_text(input.text.as_deref(), self.deps.limits.max_text_bytes)?)
            }
            // A caption is optional on image, file and voice messages.
            _ => match input.text.as_deref().filter(|t| !t.trim().is_empty()) {
                Some(caption) => Some(rules::check_text(Some(caption), self.deps.limits.max_text_bytes)?),
                None => None,
            },
        };
        let file_id = match (kind, input.file_id.as_deref().filter(|id| !id.is_empty())) {
            (MessageKind::Text, _) => None,
            (_, Some(file_id)) => Some(file_id.to_owned()),
            (_, None) => {
                return Err(DomainError::invalid(
                    ErrorCode::FileRequired,
                    "image, file and voice messages need a file_id",
                ));
            }
        };
        // Counted once a send is well formed: a refused one costs the sender a slot, not the store.
        throttle::admit(
            &*self.deps.throttle,
            format!("send:{me}"),
            self.deps.limits.messages,
            ErrorCode::TooManyMessages,
        )
        .await?;
        let client_msg_id = input.client_msg_id.clone();
        let checked = self.checked_entry(me, conversation_id, kind, text, file_id, input).await;
        let (message, recipients) = match checked {
            Ok(checked) => checked,
            // A resend passes even when a check would now refuse it (the sender left, a friend
            // blocked them), so a retry after a lost ack always works. Looking for it only when a
            // check fails saves every send a query; a resend that passes the checks is answered
            // by the append (the unique index on sender and client_msg_id).
            Err(error) => match self.deps.store.message_by_client_id(me, &client_msg_id).await? {
                Some(existing) => return self.duplicate(existing, conversation_id),
                None => return Err(error),
            },
        };
        match self.deps.log.append(NewEntry { message, effect: Effect::None }, recipients).await? {
            AppendOutcome::Appended(message) => Ok(Sent { message, created: true }),
            AppendOutcome::Duplicate(existing) => self.duplicate(existing, conversation_id),
            AppendOutcome::ConversationGone => Err(DomainError::not_found(Thing::Conversation)),
        }
    }

    pub async fn history(
        &self,
        me: &UserId,
        conversation_id: &ConversationId,
        page: Page,
        limit: Option<u32>,
    ) -> DomainResult<(Vec<Message>, bool)> {
        let (_, member) = self.deps.membership(me, conversation_id).await?;
        let limit = limit.unwrap_or(DEFAULT_PAGE);
        if limit == 0 || limit > MAX_PAGE {
            return Err(DomainError::invalid(ErrorCode::InvalidLimit, format!("limit must be 1-{MAX_PAGE}")));
        }
        let store = &self.deps.store;
        let mut messages = match page {
            Page::After(after) if after < Seq::ZERO => {
                return Err(DomainError::invalid(ErrorCode::InvalidSeq, "after_seq must not be negative"));
            }
            Page::After(after) => store.messages_after(conversation_id, after, member.joined_seq, limit + 1).await?,
            Page::Before(before) => {
                let before = before.unwrap_or(Seq::new(i64::MAX));
                store.messages_before(conversation_id, before, member.joined_seq, limit + 1).await?
            }
        };
        let has_more = messages.len() > limit as usize;
        messages.truncate(limit as usize);
        Ok((messages, has_more))
    }

    /// Moves the caller's read marker; returns the marker in force and the unread count.
    pub async fn mark_read(&self, me: &UserId, conversation_id: &ConversationId, seq: Seq) -> DomainResult<(Seq, i64)> {
        if seq < Seq::ZERO {
            return Err(DomainError::invalid(ErrorCode::InvalidSeq, "seq must not be negative"));
        }
        let (conversation, _) = self.deps.membership(me, conversation_id).await?;
        let (read_seq, unread) = self
            .deps
            .store
            .mark_read(conversation_id, me, seq)
            .await?
            .ok_or(DomainError::not_found(Thing::Conversation))?;
        // Other devices of the reader always hear of it; in a direct chat the peer does too (read
        // receipts), unless one of the pair blocked the other. Groups do not broadcast every
        // member's marker to everyone.
        let recipients = if is_group(&conversation) {
            vec![me.clone()]
        } else {
            match self.deps.store.direct_peer(conversation_id, me).await? {
                Some(peer) if !peer.blocked => vec![me.clone(), peer.user],
                _ => vec![me.clone()],
            }
        };
        let frame = ServerFrame::Read {
            conversation_id: conversation_id.0.clone(),
            user_id: me.0.clone(),
            seq: read_seq.get(),
        };
        self.deps.notifier.publish(recipients, &frame).await;
        Ok((read_seq, unread))
    }

    /// The sender edits their own text message; appends an `edit` entry.
    pub async fn edit(
        &self,
        me: &UserId,
        conversation_id: &ConversationId,
        seq: Seq,
        text: &str,
    ) -> DomainResult<Message> {
        let (conversation, _, target) = self.target(me, conversation_id, seq).await?;
        if &target.sender_id != me {
            return Err(DomainError::forbidden(ErrorCode::Forbidden, "you can only edit your own messages"));
        }
        if !is_group(&conversation) {
            self.check_direct_allowed(me, &conversation).await?;
        }
        if target.kind != MessageKind::Text {
            return Err(DomainError::invalid(ErrorCode::NotEditable, "only text messages can be edited"));
        }
        let text = rules::check_text(Some(text), self.deps.limits.max_text_bytes)?;
        let mut entry = blank_message(conversation_id.clone(), me.clone(), MessageKind::Edit, self.deps.clock.now());
        entry.target_seq = Some(seq);
        entry.text = Some(text.clone());
        self.append_event(entry, Effect::Edit { target_seq: seq, text }).await
    }

    /// The sender, or a group admin or owner, withdraws a message; appends a `recall` entry.
    pub async fn recall(&self, me: &UserId, conversation_id: &ConversationId, seq: Seq) -> DomainResult<Message> {
        let (conversation, member, target) = self.target(me, conversation_id, seq).await?;
        if &target.sender_id != me {
            if !is_group(&conversation) {
                return Err(DomainError::forbidden(ErrorCode::Forbidden, "you can only recall your own messages"));
            }
            require_role(&member, MemberRole::Admin)?;
        }
        let mut entry = blank_message(conversation_id.clone(), me.clone(), MessageKind::Recall, self.deps.clock.now());
        entry.target_seq = Some(seq);
        self.append_event(entry, Effect::Recall { target_seq: seq }).await
    }

    /// Adds or removes the caller's reaction. When nothing changes (already there, or not
    /// there), nothing is appended and the target's current view is returned.
    pub async fn react(
        &self,
        me: &UserId,
        conversation_id: &ConversationId,
        seq: Seq,
        emoji: &str,
        add: bool,
    ) -> DomainResult<Message> {
        rules::check_emoji(emoji)?;
        let (conversation, _, target) = self.target(me, conversation_id, seq).await?;
        if !is_group(&conversation) {
            self.check_direct_allowed(me, &conversation).await?;
        }
        let present = target.reactions.iter().any(|(e, u)| e == emoji && u == me);
        if present == add {
            return Ok(target);
        }
        let mut entry =
            blank_message(conversation_id.clone(), me.clone(), MessageKind::Reaction, self.deps.clock.now());
        entry.target_seq = Some(seq);
        entry.emoji = Some(emoji.to_owned());
        entry.op = Some(if add { "add" } else { "remove" }.to_owned());
        let effect = if add {
            Effect::AddReaction { target_seq: seq, emoji: emoji.to_owned() }
        } else {
            Effect::RemoveReaction { target_seq: seq, emoji: emoji.to_owned() }
        };
        self.append_event(entry, effect).await
    }

    /// Relays "typing" to the other members' online devices, at most once per
    /// [`TYPING_INTERVAL`] per user and conversation. Nothing is stored. In a direct chat of a
    /// blocked (or no longer befriended) pair it reaches no one.
    pub async fn typing(&self, me: &UserId, conversation_id: &ConversationId) -> DomainResult<()> {
        if !self.typing_due(me, conversation_id) {
            return Ok(());
        }
        let (conversation, _) = self.deps.membership(me, conversation_id).await?;
        let others: Vec<UserId> = if is_group(&conversation) {
            self.deps.store.member_ids(conversation_id).await?.into_iter().filter(|u| u != me).collect()
        } else {
            match self.check_direct_allowed(me, &conversation).await {
                Ok(peer) => vec![peer],
                Err(_) => return Ok(()),
            }
        };
        let frame = ServerFrame::Typing { conversation_id: conversation_id.0.clone(), user_id: me.0.clone() };
        self.deps.notifier.publish(others, &frame).await;
        Ok(())
    }

    /// Whether a typing relay for this pair is due, recording it when it is.
    fn typing_due(&self, me: &UserId, conversation_id: &ConversationId) -> bool {
        let now = Instant::now();
        let mut relayed = self.typing_relayed.lock();
        // Bound the map: forget relays older than the interval once it grows.
        if relayed.len() > 10_000 {
            relayed.retain(|_, at| now.duration_since(*at) < TYPING_INTERVAL);
        }
        let key = (me.clone(), conversation_id.clone());
        match relayed.get(&key) {
            Some(at) if now.duration_since(*at) < TYPING_INTERVAL => false,
            _ => {
                relayed.insert(key, now);
                true
            }
        }
    }

    /// The conversation, the caller's membership and a live (not recalled) content entry.
    async fn target(
        &self,
        me: &UserId,
        conversation_id: &ConversationId,
        seq: Seq,
    ) -> DomainResult<(Conversation, Member, Message)> {
        let (conversation, member) = self.deps.membership(me, conversation_id).await?;
        let target = self
            .deps
            .store
            .message_at(conversation_id, seq)
            .await?
            .filter(|m| m.seq >= member.joined_seq && m.kind.is_content())
            .ok_or(DomainError::not_found(Thing::Message))?;
        if target.recalled {
            return Err(DomainError::conflict(ErrorCode::MessageRecalled, "this message was recalled"));
        }
        Ok((conversation, member, target))
    }

    /// Appends an entry about an earlier one (edit, recall, reaction) and pushes it to the members.
    async fn append_event(&self, entry: Message, effect: Effect) -> DomainResult<Message> {
        match self.deps.log.append(NewEntry { message: entry, effect }, Recipients::Members).await? {
            AppendOutcome::Appended(message) | AppendOutcome::Duplicate(message) => Ok(message),
            AppendOutcome::ConversationGone => Err(DomainError::not_found(Thing::Conversation)),
        }
    }

    /// A send's checks against the conversation (membership, the pair's friendship, reply_to,
    /// mentions, the file) and the entry to append, with who hears of it.
    async fn checked_entry(
        &self,
        me: &UserId,
        conversation_id: &ConversationId,
        kind: MessageKind,
        text: Option<String>,
        file_id: Option<String>,
        input: SendInput,
    ) -> DomainResult<(Message, Recipients)> {
        let (conversation, _member, peer) = self
            .deps
            .store
            .send_context(conversation_id, me)
            .await?
            .filter(|(c, _, _)| !c.dissolved)
            .ok_or(DomainError::not_found(Thing::Conversation))?;
        // In a direct chat the recipients are the pair, known from the check; a group asks.
        let recipients = if is_group(&conversation) { None } else { Some(vec![me.clone(), direct_allowed(peer)?]) };
        if let Some(reply_to) = input.reply_to
            && !(Seq::FIRST..=conversation.last_seq).contains(&reply_to)
        {
            return Err(DomainError::invalid(
                ErrorCode::InvalidReplyTo,
                "reply_to must be the seq of an earlier entry",
            ));
        }
        let mut mentions = input.mentions;
        mentions.sort();
        mentions.dedup();
        if mentions.len() > rules::MENTIONS_MAX {
            return Err(DomainError::invalid(
                ErrorCode::TooManyMentions,
                format!("at most {} mentions", rules::MENTIONS_MAX),
            ));
        }
        let file = match &file_id {
            Some(file_id) => Some(check_file_kind(kind, owned_file(&self.deps, me, file_id).await?)?),
            None => None,
        };
        let mut message = blank_message(conversation_id.clone(), me.clone(), kind, self.deps.clock.now());
        message.client_msg_id = Some(input.client_msg_id);
        message.text = text;
        message.file_id = file_id;
        message.file = file;
        message.reply_to = input.reply_to;
        message.mentions = mentions;
        Ok((message, recipients.map_or(Recipients::Members, Recipients::These)))
    }

    /// A direct send needs the pair to be friends and neither to have blocked the other; returns
    /// the peer.
    async fn check_direct_allowed(&self, me: &UserId, conversation: &Conversation) -> DomainResult<UserId> {
        direct_allowed(self.deps.store.direct_peer(&conversation.id, me).await?)
    }

    fn duplicate(&self, existing: Message, conversation_id: &ConversationId) -> DomainResult<Sent> {
        if &existing.conversation_id != conversation_id {
            return Err(DomainError::conflict(
                ErrorCode::ClientMsgIdReused,
                "this client_msg_id was used for another conversation",
            ));
        }
        Ok(Sent { message: existing, created: false })
    }
}

/// The peer of a direct conversation, when the pair may message each other: friends, and
/// neither has blocked the other.
fn direct_allowed(peer: Option<DirectPeer>) -> DomainResult<UserId> {
    let Some(peer) = peer else {
        return Err(DomainError::forbidden(ErrorCode::NotFriends, "you are no longer friends with this user"));
    };
    if peer.blocked {
        return Err(DomainError::forbidden(ErrorCode::Blocked, "you cannot message this user"));
    }
    if !peer.friends {
        return Err(DomainError::forbidden(ErrorCode::NotFriends, "you are no longer friends with this user"));
    }
    Ok(peer.user)
}

/// An `image` must be an image the server could decode (so it has a size and a thumbnail), a
/// `voice` message audio; a `file` may be anything.
fn check_file_kind(kind: MessageKind, file: FileRecord) -> DomainResult<FileRecord> {
    let fits = match kind {
        MessageKind::Image => file.mime.starts_with("image/"),
        MessageKind::Voice => file.mime.starts_with("audio/"),
        _ => true,
    };
    if !fits {
        return Err(DomainError::invalid(
            ErrorCode::FileKindMismatch,
            format!("a {} message cannot carry a file of type {}", kind.as_str(), file.mime),
        ));
    }
    // The upload measured what it could decode: an image without a size, or audio without a
    // duration, is corrupt, truncated or beyond the server's limits, and stays a plain file.
    if kind == MessageKind::Image && file.width.is_none() {
        return Err(DomainError::invalid(
            ErrorCode::FileKindMismatch,
            format!("this {} could not be decoded as an image (corrupt, or beyond the size limits)", file.mime),
        ));
    }
    if kind == MessageKind::Voice && file.duration_ms.is_none() {
        return Err(DomainError::invalid(
            ErrorCode::UnsupportedAudio,
            format!(
                "this {} could not be read as audio (WAV, Ogg/Opus or WebM/Opus; corrupt, cut off, or too large to \
                 inspect)",
                file.mime
            ),
        ));
    }
    Ok(file)
}

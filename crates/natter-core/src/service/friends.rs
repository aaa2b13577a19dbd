//! Friend requests, friendships and blocks.

use natter_proto::ServerFrame;

use super::{Deps, presence, rules};
use crate::error::{DomainError, DomainResult, ErrorCode, Thing};
use crate::ids::{ConversationId, FriendRequestId, Seq, UserId};
use crate::model::{
    Conversation, ConversationKind, ConversationSummary, Friend, FriendRequest, FriendRequestStatus, User,
};
use crate::store::{RequestDirection, StoreError};
use crate::wire;

pub struct FriendService {
    deps: Deps,
}

/// A request with both parties, ready for the wire.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct FriendRequestDetail {
    pub request: FriendRequest,
    pub from: User,
    pub to: User,
}

impl FriendService {
    pub fn new(deps: Deps) -> Self {
        Self { deps }
    }

    pub async fn send_request(
        &self,
        me: &UserId,
        to: &UserId,
        message: Option<&str>,
    ) -> DomainResult<FriendRequestDetail> {
        if me == to {
            return Err(DomainError::invalid(
                ErrorCode::CannotBefriendSelf,
                "you cannot send yourself a friend request",
            ));
        }
        let message = message.unwrap_or_default().trim().to_owned();
        if message.chars().count() > rules::FRIEND_MESSAGE_MAX {
            return Err(DomainError::invalid(
                ErrorCode::InvalidMessage,
                format!("a request message has at most {} characters", rules::FRIEND_MESSAGE_MAX),
            ));
        }
        let store = &self.deps.store;
        let target = store.user(to).await?.filter(|u| !u.disabled).ok_or(DomainError::not_found(Thing::User))?;
        if store.is_blocked_between(me, to).await? {
            return Err(DomainError::forbidden(ErrorCode::Blocked, "you cannot send a request to this user"));
        }
        if store.are_friends(me, to).await? {
            return Err(DomainError::conflict(ErrorCode::AlreadyFriends, "you are already friends"));
        }
        let now = self.deps.clock.now();
        let request = FriendRequest {
            id: FriendRequestId::generate(),
            from_user: me.clone(),
            to_user: to.clone(),
            message,
            status: FriendRequestStatus::Pending,
            created_at: now,
            updated_at: now,
        };
        store.create_friend_request(&request).await.map_err(|error| match error {
            StoreError::Conflict(_) => {
                DomainError::conflict(ErrorCode::RequestPending, "a request between you is already pending")
            }
            other => other.into(),
        })?;
        let from = store.user(me).await?.ok_or(DomainError::not_found(Thing::User))?;
        let detail = FriendRequestDetail { request, from, to: target };
        self.announce(&detail).await;
        Ok(detail)
    }

    pub async fn requests(&self, me: &UserId, direction: RequestDirection) -> DomainResult<Vec<FriendRequestDetail>> {
        let requests = self.deps.store.friend_requests_of(me, direction).await?;
        let mut ids: Vec<UserId> = requests.iter().flat_map(|r| [r.from_user.clone(), r.to_user.clone()]).collect();
        ids.sort();
        ids.dedup();
        let users = self.deps.store.users(&ids).await?;
        let find = |id: &UserId| users.iter().find(|u| &u.id == id).cloned();
        Ok(requests
            .into_iter()
            .filter_map(|request| {
                let from = find(&request.from_user)?;
                let to = find(&request.to_user)?;
                Some(FriendRequestDetail { request, from, to })
            })
            .collect())
    }

    /// Accepts a request addressed to `me`: the pair become friends and get their direct
    /// conversation (created, or revived if they had one before).
    pub async fn accept(
        &self,
        me: &UserId,
        id: &FriendRequestId,
    ) -> DomainResult<(FriendRequestDetail, ConversationSummary)> {
        let request = self.request_for(id, |r| &r.to_user == me).await?;
        if self.deps.store.is_blocked_between(&request.from_user, me).await? {
            return Err(DomainError::forbidden(ErrorCode::Blocked, "you cannot accept a request from this user"));
        }
        let now = self.deps.clock.now();
        let new_conversation = Conversation {
            id: ConversationId::generate(),
            kind: ConversationKind::Direct,
            name: String::new(),
            avatar: None,
            owner_id: None,
            announcement: None,
            last_seq: Seq::ZERO,
            created_at: now,
            updated_at: now,
            dissolved: false,
        };
        let (request, conversation_id) =
            self.deps.store.accept_friend_request(id, &new_conversation, now).await?.ok_or_else(|| {
                DomainError::conflict(ErrorCode::RequestNotPending, "this request is no longer pending")
            })?;
        let detail = self.detail(request).await?;
        self.announce(&detail).await;
        let mine = self.summary(&conversation_id, me).await?;
        let theirs = self.summary(&conversation_id, &detail.request.from_user).await?;
        let notifier = &self.deps.notifier;
        notifier
            .publish(
                vec![me.clone()],
                &ServerFrame::Conversation { event: "created".into(), conversation: wire::conversation_view(&mine) },
            )
            .await;
        notifier
            .publish(
                vec![detail.request.from_user.clone()],
                &ServerFrame::Conversation { event: "created".into(), conversation: wire::conversation_view(&theirs) },
            )
            .await;
        let friend_frame = |user: &UserId| ServerFrame::Friend { user_id: user.0.clone(), event: "added".into() };
        notifier.publish(vec![me.clone()], &friend_frame(&detail.request.from_user)).await;
        notifier.publish(vec![detail.request.from_user.clone()], &friend_frame(me)).await;
        Ok((detail, mine))
    }

    pub async fn reject(&self, me: &UserId, id: &FriendRequestId) -> DomainResult<FriendRequestDetail> {
        self.request_for(id, |r| &r.to_user == me).await?;
        self.close(id, FriendRequestStatus::Rejected).await
    }

    pub async fn cancel(&self, me: &UserId, id: &FriendRequestId) -> DomainResult<FriendRequestDetail> {
        self.request_for(id, |r| &r.from_user == me).await?;
        self.close(id, FriendRequestStatus::Cancelled).await
    }

    pub async fn friends(&self, me: &UserId) -> DomainResult<Vec<Friend>> {
        Ok(self.deps.store.friends_of(me).await?)
    }

    pub async fn remove(&self, me: &UserId, other: &UserId) -> DomainResult<()> {
        if !self.deps.store.remove_friendship(me, other).await? {
            return Err(DomainError::not_found(Thing::Friend));
        }
        let notifier = &self.deps.notifier;
        notifier
            .publish(vec![me.clone()], &ServerFrame::Friend { user_id: other.0.clone(), event: "removed".into() })
            .await;
        notifier
            .publish(vec![other.clone()], &ServerFrame::Friend { user_id: me.0.clone(), event: "removed".into() })
            .await;
        Ok(())
    }

    pub async fn block(&self, me: &UserId, other: &UserId) -> DomainResult<()> {
        if me == other {
            return Err(DomainError::invalid(ErrorCode::CannotBlockSelf, "you cannot block yourself"));
        }
        self.deps.store.user(other).await?.ok_or(DomainError::not_found(Thing::User))?;
        let were_friends = self.deps.store.are_friends(me, other).await?;
        self.deps.store.block_user(me, other, self.deps.clock.now()).await?;
        if were_friends {
            let notifier = &self.deps.notifier;
            notifier
                .publish(vec![me.clone()], &ServerFrame::Friend { user_id: other.0.clone(), event: "removed".into() })
                .await;
            notifier
                .publish(vec![other.clone()], &ServerFrame::Friend { user_id: me.0.clone(), event: "removed".into() })
                .await;
        }
        Ok(())
    }

    pub async fn unblock(&self, me: &UserId, other: &UserId) -> DomainResult<()> {
        if self.deps.store.unblock_user(me, other).await? { Ok(()) } else { Err(DomainError::not_found(Thing::Block)) }
    }

    pub async fn blocked(&self, me: &UserId) -> DomainResult<Vec<User>> {
        Ok(self.deps.store.blocked_by(me).await?)
    }

    /// Whether `user` has a device connected to any node.
    pub async fn is_online(&self, user: &UserId) -> bool {
        self.online(std::slice::from_ref(user)).await.first().copied().unwrap_or(false)
    }

    /// Whether each of `users` is online, in one lookup; an unreachable route table answers
    /// offline for all (logged).
    pub async fn online(&self, users: &[UserId]) -> Vec<bool> {
        presence::online_flags(self.deps.routes.as_ref(), users).await
    }

    async fn request_for(
        &self,
        id: &FriendRequestId,
        allowed: impl Fn(&FriendRequest) -> bool,
    ) -> DomainResult<FriendRequest> {
        let request = self
            .deps
            .store
            .friend_request(id)
            .await?
            .filter(|r| allowed(r))
            .ok_or(DomainError::not_found(Thing::FriendRequest))?;
        if request.status != FriendRequestStatus::Pending {
            return Err(DomainError::conflict(ErrorCode::RequestNotPending, "this request is no longer pending"));
        }
        Ok(request)
    }

    async fn close(&self, id: &FriendRequestId, status: FriendRequestStatus) -> DomainResult<FriendRequestDetail> {
        let request =
            self.deps.store.close_friend_request(id, status, self.deps.clock.now()).await?.ok_or_else(|| {
                DomainError::conflict(ErrorCode::RequestNotPending, "this request is no longer pending")
            })?;
        let detail = self.detail(request).await?;
        self.announce(&detail).await;
        Ok(detail)
    }

    async fn detail(&self, request: FriendRequest) -> DomainResult<FriendRequestDetail> {
        let from = self.deps.store.user(&request.from_user).await?.ok_or(DomainError::not_found(Thing::User))?;
        let to = self.deps.store.user(&request.to_user).await?.ok_or(DomainError::not_found(Thing::User))?;
        Ok(FriendRequestDetail { request, from, to })
    }

    async fn summary(&self, conversation: &ConversationId, user: &UserId) -> DomainResult<ConversationSummary> {
        self.deps.store.summary(conversation, user).await?.ok_or(DomainError::not_found(Thing::Conversation))
    }

    async fn announce(&self, detail: &FriendRequestDetail) {
        let frame = ServerFrame::FriendRequest {
            request: wire::friend_request_view(&detail.request, &detail.from, &detail.to),
        };
        self.deps
            .notifier
            .publish(vec![detail.request.from_user.clone(), detail.request.to_user.clone()], &frame)
            .await;
    }
}

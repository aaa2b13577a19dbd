//! Conversations: the list, group life cycle, roles and membership.
//!
//! Roles: the owner can do everything; an admin can rename, set the announcement and avatar, add
//! members and remove plain members; a member can read, send and leave. Every membership or
//! settings change is a `system` entry in the log, appended in the same transaction as the change.

use natter_proto::ServerFrame;

use super::log::{LogGuard, Recipients};
use super::{Deps, is_group, rules};
use crate::error::{DomainError, DomainResult, ErrorCode, Thing};
use crate::ids::{ConversationId, Seq, UserId};
use crate::model::{
    Conversation, ConversationKind, ConversationSummary, Member, MemberRole, Message, SystemEvent, User,
};
use crate::store::{AppendOutcome, Effect, NewEntry, system_message};
use crate::wire;

pub struct ConversationService {
    deps: Deps,
}

/// A new group as asked.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct NewGroup {
    pub name: String,
    pub member_ids: Vec<UserId>,
    pub avatar: Option<String>,
    pub announcement: Option<String>,
}

/// A settings change as asked (`None`: unchanged).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ConversationChange {
    pub name: Option<String>,
    pub announcement: Option<String>,
    pub avatar: Option<String>,
    pub muted: Option<bool>,
}

impl ConversationService {
    pub fn new(deps: Deps) -> Self {
        Self { deps }
    }

    pub async fn list(&self, me: &UserId) -> DomainResult<Vec<ConversationSummary>> {
        Ok(self.deps.store.conversations_of(me).await?)
    }

    pub async fn get(&self, me: &UserId, id: &ConversationId) -> DomainResult<ConversationSummary> {
        self.deps.membership(me, id).await?;
        self.summary(id, me).await
    }

    pub async fn create_group(&self, me: &UserId, group: NewGroup) -> DomainResult<ConversationSummary> {
        let name = rules::check_group_name(&group.name)?;
        let announcement = group.announcement.as_deref().map(rules::check_announcement).transpose()?;
        let mut member_ids: Vec<UserId> = group.member_ids.into_iter().filter(|id| id != me).collect();
        member_ids.sort();
        member_ids.dedup();
        if member_ids.len() + 1 > self.deps.limits.max_group_members {
            return Err(self.group_full());
        }
        self.check_invitable(me, &member_ids).await?;
        if let Some(avatar) = group.avatar.as_deref().filter(|a| !a.is_empty()) {
            super::files::check_avatar(&self.deps, me, avatar).await?;
        }
        let now = self.deps.clock.now();
        let conversation = Conversation {
            id: ConversationId::generate(),
            kind: ConversationKind::Group,
            name: name.clone(),
            avatar: group.avatar.filter(|a| !a.is_empty()),
            owner_id: Some(me.clone()),
            announcement,
            last_seq: Seq::FIRST,
            created_at: now,
            updated_at: now,
            dissolved: false,
        };
        let member = |user: &UserId, role| Member {
            conversation_id: conversation.id.clone(),
            user_id: user.clone(),
            role,
            joined_at: now,
            joined_seq: Seq::ZERO,
            read_seq: Seq::FIRST,
            muted: false,
        };
        let mut members = vec![member(me, MemberRole::Owner)];
        members.extend(member_ids.iter().map(|id| member(id, MemberRole::Member)));
        let event = SystemEvent {
            event: "group_created".into(),
            actor_id: me.clone(),
            user_ids: member_ids.clone(),
            name: Some(name),
            role: None,
        };
        let first = self
            .deps
            .store
            .create_group(&conversation, &members, &system_message(conversation.id.clone(), event, now))
            .await?;
        let everyone: Vec<UserId> = members.iter().map(|m| m.user_id.clone()).collect();
        self.deps.log.push(everyone, &first).await;
        let summary = self.summary(&conversation.id, me).await?;
        self.push_created(&summary, &members).await;
        Ok(summary)
    }

    /// Tells every member of a new group about it. Their views differ only in their own
    /// membership (role, read marker, muted), so one summary serves all: one frame per distinct
    /// view (the owner's and everyone else's) rather than one summary read and one publish per
    /// member, which took over 30 s for a 10,000-member group on PostgreSQL.
    async fn push_created(&self, summary: &ConversationSummary, members: &[Member]) {
        let view_of = |member: &Member| (member.role, member.read_seq, member.muted);
        // Each distinct view: the first member who has it, and everyone who does.
        let mut views: Vec<(&Member, Vec<UserId>)> = Vec::new();
        for member in members {
            match views.iter_mut().find(|(first, _)| view_of(first) == view_of(member)) {
                Some((_, users)) => users.push(member.user_id.clone()),
                None => views.push((member, vec![member.user_id.clone()])),
            }
        }
        for (member, users) in views {
            let view = ConversationSummary { me: member.clone(), ..summary.clone() };
            let frame =
                ServerFrame::Conversation { event: "created".into(), conversation: wire::conversation_view(&view) };
            self.deps.notifier.publish(users, &frame).await;
        }
    }

    pub async fn update(
        &self,
        me: &UserId,
        id: &ConversationId,
        change: ConversationChange,
    ) -> DomainResult<ConversationSummary> {
        let (conversation, member) = self.deps.membership(me, id).await?;
        if let Some(muted) = change.muted {
            self.deps.store.set_muted(id, me, muted).await?;
        }
        let name = change.name.as_deref().map(rules::check_group_name).transpose()?;
        let announcement = change.announcement.as_deref().map(rules::check_announcement).transpose()?;
        let avatar = change.avatar.map(|a| if a.is_empty() { None } else { Some(a) });
        if name.is_some() || announcement.is_some() || avatar.is_some() {
            if !is_group(&conversation) {
                return Err(DomainError::forbidden(
                    ErrorCode::NotAGroup,
                    "a direct conversation has no name or announcement",
                ));
            }
            require_role(&member, MemberRole::Admin)?;
            if let Some(Some(avatar)) = &avatar {
                super::files::check_avatar(&self.deps, me, avatar).await?;
            }
            let event_name = if name.is_some() {
                "renamed"
            } else if announcement.is_some() {
                "announcement_changed"
            } else {
                "avatar_changed"
            };
            let event = SystemEvent {
                event: event_name.into(),
                actor_id: me.clone(),
                user_ids: vec![],
                name: name.clone(),
                role: None,
            };
            let effect = Effect::UpdateConversation { name, announcement, avatar };
            let members = self.deps.store.member_ids(id).await?;
            self.append_system(id, event, effect).await?;
            for user in &members {
                self.push_conversation(user, id, "updated").await;
            }
        }
        self.summary(id, me).await
    }

    /// The owner ends a group: every member is removed and told.
    pub async fn dissolve(&self, me: &UserId, id: &ConversationId) -> DomainResult<()> {
        let (conversation, member) = self.deps.membership(me, id).await?;
        if !is_group(&conversation) {
            return Err(DomainError::forbidden(
                ErrorCode::NotAGroup,
                "a direct conversation ends when the friendship does",
            ));
        }
        require_role(&member, MemberRole::Owner)?;
        let members = self.deps.store.member_ids(id).await?;
        let summaries = self.summaries_for(&members, id).await?;
        let event =
            SystemEvent { event: "dissolved".into(), actor_id: me.clone(), user_ids: vec![], name: None, role: None };
        let _ordered = self.append_system_to(id, event, Effect::Dissolve, Recipients::These(members)).await?.1;
        for (user, summary) in summaries {
            self.deps
                .notifier
                .publish(
                    vec![user],
                    &ServerFrame::Conversation {
                        event: "dissolved".into(),
                        conversation: wire::conversation_view(&summary),
                    },
                )
                .await;
        }
        Ok(())
    }

    pub async fn members(&self, me: &UserId, id: &ConversationId) -> DomainResult<Vec<(Member, User)>> {
        self.deps.membership(me, id).await?;
        let members = self.deps.store.members(id).await?;
        let ids: Vec<UserId> = members.iter().map(|m| m.user_id.clone()).collect();
        let users = self.deps.store.users(&ids).await?;
        Ok(members
            .into_iter()
            .filter_map(|m| {
                let user = users.iter().find(|u| u.id == m.user_id)?.clone();
                Some((m, user))
            })
            .collect())
    }

    /// Admins and the owner add members; users already in are skipped.
    pub async fn add_members(
        &self,
        me: &UserId,
        id: &ConversationId,
        user_ids: Vec<UserId>,
    ) -> DomainResult<Vec<(Member, User)>> {
        let (conversation, member) = self.deps.membership(me, id).await?;
        if !is_group(&conversation) {
            return Err(DomainError::forbidden(
                ErrorCode::NotAGroup,
                "members cannot be added to a direct conversation",
            ));
        }
        require_role(&member, MemberRole::Admin)?;
        if user_ids.is_empty() {
            return Err(DomainError::invalid(ErrorCode::ValidationFailed, "user_ids must name at least one user"));
        }
        let current = self.deps.store.member_ids(id).await?;
        let mut new_ids: Vec<UserId> = user_ids.into_iter().filter(|u| !current.contains(u)).collect();
        new_ids.sort();
        new_ids.dedup();
        if !new_ids.is_empty() {
            if current.len() + new_ids.len() > self.deps.limits.max_group_members {
                return Err(self.group_full());
            }
            self.check_invitable(me, &new_ids).await?;
            let now = self.deps.clock.now();
            let members = new_ids
                .iter()
                .map(|user| Member {
                    conversation_id: id.clone(),
                    user_id: user.clone(),
                    role: MemberRole::Member,
                    joined_at: now,
                    joined_seq: Seq::ZERO,
                    read_seq: Seq::ZERO,
                    muted: false,
                })
                .collect();
            let event = SystemEvent {
                event: "members_added".into(),
                actor_id: me.clone(),
                user_ids: new_ids.clone(),
                name: None,
                role: None,
            };
            self.append_system(id, event, Effect::AddMembers(members)).await?;
            for user in &current {
                self.push_conversation(user, id, "member_added").await;
            }
            for user in &new_ids {
                self.push_conversation(user, id, "created").await;
            }
        }
        self.members(me, id).await
    }

    /// The owner sets a member's role; `Owner` hands the group over (the old owner becomes admin).
    pub async fn set_role(
        &self,
        me: &UserId,
        id: &ConversationId,
        target: &UserId,
        role: MemberRole,
    ) -> DomainResult<()> {
        let (conversation, member) = self.deps.membership(me, id).await?;
        if !is_group(&conversation) {
            return Err(DomainError::forbidden(ErrorCode::NotAGroup, "a direct conversation has no roles"));
        }
        require_role(&member, MemberRole::Owner)?;
        if target == me {
            return Err(DomainError::invalid(
                ErrorCode::CannotChangeOwnRole,
                "transfer ownership to another member instead",
            ));
        }
        let target_member = self.deps.store.member(id, target).await?.ok_or(DomainError::not_found(Thing::Member))?;
        if target_member.role == role {
            return Ok(());
        }
        let (event_name, effect) = match role {
            MemberRole::Owner => {
                ("owner_transferred", Effect::TransferOwnership { from: me.clone(), to: target.clone() })
            }
            _ => ("role_changed", Effect::SetRole(target.clone(), role)),
        };
        let event = SystemEvent {
            event: event_name.into(),
            actor_id: me.clone(),
            user_ids: vec![target.clone()],
            name: None,
            role: Some(role.as_str().into()),
        };
        let members = self.deps.store.member_ids(id).await?;
        self.append_system(id, event, effect).await?;
        for user in &members {
            self.push_conversation(user, id, "updated").await;
        }
        Ok(())
    }

    /// Removes `target`, or leaves when `target` is the caller. Admins remove plain members; the
    /// owner removes anyone; the owner must hand the group over before leaving.
    pub async fn remove_member(&self, me: &UserId, id: &ConversationId, target: &UserId) -> DomainResult<()> {
        let (conversation, member) = self.deps.membership(me, id).await?;
        if !is_group(&conversation) {
            return Err(DomainError::forbidden(ErrorCode::NotAGroup, "you cannot leave a direct conversation"));
        }
        let leaving = target == me;
        if leaving {
            if member.role == MemberRole::Owner {
                return Err(DomainError::conflict(
                    ErrorCode::OwnerMustTransfer,
                    "transfer ownership before leaving, or dissolve the group",
                ));
            }
        } else {
            require_role(&member, MemberRole::Admin)?;
            let target_member =
                self.deps.store.member(id, target).await?.ok_or(DomainError::not_found(Thing::Member))?;
            if target_member.role.rank() >= member.role.rank() {
                return Err(DomainError::forbidden(
                    ErrorCode::Forbidden,
                    "you can only remove members below your role",
                ));
            }
        }
        let members = self.deps.store.member_ids(id).await?;
        let gone = self.summaries_for(std::slice::from_ref(target), id).await?;
        let event = SystemEvent {
            event: if leaving { "member_left" } else { "member_removed" }.into(),
            actor_id: me.clone(),
            user_ids: vec![target.clone()],
            name: None,
            role: None,
        };
        // The one who left sees the entry that records it, and nothing after.
        let effect = Effect::RemoveMember(target.clone());
        let _ordered = self.append_system_to(id, event, effect, Recipients::These(members.clone())).await?.1;
        for user in members.iter().filter(|u| *u != target) {
            self.push_conversation(user, id, "member_removed").await;
        }
        for (user, summary) in gone {
            let event = if leaving { "left" } else { "member_removed" };
            self.deps
                .notifier
                .publish(
                    vec![user],
                    &ServerFrame::Conversation { event: event.into(), conversation: wire::conversation_view(&summary) },
                )
                .await;
        }
        Ok(())
    }

    async fn check_invitable(&self, me: &UserId, user_ids: &[UserId]) -> DomainResult<()> {
        let users = self.deps.store.users(user_ids).await?;
        if users.len() != user_ids.len() || users.iter().any(|u| u.disabled) {
            return Err(DomainError::not_found(Thing::User));
        }
        for user in user_ids {
            if self.deps.store.is_blocked_between(me, user).await? {
                return Err(DomainError::forbidden(ErrorCode::Blocked, "a blocked user cannot be added"));
            }
        }
        Ok(())
    }

    fn group_full(&self) -> DomainError {
        DomainError::conflict(
            ErrorCode::GroupFull,
            format!("a group has at most {} members", self.deps.limits.max_group_members),
        )
    }

    /// Appends a system entry and pushes it to the members it leaves.
    async fn append_system(&self, id: &ConversationId, event: SystemEvent, effect: Effect) -> DomainResult<Message> {
        Ok(self.append_system_to(id, event, effect, Recipients::Members).await?.0)
    }

    /// Appends a system entry and pushes it to `recipients`; the caller holds the returned guard
    /// while it sends the frames that go with the entry (see `log`).
    async fn append_system_to(
        &self,
        id: &ConversationId,
        event: SystemEvent,
        effect: Effect,
        recipients: Recipients,
    ) -> DomainResult<(Message, LogGuard)> {
        let message = system_message(id.clone(), event, self.deps.clock.now());
        match self.deps.log.append_and_hold(NewEntry { message, effect }, recipients).await? {
            (AppendOutcome::Appended(entry) | AppendOutcome::Duplicate(entry), guard) => Ok((entry, guard)),
            (AppendOutcome::ConversationGone, _) => Err(DomainError::not_found(Thing::Conversation)),
        }
    }

    async fn push_conversation(&self, user: &UserId, id: &ConversationId, event: &str) {
        if let Ok(Some(summary)) = self.deps.store.summary(id, user).await {
            let frame =
                ServerFrame::Conversation { event: event.into(), conversation: wire::conversation_view(&summary) };
            self.deps.notifier.publish(vec![user.clone()], &frame).await;
        }
    }

    async fn summaries_for(
        &self,
        users: &[UserId],
        id: &ConversationId,
    ) -> DomainResult<Vec<(UserId, ConversationSummary)>> {
        let mut out = Vec::with_capacity(users.len());
        for user in users {
            if let Some(summary) = self.deps.store.summary(id, user).await? {
                out.push((user.clone(), summary));
            }
        }
        Ok(out)
    }

    async fn summary(&self, id: &ConversationId, me: &UserId) -> DomainResult<ConversationSummary> {
        self.deps.store.summary(id, me).await?.ok_or(DomainError::not_found(Thing::Conversation))
    }
}

pub(crate) fn require_role(member: &Member, at_least: MemberRole) -> DomainResult<()> {
    if member.role.rank() >= at_least.rank() {
        Ok(())
    } else {
        Err(DomainError::forbidden(ErrorCode::Forbidden, format!("this needs the {} role", at_least.as_str())))
    }
}

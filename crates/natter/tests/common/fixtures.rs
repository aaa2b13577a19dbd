//! Typed helpers for the common steps of a scenario: accounts, friendships, groups, messages.

use natter_proto::{
    AcceptFriendResponse, AuthResponse, ConversationList, ConversationView, FriendRequestView, MemberList, MemberView,
    MessagePage, MessageView, UserView,
};
use serde_json::{Value, json};

use super::{PASSWORD, TestApp, WsClient, client_msg_id};

/// One device session of one account.
#[derive(Debug, Clone)]
pub(crate) struct TestUser {
    pub(crate) id: String,
    pub(crate) username: String,
    pub(crate) password: String,
    pub(crate) access_token: String,
    pub(crate) refresh_token: String,
    pub(crate) session_id: String,
    pub(crate) view: UserView,
}

impl TestUser {
    pub(crate) fn from_auth(auth: AuthResponse, password: &str) -> TestUser {
        TestUser {
            id: auth.user.id.clone(),
            username: auth.user.username.clone(),
            password: password.to_owned(),
            access_token: auth.access_token,
            refresh_token: auth.refresh_token,
            session_id: auth.session_id,
            view: auth.user,
        }
    }
}

impl TestApp {
    pub(crate) async fn register(&self, username: &str) -> TestUser {
        let body = json!({ "username": username, "password": PASSWORD });
        let auth = self.post_anonymous("/auth/register", body).await.expect(201);
        TestUser::from_auth(auth, PASSWORD)
    }

    pub(crate) async fn register_with_nickname(&self, username: &str, nickname: &str) -> TestUser {
        let body = json!({ "username": username, "password": PASSWORD, "nickname": nickname });
        let auth = self.post_anonymous("/auth/register", body).await.expect(201);
        TestUser::from_auth(auth, PASSWORD)
    }

    /// A new device session of the same account.
    pub(crate) async fn login(&self, user: &TestUser) -> TestUser {
        let body = json!({ "username": user.username, "password": user.password });
        let auth = self.post_anonymous("/auth/login", body).await.expect(200);
        TestUser::from_auth(auth, &user.password)
    }

    pub(crate) async fn request_friend(&self, from: &TestUser, to: &TestUser) -> FriendRequestView {
        self.post(from, "/friend-requests", json!({ "user_id": to.id })).await.expect(201)
    }

    /// `a` asks, `b` accepts; the id of their direct conversation.
    pub(crate) async fn make_friends(&self, a: &TestUser, b: &TestUser) -> String {
        let request = self.request_friend(a, b).await;
        let accepted: AcceptFriendResponse =
            self.post_empty(b, &format!("/friend-requests/{}/accept", request.id)).await.expect(200);
        accepted.conversation.id
    }

    pub(crate) async fn create_group(&self, owner: &TestUser, name: &str, members: &[&TestUser]) -> ConversationView {
        let member_ids: Vec<&str> = members.iter().map(|member| member.id.as_str()).collect();
        let body = json!({ "kind": "group", "name": name, "member_ids": member_ids });
        self.post(owner, "/conversations", body).await.expect(201)
    }

    /// `actor` sets `target`'s role; the raw answer.
    pub(crate) async fn set_role(
        &self,
        actor: &TestUser,
        conversation: &str,
        target: &TestUser,
        role: &str,
    ) -> super::Resp {
        let path = format!("/conversations/{conversation}/members/{}", target.id);
        self.patch(actor, &path, json!({ "role": role })).await
    }

    pub(crate) async fn add_members(&self, actor: &TestUser, conversation: &str, users: &[&TestUser]) -> super::Resp {
        let user_ids: Vec<&str> = users.iter().map(|user| user.id.as_str()).collect();
        let path = format!("/conversations/{conversation}/members");
        self.post(actor, &path, json!({ "user_ids": user_ids })).await
    }

    pub(crate) async fn remove_member(&self, actor: &TestUser, conversation: &str, target: &TestUser) -> super::Resp {
        self.delete(actor, &format!("/conversations/{conversation}/members/{}", target.id)).await
    }

    /// The raw answer to sending `body` (a full `SendMessageRequest`).
    pub(crate) async fn send_message(&self, user: &TestUser, conversation: &str, body: Value) -> super::Resp {
        self.post(user, &format!("/conversations/{conversation}/messages"), body).await
    }

    /// The raw answer to sending a text with a fresh `client_msg_id`.
    pub(crate) async fn try_send_text(&self, user: &TestUser, conversation: &str, text: &str) -> super::Resp {
        let body = json!({ "client_msg_id": client_msg_id(), "kind": "text", "text": text });
        self.send_message(user, conversation, body).await
    }

    pub(crate) async fn send_text(&self, user: &TestUser, conversation: &str, text: &str) -> MessageView {
        let sent: MessageView = self.try_send_text(user, conversation, text).await.expect(201);
        assert_eq!(sent.text.as_deref(), Some(text), "the stored entry carries the text");
        assert_eq!(sent.sender_id, user.id, "the stored entry names its sender");
        assert_eq!(sent.conversation_id, conversation);
        sent
    }

    pub(crate) async fn history_after(
        &self,
        user: &TestUser,
        conversation: &str,
        after_seq: i64,
        limit: u32,
    ) -> MessagePage {
        let path = format!("/conversations/{conversation}/messages");
        let (after, limit) = (after_seq.to_string(), limit.to_string());
        self.get_query(user, &path, &[("after_seq", &after), ("limit", &limit)]).await.expect(200)
    }

    pub(crate) async fn history_before(
        &self,
        user: &TestUser,
        conversation: &str,
        before_seq: i64,
        limit: u32,
    ) -> MessagePage {
        let path = format!("/conversations/{conversation}/messages");
        let (before, limit) = (before_seq.to_string(), limit.to_string());
        self.get_query(user, &path, &[("before_seq", &before), ("limit", &limit)]).await.expect(200)
    }

    /// The whole log after `after_seq`, walking forward in pages of 20.
    pub(crate) async fn history_since(&self, user: &TestUser, conversation: &str, after_seq: i64) -> Vec<MessageView> {
        let mut entries: Vec<MessageView> = Vec::new();
        let mut cursor = after_seq;
        loop {
            let page = self.history_after(user, conversation, cursor, 20).await;
            assert!(page.messages.len() <= 20, "a page never exceeds its limit");
            if let Some(last) = page.messages.last() {
                cursor = last.seq;
            }
            let empty = page.messages.is_empty();
            entries.extend(page.messages);
            if !page.has_more {
                break;
            }
            assert!(!empty, "has_more with an empty page would loop forever");
        }
        entries
    }

    pub(crate) async fn full_history(&self, user: &TestUser, conversation: &str) -> Vec<MessageView> {
        self.history_since(user, conversation, 0).await
    }

    pub(crate) async fn conversation(&self, user: &TestUser, conversation: &str) -> ConversationView {
        self.get(user, &format!("/conversations/{conversation}")).await.expect(200)
    }

    pub(crate) async fn conversations(&self, user: &TestUser) -> Vec<ConversationView> {
        let list: ConversationList = self.get(user, "/conversations").await.expect(200);
        list.conversations
    }

    pub(crate) async fn members(&self, user: &TestUser, conversation: &str) -> Vec<MemberView> {
        let list: MemberList = self.get(user, &format!("/conversations/{conversation}/members")).await.expect(200);
        list.members
    }

    /// The role `user` has in `conversation`, as the member list shows it.
    pub(crate) async fn role_of(&self, viewer: &TestUser, conversation: &str, user: &TestUser) -> Option<String> {
        let members = self.members(viewer, conversation).await;
        members.into_iter().find(|member| member.user.id == user.id).map(|member| member.role)
    }

    /// A WebSocket for `user`'s session, after its `hello` frame.
    pub(crate) async fn connect_ws(&self, user: &TestUser) -> WsClient {
        let url = format!("{}?token={}", self.ws_url(), user.access_token);
        let mut client = WsClient::connect(url.as_str()).await;
        client.expect_hello(user).await;
        client
    }
}

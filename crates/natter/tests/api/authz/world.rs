//! The fixture world of the authorization matrix: users in every relation the table names, a
//! group, a direct conversation, a blocked pair, messages, files, friend requests, a spare session,
//! and the bad credentials.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use serde_json::{Value, json};

use crate::common::{TestApp, TestUser, client_msg_id, png};

/// The secret the matrix's server signs with, so the test can sign an expired token.
pub(super) const JWT_SECRET: &str = "authz-matrix-secret-that-is-long-enough-for-hmac-sha256-0123456789";

/// A text ann sent to the group while dan was a member and before lou joined.
pub(super) const SECRET: &str = "zebra crossing at noon";

/// Who makes a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Who {
    /// Owner of the group, in a direct conversation with ben and one with fay (blocked by ann).
    Ann,
    /// Admin of the group; ann's friend.
    Ben,
    /// Plain member of the group.
    Cat,
    /// Was a member of the group (saw its messages and its file), then was removed.
    Dan,
    /// Never a member of anything; sender of pending friend requests.
    Eve,
    /// Ann's former friend, blocked by ann; still a member of their direct conversation.
    Fay,
    /// Asked ann for friendship; then ann blocked gil.
    Gil,
    /// Spare targets and actors of operations that change or end things.
    Hal,
    Ivy,
    Jon,
    Kay,
    Kim,
    /// Joined the group after its messages and its image were sent.
    Lou,
    /// Whose tokens the bad credentials are made of, so that a server accepting one harms no
    /// other case.
    Max,
}

impl Who {
    const ALL: [Who; 14] = [
        Who::Ann,
        Who::Ben,
        Who::Cat,
        Who::Dan,
        Who::Eve,
        Who::Fay,
        Who::Gil,
        Who::Hal,
        Who::Ivy,
        Who::Jon,
        Who::Kay,
        Who::Kim,
        Who::Lou,
        Who::Max,
    ];

    fn username(self) -> String {
        format!("{self:?}").to_lowercase()
    }
}

impl fmt::Display for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.username())
    }
}

/// A credential that must not work on an authenticated call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum BadToken {
    Missing,
    Garbage,
    Expired,
    LoggedOut,
    RefreshToken,
}

impl BadToken {
    pub(super) const ALL: [BadToken; 5] =
        [BadToken::Missing, BadToken::Garbage, BadToken::Expired, BadToken::LoggedOut, BadToken::RefreshToken];

    pub(super) fn label(self) -> &'static str {
        match self {
            BadToken::Missing => "no token",
            BadToken::Garbage => "garbage token",
            BadToken::Expired => "expired access token",
            BadToken::LoggedOut => "logged-out session's token",
            BadToken::RefreshToken => "refresh token as access token",
        }
    }
}

/// A value a path or query parameter takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Ref {
    /// A literal.
    Lit(&'static str),
    User(Who),
    /// The group (ann owner, ben admin, cat member; dan removed).
    Group,
    /// A second group like the first, dissolved by the matrix.
    Doomed,
    /// Ann and ben's direct conversation.
    Direct,
    /// Ann and fay's direct conversation; ann blocked fay.
    Blocked,
    /// Seq of ann's text in the group.
    GroupMsg,
    /// Seq of another text of ann's in the group, recalled by the matrix.
    GroupRecallMsg,
    /// Seq of [`SECRET`] in the group, which no row changes.
    GroupSecret,
    /// Seq of ann's text in the direct conversation.
    DirectMsg,
    /// Seq of ann's text in the blocked conversation.
    BlockedAnnMsg,
    /// Seq of fay's text in the blocked conversation.
    BlockedFayMsg,
    /// Seq of another text of fay's there, recalled by fay.
    BlockedFayRecallMsg,
    /// An image ann sent to the group (dan saw it before he was removed), and its thumbnail.
    GroupFile,
    GroupThumb,
    /// A file ann sent to the direct conversation.
    DirectFile,
    /// Pending requests from eve: to cat (accepted), to ben (rejected), to fay (cancelled).
    RequestToCat,
    RequestToBen,
    RequestToFay,
    /// Gil's request to ann, cancelled when ann blocked gil.
    RequestFromBlocked,
    /// A second session of ann's.
    AnnSpareSession,
    /// An image ann sent to the group and recalled.
    RecalledFile,
    /// Refresh tokens that must not work: a logged-out session's, a revoked session's, and one
    /// already spent (presenting it again ends that session).
    LoggedOutRefresh,
    RevokedRefresh,
    SpentRefresh,
}

/// Everything the table refers to, made over the API.
pub(super) struct World {
    users: HashMap<Who, TestUser>,
    ids: HashMap<Ref, String>,
    bad: HashMap<BadToken, Option<String>>,
    /// Unspent refresh tokens of ann's, one for each call of the refresh row.
    refresh_tokens: Mutex<Vec<String>>,
}

impl World {
    pub(super) async fn build(app: &TestApp) -> World {
        let mut users = HashMap::new();
        for who in Who::ALL {
            users.insert(who, app.register(&who.username()).await);
        }
        let user = |who: Who| users[&who].clone();
        let (ann, ben, cat, dan, eve, fay, gil) = (
            user(Who::Ann),
            user(Who::Ben),
            user(Who::Cat),
            user(Who::Dan),
            user(Who::Eve),
            user(Who::Fay),
            user(Who::Gil),
        );
        let mut ids = HashMap::new();

        let direct = app.make_friends(&ann, &ben).await;
        let blocked = app.make_friends(&ann, &fay).await;
        app.make_friends(&ann, &dan).await;
        let group = app.create_group(&ann, "matrix", &[&ben, &cat, &dan, &user(Who::Kim)]).await.id;
        app.set_role(&ann, &group, &ben, "admin").await.expect_status(200);
        let doomed = app.create_group(&ann, "doomed", &[&ben, &cat, &dan]).await.id;
        app.set_role(&ann, &doomed, &ben, "admin").await.expect_status(200);

        ids.insert(Ref::GroupMsg, app.send_text(&ann, &group, "hello group").await.seq.to_string());
        ids.insert(Ref::GroupRecallMsg, app.send_text(&ann, &group, "recall me").await.seq.to_string());
        ids.insert(Ref::GroupSecret, app.send_text(&ann, &group, SECRET).await.seq.to_string());
        let image = app.upload_ok(&ann, "picture.png", "image/png", png(48, 32)).await;
        assert!(image.thumbnail_id.is_some(), "the image has a thumbnail, so the thumbnail row can succeed");
        send_file(app, &ann, &group, "image", &image.id).await;
        let recalled = app.upload_ok(&ann, "gone.png", "image/png", png(16, 16)).await;
        let seq = send_file(app, &ann, &group, "image", &recalled.id).await;
        app.delete(&ann, &format!("/conversations/{group}/messages/{seq}")).await.expect_status(200);
        ids.insert(Ref::RecalledFile, recalled.id);
        ids.insert(Ref::DirectMsg, app.send_text(&ann, &direct, "hello direct").await.seq.to_string());
        let file = app.upload_ok(&ann, "notes.txt", "text/plain", b"direct notes".to_vec()).await;
        send_file(app, &ann, &direct, "file", &file.id).await;
        ids.insert(Ref::BlockedAnnMsg, app.send_text(&ann, &blocked, "before the block").await.seq.to_string());
        ids.insert(Ref::BlockedFayMsg, app.send_text(&fay, &blocked, "mine").await.seq.to_string());
        ids.insert(Ref::BlockedFayRecallMsg, app.send_text(&fay, &blocked, "also mine").await.seq.to_string());

        // Dan saw everything above in both groups; now he is out of them.
        app.remove_member(&ann, &group, &dan).await.expect_status(204);
        app.remove_member(&ann, &doomed, &dan).await.expect_status(204);
        app.put_empty(&ann, &format!("/blocks/{}", fay.id)).await.expect_status(204);
        app.add_members(&ann, &group, &[&user(Who::Lou)]).await.expect_status(200);

        ids.insert(Ref::RequestToCat, app.request_friend(&eve, &cat).await.id);
        ids.insert(Ref::RequestToBen, app.request_friend(&eve, &ben).await.id);
        ids.insert(Ref::RequestToFay, app.request_friend(&eve, &fay).await.id);
        ids.insert(Ref::RequestFromBlocked, app.request_friend(&gil, &ann).await.id);
        app.put_empty(&ann, &format!("/blocks/{}", gil.id)).await.expect_status(204);
        app.put_empty(&eve, &format!("/blocks/{}", users[&Who::Ivy].id)).await.expect_status(204);

        ids.insert(Ref::AnnSpareSession, app.login(&ann).await.session_id);
        let mut refresh_tokens = Vec::new();
        for _ in 0..BadToken::ALL.len() {
            refresh_tokens.push(app.login(&ann).await.refresh_token);
        }

        let max = user(Who::Max);
        let logged_out = app.login(&max).await;
        app.get(&logged_out, "/users/me").await.expect_status(200);
        app.post_empty(&logged_out, "/auth/logout").await.expect_status(204);
        ids.insert(Ref::LoggedOutRefresh, logged_out.refresh_token.clone());
        let revoked = app.login(&max).await;
        app.delete(&max, &format!("/auth/sessions/{}", revoked.session_id)).await.expect_status(204);
        ids.insert(Ref::RevokedRefresh, revoked.refresh_token);
        let spent = app.login(&max).await;
        let refresh = json!({ "refresh_token": spent.refresh_token });
        app.post_anonymous("/auth/refresh", refresh).await.expect_status(200);
        ids.insert(Ref::SpentRefresh, spent.refresh_token);
        // A copy re-signed with its own claims must work, or the expired copy would prove nothing.
        let resigned = resign(&max.access_token, None);
        app.call(reqwest::Method::GET, "/users/me", Some(&resigned), None).await.expect_status(200);
        let bad = HashMap::from([
            (BadToken::Missing, None),
            (BadToken::Garbage, Some("not.a.jwt".to_owned())),
            (BadToken::Expired, Some(resign(&max.access_token, Some(-3600)))),
            (BadToken::LoggedOut, Some(logged_out.access_token)),
            (BadToken::RefreshToken, Some(max.refresh_token)),
        ]);

        ids.insert(Ref::Group, group);
        ids.insert(Ref::Doomed, doomed);
        ids.insert(Ref::Direct, direct);
        ids.insert(Ref::Blocked, blocked);
        ids.insert(Ref::GroupThumb, image.thumbnail_id.expect("checked above"));
        ids.insert(Ref::GroupFile, image.id);
        ids.insert(Ref::DirectFile, file.id);
        World { users, ids, bad, refresh_tokens: Mutex::new(refresh_tokens) }
    }

    pub(super) fn user(&self, who: Who) -> &TestUser {
        &self.users[&who]
    }

    pub(super) fn bad_token(&self, kind: BadToken) -> Option<&str> {
        self.bad[&kind].as_deref()
    }

    pub(super) fn resolve(&self, value: Ref) -> String {
        match value {
            Ref::Lit(literal) => literal.to_owned(),
            Ref::User(who) => self.user(who).id.clone(),
            other => self.ids.get(&other).unwrap_or_else(|| panic!("the world has no {other:?}")).clone(),
        }
    }

    /// An unspent refresh token (each is spent by the call that gets it).
    pub(super) fn refresh_token(&self) -> String {
        self.refresh_tokens.lock().expect("the refresh tokens").pop().expect("enough spare refresh tokens")
    }
}

/// Sends a message carrying a file; its seq.
async fn send_file(app: &TestApp, user: &TestUser, conversation: &str, kind: &str, file_id: &str) -> i64 {
    let body = json!({ "client_msg_id": client_msg_id(), "kind": kind, "file_id": file_id });
    let sent: natter_proto::MessageView = app.send_message(user, conversation, body).await.expect(201);
    sent.seq
}

/// `token` re-signed with the server's key, with `exp` moved to now + `expires_in` seconds.
fn resign(token: &str, expires_in: Option<i64>) -> String {
    let header = jsonwebtoken::decode_header(token).expect("a JWT header");
    let mut claims: Value = jsonwebtoken::dangerous::insecure_decode_claims(token).expect("JWT claims");
    if let Some(expires_in) = expires_in {
        let now = jsonwebtoken::get_current_timestamp() as i64;
        claims["exp"] = json!(now + expires_in);
        claims["iat"] = json!(now + expires_in - 900);
    }
    let key = jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes());
    jsonwebtoken::encode(&header, &claims, &key).expect("sign a JWT")
}

//! The expectation table: every operation of the OpenAPI document, what each kind of caller gets.
//! Every authenticated row also gets the five bad tokens (401 `unauthorized`), added by the runner.
//! Rows run in this order, and the cases of a row in theirs: refusals first, then the calls that
//! change or end things, on fixtures made for them (see `world`).

use reqwest::Method;
use serde_json::{Value, json};

use super::case::{
    Case, Kind, Row, allowed, allowed_but, bad_credential, blocked, blocked_but_allowed, blocked_with, late_joiner,
    like_unknown, non_member, other_user, recalled, refused, removed, without_role,
};
use super::world::Ref::{
    AnnSpareSession, Blocked, BlockedAnnMsg, BlockedFayMsg, BlockedFayRecallMsg, Direct, DirectFile, DirectMsg, Doomed,
    Group, GroupFile, GroupMsg, GroupRecallMsg, GroupThumb, Lit, LoggedOutRefresh, RecalledFile, RequestFromBlocked,
    RequestToBen, RequestToCat, RequestToFay, RevokedRefresh, SpentRefresh, User,
};
use super::world::Who::{Ann, Ben, Cat, Dan, Eve, Fay, Hal, Ivy, Jon, Kay, Kim, Lou, Max};
use crate::common::{PASSWORD, client_msg_id, unknown_id};

fn text_message() -> Value {
    json!({ "client_msg_id": client_msg_id(), "kind": "text", "text": "matrix" })
}

pub(super) fn rows() -> Vec<Row> {
    let mut rows = accounts();
    rows.extend(friends());
    rows.extend(conversations());
    rows.extend(messages());
    rows.extend(files_search_speech());
    rows.push(Row::new(Method::GET, "/api/v1/ws").websocket().cases(vec![allowed(Ann, 101)]));
    rows
}

fn accounts() -> Vec<Row> {
    use Method as M;
    vec![
        Row::new(M::POST, "/api/v1/auth/register")
            .public(201)
            .body(|_| json!({ "username": format!("u{}", &unknown_id()[..16]), "password": PASSWORD })),
        Row::new(M::POST, "/api/v1/auth/login")
            .public(200)
            .body(|w| json!({ "username": w.user(Ann).username, "password": PASSWORD }))
            .cases(vec![
                bad_credential(401, "invalid_credentials")
                    .note("a wrong password")
                    .body(|w| json!({ "username": w.user(Ann).username, "password": "not-the-password-1" })),
            ]),
        Row::new(M::POST, "/api/v1/auth/refresh")
            .public(200)
            .body(|w| json!({ "refresh_token": w.refresh_token() }))
            .cases(vec![
                bad_credential(401, "invalid_refresh_token")
                    .note("a logged-out session's refresh token")
                    .body(|w| json!({ "refresh_token": w.resolve(LoggedOutRefresh) })),
                bad_credential(401, "invalid_refresh_token")
                    .note("a revoked session's refresh token")
                    .body(|w| json!({ "refresh_token": w.resolve(RevokedRefresh) })),
                bad_credential(401, "invalid_refresh_token")
                    .note("an access token as refresh token")
                    .body(|w| json!({ "refresh_token": w.user(Max).access_token })),
                bad_credential(401, "refresh_token_reused")
                    .note("a spent refresh token")
                    .body(|w| json!({ "refresh_token": w.resolve(SpentRefresh) })),
            ]),
        Row::new(M::POST, "/api/v1/auth/logout").cases(vec![allowed(Jon, 204)]),
        Row::new(M::GET, "/api/v1/auth/sessions").cases(vec![allowed(Eve, 200)]),
        Row::new(M::DELETE, "/api/v1/auth/sessions/{id}")
            .at("id", AnnSpareSession)
            .subject("id")
            .cases(vec![other_user(Ben), allowed(Ann, 204)]),
        Row::new(M::GET, "/api/v1/users/me").cases(vec![allowed(Eve, 200)]),
        // Another user's image is no avatar of yours, and looks like an unknown file.
        Row::new(M::PATCH, "/api/v1/users/me").body(|_| json!({ "nickname": "Matrix" })).cases(vec![
            like_unknown(Eve, Kind::OtherUser, 400, "invalid_avatar")
                .body(|w| json!({ "avatar": w.resolve(GroupFile) }))
                .subject_in_body("avatar"),
            allowed(Eve, 200),
        ]),
        Row::new(M::PUT, "/api/v1/users/me/password")
            .body(|_| json!({ "old_password": PASSWORD, "new_password": "another-horse-battery-8" }))
            .cases(vec![allowed(Kay, 204)]),
        // Profiles are visible to anyone logged in.
        Row::new(M::GET, "/api/v1/users/{id}").at("id", User(Ann)).cases(vec![allowed(Eve, 200)]),
        Row::new(M::GET, "/api/v1/users").at("query", Lit("an")).cases(vec![allowed(Eve, 200)]),
    ]
}

fn friends() -> Vec<Row> {
    use Method as M;
    vec![
        Row::new(M::POST, "/api/v1/friend-requests").body(|w| json!({ "user_id": w.user(Hal).id })).cases(vec![
            blocked(Fay).body(|w| json!({ "user_id": w.user(Ann).id })),
            blocked(Ann).body(|w| json!({ "user_id": w.user(Fay).id })),
            allowed(Eve, 201),
        ]),
        Row::new(M::GET, "/api/v1/friend-requests").at("direction", Lit("incoming")).cases(vec![allowed(Cat, 200)]),
        // Only the addressee accepts or rejects, only the sender cancels; to anyone else the
        // request does not exist.
        Row::new(M::POST, "/api/v1/friend-requests/{id}/accept").at("id", RequestToCat).subject("id").cases(vec![
            other_user(Ben),
            other_user(Eve),
            // Blocking cancelled gil's request: it is no longer there to accept.
            blocked_with(Ann, 409, "request_not_pending").at("id", RequestFromBlocked),
            allowed(Cat, 200),
        ]),
        Row::new(M::POST, "/api/v1/friend-requests/{id}/reject").at("id", RequestToBen).subject("id").cases(vec![
            other_user(Ann),
            other_user(Eve),
            allowed(Ben, 200),
        ]),
        Row::new(M::POST, "/api/v1/friend-requests/{id}/cancel").at("id", RequestToFay).subject("id").cases(vec![
            other_user(Fay),
            other_user(Ann),
            allowed(Eve, 200),
        ]),
        Row::new(M::GET, "/api/v1/friends").cases(vec![allowed(Eve, 200)]),
        Row::new(M::DELETE, "/api/v1/friends/{user_id}")
            .at("user_id", User(Dan))
            .subject("user_id")
            .cases(vec![other_user(Eve), allowed(Ann, 204)]),
        Row::new(M::GET, "/api/v1/blocks").cases(vec![allowed(Eve, 200)]),
        Row::new(M::PUT, "/api/v1/blocks/{user_id}").at("user_id", User(Hal)).cases(vec![allowed(Eve, 204)]),
        Row::new(M::DELETE, "/api/v1/blocks/{user_id}")
            .at("user_id", User(Ivy))
            .subject("user_id")
            .cases(vec![other_user(Ben), allowed(Eve, 204)]),
    ]
}

fn conversations() -> Vec<Row> {
    use Method as M;
    vec![
        Row::new(M::GET, "/api/v1/conversations").cases(vec![allowed(Dan, 200)]),
        Row::new(M::POST, "/api/v1/conversations")
            .body(|w| json!({ "kind": "group", "name": "new", "member_ids": [w.user(Cat).id] }))
            .cases(vec![
                blocked(Ann).body(|w| json!({ "kind": "group", "name": "new", "member_ids": [w.user(Fay).id] })),
                allowed(Eve, 201),
            ]),
        Row::new(M::GET, "/api/v1/conversations/{id}").at("id", Group).subject("id").cases(vec![
            removed(Dan),
            non_member(Eve),
            non_member(Cat).at("id", Direct),
            allowed(Cat, 200),
            blocked_but_allowed(Fay, 200).at("id", Blocked),
        ]),
        Row::new(M::PATCH, "/api/v1/conversations/{id}")
            .at("id", Group)
            .subject("id")
            .body(|_| json!({ "name": "renamed" }))
            .cases(vec![
                removed(Dan),
                non_member(Eve),
                non_member(Cat).at("id", Direct),
                without_role(Cat),
                refused(Ann, 403, "not_a_group").at("id", Direct),
                like_unknown(Ben, Kind::OtherUser, 400, "invalid_avatar")
                    .body(|w| json!({ "avatar": w.resolve(GroupFile) }))
                    .subject_in_body("avatar"),
                allowed(Ben, 200),
            ]),
        Row::new(M::DELETE, "/api/v1/conversations/{id}").at("id", Doomed).subject("id").cases(vec![
            removed(Dan),
            non_member(Eve),
            non_member(Cat).at("id", Direct),
            without_role(Cat),
            without_role(Ben),
            refused(Ann, 403, "not_a_group").at("id", Direct),
            allowed(Ann, 204),
        ]),
        // From here on the second group is dissolved: its members are members no more.
        Row::new(M::GET, "/api/v1/conversations/{id}/members").at("id", Group).subject("id").cases(vec![
            removed(Dan),
            removed(Cat).at("id", Doomed),
            non_member(Eve),
            non_member(Cat).at("id", Direct),
            allowed(Cat, 200),
        ]),
        Row::new(M::POST, "/api/v1/conversations/{id}/members")
            .at("id", Group)
            .subject("id")
            .body(|w| json!({ "user_ids": [w.user(Hal).id] }))
            .cases(vec![
                removed(Dan),
                non_member(Eve),
                non_member(Cat).at("id", Direct),
                without_role(Cat),
                blocked(Ann).body(|w| json!({ "user_ids": [w.user(Fay).id] })),
                refused(Ann, 403, "not_a_group").at("id", Direct),
                allowed(Ben, 200),
            ]),
        Row::new(M::PATCH, "/api/v1/conversations/{id}/members/{user_id}")
            .at("id", Group)
            .at("user_id", User(Cat))
            .subject("id")
            .body(|_| json!({ "role": "member" }))
            .cases(vec![removed(Dan), non_member(Eve), without_role(Cat), without_role(Ben), allowed(Ann, 200)]),
        // Admins remove plain members, not the owner.
        Row::new(M::DELETE, "/api/v1/conversations/{id}/members/{user_id}")
            .at("id", Group)
            .at("user_id", User(Kim))
            .subject("id")
            .cases(vec![
                removed(Dan),
                non_member(Eve),
                without_role(Cat),
                without_role(Ben).at("user_id", User(Ann)),
                allowed(Ben, 204),
            ]),
    ]
}

fn messages() -> Vec<Row> {
    use Method as M;
    let reactions = "/api/v1/conversations/{id}/messages/{seq}/reactions/{emoji}";
    let react = |method: Method| {
        Row::new(method, reactions).at("id", Group).at("seq", GroupMsg).at("emoji", Lit("👍")).subject("id").cases(
            vec![
                removed(Dan),
                non_member(Eve),
                non_member(Cat).at("id", Direct).at("seq", DirectMsg),
                late_joiner(Lou).subject("seq"),
                blocked(Fay).at("id", Blocked).at("seq", BlockedAnnMsg),
                blocked(Ann).at("id", Blocked).at("seq", BlockedFayMsg),
                allowed(Cat, 200),
            ],
        )
    };
    vec![
        Row::new(M::POST, "/api/v1/conversations/{id}/messages").at("id", Group).subject("id").body(|_| text_message()).cases(
            vec![
                removed(Dan),
                removed(Cat).at("id", Doomed),
                non_member(Eve),
                non_member(Cat).at("id", Direct),
                blocked(Fay).at("id", Blocked),
                blocked(Ann).at("id", Blocked),
                // Only your own uploads can be attached; another's looks like an unknown file.
                like_unknown(Cat, Kind::OtherUser, 400, "file_not_found")
                    .body(|w| json!({ "client_msg_id": client_msg_id(), "kind": "image", "file_id": w.resolve(GroupFile) }))
                    .subject_in_body("file_id"),
                allowed(Cat, 201),
            ],
        ),
        Row::new(M::GET, "/api/v1/conversations/{id}/messages")
            .at("id", Group)
            .at("after_seq", Lit("0"))
            .subject("id")
            .cases(vec![
                removed(Dan),
                removed(Cat).at("id", Doomed),
                non_member(Eve),
                non_member(Cat).at("id", Direct),
                blocked_but_allowed(Fay, 200).at("id", Blocked),
                allowed(Cat, 200),
                allowed(Lou, 200),
            ]),
        // A blocked pair still moves its own read markers; the receipt just does not travel.
        Row::new(M::POST, "/api/v1/conversations/{id}/read").at("id", Group).subject("id").body(|_| json!({ "seq": 1 })).cases(
            vec![
                removed(Dan),
                non_member(Eve),
                non_member(Cat).at("id", Direct),
                blocked_but_allowed(Fay, 200).at("id", Blocked),
                allowed(Cat, 200),
            ],
        ),
        // Only the sender edits, admins included.
        Row::new(M::PATCH, "/api/v1/conversations/{id}/messages/{seq}")
            .at("id", Group)
            .at("seq", GroupMsg)
            .subject("id")
            .body(|_| json!({ "text": "edited" }))
            .cases(vec![
                removed(Dan),
                non_member(Eve),
                non_member(Cat).at("id", Direct).at("seq", DirectMsg),
                without_role(Cat),
                without_role(Ben),
                blocked(Fay).at("id", Blocked).at("seq", BlockedFayMsg),
                blocked(Ann).at("id", Blocked).at("seq", BlockedAnnMsg),
                allowed(Ann, 200),
            ]),
        // The sender recalls, and in a group an admin or the owner; recalling one's own message
        // stays possible in a blocked pair.
        Row::new(M::DELETE, "/api/v1/conversations/{id}/messages/{seq}")
            .at("id", Group)
            .at("seq", GroupRecallMsg)
            .subject("id")
            .cases(vec![
                removed(Dan),
                non_member(Eve),
                non_member(Cat).at("id", Direct).at("seq", DirectMsg),
                without_role(Cat),
                without_role(Ben).at("id", Direct).at("seq", DirectMsg),
                late_joiner(Lou).subject("seq"),
                blocked_but_allowed(Fay, 200).at("id", Blocked).at("seq", BlockedFayRecallMsg),
                allowed(Ben, 200),
            ]),
        react(M::PUT),
        react(M::DELETE),
    ]
}

fn files_search_speech() -> Vec<Row> {
    use Method as M;
    // Readers of a file: its uploader and the members who can see a message carrying it (one
    // sent after they joined).
    let read = |path: &'static str, any_file: bool| {
        let mut cases = vec![
            removed(Dan),
            non_member(Eve),
            non_member(Cat).at("id", DirectFile),
            late_joiner(Lou),
            recalled(Cat).at("id", RecalledFile),
            allowed(Cat, 200),
            allowed(Ann, 200),
        ];
        if any_file {
            // The image's thumbnail is a file of its own, readable by whoever may read the image.
            cases.push(non_member(Eve).at("id", GroupThumb));
            cases.push(removed(Dan).at("id", GroupThumb));
            cases.push(late_joiner(Lou).at("id", GroupThumb));
            cases.push(allowed(Cat, 200).at("id", GroupThumb));
            cases.push(allowed(Ben, 200).at("id", DirectFile));
        }
        Row::new(M::GET, path).at("id", GroupFile).subject("id").cases(cases)
    };
    vec![
        Row::new(M::POST, "/api/v1/files").upload().cases(vec![allowed(Eve, 201)]),
        read("/api/v1/files/{id}", true),
        read("/api/v1/files/{id}/meta", true),
        // Neither a text file nor a thumbnail has a thumbnail of its own.
        read("/api/v1/files/{id}/thumbnail", false),
        Row::new(M::GET, "/api/v1/search/messages")
            .at("q", Lit("hello"))
            .at("conversation_id", Group)
            .subject("conversation_id")
            .cases(vec![
                removed(Dan),
                non_member(Eve),
                non_member(Cat).at("conversation_id", Direct),
                allowed(Cat, 200),
            ]),
        // The matrix's server has no speech engine: every caller hears so, and a file the caller
        // may not read gets the same answer as an unknown one.
        Row::new(M::POST, "/api/v1/speech/transcriptions")
            .body(|w| json!({ "file_id": w.resolve(GroupFile) }))
            .subject_in_body("file_id")
            .cases(vec![
                like_unknown(Eve, Kind::NonMember, 503, "speech_unavailable"),
                like_unknown(Dan, Kind::RemovedMember, 503, "speech_unavailable"),
                allowed_but(Cat, 503, "speech_unavailable"),
            ]),
    ]
}

/// A request frame on an open WebSocket.
#[derive(Debug, Clone, Copy)]
pub(super) enum Frame {
    Send,
    Read,
    Typing,
}

/// The WebSocket's own requests, which name a conversation like the HTTP calls do. A case's
/// `conversation_id` parameter names it; `allowed` means a `sent` answer to a send and no answer
/// to a read or typing.
pub(super) fn frame_cases() -> Vec<(Frame, Case)> {
    let refusals = |frame: Frame| {
        vec![
            (frame, non_member(Eve).at("conversation_id", Group)),
            (frame, removed(Dan).at("conversation_id", Group)),
            (frame, removed(Cat).at("conversation_id", Doomed)),
            (frame, non_member(Cat).at("conversation_id", Direct)),
            (frame, allowed(Cat, 200).at("conversation_id", Group)),
        ]
    };
    let mut cases = refusals(Frame::Send);
    cases.push((Frame::Send, blocked(Fay).at("conversation_id", Blocked)));
    cases.push((Frame::Send, blocked(Ann).at("conversation_id", Blocked)));
    cases.extend(refusals(Frame::Read));
    cases.push((Frame::Read, blocked_but_allowed(Fay, 200).at("conversation_id", Blocked)));
    cases.extend(refusals(Frame::Typing));
    cases
}

/// The operational endpoints at the root: no token needed, none looked at.
pub(super) const OPS: [&str; 4] = ["/healthz", "/readyz", "/metrics", "/openapi.json"];

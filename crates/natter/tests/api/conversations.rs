//! Groups and their roles: who may rename, add, remove, promote, transfer, dissolve; leaving;
//! the member limit; the system entries that record all of it; non-members seeing nothing.

use natter_proto::{ConversationView, MessageView};
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{
    Backend, TestApp, TestUser, on_both_backends, spawn_app, spawn_app_on, spawn_app_with, unknown_id,
};

on_both_backends!(non_member_cannot_see_or_touch_a_conversation);

/// A group "Team": olga owns it, adam is admin, mia and max are members; xena is outside.
struct Team {
    id: String,
    olga: TestUser,
    adam: TestUser,
    mia: TestUser,
    max: TestUser,
    xena: TestUser,
}

async fn team(app: &TestApp) -> Team {
    let olga = app.register("olga").await;
    let adam = app.register("adam").await;
    let mia = app.register("mia").await;
    let max = app.register("max").await;
    let xena = app.register("xena").await;
    let group = app.create_group(&olga, "Team", &[&adam, &mia, &max]).await;
    app.set_role(&olga, &group.id, &adam, "admin").await.expect_success();
    Team { id: group.id, olga, adam, mia, max, xena }
}

fn system_events(history: &[MessageView]) -> Vec<&str> {
    history.iter().filter_map(|entry| entry.system.as_ref()).map(|s| s.event.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_a_group_adds_members_and_logs_it() {
    let app = spawn_app().await;
    let olga = app.register("olga").await;
    let adam = app.register("adam").await;
    let mia = app.register("mia").await;
    let mut mia_ws = app.connect_ws(&mia).await;
    let mut olga_ws = app.connect_ws(&olga).await;

    let group = app.create_group(&olga, "Team", &[&adam, &mia]).await;
    assert_eq!((group.kind.as_str(), group.name.as_str()), ("group", "Team"));
    assert_eq!(group.owner_id.as_deref(), Some(olga.id.as_str()));
    assert_eq!(group.member_count, 3);
    assert_eq!(group.role, "owner");

    let frame = mia_ws.next_of_type("conversation").await;
    assert_eq!(frame["conversation"]["id"], group.id.as_str(), "members hear of the new group");
    // Each hears it as it is for them: their own role and read marker.
    let view = |frame: &Value| {
        let c = &frame["conversation"];
        (
            frame["event"].clone(),
            c["role"].clone(),
            c["read_seq"].clone(),
            c["unread_count"].clone(),
            c["member_count"].clone(),
        )
    };
    let expected = |role: &str| (json!("created"), json!(role), json!(1), json!(0), json!(3));
    assert_eq!(view(&frame), expected("member"));
    assert_eq!(view(&olga_ws.next_of_type("conversation").await), expected("owner"));

    let mut roles: Vec<(String, String)> =
        app.members(&adam, &group.id).await.into_iter().map(|member| (member.user.username, member.role)).collect();
    roles.sort();
    let expected = [("adam", "member"), ("mia", "member"), ("olga", "owner")];
    assert_eq!(roles, expected.map(|(u, r)| (u.to_owned(), r.to_owned())));

    let listed = app.conversations(&mia).await;
    let seen = listed.iter().find(|c| c.id == group.id).expect("mia lists the group");
    assert_eq!(seen.role, "member");

    let history = app.full_history(&mia, &group.id).await;
    let first = history.first().expect("the log records the creation");
    assert_eq!((first.seq, first.kind.as_str()), (1, "system"));
    let event = first.system.as_ref().expect("a system entry says what happened");
    assert_eq!((event.event.as_str(), event.actor_id.as_str()), ("group_created", olga.id.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_group_creations_are_refused() {
    let app = spawn_app().await;
    let olga = app.register("olga").await;
    let adam = app.register("adam").await;
    let direct = json!({ "kind": "direct", "name": "x", "member_ids": [adam.id] });
    app.post(&olga, "/conversations", direct).await.expect_any_client_error();
    let unnamed = json!({ "kind": "group", "name": "", "member_ids": [adam.id] });
    app.post(&olga, "/conversations", unnamed).await.expect_bad_request();
    let unknown = json!({ "kind": "group", "name": "Team", "member_ids": [unknown_id()] });
    app.post(&olga, "/conversations", unknown).await.expect_any_client_error();
    assert!(app.conversations(&olga).await.is_empty(), "nothing was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_member_cannot_manage_the_group() {
    let app = spawn_app().await;
    let t = team(&app).await;
    let members = |user: &TestUser| format!("/conversations/{}/members/{}", t.id, user.id);

    app.patch(&t.mia, &format!("/conversations/{}", t.id), json!({ "name": "Mine" }))
        .await
        .expect_error(403, "forbidden");
    app.add_members(&t.mia, &t.id, &[&t.xena]).await.expect_error(403, "forbidden");
    app.remove_member(&t.mia, &t.id, &t.max).await.expect_error(403, "forbidden");
    app.set_role(&t.mia, &t.id, &t.max, "admin").await.expect_error(403, "forbidden");
    app.set_role(&t.mia, &t.id, &t.mia, "admin").await.expect_error(403, "forbidden");
    app.patch(&t.mia, &members(&t.adam), json!({ "role": "member" })).await.expect_error(403, "forbidden");
    app.delete(&t.mia, &format!("/conversations/{}", t.id)).await.expect_error(403, "forbidden");

    // Muting is the member's own setting.
    let muted: ConversationView =
        app.patch(&t.mia, &format!("/conversations/{}", t.id), json!({ "muted": true })).await.expect(200);
    assert!(muted.muted);
    assert!(!app.conversation(&t.max, &t.id).await.muted, "muting is per member");

    let after = app.conversation(&t.olga, &t.id).await;
    assert_eq!((after.name.as_str(), after.member_count), ("Team", 4), "nothing changed");
    assert_eq!(app.role_of(&t.olga, &t.id, &t.max).await.as_deref(), Some("member"));
    assert_eq!(app.role_of(&t.olga, &t.id, &t.adam).await.as_deref(), Some("admin"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_manages_members_but_not_admins_or_the_owner() {
    let app = spawn_app().await;
    let t = team(&app).await;

    let renamed: ConversationView =
        app.patch(&t.adam, &format!("/conversations/{}", t.id), json!({ "name": "Renamed" })).await.expect(200);
    assert_eq!(renamed.name, "Renamed");

    app.add_members(&t.adam, &t.id, &[&t.xena]).await.expect_success();
    assert_eq!(app.conversation(&t.xena, &t.id).await.role, "member");
    app.remove_member(&t.adam, &t.id, &t.max).await.expect_success();
    app.get(&t.max, &format!("/conversations/{}", t.id)).await.expect_error(404, "not_found");

    app.set_role(&t.olga, &t.id, &t.mia, "admin").await.expect_success();
    app.remove_member(&t.adam, &t.id, &t.mia).await.expect_error(403, "forbidden");
    app.remove_member(&t.adam, &t.id, &t.olga).await.expect_error(403, "forbidden");
    app.set_role(&t.adam, &t.id, &t.xena, "admin").await.expect_error(403, "forbidden");
    app.set_role(&t.adam, &t.id, &t.mia, "member").await.expect_error(403, "forbidden");
    app.set_role(&t.adam, &t.id, &t.adam, "owner").await.expect_error(403, "forbidden");
    app.delete(&t.adam, &format!("/conversations/{}", t.id)).await.expect_error(403, "forbidden");

    let after = app.conversation(&t.olga, &t.id).await;
    assert_eq!(after.owner_id.as_deref(), Some(t.olga.id.as_str()));
    assert_eq!(after.member_count, 4, "olga, adam, mia, xena");
    assert_eq!(app.role_of(&t.olga, &t.id, &t.mia).await.as_deref(), Some("admin"));
    assert_eq!(app.role_of(&t.olga, &t.id, &t.xena).await.as_deref(), Some("member"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_promotes_demotes_transfers_and_dissolves() {
    let app = spawn_app().await;
    let t = team(&app).await;
    let mut max_ws = app.connect_ws(&t.max).await;

    app.set_role(&t.olga, &t.id, &t.mia, "admin").await.expect_success();
    assert_eq!(app.role_of(&t.max, &t.id, &t.mia).await.as_deref(), Some("admin"));
    app.set_role(&t.olga, &t.id, &t.mia, "member").await.expect_success();
    assert_eq!(app.role_of(&t.max, &t.id, &t.mia).await.as_deref(), Some("member"));
    app.set_role(&t.olga, &t.id, &t.mia, "emperor").await.expect_bad_request();
    app.remove_member(&t.olga, &t.id, &t.adam).await.expect_success();

    // Transfer: the previous owner becomes an admin.
    app.set_role(&t.olga, &t.id, &t.mia, "owner").await.expect_success();
    let seen_by_mia = app.conversation(&t.mia, &t.id).await;
    assert_eq!(seen_by_mia.role, "owner");
    assert_eq!(seen_by_mia.owner_id.as_deref(), Some(t.mia.id.as_str()));
    assert_eq!(app.conversation(&t.olga, &t.id).await.role, "admin");
    app.delete(&t.olga, &format!("/conversations/{}", t.id)).await.expect_error(403, "forbidden");

    app.delete(&t.mia, &format!("/conversations/{}", t.id)).await.expect_success();
    max_ws.frames_until(|f| f["type"] == "conversation" && f["event"] == "dissolved").await;
    for user in [&t.max, &t.mia, &t.olga] {
        app.get(user, &format!("/conversations/{}", t.id)).await.expect_error(404, "not_found");
        assert!(app.conversations(user).await.iter().all(|c| c.id != t.id));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_can_leave() {
    let app = spawn_app().await;
    let t = team(&app).await;
    app.remove_member(&t.max, &t.id, &t.max).await.expect_success();

    app.get(&t.max, &format!("/conversations/{}", t.id)).await.expect_error(404, "not_found");
    assert!(app.conversations(&t.max).await.iter().all(|c| c.id != t.id));
    assert_eq!(app.conversation(&t.olga, &t.id).await.member_count, 3);
    let history = app.full_history(&t.olga, &t.id).await;
    let left = history.last().and_then(|entry| entry.system.as_ref()).expect("a system entry");
    assert_eq!((left.event.as_str(), left.actor_id.as_str()), ("member_left", t.max.id.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_size_is_limited() {
    let app = spawn_app_with(|config| config.limits.max_group_members = 3).await;
    let a = app.register("anna").await;
    let b = app.register("bert").await;
    let c = app.register("cleo").await;
    let d = app.register("dora").await;

    let group = app.create_group(&a, "Three", &[&b, &c]).await;
    app.add_members(&a, &group.id, &[&d]).await.expect_client_error("group_full");
    assert_eq!(app.members(&a, &group.id).await.len(), 3);
    app.get(&d, &format!("/conversations/{}", group.id)).await.expect_error(404, "not_found");

    let too_big = json!({ "kind": "group", "name": "Four", "member_ids": [b.id, c.id, d.id] });
    app.post(&a, "/conversations", too_big).await.expect_client_error("group_full");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_entries_record_every_change_in_order() {
    let app = spawn_app().await;
    let olga = app.register("olga").await;
    let adam = app.register("adam").await;
    let mia = app.register("mia").await;
    let xena = app.register("xena").await;
    let group = app.create_group(&olga, "Team", &[&adam, &mia]).await;

    app.patch(&olga, &format!("/conversations/{}", group.id), json!({ "name": "New name" })).await.expect_status(200);
    app.add_members(&olga, &group.id, &[&xena]).await.expect_success();
    app.remove_member(&olga, &group.id, &mia).await.expect_success();
    app.set_role(&olga, &group.id, &adam, "admin").await.expect_success();

    let history = app.full_history(&adam, &group.id).await;
    let seqs: Vec<i64> = history.iter().map(|entry| entry.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert!(history.iter().all(|entry| entry.kind == "system"));
    assert_eq!(
        system_events(&history),
        ["group_created", "renamed", "members_added", "member_removed", "role_changed"]
    );
    let events: Vec<_> = history.iter().filter_map(|entry| entry.system.clone()).collect();
    assert!(events.iter().all(|event| event.actor_id == olga.id), "olga did everything");
    assert_eq!(events[1].name.as_deref(), Some("New name"));
    assert_eq!(events[2].user_ids, [xena.id.as_str()]);
    assert_eq!(events[3].user_ids, [mia.id.as_str()]);
    assert_eq!(events[4].user_ids, [adam.id.as_str()]);
    assert_eq!(events[4].role.as_deref(), Some("admin"));
    assert_eq!(app.conversation(&adam, &group.id).await.last_seq, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_are_listed_newest_activity_first() {
    let app = spawn_app().await;
    let olga = app.register("olga").await;
    let adam = app.register("adam").await;
    let first = app.create_group(&olga, "First", &[&adam]).await;
    let second = app.create_group(&olga, "Second", &[&adam]).await;

    let order = |list: Vec<ConversationView>| -> Vec<String> { list.into_iter().map(|c| c.id).collect() };
    assert_eq!(order(app.conversations(&adam).await), [second.id.clone(), first.id.clone()]);
    let sent = app.send_text(&olga, &first.id, "bump").await;
    let listed = app.conversations(&adam).await;
    assert_eq!(listed[0].last_message.as_ref().map(|m| m.id.as_str()), Some(sent.id.as_str()));
    assert_eq!(order(listed), [first.id.clone(), second.id.clone()]);
    app.send_text(&adam, &second.id, "bump back").await;
    assert_eq!(order(app.conversations(&olga).await), [second.id, first.id]);
}

async fn non_member_cannot_see_or_touch_a_conversation(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let olga = app.register("olga").await;
    let adam = app.register("adam").await;
    let xena = app.register("xena").await;
    let group = app.create_group(&olga, "Secret", &[&adam]).await;
    let sent = app.send_text(&olga, &group.id, "for members only").await;
    let direct = app.make_friends(&olga, &adam).await;

    for conversation in [group.id.as_str(), direct.as_str(), &unknown_id()] {
        let base = format!("/conversations/{conversation}");
        let seq = sent.seq;
        let attempts: Vec<(Method, String, Option<Value>)> = vec![
            (Method::GET, base.clone(), None),
            (Method::PATCH, base.clone(), Some(json!({ "name": "Mine" }))),
            (Method::DELETE, base.clone(), None),
            (Method::GET, format!("{base}/messages?after_seq=0&limit=10"), None),
            (
                Method::POST,
                format!("{base}/messages"),
                Some(json!({ "client_msg_id": "x1", "kind": "text", "text": "let me in" })),
            ),
            (Method::GET, format!("{base}/members"), None),
            (Method::POST, format!("{base}/members"), Some(json!({ "user_ids": [xena.id] }))),
            (Method::PATCH, format!("{base}/members/{}", adam.id), Some(json!({ "role": "admin" }))),
            (Method::DELETE, format!("{base}/members/{}", adam.id), None),
            (Method::POST, format!("{base}/read"), Some(json!({ "seq": seq }))),
            (Method::PATCH, format!("{base}/messages/{seq}"), Some(json!({ "text": "edited" }))),
            (Method::DELETE, format!("{base}/messages/{seq}"), None),
            (Method::PUT, format!("{base}/messages/{seq}/reactions/👍"), None),
        ];
        for (method, path, body) in attempts {
            app.call(method, &path, Some(&xena.access_token), body.as_ref()).await.expect_error(404, "not_found");
        }
    }

    assert!(app.conversations(&xena).await.is_empty());
    let mut xena_ws = app.connect_ws(&xena).await;
    let reply = xena_ws.send_message(&group.id, "x2", "let me in").await;
    assert_eq!((reply["type"].as_str(), reply["code"].as_str()), (Some("error"), Some("not_found")));

    // Nothing the outsider tried reached the log or the membership.
    let history = app.full_history(&olga, &group.id).await;
    assert_eq!(history.last(), Some(&sent));
    assert_eq!(app.conversation(&olga, &group.id).await.name, "Secret");
    assert_eq!(app.members(&olga, &group.id).await.len(), 2);
}

//! Profiles and user search.

use natter_proto::{UserList, UserView};
use reqwest::Method;
use serde_json::json;

use crate::common::{TestApp, TestUser, spawn_app, unknown_id};

async fn search(app: &TestApp, user: &TestUser, query: &str) -> Vec<String> {
    let list: UserList = app.get_query(user, "/users", &[("query", query)]).await.expect(200);
    let mut usernames: Vec<String> = list.users.into_iter().map(|user| user.username).collect();
    usernames.sort();
    usernames
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_can_be_read_and_updated() {
    let app = spawn_app().await;
    let alice = app.register_with_nickname("alice", "Alice").await;
    let bob = app.register("bob").await;
    let registered: UserView = app.get(&alice, "/users/me").await.expect(200);
    assert_eq!(registered, alice.view, "the profile is the one registration returned");
    assert_eq!(registered.nickname, "Alice");

    let updated: UserView = app
        .patch(&alice, "/users/me", json!({ "nickname": "Alice Liddell", "bio": "down the hole" }))
        .await
        .expect(200);
    assert_eq!(updated.nickname, "Alice Liddell");
    assert_eq!(updated.bio, "down the hole");
    assert_eq!(updated.username, "alice", "the username does not change");

    // Only the fields present change.
    let bio_only: UserView = app.patch(&alice, "/users/me", json!({ "bio": "curiouser" })).await.expect(200);
    assert_eq!(bio_only.nickname, "Alice Liddell");
    assert_eq!(bio_only.bio, "curiouser");

    let me: UserView = app.get(&alice, "/users/me").await.expect(200);
    assert_eq!(me, bio_only);
    let seen_by_bob: UserView = app.get(&bob, &format!("/users/{}", alice.id)).await.expect(200);
    assert_eq!(seen_by_bob, bio_only, "others see the same public profile");

    let too_long = "n".repeat(1000);
    app.patch(&alice, "/users/me", json!({ "nickname": too_long })).await.expect_bad_request();
    let unchanged: UserView = app.get(&alice, "/users/me").await.expect(200);
    assert_eq!(unchanged.nickname, "Alice Liddell");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_user_is_not_found() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    app.get(&alice, &format!("/users/{}", unknown_id())).await.expect_error_in(404, &["user_not_found", "not_found"]);
    app.call(Method::GET, &format!("/users/{}", alice.id), None, None).await.expect_error(401, "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_finds_usernames_and_nicknames() {
    let app = spawn_app().await;
    let dave = app.register("dave").await;
    app.register_with_nickname("alice", "Alice Liddell").await;
    app.register_with_nickname("alicia", "Keys").await;
    app.register_with_nickname("bob", "小明同学").await;
    app.register_with_nickname("carol", "王小明").await;

    assert_eq!(search(&app, &dave, "ali").await, ["alice", "alicia"]);
    assert_eq!(search(&app, &dave, "ALIC").await, ["alice", "alicia"], "case-insensitive");
    assert_eq!(search(&app, &dave, "liddell").await, ["alice"], "nickname matches too");
    assert_eq!(search(&app, &dave, "小明").await, ["bob", "carol"], "CJK substring");
    assert_eq!(search(&app, &dave, "明同").await, ["bob"], "CJK substring in the middle");
    assert_eq!(search(&app, &dave, "zzz").await, Vec::<String>::new());
}

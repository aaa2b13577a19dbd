use natter_core::ids::UserId;
use natter_core::model::{User, UserRole};
use natter_core::store::prelude::*;
use natter_core::store::{NewUser, ProfileUpdate, StoreError};
use natter_store::SqlStore;

use crate::fixtures::{at, user};
use crate::harness::TestDb;

fn usernames(users: &[User]) -> Vec<&str> {
    users.iter().map(|u| u.username.as_str()).collect()
}

pub(crate) async fn create_and_look_up_users(db: &TestDb) {
    let store = &db.store;
    store.ping().await.expect("ping");
    let alice = user(store, "Alice", "Alice A").await;
    let bob = user(store, "bob", "Bob B").await;

    assert_eq!(store.user(&alice.id).await.expect("user"), Some(alice.clone()));
    assert_eq!(store.user(&UserId::from("nobody")).await.expect("user"), None);
    let (found, hash) = store.user_by_username("aLiCe").await.expect("by username").expect("found");
    assert_eq!(found, alice);
    assert_eq!(hash, "hash-of-Alice");
    assert_eq!(store.user_by_username("alice2").await.expect("by username"), None);

    // In the order asked, unknown ids left out, duplicates once.
    let ids = [bob.id.clone(), UserId::from("nobody"), alice.id.clone(), bob.id.clone()];
    assert_eq!(store.users(&ids).await.expect("users"), vec![bob.clone(), alice.clone()]);
    assert_eq!(store.users(&[]).await.expect("users"), vec![]);
}

pub(crate) async fn usernames_are_unique_case_insensitively(db: &TestDb) {
    let store = &db.store;
    let first = user(store, "carol", "Carol").await;
    let mut second = first.clone();
    second.id = UserId::generate();
    second.username = "CAROL".into();
    let error = store.create_user(NewUser { user: second.clone(), password_hash: "h".into() }).await;
    assert!(matches!(error, Err(StoreError::Conflict("username"))), "{error:?}");
    assert_eq!(store.user(&second.id).await.expect("user"), None);

    // Sub-millisecond precision is not kept: what create returns is what reads return.
    let mut precise = second.clone();
    precise.username = "carol2".into();
    precise.created_at = at(5) + chrono::Duration::nanoseconds(123_456_789);
    let created = store.create_user(NewUser { user: precise, password_hash: "h".into() }).await.expect("create");
    assert_eq!(created.created_at, at(5) + chrono::Duration::milliseconds(123));
    assert_eq!(store.user(&created.id).await.expect("user"), Some(created));
}

pub(crate) async fn update_profile_and_password(db: &TestDb) {
    let store = &db.store;
    let dave = user(store, "dave", "Dave").await;

    let update =
        ProfileUpdate { nickname: Some("David".into()), bio: Some("hi".into()), avatar: Some(Some("f1".into())) };
    let updated = store.update_profile(&dave.id, update).await.expect("update").expect("exists");
    assert_eq!(
        (updated.nickname.as_str(), updated.bio.as_str(), updated.avatar.as_deref()),
        ("David", "hi", Some("f1"))
    );
    assert_eq!(store.user(&dave.id).await.expect("user"), Some(updated.clone()));

    // None leaves a field alone.
    let unchanged = store.update_profile(&dave.id, ProfileUpdate::default()).await.expect("update").expect("exists");
    assert_eq!(unchanged, updated);
    // Some(None) clears the avatar.
    let update = ProfileUpdate { avatar: Some(None), ..ProfileUpdate::default() };
    let cleared = store.update_profile(&dave.id, update).await.expect("update").expect("exists");
    assert_eq!(cleared.avatar, None);
    assert_eq!(cleared.nickname, "David");

    assert_eq!(store.update_profile(&UserId::from("nobody"), ProfileUpdate::default()).await.expect("update"), None);

    assert_eq!(store.password_hash(&dave.id).await.expect("hash").as_deref(), Some("hash-of-dave"));
    store.set_password_hash(&dave.id, "new-hash").await.expect("set hash");
    assert_eq!(store.password_hash(&dave.id).await.expect("hash").as_deref(), Some("new-hash"));
    assert_eq!(store.password_hash(&UserId::from("nobody")).await.expect("hash"), None);
}

pub(crate) async fn search_users_by_username_and_nickname(db: &TestDb) {
    let store = &db.store;
    user(store, "malice", "Mal").await;
    user(store, "alice", "Alice Smith").await;
    user(store, "zhang", "张伟").await;
    user(store, "wei_li", "Li").await;
    user(store, "weixin", "WX").await;
    let alicia = user(store, "alicia", "Alicia").await;
    let disabled = User { id: UserId::generate(), username: "alison".into(), disabled: true, ..alicia };
    store.create_user(NewUser { user: disabled, password_hash: "h".into() }).await.expect("create");

    // Username prefix matches first, then by username; disabled accounts never.
    let found = store.search_users("ALI", 10).await.expect("search");
    assert_eq!(usernames(&found), ["alice", "alicia", "malice"]);
    assert_eq!(usernames(&store.search_users("ali", 2).await.expect("search")), ["alice", "alicia"]);
    // Nickname, case-insensitively and in Chinese by any substring.
    assert_eq!(usernames(&store.search_users("smith", 10).await.expect("search")), ["alice"]);
    assert_eq!(usernames(&store.search_users("伟", 10).await.expect("search")), ["zhang"]);
    assert_eq!(usernames(&store.search_users("张伟", 10).await.expect("search")), ["zhang"]);
    // LIKE wildcards are literal.
    assert_eq!(usernames(&store.search_users("wei_", 10).await.expect("search")), ["wei_li"]);
    assert!(store.search_users("%", 10).await.expect("search").is_empty());
    assert!(store.search_users("nobody", 10).await.expect("search").is_empty());
    let roles: Vec<UserRole> = found.iter().map(|u| u.role).collect();
    assert_eq!(roles, [UserRole::User; 3]);
}

pub(crate) async fn reconnecting_keeps_data_and_migrations_are_idempotent(db: &TestDb) {
    let erin = user(&db.store, "erin", "Erin").await;
    let again = SqlStore::connect(&db.url, 2).await.expect("reopen");
    assert_eq!(again.user(&erin.id).await.expect("user"), Some(erin));
    again.close().await;
}

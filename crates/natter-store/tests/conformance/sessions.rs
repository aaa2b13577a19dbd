use natter_core::ids::{SessionId, UserId};
use natter_core::model::{Session, Time};
use natter_core::store::prelude::*;
use natter_core::store::{RefreshOutcome, StoreError};

use crate::fixtures::{at, user};
use crate::harness::TestDb;

fn session(user: &UserId, created: Time, expires: Time) -> Session {
    Session {
        id: SessionId::generate(),
        user_id: user.clone(),
        device_name: Some("phone".into()),
        created_at: created,
        last_used_at: created,
        expires_at: expires,
        revoked: false,
    }
}

fn ids(sessions: &[Session]) -> Vec<SessionId> {
    sessions.iter().map(|s| s.id.clone()).collect()
}

pub(crate) async fn sessions_are_listed_live_newest_first(db: &TestDb) {
    let store = &db.store;
    let frank = user(store, "frank", "Frank").await;
    let other = user(store, "grace", "Grace").await;
    let old = session(&frank.id, at(10), at(1000));
    let new = Session { device_name: None, ..session(&frank.id, at(20), at(1000)) };
    let expired = session(&frank.id, at(30), at(100));
    let revoked = session(&frank.id, at(40), at(1000));
    for (s, hash) in [(&old, "h-old"), (&new, "h-new"), (&expired, "h-expired"), (&revoked, "h-revoked")] {
        store.create_session(s, hash).await.expect("create session");
    }
    store.create_session(&session(&other.id, at(50), at(1000)), "h-other").await.expect("create session");
    assert!(store.revoke_session(&frank.id, &revoked.id).await.expect("revoke"));

    assert_eq!(store.session(&new.id).await.expect("session"), Some(new.clone()));
    assert_eq!(store.session(&SessionId::from("nope")).await.expect("session"), None);
    assert_eq!(store.sessions_of(&frank.id, at(200)).await.expect("sessions"), vec![new.clone(), old.clone()]);
    assert_eq!(ids(&store.sessions_of(&frank.id, at(50)).await.expect("sessions")), ids(&[expired, new, old]));

    // A refresh token hash is unique.
    let clash = store.create_session(&session(&frank.id, at(60), at(1000)), "h-old").await;
    assert!(matches!(clash, Err(StoreError::Conflict(_))), "{clash:?}");
}

pub(crate) async fn refresh_tokens_rotate_and_reuse_revokes(db: &TestDb) {
    let store = &db.store;
    let heidi = user(store, "heidi", "Heidi").await;
    let live = session(&heidi.id, at(10), at(1000));
    store.create_session(&live, "t1").await.expect("create session");

    let RefreshOutcome::Rotated(rotated) = store.rotate_refresh_token("t1", "t2", at(20)).await.expect("rotate") else {
        panic!("a current token rotates");
    };
    assert_eq!(rotated, Session { last_used_at: at(20), ..live.clone() });
    assert_eq!(store.session(&live.id).await.expect("session"), Some(rotated));
    assert!(matches!(
        store.rotate_refresh_token("t2", "t3", at(30)).await.expect("rotate"),
        RefreshOutcome::Rotated(_)
    ));

    // Presenting a spent token revokes the session; its current token is then worthless too.
    assert_eq!(
        store.rotate_refresh_token("t1", "x", at(40)).await.expect("rotate"),
        RefreshOutcome::Reused(live.id.clone())
    );
    assert!(store.session(&live.id).await.expect("session").expect("exists").revoked);
    assert_eq!(store.rotate_refresh_token("t3", "t4", at(50)).await.expect("rotate"), RefreshOutcome::Invalid);
    assert_eq!(store.rotate_refresh_token("unknown", "t5", at(50)).await.expect("rotate"), RefreshOutcome::Invalid);
    // The refused rotation stored nothing: its new hash is unknown.
    assert_eq!(store.rotate_refresh_token("t4", "t6", at(50)).await.expect("rotate"), RefreshOutcome::Invalid);

    // An expired session's token is refused.
    let short = session(&heidi.id, at(10), at(100));
    store.create_session(&short, "s1").await.expect("create session");
    assert_eq!(store.rotate_refresh_token("s1", "s2", at(100)).await.expect("rotate"), RefreshOutcome::Invalid);
    assert!(!store.session(&short.id).await.expect("session").expect("exists").revoked);
}

pub(crate) async fn revoke_one_or_all_other_sessions(db: &TestDb) {
    let store = &db.store;
    let ivan = user(store, "ivan", "Ivan").await;
    let judy = user(store, "judy", "Judy").await;
    let sessions: Vec<Session> = (0..3).map(|i| session(&ivan.id, at(i), at(1000))).collect();
    for (i, s) in sessions.iter().enumerate() {
        store.create_session(s, &format!("ivan-{i}")).await.expect("create session");
    }
    let judys = session(&judy.id, at(0), at(1000));
    store.create_session(&judys, "judy").await.expect("create session");

    // Only the owner can revoke, and only once.
    assert!(!store.revoke_session(&judy.id, &sessions[0].id).await.expect("revoke"));
    assert!(store.revoke_session(&ivan.id, &sessions[0].id).await.expect("revoke"));
    assert!(!store.revoke_session(&ivan.id, &sessions[0].id).await.expect("revoke"));

    store.revoke_other_sessions(&ivan.id, Some(&sessions[2].id)).await.expect("revoke others");
    assert_eq!(ids(&store.sessions_of(&ivan.id, at(10)).await.expect("sessions")), ids(&sessions[2..]));
    store.revoke_other_sessions(&ivan.id, None).await.expect("revoke all");
    assert!(store.sessions_of(&ivan.id, at(10)).await.expect("sessions").is_empty());
    assert_eq!(ids(&store.sessions_of(&judy.id, at(10)).await.expect("sessions")), ids(&[judys]));
}

//! `entries_page`, `entry_count`, `conversation_heads` and `memberships_of`: what search reads
//! from the store.

use natter_core::ids::Seq;
use natter_core::model::MessageKind;
use natter_core::store::Effect;
use natter_core::store::prelude::*;

use crate::fixtures::{at, event, group, member, send, user};
use crate::harness::TestDb;

async fn scan_pages_every_entry_in_order(db: &TestDb) {
    let store: &dyn Store = &db.store;
    let ann = user(store, "ann", "Ann").await;
    let bob = user(store, "bob", "Bob").await;
    let (first, _) = group(store, "one", &ann, &[&bob], at(1)).await;
    let (second, _) = group(store, "two", &bob, &[], at(2)).await;
    for n in 0..3 {
        send(store, &first.id, &ann, &format!("first {n}"), at(10 + n)).await;
        send(store, &second.id, &bob, &format!("second {n}"), at(20 + n)).await;
    }
    event(
        store,
        &first.id,
        &ann,
        MessageKind::Recall,
        Some(Seq::new(2)),
        Effect::Recall { target_seq: Seq::new(2) },
        at(30),
    )
    .await;

    assert_eq!(store.entry_count().await.expect("count"), 2 + 6 + 1);
    let mut scanned = Vec::new();
    let mut after = None;
    loop {
        let page = store.entries_page(after.as_ref().map(|(c, s): &(_, Seq)| (c, *s)), 2).await.expect("page");
        let Some(last) = page.last() else { break };
        after = Some((last.conversation_id.clone(), last.seq));
        scanned.extend(page.into_iter().map(|m| (m.conversation_id, m.seq, m.recalled)));
    }
    let mut expected = Vec::new();
    for (id, last) in [(&first.id, 5), (&second.id, 4)] {
        for seq in 1..=last {
            expected.push((id.clone(), Seq::new(seq), id == &first.id && seq == 2));
        }
    }
    expected.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    assert_eq!(scanned, expected);

    // Each conversation's last seq, in id order, paged.
    let mut heads = Vec::new();
    let mut after = None;
    loop {
        let page = store.conversation_heads(after.as_ref(), 1).await.expect("heads");
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        heads.extend(page);
    }
    let mut wanted = vec![(first.id.clone(), Seq::new(5)), (second.id.clone(), Seq::new(4))];
    wanted.sort();
    assert_eq!(heads, wanted);
    let everything = store.conversation_heads(None, 100).await.expect("heads");
    assert_eq!(everything, wanted);

    let mut memberships = store.memberships_of(&bob.id).await.expect("memberships");
    memberships.sort();
    let mut wanted = vec![(first.id.clone(), Seq::ZERO), (second.id.clone(), Seq::ZERO)];
    wanted.sort();
    assert_eq!(memberships, wanted);
    let carl = user(store, "carl", "Carl").await;
    let joined = event(
        store,
        &first.id,
        &ann,
        MessageKind::System,
        None,
        Effect::AddMembers(vec![member(&first.id, &carl, natter_core::model::MemberRole::Member, at(40))]),
        at(40),
    )
    .await;
    assert_eq!(store.memberships_of(&carl.id).await.expect("memberships"), [(first.id.clone(), joined.seq)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_scan() {
    scan_pages_every_entry_in_order(&TestDb::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_scan() {
    if let Some(db) = TestDb::postgres("log_scan").await {
        scan_pages_every_entry_in_order(&db).await;
    }
}

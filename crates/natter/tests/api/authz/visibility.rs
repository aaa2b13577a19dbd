//! What the answers hold, beyond their status: a removed member, a late joiner and an outsider
//! find no trace of the group's earlier messages in their conversation list, history or search,
//! while its members do.

use std::time::{Duration, Instant};

use natter_proto::SearchResults;

use super::case::Kind;
use super::run::Outcome;
use super::world::{Ref, SECRET, Who, World};
use crate::common::TestApp;

/// How long the index may take to show the secret to a member (it commits every 500 ms).
const INDEXED_WITHIN: Duration = Duration::from_secs(15);

pub(super) async fn run_visibility(app: &TestApp, world: &World) -> Vec<Outcome> {
    let group = world.resolve(Ref::Group);
    let secret_seq: i64 = world.resolve(Ref::GroupSecret).parse().expect("a seq");
    let mut outcomes = Vec::new();
    let mut record = |kind: Kind, what: String, failure: Option<String>| {
        outcomes.push(Outcome { kind, what: format!("visibility: {what}"), failure });
    };

    // A member finds the secret, so that nobody else finding it is a meaningful check.
    let found = searching(app, world, Who::Cat, None, true).await;
    record(Kind::Allowed, "cat finds the group's message by search".into(), found);

    for (who, kind) in [(Who::Dan, Kind::RemovedMember), (Who::Lou, Kind::LateJoiner), (Who::Eve, Kind::NonMember)] {
        let failure = searching(app, world, who, None, false).await;
        record(kind, format!("{who} does not find the group's earlier message by search"), failure);
    }
    let failure = searching(app, world, Who::Lou, Some(&group), false).await;
    record(Kind::LateJoiner, "lou does not find it searching the group".into(), failure);

    for (who, kind) in [(Who::Dan, Kind::RemovedMember), (Who::Eve, Kind::NonMember)] {
        let listed: Vec<String> = app.conversations(world.user(who)).await.into_iter().map(|c| c.id).collect();
        let hidden = [Ref::Group, Ref::Doomed, Ref::Direct].map(|r| world.resolve(r));
        let failure = listed
            .iter()
            .find(|id| hidden.contains(id))
            .map(|id| format!("{who}'s conversation list holds {id}: {listed:?}"));
        record(
            kind,
            format!("{who}'s conversation list holds none of the group, the dissolved group, ann–ben"),
            failure,
        );
    }

    let history = app.full_history(world.user(Who::Lou), &group).await;
    let earlier: Vec<i64> = history.iter().map(|entry| entry.seq).filter(|seq| *seq <= secret_seq).collect();
    let failure = (!earlier.is_empty() || history.is_empty())
        .then(|| format!("lou's history starts at his joining, after seq {secret_seq}: it holds {earlier:?}"));
    record(Kind::LateJoiner, "lou's history starts where he joined".into(), failure);
    let history = app.full_history(world.user(Who::Cat), &group).await;
    let failure =
        (!history.iter().any(|entry| entry.seq == secret_seq)).then(|| format!("cat's history lacks seq {secret_seq}"));
    record(Kind::Allowed, "cat's history holds the group's earlier message".into(), failure);

    let failure = pushes_to_removed_member(app, world, &group).await;
    record(Kind::RemovedMember, "dan's socket gets no push of the group's new message".into(), failure);
    outcomes
}

/// Ann sends to the group while dan (removed) and lou (a member) have sockets open: lou gets the
/// `message` frame; dan gets nothing of the group before a friend request sent to him afterwards
/// (one in-process bus delivers in order, so the request is the barrier).
async fn pushes_to_removed_member(app: &TestApp, world: &World, group: &str) -> Option<String> {
    let mut dan = app.connect_ws(world.user(Who::Dan)).await;
    let mut lou = app.connect_ws(world.user(Who::Lou)).await;
    let sent = app.send_text(world.user(Who::Ann), group, "after dan left").await;
    let pushed = lou.next_message().await;
    if pushed.id != sent.id {
        return Some(format!("lou was pushed {pushed:?}, not the new message"));
    }
    app.request_friend(world.user(Who::Eve), world.user(Who::Dan)).await;
    let frames = dan.frames_until(|frame| frame["type"] == "friend_request").await;
    let leaked: Vec<_> = frames.iter().filter(|frame| frame.to_string().contains(group)).collect();
    (!leaked.is_empty()).then(|| format!("dan's socket got frames about the group: {leaked:?}"))
}

/// Searches as `who` for the secret until it is found (when `expected`) or a member has found it;
/// a failure when the answer differs from `expected`.
async fn searching(app: &TestApp, world: &World, who: Who, scope: Option<&str>, expected: bool) -> Option<String> {
    let deadline = Instant::now() + INDEXED_WITHIN;
    loop {
        let mut query = vec![("q", SECRET)];
        if let Some(scope) = scope {
            query.push(("conversation_id", scope));
        }
        let results: SearchResults = app.get_query(world.user(who), "/search/messages", &query).await.expect(200);
        let found = results.hits.iter().any(|hit| hit.message.text.as_deref() == Some(SECRET));
        if found == expected {
            return None;
        }
        if !expected || Instant::now() > deadline {
            let hits: Vec<(String, i64)> = results.hits.iter().map(|h| (h.conversation_id.clone(), h.seq)).collect();
            return Some(format!("{who} searching {SECRET:?}: expected found = {expected}, hits {hits:?}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

//! The search-index conformance suite (feature `testkit`): what every `SearchIndex` adapter
//! must do, written once. An adapter's tests run it with [`crate::search_conformance!`], giving
//! each case a fresh, empty index.

use chrono::{Duration, TimeZone, Utc};

use super::{ParsedQuery, Scope, SearchDocument, SearchIndex, SearchOrder, SearchRequest};
use crate::ids::{ConversationId, MessageId, Seq, UserId};
use crate::model::Time;

/// Generates one `#[tokio::test]` per case. `$open` is an async fn returning
/// `Option<(Arc<dyn SearchIndex>, Guard)>` (a fresh index and whatever must live as long as it;
/// `None` skips the case).
#[macro_export]
macro_rules! search_conformance {
    ($open:path) => {
        $crate::search_conformance!(@cases $open;
            cjk_any_substring_of_two_or_more, latin_words_prefixes_and_case, mixed_terms_all_must_match,
            upsert_replaces_by_message_id, inserted_documents_are_replaced_by_upserts, remove_deletes, scopes_and_min_seq_filter, newest_order_and_paging,
            relevance_order_ranks_better_matches_first, created_until_bounds_results, clear_empties_the_index,
            long_and_odd_texts, checkpoints_are_kept_apart_from_documents);
    };
    (@cases $open:path; $($case:ident),+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some((index, _guard)) = $open().await else { return };
                $crate::search::conformance::$case(&*index).await;
            }
        )+
    };
}

fn at(minutes: i64) -> Time {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().expect("a valid time") + Duration::minutes(minutes)
}

/// A document in conversation `conversation` at `seq`, created `seq` minutes after the epoch
/// of the suite; its id is `"{conversation}-{seq}"`.
pub fn document(conversation: &str, seq: i64, text: &str) -> SearchDocument {
    SearchDocument {
        message_id: MessageId(format!("{conversation}-{seq}")),
        conversation_id: ConversationId(conversation.into()),
        seq: Seq::new(seq),
        sender_id: UserId("sender".into()),
        created_at: at(seq),
        text: text.into(),
    }
}

fn request(query: &str, scopes: &[(&str, i64)]) -> SearchRequest {
    SearchRequest {
        query: ParsedQuery::parse(query).expect("the suite's queries parse"),
        scopes: scopes
            .iter()
            .map(|(c, min)| Scope { conversation_id: ConversationId((*c).into()), min_seq: Seq::new(*min) })
            .collect(),
        order: SearchOrder::Newest,
        offset: 0,
        limit: 100,
        created_until: None,
    }
}

async fn ids(index: &dyn SearchIndex, request: &SearchRequest) -> Vec<String> {
    let page = index.search(request).await.expect("search");
    page.hits.into_iter().map(|hit| hit.message_id.0).collect()
}

async fn found(index: &dyn SearchIndex, query: &str) -> Vec<String> {
    ids(index, &request(query, &[("c", 0)])).await
}

async fn load(index: &dyn SearchIndex, documents: Vec<SearchDocument>) {
    index.upsert(documents).await.expect("upsert");
    index.flush().await.expect("flush");
}

pub async fn cjk_any_substring_of_two_or_more(index: &dyn SearchIndex) {
    let text = "我们明天去北京开会";
    load(index, vec![document("c", 1, text), document("c", 2, "今天下雨"), document("c", 3, "東京でラーメンを食べた")])
        .await;
    let chars: Vec<char> = text.chars().collect();
    for from in 0..chars.len() {
        for to in from + 2..=chars.len() {
            let needle: String = chars[from..to].iter().collect();
            assert_eq!(found(index, &needle).await, ["c-1"], "substring {needle}");
        }
    }
    for absent in ["上海", "北开", "京北", "会我", "天去北京开会了"] {
        assert!(found(index, absent).await.is_empty(), "{absent} must not match");
    }
    assert_eq!(found(index, "ラーメン").await, ["c-3"]);
    assert_eq!(found(index, "京で").await, ["c-3"]);
    assert_eq!(found(index, "下雨").await, ["c-2"]);
}

pub async fn latin_words_prefixes_and_case(index: &dyn SearchIndex) {
    load(
        index,
        vec![
            document("c", 1, "Hello World, the QUICK brown fox"),
            document("c", 2, "helicopter rides at 5pm"),
            document("c", 3, "A Über-café in Zürich"),
        ],
    )
    .await;
    assert_eq!(found(index, "hello").await, ["c-1"]);
    assert_eq!(found(index, "HELLO").await, ["c-1"]);
    assert_eq!(found(index, "wor").await, ["c-1"]);
    assert_eq!(found(index, "quick").await, ["c-1"]);
    assert_eq!(found(index, "hel").await, ["c-2", "c-1"]);
    assert_eq!(found(index, "5pm").await, ["c-2"]);
    assert_eq!(found(index, "über").await, ["c-3"]);
    assert_eq!(found(index, "ZÜRICH").await, ["c-3"]);
    assert_eq!(found(index, "a").await, ["c-3"], "a one-letter term matches the one-letter word only");
    assert!(found(index, "orld").await.is_empty(), "Latin matches words and prefixes, not infixes");
    assert!(found(index, "worlds").await.is_empty());
}

pub async fn mixed_terms_all_must_match(index: &dyn SearchIndex) {
    load(
        index,
        vec![
            document("c", 1, "明天 meeting in 北京"),
            document("c", 2, "meeting tomorrow"),
            document("c", 3, "北京烤鸭"),
        ],
    )
    .await;
    assert_eq!(found(index, "meet 北京").await, ["c-1"]);
    assert_eq!(found(index, "北京").await, ["c-3", "c-1"]);
    assert_eq!(found(index, "meeting, tomorrow!").await, ["c-2"]);
    assert!(found(index, "meeting 上海").await.is_empty());
}

pub async fn upsert_replaces_by_message_id(index: &dyn SearchIndex) {
    load(index, vec![document("c", 1, "original words")]).await;
    load(index, vec![document("c", 1, "edited text"), document("c", 1, "edited again")]).await;
    assert!(found(index, "original").await.is_empty());
    assert_eq!(found(index, "again").await, ["c-1"]);
    assert_eq!(index.count().await.expect("count"), 1);
}

pub async fn inserted_documents_are_replaced_by_upserts(index: &dyn SearchIndex) {
    index.insert(vec![document("c", 1, "first words"), document("c", 2, "second words")]).await.expect("insert");
    index.flush().await.expect("flush");
    assert_eq!(found(index, "words").await, ["c-2", "c-1"]);
    load(index, vec![document("c", 1, "edited text")]).await;
    index.insert(vec![document("c", 3, "third words")]).await.expect("insert");
    index.remove(vec![MessageId("c-2".into())]).await.expect("remove");
    index.flush().await.expect("flush");
    assert_eq!(found(index, "words").await, ["c-3"]);
    assert_eq!(found(index, "edited").await, ["c-1"]);
    assert_eq!(index.count().await.expect("count"), 2);
}

pub async fn remove_deletes(index: &dyn SearchIndex) {
    load(index, vec![document("c", 1, "keep this"), document("c", 2, "drop this")]).await;
    index.remove(vec![MessageId("c-2".into()), MessageId("unknown".into())]).await.expect("remove");
    index.flush().await.expect("flush");
    assert_eq!(found(index, "this").await, ["c-1"]);
    assert_eq!(index.count().await.expect("count"), 1);
}

pub async fn scopes_and_min_seq_filter(index: &dyn SearchIndex) {
    let mut documents = Vec::new();
    for seq in 1..=6 {
        documents.push(document("a", seq, "shared secret"));
        documents.push(document("b", seq, "shared secret"));
    }
    load(index, documents).await;
    assert!(ids(index, &request("secret", &[])).await.is_empty(), "no scope, nothing");
    assert!(ids(index, &request("secret", &[("z", 0)])).await.is_empty());
    let only_a = ids(index, &request("secret", &[("a", 0)])).await;
    assert_eq!(only_a, ["a-6", "a-5", "a-4", "a-3", "a-2", "a-1"]);
    let mut both = ids(index, &request("secret", &[("a", 5), ("b", 1)])).await;
    both.sort();
    assert_eq!(both, ["a-5", "a-6", "b-1", "b-2", "b-3", "b-4", "b-5", "b-6"]);
    let mut late = ids(index, &request("secret", &[("a", 4), ("b", 6)])).await;
    late.sort();
    assert_eq!(late, ["a-4", "a-5", "a-6", "b-6"]);
}

pub async fn newest_order_and_paging(index: &dyn SearchIndex) {
    load(index, (1..=25).map(|seq| document("c", seq, &format!("page item {seq}"))).collect()).await;
    let mut seen = Vec::new();
    let mut offset = 0;
    loop {
        let mut page_request = request("item", &[("c", 0)]);
        page_request.limit = 10;
        page_request.offset = offset;
        let page = index.search(&page_request).await.expect("search");
        seen.extend(page.hits.iter().map(|hit| hit.seq));
        assert!(page.hits.iter().all(|hit| hit.conversation_id.as_str() == "c"));
        offset += 10;
        if !page.more {
            break;
        }
        assert_eq!(page.hits.len(), 10);
    }
    assert_eq!(seen, (1..=25).rev().map(Seq::new).collect::<Vec<_>>());
}

pub async fn relevance_order_ranks_better_matches_first(index: &dyn SearchIndex) {
    load(
        index,
        vec![
            document("c", 1, "rust rust rust rust, all about rust"),
            document("c", 2, "a long message that mentions rust only once among many other words here"),
            document("c", 3, "nothing relevant"),
        ],
    )
    .await;
    let mut ranked = request("rust", &[("c", 0)]);
    ranked.order = SearchOrder::Relevance;
    let page = index.search(&ranked).await.expect("search");
    let order: Vec<&str> = page.hits.iter().map(|hit| hit.message_id.as_str()).collect();
    assert_eq!(order, ["c-1", "c-2"]);
    assert!(page.hits[0].score > page.hits[1].score && page.hits[1].score > 0.0);
}

pub async fn created_until_bounds_results(index: &dyn SearchIndex) {
    load(index, (1..=5).map(|seq| document("c", seq, "tick")).collect()).await;
    let mut bounded = request("tick", &[("c", 0)]);
    bounded.created_until = Some(at(3));
    assert_eq!(ids(index, &bounded).await, ["c-3", "c-2", "c-1"]);
}

pub async fn clear_empties_the_index(index: &dyn SearchIndex) {
    load(index, vec![document("c", 1, "one"), document("c", 2, "two")]).await;
    assert_eq!(index.count().await.expect("count"), 2);
    index.clear().await.expect("clear");
    index.flush().await.expect("flush");
    assert_eq!(index.count().await.expect("count"), 0);
    assert!(found(index, "one").await.is_empty());
    load(index, vec![document("c", 3, "three")]).await;
    assert_eq!(found(index, "three").await, ["c-3"]);
}

pub async fn long_and_odd_texts(index: &dyn SearchIndex) {
    let long_word = "x".repeat(5000);
    let many = (0..3000).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ");
    load(
        index,
        vec![
            document("c", 1, &format!("{long_word} tail")),
            document("c", 2, &format!("{many} 最后的话")),
            document("c", 3, "quote's \"back\\slash\" <tag> & 'apos' 😀 emoji"),
        ],
    )
    .await;
    assert_eq!(found(index, &"x".repeat(40)).await, ["c-1"]);
    assert_eq!(found(index, "最后").await, ["c-2"]);
    assert_eq!(found(index, "w2999").await, ["c-2"]);
    assert_eq!(found(index, "slash").await, ["c-3"]);
    assert_eq!(found(index, "quote's").await, ["c-3"]);
}

async fn sorted_checkpoints(index: &dyn SearchIndex) -> Vec<(String, i64)> {
    let mut checkpoints: Vec<(String, i64)> =
        index.checkpoints().await.expect("checkpoints").into_iter().map(|(c, seq)| (c.0, seq.get())).collect();
    checkpoints.sort();
    checkpoints
}

pub async fn checkpoints_are_kept_apart_from_documents(index: &dyn SearchIndex) {
    assert!(sorted_checkpoints(index).await.is_empty());
    index.upsert(vec![document("c", 1, "one"), document("c", 2, "two")]).await.expect("upsert");
    let checkpoints = vec![(ConversationId("c".into()), Seq::new(2)), (ConversationId("d".into()), Seq::new(7))];
    index.set_checkpoints(checkpoints).await.expect("set checkpoints");
    index.flush().await.expect("flush");
    assert_eq!(sorted_checkpoints(index).await, [("c".to_owned(), 2), ("d".to_owned(), 7)]);
    assert_eq!(index.count().await.expect("count"), 2, "checkpoints are not documents");
    assert_eq!(found(index, "one").await, ["c-1"]);

    index.set_checkpoints(vec![(ConversationId("c".into()), Seq::new(5))]).await.expect("move a checkpoint");
    index.flush().await.expect("flush");
    assert_eq!(sorted_checkpoints(index).await, [("c".to_owned(), 5), ("d".to_owned(), 7)]);

    index.clear().await.expect("clear");
    index.flush().await.expect("flush");
    assert!(sorted_checkpoints(index).await.is_empty(), "a rebuild starts without checkpoints");
}

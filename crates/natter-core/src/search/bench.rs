//! The search benchmark's workload (feature `testkit`), run against any `SearchIndex`: a
//! generated corpus of mixed English/Chinese chat messages, indexed, then a mix of queries,
//! reporting indexing throughput and query latency percentiles. The binaries are natter-search's
//! `search_bench` example (embedded index) and natter-store's `search_bench_pg` (PostgreSQL).
//!
//! Flags: `--messages 1000000 --queries 3000 --conversations 10000 --threads 2 --seed 7`
//! (`--dir PATH` for the embedded index, `--postgres-url URL` for PostgreSQL).
//!
//! Corpus: messages spread over the conversations (Zipf-like: a few busy ones), each 3–24
//! tokens; 55 % English, 30 % Chinese, 15 % mixed; English words from a Zipf-distributed
//! vocabulary with a tail of rarer forms, Chinese from 3000 words of 2–4 common characters.
//! Queries (as a member of 100 random conversations plus the source message's, 10 of them joined
//! late; 10 % in one conversation only; 25 % in relevance order, the rest newest first; limit
//! 20), in turn: a common word, a word, a 2–4 letter prefix, two words, a 2-character Chinese
//! substring, a 3–4 character Chinese substring, an English word + Chinese substring — all but
//! the common word cut from a random message, and checked to find something.

use std::time::{Duration, Instant};

use super::tokens::is_cjk;
use super::{ParsedQuery, Scope, SearchDocument, SearchIndex, SearchOrder, SearchRequest};
use crate::ids::{ConversationId, MessageId, Seq, UserId};
use chrono::{TimeZone, Utc};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

const ENGLISH: &str = "the be to of and a in that have it for not on with he as you do at this but his by from they we \
say her she or an will my one all would there their what so up out if about who get which go me when make can like time \
no just him know take people into year your good some could them see other than then now look only come its over think \
also back after use two how our work first well way even new want because any these give day most us meeting project \
deadline release server client message search index review deploy merge branch ticket customer invoice payment office \
lunch dinner weekend holiday flight hotel train ticket report budget design sprint standup bug fix test build docker \
kubernetes database postgres backup restore monitor alert latency throughput performance benchmark cluster node network \
router firewall password account login logout profile avatar photo video call voice music movie game football coffee tea \
birthday party gift family friend brother sister mother father school teacher student homework exam library book novel";
const HANZI: &str = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产\
种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还\
因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月\
公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见\
计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处队南给色光门即保治北造百规热领七海口东导器压志世金增争济阶油\
思术极交受联什认六共权收证改清己美再采转更单风切打白教速花带安场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张\
信马节话米整空元况今集温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容儿须际商非验连断深难近矿千周委素\
技备半办青省列习响约支般史感劳便团往酸历市克何除消构府称太准精值号率族维划选标写存候毛亲快效斯院查江型眼王按格养易置派层\
片始却专状育厂京识适属圆包火住调满县局照参红细引听该铁价严龙飞北京上海会议明天项目开发测试服务器数据库消息搜索索引";

struct Corpus {
    english: Vec<&'static str>,
    /// Chinese words of 2–4 characters.
    words_zh: Vec<String>,
}

impl Corpus {
    fn new(rng: &mut StdRng) -> Corpus {
        let mut english: Vec<&'static str> = ENGLISH.split_whitespace().collect();
        english.dedup();
        let hanzi: Vec<char> = HANZI.chars().filter(|c| !c.is_whitespace()).collect();
        let words_zh = (0..3000)
            .map(|_| {
                let length = rng.gen_range(2..=4);
                (0..length).map(|_| hanzi[zipf(rng, hanzi.len())]).collect()
            })
            .collect();
        Corpus { english, words_zh }
    }

    fn english_word(&self, rng: &mut StdRng) -> String {
        let word = self.english[zipf(rng, self.english.len())];
        // A long tail of rarer forms (plural, -ing, numbered), so the vocabulary is not tiny.
        match rng.gen_range(0..10) {
            0 => format!("{word}s"),
            1 => format!("{word}ing"),
            2 => format!("{word}{}", rng.gen_range(0..1000)),
            3 => capitalize(word),
            _ => word.to_owned(),
        }
    }

    fn message(&self, rng: &mut StdRng) -> String {
        let tokens = rng.gen_range(3..=24);
        let kind = rng.gen_range(0..100);
        let mut text = String::new();
        for n in 0..tokens {
            let chinese = match kind {
                0..55 => false,
                55..85 => true,
                _ => rng.gen_bool(0.5),
            };
            if chinese {
                text.push_str(&self.words_zh[zipf(rng, self.words_zh.len())]);
                if rng.gen_range(0..6) == 0 {
                    text.push(if rng.gen_bool(0.5) { '，' } else { '。' });
                }
            } else {
                if n > 0 {
                    text.push(' ');
                }
                text.push_str(&self.english_word(rng));
            }
        }
        text
    }
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// An index in `0..n`, small ones much more likely (roughly Zipf, exponent 1).
fn zipf(rng: &mut StdRng, n: usize) -> usize {
    let x: f64 = rng.r#gen::<f64>();
    (((n as f64 + 1.0).powf(x) - 1.0) as usize).min(n - 1)
}

fn hex_id(rng: &mut StdRng) -> String {
    format!("{:032x}", rng.r#gen::<u128>())
}

/// What to run; see the module docs for the flags.
#[derive(Debug, Clone)]
pub struct Args {
    pub messages: usize,
    pub queries: usize,
    pub conversations: usize,
    pub threads: usize,
    pub dir: Option<std::path::PathBuf>,
    pub postgres_url: Option<String>,
    pub seed: u64,
}

/// Parses the flags (panics with a message on a bad one: this is a tool, not a server).
pub fn args(flags: impl Iterator<Item = String>) -> Args {
    let mut args = Args {
        messages: 1_000_000,
        queries: 3_000,
        conversations: 10_000,
        threads: 2,
        dir: None,
        postgres_url: None,
        seed: 7,
    };
    let mut it = flags;
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        let number = || value.parse::<usize>().unwrap_or_else(|_| panic!("{flag}: not a number: {value}"));
        match flag.as_str() {
            "--messages" => args.messages = number(),
            "--queries" => args.queries = number(),
            "--conversations" => args.conversations = number().max(1),
            "--threads" => args.threads = number().max(1),
            "--seed" => args.seed = number() as u64,
            "--dir" => args.dir = Some(value.into()),
            "--postgres-url" => args.postgres_url = Some(value),
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Generates the corpus, indexes it into `index` (emptied first) and runs the queries; prints
/// the report to stdout, progress to stderr.
pub async fn run(index: &dyn SearchIndex, args: &Args) {
    let mut rng = StdRng::seed_from_u64(args.seed);
    let corpus = Corpus::new(&mut rng);
    let conversations: Vec<String> = (0..args.conversations).map(|_| hex_id(&mut rng)).collect();
    let epoch = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().expect("a valid time");

    eprintln!("generating {} messages…", args.messages);
    let mut last_seq = vec![Seq::ZERO; conversations.len()];
    let documents: Vec<SearchDocument> = (0..args.messages)
        .map(|n| {
            let c = zipf(&mut rng, conversations.len());
            last_seq[c] = last_seq[c].next();
            SearchDocument {
                message_id: MessageId(hex_id(&mut rng)),
                conversation_id: ConversationId(conversations[c].clone()),
                seq: last_seq[c],
                sender_id: UserId("sender".into()),
                created_at: epoch + chrono::Duration::milliseconds(n as i64 * 50),
                text: corpus.message(&mut rng),
            }
        })
        .collect();
    let text_bytes: usize = documents.iter().map(|d| d.text.len()).sum();

    index.clear().await.expect("clear");
    index.flush().await.expect("flush");
    eprintln!("indexing into the {} index…", index.name());
    let started = Instant::now();
    for chunk in documents.chunks(10_000) {
        index.upsert(chunk.to_vec()).await.expect("upsert");
    }
    index.flush().await.expect("flush");
    let indexing = started.elapsed();
    let count = index.count().await.expect("count");
    assert_eq!(count as usize, args.messages, "every message is searchable");
    let per_second = args.messages as f64 / indexing.as_secs_f64();

    // Queries: terms cut from random messages, so they hit.
    let mut requests = Vec::with_capacity(args.queries);
    let mut kinds = Vec::with_capacity(args.queries);
    let mut kind_index = 0usize;
    while requests.len() < args.queries {
        // Kinds take turns; a message without material for this kind is skipped.
        let document = &documents[rng.gen_range(0..documents.len())];
        let (kind, q) = query_from(&mut rng, &corpus, &document.text, kind_index % 7);
        let Some(q) = q else { continue };
        kind_index += 1;
        let Ok(query) = ParsedQuery::parse(&q) else { continue };
        let mut scopes: Vec<Scope> = conversations
            .choose_multiple(&mut rng, 100)
            .map(|c| Scope { conversation_id: ConversationId(c.clone()), min_seq: Seq::ZERO })
            .collect();
        scopes.push(Scope { conversation_id: document.conversation_id.clone(), min_seq: Seq::ZERO });
        for scope in scopes.iter_mut().take(10) {
            scope.min_seq = Seq::new(rng.gen_range(1..50));
        }
        if rng.gen_range(0..10) == 0 {
            scopes = vec![Scope { conversation_id: document.conversation_id.clone(), min_seq: Seq::ZERO }];
        }
        let order = if rng.gen_range(0..4) == 0 { SearchOrder::Relevance } else { SearchOrder::Newest };
        requests.push(SearchRequest { query, scopes, order, offset: 0, limit: 20, created_until: None });
        kinds.push(kind);
    }
    eprintln!("running {} queries…", requests.len());
    for request in requests.iter().take(50) {
        index.search(request).await.expect("warm-up search");
    }
    let mut latencies = Vec::with_capacity(requests.len());
    let mut hits = 0usize;
    let started = Instant::now();
    for (request, kind) in requests.iter().zip(&kinds) {
        let one = Instant::now();
        let page = index.search(request).await.expect("search");
        latencies.push(one.elapsed());
        hits += page.hits.len();
        // Every query but the common-word ones was cut from a message inside its scopes.
        assert!(*kind == "common word" || !page.hits.is_empty(), "a {kind} query found nothing: {:?}", request.query);
    }
    let querying = started.elapsed();
    let mut by_kind: std::collections::BTreeMap<&str, Vec<Duration>> = Default::default();
    for (kind, latency) in kinds.iter().zip(&latencies) {
        by_kind.entry(kind).or_default().push(*latency);
    }
    latencies.sort();

    println!("# natter search benchmark ({} index)", index.name());
    println!(
        "messages: {}  conversations: {}  text: {:.1} MB  seed: {}",
        args.messages,
        args.conversations,
        text_bytes as f64 / 1e6,
        args.seed
    );
    println!("indexing: {:.1} s, {:.0} messages/s", indexing.as_secs_f64(), per_second);
    println!(
        "queries: {} in {:.1} s, mean hits {:.1}; latency ms p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        latencies.len(),
        querying.as_secs_f64(),
        hits as f64 / latencies.len() as f64,
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.90)),
        ms(percentile(&latencies, 0.99)),
        ms(percentile(&latencies, 1.0)),
    );
    for (kind, mut list) in by_kind {
        list.sort();
        println!(
            "  {kind:<16} n={:<5} p50 {:.2}  p99 {:.2}",
            list.len(),
            ms(percentile(&list, 0.5)),
            ms(percentile(&list, 0.99))
        );
    }
}

/// A query of a random kind made from `text`; `None` when the text has nothing of that kind.
fn query_from(rng: &mut StdRng, corpus: &Corpus, text: &str, kind: usize) -> (&'static str, Option<String>) {
    let words: Vec<&str> = text.split(|c: char| !c.is_alphanumeric() || is_cjk(c)).filter(|w| !w.is_empty()).collect();
    let runs: Vec<Vec<char>> = text
        .split(|c: char| !is_cjk(c))
        .map(|run| run.chars().collect::<Vec<char>>())
        .filter(|run| run.len() >= 2)
        .collect();
    let cjk = |rng: &mut StdRng, min: usize, max: usize| -> Option<String> {
        let run = runs.iter().filter(|run| run.len() >= min).collect::<Vec<_>>();
        let run = run.choose(rng)?;
        let length = rng.gen_range(min..=max.min(run.len()));
        let from = rng.gen_range(0..=run.len() - length);
        Some(run[from..from + length].iter().collect())
    };
    match kind {
        0 => ("common word", Some(corpus.english[rng.gen_range(0..20)].to_owned())),
        1 => ("word", words.choose(rng).map(|w| (*w).to_owned())),
        2 => (
            "prefix",
            words.choose(rng).filter(|w| w.len() >= 3).map(|w| w.chars().take(rng.gen_range(2..=4)).collect()),
        ),
        3 => ("two words", (words.len() >= 2).then(|| format!("{} {}", words[0], words[words.len() - 1]))),
        4 => ("zh 2 chars", cjk(rng, 2, 2)),
        5 => ("zh 3-4 chars", cjk(rng, 3, 4)),
        _ => ("en + zh", words.choose(rng).and_then(|w| cjk(rng, 2, 3).map(|zh| format!("{w} {zh}")))),
    }
}

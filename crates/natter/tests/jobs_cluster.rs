//! Durable transcription jobs across real processes: `natter serve` nodes share PostgreSQL, NATS
//! with JetStream (`jobs.backend = "jetstream"`) and one file directory, and transcribe with the
//! embedded Whisper (tiny.en).
//!
//! * kill -9 the node that is transcribing a voice message: the other node finishes the job, and
//!   the conversation gets exactly one transcript entry;
//! * a job queued while no worker runs (`jobs.workers = 0`) is done once a worker starts;
//! * a careless client: many voice messages at once against a small queue bound, and a voice
//!   message recalled before its job runs.
//!
//! Needs `NATTER_TEST_POSTGRES_URL`, `NATTER_TEST_NATS_URL` (nats-server with `-js`) and
//! `NATTER_TEST_WHISPER_MODEL`; scripts/test.sh provides all three. Without them the tests skip,
//! unless `CI` is set: there they fail. Which node took the job is read from the nodes' logs
//! ("job started"): a property of another process that nothing else exposes yet.

mod support;

use std::time::{Duration, Instant};

use natter_proto::MessageView;
use support::{Cluster, Env, NodeOptions};

/// Long enough to keep tiny.en busy for several seconds, so the kill lands mid-transcription.
const LONG_SPEECH: &str = "Good morning everyone. This is a long voice message about the weather and the plans \
    for the week. On Monday it will be sunny and warm, so we will walk to the park by the river. On Tuesday \
    it may rain in the afternoon, so bring an umbrella and a warm coat. On Wednesday we meet the team at the \
    office at nine, and after lunch we review the reports together. Thank you, and see you soon.";
const SHORT_SPEECH: &str = "Hello world. The weather is sunny today.";
const ACK_WAIT_SECS: u64 = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_transcribing_node_leaves_the_job_to_the_other_and_one_transcript() {
    let Some(env) = Env::from_env("killing_the_transcribing_node") else { return };
    let mut cluster = Cluster::new(env).await;
    let options = NodeOptions { workers: 1, ack_wait_secs: ACK_WAIT_SECS, max_pending: 100, roles: "all" };
    let first = cluster.start_node(options);
    let second = cluster.start_node(options);
    cluster.wait_ready(&[first, second]).await;
    kill_mid_transcription(cluster, first, [first, second]).await;
}

/// The split topology: one gateway + chat process (it queues the job, runs none) and two worker
/// processes; kill -9 the worker that is transcribing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_transcribing_worker_of_a_split_topology_leaves_one_transcript() {
    let Some(env) = Env::from_env("killing_the_transcribing_worker") else { return };
    let mut cluster = Cluster::new(env).await;
    let front = cluster.start_node(NodeOptions {
        workers: 1,
        ack_wait_secs: ACK_WAIT_SECS,
        max_pending: 100,
        roles: "gateway,chat",
    });
    let worker = NodeOptions { workers: 1, ack_wait_secs: ACK_WAIT_SECS, max_pending: 100, roles: "worker" };
    let (first, second) = (cluster.start_node(worker), cluster.start_node(worker));
    cluster.wait_ready(&[front, first, second]).await;
    kill_mid_transcription(cluster, front, [first, second]).await;
}

/// Sends a long voice message through `front`, kills -9 whichever of `workers` starts its job
/// a moment later, and checks that the other finishes it with exactly one transcript.
async fn kill_mid_transcription(mut cluster: Cluster, front: usize, workers: [usize; 2]) {
    let [first, second] = workers;
    let (alice, conversation) = cluster.two_friends(front).await;
    let wav = support::speech_wav(LONG_SPEECH);

    let sent = Instant::now();
    let voice = cluster.send_voice(front, &alice, &conversation, wav, "long").await;
    let job = format!("job=transcribe_voice.{conversation}.{} ", voice.seq);
    let victim = cluster.wait_for_log(&[first, second], &job, "job started", Duration::from_secs(30)).await;
    let survivor = if victim == first { second } else { first };
    // Clients talk to `front`, or to the survivor when `front` was the victim.
    let reader = if front == victim { survivor } else { front };
    println!("job started on node {} {:?} after the upload and send began", victim + 1, sent.elapsed());
    // Into the transcription proper (the audio is read and decoded within milliseconds).
    tokio::time::sleep(Duration::from_millis(800)).await;
    cluster.kill(victim);
    let killed = Instant::now();
    assert!(
        !cluster.log_has(victim, &job, "voice message transcribed")
            && cluster.transcripts(reader, &alice, &conversation, voice.seq).await.is_empty(),
        "the victim finished before the kill: make the clip longer"
    );

    let transcript =
        cluster.wait_for_transcript(reader, &alice, &conversation, voice.seq, Duration::from_secs(120)).await;
    let recovered = killed.elapsed();
    println!(
        "transcript on node {} {recovered:?} after the kill -9 (ack wait {ACK_WAIT_SECS} s, then a whole transcription): {:?}",
        survivor + 1,
        transcript.text
    );
    assert!(cluster.log_has(survivor, &job, "delivered=2"), "the survivor ran the redelivery");
    assert_eq!(transcript.sender_id, alice.user.id);
    // Past another ack wait and more: no second run adds a second entry.
    tokio::time::sleep(Duration::from_secs(ACK_WAIT_SECS * 2 + 1)).await;
    let history = cluster.history(reader, &alice, &conversation).await;
    let transcripts: Vec<&MessageView> =
        history.iter().filter(|m| m.kind == "transcript" && m.target_seq == Some(voice.seq)).collect();
    assert_eq!(transcripts.len(), 1, "exactly one transcript entry: {history:?}");
    let stored = history.iter().find(|m| m.seq == voice.seq).expect("the voice message");
    assert_eq!(stored.transcript, transcripts[0].text, "the voice message carries that transcript");
    cluster.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_queued_while_no_worker_runs_is_done_once_one_starts() {
    let Some(env) = Env::from_env("a_job_queued_while_no_worker_runs") else { return };
    let mut cluster = Cluster::new(env).await;
    let chat =
        cluster.start_node(NodeOptions { workers: 0, ack_wait_secs: ACK_WAIT_SECS, max_pending: 100, roles: "all" });
    cluster.wait_ready(&[chat]).await;
    let (alice, conversation) = cluster.two_friends(chat).await;
    let voice = cluster.send_voice(chat, &alice, &conversation, support::speech_wav(SHORT_SPEECH), "short").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(cluster.transcripts(chat, &alice, &conversation, voice.seq).await.is_empty(), "nobody runs jobs yet");

    let worker =
        cluster.start_node(NodeOptions { workers: 1, ack_wait_secs: ACK_WAIT_SECS, max_pending: 100, roles: "all" });
    let started = Instant::now();
    cluster.wait_ready(&[worker]).await;
    let transcript = cluster.wait_for_transcript(chat, &alice, &conversation, voice.seq, Duration::from_secs(60)).await;
    println!("queued job done {:?} after its worker started: {:?}", started.elapsed(), transcript.text);
    assert!(transcript.text.as_deref().is_some_and(|text| !text.trim().is_empty()));
    cluster.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_voice_messages_is_acked_beyond_the_bound_and_a_recalled_one_is_skipped() {
    let Some(env) = Env::from_env("a_burst_of_voice_messages") else { return };
    let mut cluster = Cluster::new(env).await;
    let bound = 3;
    let chat =
        cluster.start_node(NodeOptions { workers: 0, ack_wait_secs: ACK_WAIT_SECS, max_pending: bound, roles: "all" });
    cluster.wait_ready(&[chat]).await;
    let (alice, conversation) = cluster.two_friends(chat).await;
    let wav = support::speech_wav(SHORT_SPEECH);

    // Six at once: every send is acknowledged (201); only `bound` jobs fit in the queue.
    let ids: Vec<String> = (0..6).map(|n| format!("burst-{n}")).collect();
    let sends = ids.iter().map(|id| cluster.send_voice(chat, &alice, &conversation, wav.clone(), id));
    let voices = futures_util::future::join_all(sends).await;
    assert_eq!(voices.len(), 6);
    let queued: Vec<i64> = voices
        .iter()
        .map(|voice| voice.seq)
        .filter(|seq| !cluster.log_has(chat, &format!("seq={seq} "), "transcription not queued"))
        .collect();
    assert_eq!(queued.len(), bound, "the queue took {bound}, the rest were logged: {queued:?}");
    // One of the queued is recalled before any worker runs.
    let recalled = queued[0];
    cluster.recall(chat, &alice, &conversation, recalled).await;

    let worker =
        cluster.start_node(NodeOptions { workers: 1, ack_wait_secs: ACK_WAIT_SECS, max_pending: bound, roles: "all" });
    cluster.wait_ready(&[worker]).await;
    for &seq in &queued[1..] {
        cluster.wait_for_transcript(chat, &alice, &conversation, seq, Duration::from_secs(120)).await;
    }
    let recall_job = format!("job=transcribe_voice.{conversation}.{recalled} ");
    cluster.wait_for_log(&[worker], &recall_job, "job started", Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let history = cluster.history(chat, &alice, &conversation).await;
    let transcribed: Vec<i64> =
        history.iter().filter(|m| m.kind == "transcript").filter_map(|m| m.target_seq).collect();
    println!(
        "6 voice messages sent at once, queue bound {bound}: queued {queued:?}, recalled {recalled}, transcribed {transcribed:?}"
    );
    let mut expected = queued[1..].to_vec();
    expected.sort_unstable();
    let mut transcribed_sorted = transcribed.clone();
    transcribed_sorted.sort_unstable();
    assert_eq!(transcribed_sorted, expected, "the queued, unrecalled ones, once each");
    cluster.finish().await;
}

//! The load of one round: every lane sends as fast as the server answers, over HTTP or a
//! WebSocket, until the server dies under it; uploaders upload small files; now and then a voice
//! message. What the server acknowledged, and what it never answered, is written down.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use natter_proto::{AcceptFriendResponse, AuthResponse, ConversationView, FileView, FriendRequestView, MessageView};
use rand::Rng;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{Base, post, register};
use crate::server::Server;

/// ann, bob and cat; the direct chats ann–bob and ann–cat, and a group of the three.
pub(crate) struct World {
    pub(crate) users: Vec<AuthResponse>,
    pub(crate) conversations: Vec<String>,
}

/// Who sends where, and how.
#[derive(Debug, Clone, Copy)]
struct Lane {
    user: usize,
    conversation: usize,
    websocket: bool,
}

const LANES: [Lane; 9] = [
    Lane { user: 0, conversation: 0, websocket: false },
    Lane { user: 1, conversation: 0, websocket: false },
    Lane { user: 0, conversation: 1, websocket: false },
    Lane { user: 2, conversation: 1, websocket: false },
    Lane { user: 0, conversation: 2, websocket: false },
    Lane { user: 1, conversation: 2, websocket: false },
    Lane { user: 2, conversation: 2, websocket: true },
    Lane { user: 1, conversation: 0, websocket: true },
    Lane { user: 0, conversation: 2, websocket: true },
];

/// A send the server acknowledged: the entry must be at `seq` with this id and text for good.
#[derive(Debug, Clone)]
pub(crate) struct Acked {
    pub(crate) conversation: String,
    pub(crate) seq: i64,
    pub(crate) client_msg_id: String,
    pub(crate) text: String,
    /// The word only this message contains, for search.
    pub(crate) token: String,
}

/// A send that got no answer (the server died): it may or may not be stored, and is sent again.
#[derive(Debug, Clone)]
pub(crate) struct Unanswered {
    pub(crate) user: usize,
    pub(crate) conversation: String,
    pub(crate) client_msg_id: String,
    pub(crate) text: String,
    pub(crate) token: String,
}

#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) acked: Vec<Acked>,
    pub(crate) unanswered: Vec<Unanswered>,
    /// Acknowledged uploads: the uploader, the id and the bytes.
    pub(crate) uploads: Vec<(usize, String, Vec<u8>)>,
    /// Acknowledged voice messages: conversation and seq.
    pub(crate) voices: Vec<(String, i64)>,
}

impl Outcome {
    fn merge(&mut self, other: Outcome) {
        self.acked.extend(other.acked);
        self.unanswered.extend(other.unanswered);
        self.uploads.extend(other.uploads);
        self.voices.extend(other.voices);
    }
}

pub(crate) fn http_client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("an HTTP client")
}

impl World {
    pub(crate) async fn create(http: &reqwest::Client, server: &Server) -> World {
        let users = vec![
            register(http, server, "ann").await,
            register(http, server, "bob").await,
            register(http, server, "cat").await,
        ];
        let mut conversations = Vec::new();
        for friend in [1, 2] {
            let body = json!({ "user_id": users[friend].user.id });
            let request: FriendRequestView = post(http, server, &users[0], "/friend-requests", body).await;
            let path = format!("/friend-requests/{}/accept", request.id);
            let accepted: AcceptFriendResponse = post(http, server, &users[friend], &path, json!({})).await;
            conversations.push(accepted.conversation.id);
        }
        let member_ids = [&users[1].user.id, &users[2].user.id];
        let body = json!({ "kind": "group", "name": "crash", "member_ids": member_ids });
        let group: ConversationView = post(http, server, &users[0], "/conversations", body).await;
        conversations.push(group.id);
        World { users, conversations }
    }
}

/// The text of the `n`th message of `lane` in `round`, and its unique word: fixed width, so that
/// no token is a prefix of another (search matches prefixes).
fn text_of(round: usize, lane: usize, n: usize) -> (String, String) {
    let token = format!("r{round:02}l{lane}n{n:05}");
    (format!("{token} crash round {round} lane {lane} message {n}"), token)
}

/// Runs the load against `server` until the server dies; the caller kills it. `voice`: a WAV to
/// send as one voice message (ann in her chat with bob) at the start of the round.
pub(crate) async fn run(
    http: &reqwest::Client,
    server: &Server,
    world: &Arc<World>,
    round: usize,
    voice: Option<Vec<u8>>,
) -> JoinSet<Outcome> {
    let mut tasks = JoinSet::new();
    for (index, lane) in LANES.iter().copied().enumerate() {
        let (http, base, world) = (http.clone(), server.base_url().to_owned(), world.clone());
        if lane.websocket {
            tasks.spawn(async move { websocket_lane(&base, &world, round, index, lane).await });
        } else {
            tasks.spawn(async move { http_lane(&http, &base, &world, round, index, lane).await });
        }
    }
    for user in [0, 1] {
        let (http, base, world) = (http.clone(), server.base_url().to_owned(), world.clone());
        tasks.spawn(async move { uploads(&http, &base, &world, user).await });
    }
    if let Some(wav) = voice {
        let (http, base, world) = (http.clone(), server.base_url().to_owned(), world.clone());
        tasks.spawn(async move { send_voice(&http, &base, &world, round, wav).await });
    }
    tasks
}

/// Waits for every task of a round (each ends when the server is gone) and merges what they saw.
pub(crate) async fn collect(mut tasks: JoinSet<Outcome>) -> Outcome {
    let mut outcome = Outcome::default();
    while let Some(joined) = tasks.join_next().await {
        outcome.merge(joined.expect("a load task panicked"));
    }
    outcome
}

/// Sends `body` as `user`; `None` when the server did not answer (it died), a panic on an error
/// answer (that is a defect, not a crash).
pub(crate) async fn send(
    http: &reqwest::Client,
    base: &str,
    user: &AuthResponse,
    conversation: &str,
    body: &Value,
) -> Option<MessageView> {
    let url = format!("{base}/api/v1/conversations/{conversation}/messages");
    let response = http.post(&url).bearer_auth(&user.access_token).json(body).send().await.ok()?;
    let status = response.status();
    let text = response.text().await.ok()?;
    assert!(status.is_success(), "{url}: {status} {text}");
    Some(serde_json::from_str(&text).unwrap_or_else(|error| panic!("{url}: {error}: {text}")))
}

async fn http_lane(
    http: &reqwest::Client,
    base: &str,
    world: &World,
    round: usize,
    index: usize,
    lane: Lane,
) -> Outcome {
    let user = &world.users[lane.user];
    let conversation = &world.conversations[lane.conversation];
    let mut outcome = Outcome::default();
    for n in 0.. {
        let (text, token) = text_of(round, index, n);
        let client_msg_id = format!("{token}-http");
        let body = json!({ "client_msg_id": client_msg_id, "kind": "text", "text": text });
        match send(http, base, user, conversation, &body).await {
            Some(stored) => {
                assert_eq!(stored.client_msg_id.as_deref(), Some(client_msg_id.as_str()));
                let conversation = conversation.clone();
                outcome.acked.push(Acked { conversation, seq: stored.seq, client_msg_id, text, token });
            }
            None => {
                let conversation = conversation.clone();
                outcome.unanswered.push(Unanswered { user: lane.user, conversation, client_msg_id, text, token });
                break;
            }
        }
    }
    outcome
}

/// One `send` frame at a time on one socket; `sent` acknowledges, a closed socket ends the lane.
async fn websocket_lane(base: &str, world: &World, round: usize, index: usize, lane: Lane) -> Outcome {
    let user = &world.users[lane.user];
    let conversation = &world.conversations[lane.conversation];
    let mut outcome = Outcome::default();
    let url = format!("{}/api/v1/ws?token={}", base.replacen("http", "ws", 1), user.access_token);
    let Ok((mut socket, _)) = tokio_tungstenite::connect_async(url).await else { return outcome };
    for n in 0.. {
        let (text, token) = text_of(round, index, n);
        let client_msg_id = format!("{token}-ws");
        let frame = json!({
            "type": "send", "id": format!("q{n}"), "conversation_id": conversation,
            "client_msg_id": client_msg_id, "kind": "text", "text": text,
        });
        let mut answer = None;
        if socket.send(Message::text(frame.to_string())).await.is_ok() {
            while let Ok(Some(Ok(message))) = tokio::time::timeout(Duration::from_secs(20), socket.next()).await {
                let Message::Text(frame) = message else { continue };
                let frame: Value = serde_json::from_str(frame.as_str()).expect("a JSON frame");
                if frame["id"] == format!("q{n}") {
                    answer = Some(frame);
                    break;
                }
            }
        }
        let Some(answer) = answer else {
            let conversation = conversation.clone();
            outcome.unanswered.push(Unanswered { user: lane.user, conversation, client_msg_id, text, token });
            break;
        };
        assert_eq!(answer["type"], "sent", "a WebSocket send failed: {answer}");
        let stored: MessageView = serde_json::from_value(answer["message"].clone()).expect("a stored entry");
        assert_eq!(stored.client_msg_id.as_deref(), Some(client_msg_id.as_str()));
        let conversation = conversation.clone();
        outcome.acked.push(Acked { conversation, seq: stored.seq, client_msg_id, text, token });
    }
    outcome
}

/// Small files of random bytes (1 B – 48 KiB), one after another.
async fn uploads(http: &reqwest::Client, base: &str, world: &World, uploader: usize) -> Outcome {
    let user = &world.users[uploader];
    let mut outcome = Outcome::default();
    loop {
        let bytes: Vec<u8> = {
            let mut rng = rand::thread_rng();
            let size = rng.gen_range(1..48 * 1024);
            (0..size).map(|_| rng.r#gen::<u8>()).collect()
        };
        let Some(file) = upload(http, base, user, bytes.clone(), "blob.bin", "application/octet-stream").await else {
            break;
        };
        assert_eq!(file.size, bytes.len() as i64);
        outcome.uploads.push((uploader, file.id, bytes));
    }
    outcome
}

async fn upload(
    http: &reqwest::Client,
    base: &str,
    user: &AuthResponse,
    bytes: Vec<u8>,
    name: &str,
    mime: &str,
) -> Option<FileView> {
    let part = Part::bytes(bytes).file_name(name.to_owned()).mime_str(mime).expect("a MIME type");
    let url = format!("{base}/api/v1/files");
    let request = http.post(&url).bearer_auth(&user.access_token).multipart(Form::new().part("file", part));
    let response = request.send().await.ok()?;
    let status = response.status();
    let text = response.text().await.ok()?;
    assert!(status.is_success(), "{url}: {status} {text}");
    Some(serde_json::from_str(&text).unwrap_or_else(|error| panic!("{url}: {error}: {text}")))
}

/// ann's voice message to bob: upload, then send. Acknowledged or not, like any send.
async fn send_voice(http: &reqwest::Client, base: &str, world: &World, round: usize, wav: Vec<u8>) -> Outcome {
    let mut outcome = Outcome::default();
    let user = &world.users[0];
    let conversation = &world.conversations[0];
    let Some(file) = upload(http, base, user, wav.clone(), "voice.wav", "audio/wav").await else { return outcome };
    outcome.uploads.push((0, file.id.clone(), wav));
    let body = json!({ "client_msg_id": format!("voice-{round}"), "kind": "voice", "file_id": file.id });
    if let Some(stored) = send(http, base, user, conversation, &body).await {
        outcome.voices.push((conversation.clone(), stored.seq));
    }
    outcome
}

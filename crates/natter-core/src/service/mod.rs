//! The services: the rules of each area, written against the ports only.
//!
//! A handler calls one service method; the method checks the caller's rights, changes storage,
//! and after commit publishes what changed.

pub mod accounts;
pub mod conversations;
pub mod files;
pub mod friends;
pub mod job_runner;
pub mod log;
pub mod messages;
pub mod password;
pub mod presence;
pub mod rules;
pub mod search;
pub mod speech;
pub mod throttle;
pub mod transcripts;
pub mod users;

use std::sync::Arc;

use crate::bus::Bus;
use crate::clock::Clock;
use crate::error::{DomainError, DomainResult, Thing};
use crate::ids::{ConversationId, UserId};
use crate::jobs::{Job, JobQueue, TranscribeVoice};
use crate::model::{Conversation, ConversationKind, Member, Message};
use crate::notify::Notifier;
use crate::presence::{MemoryRoutes, RouteTable};
use crate::search::SearchIndex;
use crate::store::Store;

/// Limits the services enforce.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_text_bytes: usize,
    pub max_group_members: usize,
    /// Sends per user (`too_many_messages`); `None`: no limit.
    pub messages: Option<throttle::RateLimit>,
    /// Uploads per user (`too_many_uploads`); `None`: no limit.
    pub uploads: Option<throttle::RateLimit>,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_text_bytes: 16 * 1024, max_group_members: 2000, messages: None, uploads: None }
    }
}

/// The handles every service holds.
#[derive(Clone)]
pub struct Deps {
    pub store: Arc<dyn Store>,
    pub notifier: Notifier,
    pub clock: Arc<dyn Clock>,
    /// Which node holds which device of which user (presence, targeted delivery).
    pub routes: Arc<dyn RouteTable>,
    /// Sliding windows for the login and registration limits.
    pub throttle: Arc<dyn throttle::Throttle>,
    pub limits: Limits,
    /// Appends entries and pushes them, in `seq` order per conversation.
    pub log: log::ConversationLog,
    /// The message search index (`None`: search answers `search_unavailable`).
    pub search: Option<Arc<dyn SearchIndex>>,
}

impl Deps {
    pub fn new(store: Arc<dyn Store>, bus: Arc<dyn Bus>, clock: Arc<dyn Clock>, limits: Limits) -> Self {
        let notifier = Notifier::new(bus);
        Self {
            log: log::ConversationLog::new(store.clone(), notifier.clone()),
            store,
            notifier,
            clock,
            routes: Arc::new(MemoryRoutes::default()),
            throttle: Arc::new(throttle::MemoryThrottle::default()),
            limits,
            search: None,
        }
    }

    /// These deps with a shared route table and throttle (a cluster's), instead of this process's.
    /// `targeted`: publish each event only to the nodes that hold a recipient's device (the bus
    /// must have per-node subjects).
    pub fn with_shared_state(
        mut self,
        routes: Arc<dyn RouteTable>,
        throttle: Arc<dyn throttle::Throttle>,
        targeted: bool,
    ) -> Self {
        if targeted {
            self.notifier = self.notifier.targeted(routes.clone());
            self.log = log::ConversationLog::new(self.store.clone(), self.notifier.clone());
        }
        self.routes = routes;
        self.throttle = throttle;
        self
    }

    /// These deps with large groups fanned out by a worker: a log entry for more than
    /// `fan_out.above` recipients is queued as a fan-out job instead of looked up and published
    /// here. Only with targeted delivery (see [`Notifier::with_worker_fan_out`]).
    pub fn with_worker_fan_out(mut self, fan_out: crate::notify::WorkerFanOut) -> Self {
        self.notifier = self.notifier.with_worker_fan_out(fan_out);
        self.log = log::ConversationLog::new(self.store.clone(), self.notifier.clone());
        self
    }

    /// These deps with a search index.
    pub fn with_search(mut self, index: Arc<dyn SearchIndex>) -> Self {
        self.search = Some(index);
        self
    }

    /// The conversation and the caller's membership. A non-member learns nothing: `NotFound`.
    pub(crate) async fn membership(
        &self,
        user: &UserId,
        conversation: &ConversationId,
    ) -> DomainResult<(Conversation, Member)> {
        let (conversation, member) = self
            .store
            .membership(conversation, user)
            .await?
            .filter(|(c, _)| !c.dissolved)
            .ok_or(DomainError::not_found(Thing::Conversation))?;
        Ok((conversation, member))
    }
}

/// Every service, built once and shared by the gateway.
pub struct Services {
    pub deps: Deps,
    pub accounts: accounts::AccountService,
    pub users: users::UserService,
    pub friends: friends::FriendService,
    pub conversations: conversations::ConversationService,
    pub messages: messages::MessageService,
    pub files: files::FileService,
    pub search: search::SearchService,
    pub speech: speech::SpeechService,
    /// Where background jobs go (`None`: no jobs are queued).
    pub jobs: Option<Arc<dyn JobQueue>>,
}

impl Services {
    pub fn new(deps: Deps, auth: accounts::AuthSettings, file_ports: files::FilePorts) -> Self {
        Self {
            files: files::FileService::new(deps.clone(), file_ports),
            accounts: accounts::AccountService::new(deps.clone(), auth),
            users: users::UserService::new(deps.clone()),
            friends: friends::FriendService::new(deps.clone()),
            conversations: conversations::ConversationService::new(deps.clone()),
            messages: messages::MessageService::new(deps.clone()),
            search: search::SearchService::new(deps.clone()),
            speech: speech::SpeechService::unavailable(),
            jobs: None,
            deps,
        }
    }
}

impl Services {
    /// Replaces the (unavailable) speech service with a running one.
    pub fn with_speech(mut self, speech: speech::SpeechService) -> Self {
        self.speech = speech;
        self
    }

    /// Queues background jobs (transcriptions) on `jobs`.
    pub fn with_jobs(mut self, jobs: Arc<dyn JobQueue>) -> Self {
        self.jobs = Some(jobs);
        self
    }

    /// What runs this process's transcription jobs, for [`JobQueue::start_workers`].
    pub fn job_runner(&self) -> job_runner::JobRunner {
        job_runner::JobRunner::new(self.deps.clone(), self.files.clone(), self.speech.clone())
    }

    /// What runs fan-out jobs here, reporting to `metrics`; `None` without targeted delivery.
    pub fn fan_out_runner(
        &self,
        metrics: Arc<dyn crate::fan_out::FanOutMetrics>,
    ) -> Option<crate::fan_out::FanOutRunner> {
        self.deps.notifier.fan_out_runner(metrics)
    }

    /// Sends a message (see [`messages::MessageService::send`]). A newly stored `voice` message
    /// is then queued as a transcription job; the ack waits for the queue to hold the job (for
    /// JetStream: stored by the server), never for the transcript, which arrives later as a
    /// `transcript` entry.
    pub async fn send_message(
        &self,
        me: &UserId,
        conversation_id: &ConversationId,
        input: messages::SendInput,
    ) -> DomainResult<messages::Sent> {
        let sent = self.messages.send(me, conversation_id, input).await?;
        if sent.created && sent.message.kind == crate::model::MessageKind::Voice {
            self.queue_transcript(&sent.message).await;
        }
        Ok(sent)
    }

    /// Queues again the transcription of every voice message created within `within` that has
    /// no transcript yet (at most `limit`, oldest first), and returns how many were queued. A
    /// process that starts calls this: an in-memory queue dies with its process, and even a
    /// durable one misses the job of a process killed between storing a voice message and
    /// queueing it. Jobs are idempotent, so one still queued elsewhere costs a look-up; a voice
    /// message whose audio cannot be transcribed is tried once more per start within `within`.
    pub async fn requeue_transcripts(&self, within: std::time::Duration, limit: u32) -> DomainResult<usize> {
        if self.jobs.is_none() || !self.speech.is_available() {
            return Ok(0);
        }
        let now = self.deps.clock.now();
        let since = chrono::Duration::from_std(within)
            .ok()
            .and_then(|within| now.checked_sub_signed(within))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        let voices = self.deps.store.untranscribed_voices(since, limit).await?;
        for voice in &voices {
            self.queue_transcript(voice).await;
        }
        Ok(voices.len())
    }

    /// Queues the transcription of a stored voice message. A queue that is full or unreachable
    /// leaves the message without a transcript (logged); the send itself has succeeded.
    async fn queue_transcript(&self, voice: &Message) {
        let (Some(jobs), Some(file_id)) = (&self.jobs, &voice.file_id) else { return };
        // The process that stores the message decides; with roles, a worker elsewhere runs it.
        if !self.speech.is_available() {
            return;
        }
        let job = Job::TranscribeVoice(TranscribeVoice {
            conversation_id: voice.conversation_id.clone(),
            seq: voice.seq,
            file_id: crate::ids::FileId(file_id.clone()),
        });
        if let Err(error) = jobs.enqueue(job).await {
            tracing::warn!(conversation = %voice.conversation_id, seq = voice.seq.get(), %error,
                "transcription not queued: voice message left without a transcript");
        }
    }
}

pub(crate) fn is_group(conversation: &Conversation) -> bool {
    conversation.kind == ConversationKind::Group
}

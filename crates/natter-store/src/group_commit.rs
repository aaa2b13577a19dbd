//! Group commit for SQLite: plain appends (no effect) queue up for one task that stores
//! everything queued so far in one transaction, then answers each caller.
//!
//! SQLite has one writer, and every statement is a round trip to the connection's thread, so a
//! transaction per message spends most of its time in BEGIN and COMMIT hops. Batching whatever
//! queued while the previous batch committed costs no latency when the queue is empty and
//! amortises them under load. Each INSERT takes its seq inside the statement (see
//! `messages::insert_next_entry`), and a failed INSERT undoes only itself, so one bad entry
//! (a racing resend) does not spoil the batch and no seq is skipped. An acknowledgement still
//! comes only after the batch's COMMIT.

use natter_core::model::Message;
use natter_core::store::{AppendOutcome, StoreError, StoreResult};
use tokio::sync::{mpsc, oneshot};

use crate::db::{Db, backend, is_unique_violation};
use crate::messages::{insert_next_entry, resent};

/// Most entries one transaction takes.
const MAX_BATCH: usize = 256;
/// Appends waiting for the writer; senders wait beyond this (backpressure).
const QUEUE: usize = 4096;

struct Queued {
    message: Message,
    reply: oneshot::Sender<StoreResult<AppendOutcome>>,
}

/// The handle appends are queued through. Cheap to clone.
#[derive(Clone)]
pub(crate) struct AppendQueue {
    sender: mpsc::Sender<Queued>,
}

impl AppendQueue {
    /// Starts the writer task over `db`'s pools (`db` must not hold a queue itself).
    pub(crate) fn start(db: Db) -> AppendQueue {
        let (sender, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(run(db, receiver));
        AppendQueue { sender }
    }

    pub(crate) async fn append(&self, message: Message) -> StoreResult<AppendOutcome> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Queued { message, reply })
            .await
            .map_err(|_| StoreError::Backend("the SQLite writer has stopped".into()))?;
        answer.await.map_err(|_| StoreError::Backend("the SQLite writer dropped an append".into()))?
    }
}

async fn run(db: Db, mut queue: mpsc::Receiver<Queued>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        commit(&db, std::mem::take(&mut batch)).await;
    }
}

enum Step {
    Appended(Box<Message>),
    Gone,
    Resent,
    Failed(StoreError),
}

async fn commit(db: &Db, batch: Vec<Queued>) {
    let mut tx = match db.write.begin().await {
        Ok(tx) => tx,
        Err(error) => {
            let message = error.to_string();
            for queued in batch {
                let _ = queued.reply.send(Err(StoreError::Backend(message.clone())));
            }
            return;
        }
    };
    let mut steps = Vec::with_capacity(batch.len());
    for queued in &batch {
        steps.push(match insert_next_entry(&mut tx, &queued.message).await {
            Ok(Some(stored)) => Step::Appended(Box::new(stored)),
            Ok(None) => Step::Gone,
            Err(error) if is_unique_violation(&error) => Step::Resent,
            Err(error) => Step::Failed(backend(error)),
        });
    }
    let committed = tx.commit().await.map_err(|error| error.to_string());
    for (queued, step) in batch.into_iter().zip(steps) {
        let outcome = match (&committed, step) {
            (Err(error), _) => Err(StoreError::Backend(error.clone())),
            (Ok(()), Step::Appended(stored)) => Ok(AppendOutcome::Appended(*stored)),
            (Ok(()), Step::Gone) => Ok(AppendOutcome::ConversationGone),
            (Ok(()), Step::Resent) => resent(db, &queued.message).await,
            (Ok(()), Step::Failed(error)) => Err(error),
        };
        let _ = queued.reply.send(outcome);
    }
}

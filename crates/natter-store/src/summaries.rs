//! A member's view of their conversations: the list and one entry of it.
//!
//! One query builds every summary: conversation and membership rows joined, with correlated
//! subqueries for the member count, the unread count (a range of the `(conversation_id, seq)`
//! key after `read_seq`) and the seq of the last visible entry (a backwards walk of that key).
//! A second query fetches the reactions of those last entries. Two queries whatever the number
//! of conversations.

use std::collections::HashMap;
use std::sync::LazyLock;

use natter_core::ids::{ConversationId, Seq, UserId};
use natter_core::model::{ConversationSummary, Message};
use natter_core::store::{StoreError, StoreResult};
use sqlx::any::AnyRow;

use crate::db::{Db, backend};
use crate::rows::{self, CONVERSATION, Cols, MEMBER, MESSAGE, USER, select_list};

/// The seq of the newest content-or-system entry the member may see.
const LAST_VISIBLE_SEQ: &str = "(SELECT x.seq FROM messages x WHERE x.conversation_id = c.id \
     AND x.seq >= m.joined_seq AND x.kind IN ('text', 'image', 'file', 'voice', 'system') \
     ORDER BY x.seq DESC LIMIT 1)";

static SELECT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {conversation}, {member}, {last}, {peer}, \
         (SELECT COUNT(*) FROM members mc WHERE mc.conversation_id = c.id) AS member_count, \
         (SELECT COUNT(*) FROM messages x WHERE x.conversation_id = c.id AND x.seq > m.read_seq \
          AND x.sender_id <> m.user_id AND x.kind IN ('text', 'image', 'file', 'voice') AND x.recalled = 0) AS unread_count \
         FROM members m \
         JOIN conversations c ON c.id = m.conversation_id \
         LEFT JOIN messages lm ON lm.conversation_id = c.id AND lm.seq = {LAST_VISIBLE_SEQ} \
         LEFT JOIN users pu ON pu.id = CASE WHEN c.direct_low = m.user_id THEN c.direct_high ELSE c.direct_low END",
        conversation = select_list("c", "c_", CONVERSATION),
        member = select_list("m", "m_", MEMBER),
        last = select_list("lm", "lm_", MESSAGE),
        peer = select_list("pu", "pu_", USER),
    )
});
static LIST: LazyLock<String> = LazyLock::new(|| {
    format!("{} WHERE m.user_id = $1 AND c.dissolved = 0 ORDER BY c.updated_at DESC, c.id DESC", *SELECT)
});
static ONE: LazyLock<String> = LazyLock::new(|| format!("{} WHERE m.user_id = $1 AND m.conversation_id = $2", *SELECT));

const LIST_REACTIONS: &str = "SELECT r.conversation_id, r.seq, r.emoji, r.user_id FROM members m \
     JOIN conversations c ON c.id = m.conversation_id \
     JOIN reactions r ON r.conversation_id = c.id AND r.seq = ";
static LIST_REACTIONS_SQL: LazyLock<String> = LazyLock::new(|| {
    format!("{LIST_REACTIONS}{LAST_VISIBLE_SEQ} WHERE m.user_id = $1 AND c.dissolved = 0 ORDER BY r.added_seq")
});
static ONE_REACTIONS_SQL: LazyLock<String> = LazyLock::new(|| {
    format!("{LIST_REACTIONS}{LAST_VISIBLE_SEQ} WHERE m.user_id = $1 AND m.conversation_id = $2 ORDER BY r.added_seq")
});

pub(crate) async fn conversations_of(db: &Db, user: &UserId) -> StoreResult<Vec<ConversationSummary>> {
    let rows = sqlx::query(&LIST).bind(user.as_str()).fetch_all(&db.read).await.map_err(backend)?;
    let mut summaries = rows.iter().map(summary_from_row).collect::<StoreResult<Vec<_>>>()?;
    if summaries.iter().any(|s| s.last_message.is_some()) {
        let reactions =
            sqlx::query(&LIST_REACTIONS_SQL).bind(user.as_str()).fetch_all(&db.read).await.map_err(backend)?;
        attach_reactions(&mut summaries, &reactions)?;
    }
    crate::files::attach(&db.read, summaries.iter_mut().filter_map(|s| s.last_message.as_mut())).await?;
    Ok(summaries)
}

pub(crate) async fn summary(
    db: &Db,
    conversation: &ConversationId,
    user: &UserId,
) -> StoreResult<Option<ConversationSummary>> {
    let row = sqlx::query(&ONE)
        .bind(user.as_str())
        .bind(conversation.as_str())
        .fetch_optional(&db.read)
        .await
        .map_err(backend)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let mut summary = summary_from_row(&row)?;
    if summary.last_message.is_some() {
        let reactions = sqlx::query(&ONE_REACTIONS_SQL)
            .bind(user.as_str())
            .bind(conversation.as_str())
            .fetch_all(&db.read)
            .await
            .map_err(backend)?;
        attach_reactions(std::slice::from_mut(&mut summary), &reactions)?;
    }
    crate::files::attach(&db.read, summary.last_message.as_mut()).await?;
    Ok(Some(summary))
}

fn summary_from_row(row: &AnyRow) -> StoreResult<ConversationSummary> {
    let cols = Cols::new(row, "");
    let member_count: i64 = cols.get("member_count")?;
    let last = Cols::new(row, "lm_");
    let last_message = match last.get::<Option<String>>("id")? {
        Some(_) => Some(rows::message(last)?),
        None => None,
    };
    let peer = Cols::new(row, "pu_");
    let peer = match peer.get::<Option<String>>("id")? {
        Some(_) => Some(rows::user(peer)?),
        None => None,
    };
    Ok(ConversationSummary {
        conversation: rows::conversation(Cols::new(row, "c_"))?,
        me: rows::member(Cols::new(row, "m_"))?,
        member_count: u64::try_from(member_count).map_err(|_| StoreError::Backend("negative count".into()))?,
        unread_count: cols.get("unread_count")?,
        last_message,
        peer,
    })
}

fn attach_reactions(summaries: &mut [ConversationSummary], rows: &[AnyRow]) -> StoreResult<()> {
    let mut last: HashMap<String, &mut Message> = summaries
        .iter_mut()
        .filter_map(|s| s.last_message.as_mut())
        .map(|m| (m.conversation_id.0.clone(), m))
        .collect();
    for row in rows {
        let cols = Cols::new(row, "");
        let conversation: String = cols.get("conversation_id")?;
        let seq = Seq::new(cols.get("seq")?);
        if let Some(message) = last.get_mut(conversation.as_str()).filter(|m| m.seq == seq) {
            message.reactions.push((cols.get("emoji")?, UserId(cols.get("user_id")?)));
        }
    }
    Ok(())
}

//! Effects: the change a log entry records, applied in the transaction that appends it.

use natter_core::model::{MemberRole, Message};
use natter_core::store::{Effect, StoreResult};
use sqlx::{Any, Transaction};

use crate::conversations::insert_members;
use crate::db::{backend, millis};

pub(crate) async fn apply(tx: &mut Transaction<'static, Any>, entry: &Message, effect: &Effect) -> StoreResult<()> {
    let conversation = entry.conversation_id.as_str();
    match effect {
        Effect::None => Ok(()),
        Effect::AddMembers(members) => insert_members(tx, &entry.conversation_id, members, entry.seq, entry.seq).await,
        Effect::RemoveMember(user) => {
            run(
                tx,
                sqlx::query("DELETE FROM members WHERE conversation_id = $1 AND user_id = $2")
                    .bind(conversation)
                    .bind(user.as_str()),
            )
            .await
        }
        Effect::SetRole(user, role) => set_role(tx, conversation, user.as_str(), *role).await,
        Effect::TransferOwnership { from, to } => {
            set_role(tx, conversation, from.as_str(), MemberRole::Admin).await?;
            set_role(tx, conversation, to.as_str(), MemberRole::Owner).await?;
            run(
                tx,
                sqlx::query("UPDATE conversations SET owner_id = $2 WHERE id = $1")
                    .bind(conversation)
                    .bind(to.as_str()),
            )
            .await
        }
        Effect::UpdateConversation { name, announcement, avatar } => {
            let (set_avatar, avatar) = match avatar {
                Some(avatar) => (1_i64, avatar.as_deref()),
                None => (0, None),
            };
            let query = sqlx::query(
                "UPDATE conversations SET name = COALESCE($2, name), announcement = COALESCE($3, announcement), \
                 avatar = CASE WHEN $4 = 1 THEN $5 ELSE avatar END WHERE id = $1",
            )
            .bind(conversation)
            .bind(name.as_deref())
            .bind(announcement.as_deref())
            .bind(set_avatar)
            .bind(avatar);
            run(tx, query).await
        }
        Effect::Dissolve => {
            run(tx, sqlx::query("UPDATE conversations SET dissolved = 1 WHERE id = $1").bind(conversation)).await?;
            run(tx, sqlx::query("DELETE FROM members WHERE conversation_id = $1").bind(conversation)).await
        }
        Effect::Edit { target_seq, text } => {
            let query = sqlx::query(
                "UPDATE messages SET text = $3, edited_at = $4 \
                 WHERE conversation_id = $1 AND seq = $2 AND recalled = 0",
            )
            .bind(conversation)
            .bind(target_seq.get())
            .bind(text.as_str())
            .bind(millis(entry.created_at));
            run(tx, query).await
        }
        Effect::Recall { target_seq } => {
            let query = sqlx::query(
                "UPDATE messages SET recalled = 1, text = NULL, file_id = NULL, transcript = NULL \
                 WHERE conversation_id = $1 AND seq = $2",
            )
            .bind(conversation)
            .bind(target_seq.get());
            run(tx, query).await
        }
        Effect::Transcript { target_seq, text } => {
            let query = sqlx::query(
                "UPDATE messages SET transcript = $3 WHERE conversation_id = $1 AND seq = $2 AND recalled = 0",
            )
            .bind(conversation)
            .bind(target_seq.get())
            .bind(text.as_str());
            run(tx, query).await
        }
        Effect::AddReaction { target_seq, emoji } => {
            let query = sqlx::query(
                "INSERT INTO reactions (conversation_id, seq, emoji, user_id, added_seq, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (conversation_id, seq, emoji, user_id) DO NOTHING",
            )
            .bind(conversation)
            .bind(target_seq.get())
            .bind(emoji.as_str())
            .bind(entry.sender_id.as_str())
            .bind(entry.seq.get())
            .bind(millis(entry.created_at));
            run(tx, query).await
        }
        Effect::RemoveReaction { target_seq, emoji } => {
            let query = sqlx::query(
                "DELETE FROM reactions WHERE conversation_id = $1 AND seq = $2 AND emoji = $3 AND user_id = $4",
            )
            .bind(conversation)
            .bind(target_seq.get())
            .bind(emoji.as_str())
            .bind(entry.sender_id.as_str());
            run(tx, query).await
        }
    }
}

async fn set_role(
    tx: &mut Transaction<'static, Any>,
    conversation: &str,
    user: &str,
    role: MemberRole,
) -> StoreResult<()> {
    let query = sqlx::query("UPDATE members SET role = $3 WHERE conversation_id = $1 AND user_id = $2")
        .bind(conversation)
        .bind(user)
        .bind(role.as_str());
    run(tx, query).await
}

async fn run<'q>(
    tx: &mut Transaction<'static, Any>,
    query: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
) -> StoreResult<()> {
    query.execute(&mut **tx).await.map_err(backend)?;
    Ok(())
}

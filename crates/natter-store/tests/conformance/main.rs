//! The store conformance suite: every test runs against SQLite (a fresh file) and PostgreSQL (a
//! fresh database created through `NATTER_TEST_POSTGRES_URL`, e.g.
//! `postgres://postgres@127.0.0.1:25432/postgres`). Without that variable the PostgreSQL
//! variants print a skip line, or fail when `CI` is set.

mod conversations;
mod effects;
mod files;
mod fixtures;
mod friends;
mod harness;
mod messages;
mod sessions;
mod users;

/// Generates `sqlite::<test>` and `postgres::<test>` for each async `fn(&TestDb)` named.
macro_rules! conformance {
    ($($path:ident :: $test:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let db = crate::harness::TestDb::sqlite().await;
                    crate::$path::$test(&db).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let Some(db) = crate::harness::TestDb::postgres(stringify!($test)).await else {
                        return;
                    };
                    crate::$path::$test(&db).await;
                }
            )+
        }
    };
}

conformance!(
    users::create_and_look_up_users,
    users::usernames_are_unique_case_insensitively,
    users::update_profile_and_password,
    users::search_users_by_username_and_nickname,
    users::reconnecting_keeps_data_and_migrations_are_idempotent,
    sessions::sessions_are_listed_live_newest_first,
    sessions::refresh_tokens_rotate_and_reuse_revokes,
    sessions::revoke_one_or_all_other_sessions,
    friends::friend_request_lifecycle,
    friends::accept_creates_the_direct_conversation_and_revives_it,
    friends::blocks_end_friendship_and_cancel_requests,
    friends::send_context_of_groups_and_strangers,
    conversations::create_group_stores_the_first_entry,
    conversations::conversations_of_orders_counts_and_shows_last_message,
    conversations::summary_and_mute,
    messages::append_is_gap_free_under_concurrency,
    messages::appends_to_many_conversations_at_once,
    messages::append_is_idempotent_per_sender_and_client_id,
    messages::concurrent_resends_store_one_entry,
    messages::append_to_missing_or_dissolved_conversation,
    messages::paging_both_ways_with_min_seq,
    messages::mark_read_never_moves_back,
    effects::membership_effects,
    effects::member_lists_follow_changes_made_by_another_process,
    effects::conversation_effects,
    effects::edit_and_recall,
    effects::reactions,
    effects::a_transcript_appended_twice_is_stored_once,
    files::files_are_stored_counted_and_deleted,
    files::file_access_follows_entries_membership_and_avatars,
);

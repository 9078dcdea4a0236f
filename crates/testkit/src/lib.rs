//! Test support shared by every Portcullis crate: one contract suite per port,
//! run unchanged against each adapter, and fakes (a clock you can move).
//!
//! A contract suite is the definition of a port's behaviour: an adapter is
//! correct when the suite passes on it. This crate depends on the domain only;
//! it is a dev-dependency everywhere else.
//!
//! A failing store call panics with what was called (`expect`), never a bare
//! `unwrap`: the panic is the test's failure message.

#![deny(clippy::unwrap_used)]

pub mod clock;
pub mod contracts;
pub mod upgrades;
pub mod wiring;

pub use clock::ManualClock;
pub use contracts::ContractStore;
pub use wiring::{cheap_hasher, memory_ports};

/// Generates one `#[tokio::test]` per rate-limiter contract case. `$factory`
/// gives `Option<(L, String)>`: the limiter and a key prefix unique to the run.
#[macro_export]
macro_rules! limiter_contract_tests {
    ($factory:expr) => {
        $crate::limiter_contract_tests!(@cases $factory;
            limiter_allows_the_limit_then_refuses,
            limiter_budget_returns_after_a_period,
            limiter_refund_gives_one_hit_back,
            limiter_concurrent_hits_never_exceed_the_limit
        );
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some((limiter, prefix)) = $factory.await else { return };
                $crate::contracts::$case(&limiter, &format!("{prefix}{}", stringify!($case))).await;
            }
        )*
    };
}

/// Generates one `#[tokio::test]` per storage contract case.
///
/// `$factory` is an expression (usually an `async` block) giving an
/// `Option<F>` where `F: Deref<Target = impl ContractStore>`; `None` skips the
/// case (e.g. PostgreSQL without `TEST_DATABASE_URL`), and the factory should
/// say so on stderr. `F` is dropped after the case, so it can clean up.
#[macro_export]
macro_rules! store_contract_tests {
    ($factory:expr) => {
        $crate::store_contract_tests!(@cases $factory;
            user_create_then_find_by_id_and_email,
            user_find_unknown_is_none,
            user_duplicate_email_conflicts,
            user_concurrent_creates_with_one_email_one_wins,
            user_set_role_and_active,
            user_updates_of_unknown_id_are_not_found,
            user_set_password_bumps_session_version,
            user_without_password_and_name_round_trips,
            revoked_token_is_reported,
            revoke_is_single_use_under_concurrency,
            purge_removes_only_expired_revocations,
            user_list_pages_in_creation_order_with_the_total,
            user_list_pages_after_a_user_through_ties_in_creation_time,
            a_rehash_replaces_only_the_hash_it_was_made_from,
            health_ping_succeeds,
            key_insert_then_find_with_owner,
            key_digests_are_unique,
            keys_are_listed_newest_first_for_their_owner_only,
            revoking_a_key_is_for_its_owner_only_and_keeps_the_first_time,
            key_usage_adds_up_and_only_moves_forward,
            projects_are_per_owner_and_environment_newest_first,
            a_reset_is_valid_until_it_expires,
            a_new_reset_invalidates_the_earlier_ones,
            a_reset_is_consumed_once_even_under_concurrency,
            an_expired_reset_cannot_be_consumed,
            outbox_messages_are_claimed_once_per_lease,
            sent_and_given_up_messages_are_done_and_forget_their_body,
            an_identity_is_found_with_its_user,
            a_provider_account_links_to_one_user_only,
            creating_a_user_with_an_identity_is_all_or_nothing,
            identities_are_listed_per_user,
            audit_events_round_trip_newest_first,
            audit_events_filter_by_user_and_kind_and_page,
            audit_prune_removes_only_old_events,
            audit_prune_goes_oldest_first_in_bounded_batches,
            a_key_address_is_new_once,
            outbox_backlog_counts_pending_messages,
            a_session_lookup_reads_user_revocation_and_providers_at_once,
            reset_requests_are_claimed_once_per_lease_and_leave_when_answered,
            reset_emails_stop_at_the_accounts_budget,
            a_new_password_voids_every_outstanding_reset,
            an_oauth_state_is_spent_once,
            a_session_is_stored_with_its_refresh_token,
            a_write_whose_event_id_is_taken_writes_nothing,
            a_refresh_token_rotates_once_under_concurrency,
            an_ended_session_neither_rotates_nor_replaces,
            replacing_spends_every_refresh_token_of_the_session,
            sessions_are_listed_live_newest_first_and_ended_per_user,
            purging_removes_ended_and_expired_sessions_with_their_tokens,
            a_session_lookup_says_whether_the_tokens_session_ended,
            signing_keys_round_trip_and_are_only_added,
            of_concurrent_inserts_of_one_generation_one_wins,
            registering_stores_the_user_its_link_and_its_email_or_nothing,
            a_verification_link_verifies_once_even_under_concurrency,
            a_new_link_voids_the_older_ones_and_the_budget_holds,
            an_expired_verification_link_cannot_be_used,
            a_password_reset_proves_the_address,
            claiming_an_unverified_account_leaves_the_registrant_nothing,
            a_totp_factor_is_confirmed_once_and_turns_mfa_on,
            a_totp_step_is_accepted_once_and_only_forward,
            recovery_codes_work_once_and_are_replaced_whole,
            a_challenge_is_spent_once_and_dies_of_failures_or_age,
        );
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(fixture) = $factory.await else { return };
                $crate::contracts::$case(&*fixture).await;
            }
        )*
    };
}

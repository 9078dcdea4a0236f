// The tables of migrations/sqlite, as diesel sees them.

diesel::table! {
    users (id) {
        id -> Text,
        email -> Text,
        full_name -> Nullable<Text>,
        password_hash -> Nullable<Text>,
        role -> Text,
        is_active -> Bool,
        session_version -> BigInt,
        created_at -> TimestamptzSqlite,
        updated_at -> TimestamptzSqlite,
        email_verified -> Bool,
        mfa_enabled -> Bool,
    }
}

diesel::table! {
    revoked_tokens (jti) {
        jti -> Text,
        user_id -> Text,
        expires_at -> TimestamptzSqlite,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Text,
        user_id -> Text,
        name -> Text,
        environment -> Text,
        key_digest -> Binary,
        created_at -> TimestamptzSqlite,
        expires_at -> TimestamptzSqlite,
        revoked_at -> Nullable<TimestamptzSqlite>,
        last_used_at -> Nullable<TimestamptzSqlite>,
        usage_count -> BigInt,
    }
}

diesel::table! {
    projects (id) {
        id -> Text,
        user_id -> Text,
        name -> Text,
        environment -> Text,
        created_at -> TimestamptzSqlite,
    }
}

diesel::table! {
    password_resets (id) {
        id -> Text,
        user_id -> Text,
        token_digest -> Binary,
        created_at -> TimestamptzSqlite,
        expires_at -> TimestamptzSqlite,
        used_at -> Nullable<TimestamptzSqlite>,
    }
}

diesel::table! {
    password_reset_requests (id) {
        id -> Text,
        email -> Text,
        requested_at -> TimestamptzSqlite,
        next_attempt_at -> TimestamptzSqlite,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        request_id -> Nullable<Text>,
    }
}

diesel::table! {
    oauth_spent_states (nonce) {
        nonce -> Text,
        expires_at -> TimestamptzSqlite,
    }
}

diesel::table! {
    outbox (id) {
        id -> Text,
        recipient -> Text,
        subject -> Text,
        body_text -> Text,
        body_html -> Text,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> TimestamptzSqlite,
        last_error -> Nullable<Text>,
        created_at -> TimestamptzSqlite,
        sent_at -> Nullable<TimestamptzSqlite>,
    }
}

diesel::table! {
    oauth_identities (id) {
        id -> Text,
        user_id -> Text,
        provider -> Text,
        subject -> Text,
        email -> Nullable<Text>,
        email_verified -> Bool,
        created_at -> TimestamptzSqlite,
    }
}

diesel::table! {
    audit_events (id) {
        id -> Text,
        at -> TimestamptzSqlite,
        kind -> Text,
        user_id -> Nullable<Text>,
        detail -> Nullable<Text>,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        request_id -> Nullable<Text>,
    }
}

diesel::table! {
    api_key_addresses (key_id, ip) {
        key_id -> Text,
        ip -> Text,
        first_seen_at -> TimestamptzSqlite,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        user_id -> Text,
        created_at -> TimestamptzSqlite,
        last_used_at -> TimestamptzSqlite,
        expires_at -> TimestamptzSqlite,
        auth_time -> TimestamptzSqlite,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        method -> Text,
        mfa -> Bool,
        ended_at -> Nullable<TimestamptzSqlite>,
    }
}

diesel::table! {
    refresh_tokens (digest) {
        digest -> Binary,
        session_id -> Text,
        issued_at -> TimestamptzSqlite,
        spent_at -> Nullable<TimestamptzSqlite>,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        generation -> BigInt,
        algorithm -> Text,
        public_jwk -> Text,
        sealed_private -> Binary,
        created_at -> TimestamptzSqlite,
        activates_at -> TimestamptzSqlite,
    }
}

diesel::table! {
    email_verifications (id) {
        id -> Text,
        user_id -> Text,
        token_digest -> Binary,
        created_at -> TimestamptzSqlite,
        expires_at -> TimestamptzSqlite,
        used_at -> Nullable<TimestamptzSqlite>,
    }
}

diesel::table! {
    totp_factors (user_id) {
        user_id -> Text,
        sealed_secret -> Binary,
        created_at -> TimestamptzSqlite,
        confirmed_at -> Nullable<TimestamptzSqlite>,
        last_step -> Nullable<BigInt>,
    }
}

diesel::table! {
    recovery_codes (id) {
        id -> Text,
        user_id -> Text,
        code_digest -> Binary,
        created_at -> TimestamptzSqlite,
        used_at -> Nullable<TimestamptzSqlite>,
    }
}

diesel::table! {
    mfa_challenges (id) {
        id -> Text,
        user_id -> Text,
        token_digest -> Binary,
        method -> Text,
        created_at -> TimestamptzSqlite,
        expires_at -> TimestamptzSqlite,
        failures -> Integer,
        used_at -> Nullable<TimestamptzSqlite>,
    }
}

diesel::table! {
    user_count (single) {
        single -> BigInt,
        n -> BigInt,
    }
}

diesel::joinable!(api_keys -> users (user_id));
diesel::joinable!(api_key_addresses -> api_keys (key_id));
diesel::joinable!(oauth_identities -> users (user_id));
diesel::joinable!(password_resets -> users (user_id));
diesel::joinable!(email_verifications -> users (user_id));
diesel::joinable!(projects -> users (user_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(refresh_tokens -> sessions (session_id));
diesel::allow_tables_to_appear_in_same_query!(
    signing_keys,
    users,
    api_keys,
    projects,
    revoked_tokens,
    password_resets,
    email_verifications,
    totp_factors,
    recovery_codes,
    mfa_challenges,
    password_reset_requests,
    oauth_spent_states,
    outbox,
    oauth_identities,
    audit_events,
    api_key_addresses,
    sessions,
    refresh_tokens,
    user_count,
);

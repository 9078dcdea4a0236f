// The tables of migrations/postgres, as diesel sees them.

diesel::table! {
    users (id) {
        id -> Uuid,
        email -> Text,
        full_name -> Nullable<Text>,
        password_hash -> Nullable<Text>,
        role -> Text,
        is_active -> Bool,
        session_version -> BigInt,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        email_verified -> Bool,
        mfa_enabled -> Bool,
    }
}

diesel::table! {
    revoked_tokens (jti) {
        jti -> Uuid,
        user_id -> Uuid,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Uuid,
        user_id -> Uuid,
        name -> Text,
        environment -> Text,
        key_digest -> Binary,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        last_used_at -> Nullable<Timestamptz>,
        usage_count -> BigInt,
    }
}

diesel::table! {
    projects (id) {
        id -> Uuid,
        user_id -> Uuid,
        name -> Text,
        environment -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    password_resets (id) {
        id -> Uuid,
        user_id -> Uuid,
        token_digest -> Binary,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    password_reset_requests (id) {
        id -> Uuid,
        email -> Text,
        requested_at -> Timestamptz,
        next_attempt_at -> Timestamptz,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        request_id -> Nullable<Text>,
    }
}

diesel::table! {
    oauth_spent_states (nonce) {
        nonce -> Text,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    outbox (id) {
        id -> Uuid,
        recipient -> Text,
        subject -> Text,
        body_text -> Text,
        body_html -> Text,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamptz,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
        sent_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    oauth_identities (id) {
        id -> Uuid,
        user_id -> Uuid,
        provider -> Text,
        subject -> Text,
        email -> Nullable<Text>,
        email_verified -> Bool,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    audit_events (id) {
        id -> Uuid,
        at -> Timestamptz,
        kind -> Text,
        user_id -> Nullable<Uuid>,
        detail -> Nullable<Text>,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        request_id -> Nullable<Text>,
    }
}

diesel::table! {
    api_key_addresses (key_id, ip) {
        key_id -> Uuid,
        ip -> Text,
        first_seen_at -> Timestamptz,
    }
}

diesel::table! {
    sessions (id) {
        id -> Uuid,
        user_id -> Uuid,
        created_at -> Timestamptz,
        last_used_at -> Timestamptz,
        expires_at -> Timestamptz,
        auth_time -> Timestamptz,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        method -> Text,
        mfa -> Bool,
        ended_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    refresh_tokens (digest) {
        digest -> Binary,
        session_id -> Uuid,
        issued_at -> Timestamptz,
        spent_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        generation -> BigInt,
        algorithm -> Text,
        public_jwk -> Text,
        sealed_private -> Binary,
        created_at -> Timestamptz,
        activates_at -> Timestamptz,
    }
}

diesel::table! {
    email_verifications (id) {
        id -> Uuid,
        user_id -> Uuid,
        token_digest -> Binary,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    totp_factors (user_id) {
        user_id -> Uuid,
        sealed_secret -> Binary,
        created_at -> Timestamptz,
        confirmed_at -> Nullable<Timestamptz>,
        last_step -> Nullable<BigInt>,
    }
}

diesel::table! {
    recovery_codes (id) {
        id -> Uuid,
        user_id -> Uuid,
        code_digest -> Binary,
        created_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    mfa_challenges (id) {
        id -> Uuid,
        user_id -> Uuid,
        token_digest -> Binary,
        method -> Text,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        failures -> Integer,
        used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    user_count (single) {
        single -> Bool,
        n -> Int8,
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

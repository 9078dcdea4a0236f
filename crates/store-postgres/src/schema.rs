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
    }
}

diesel::table! {
    revoked_tokens (jti) {
        jti -> Uuid,
        user_id -> Uuid,
        expires_at -> Timestamptz,
    }
}

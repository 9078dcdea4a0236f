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
    }
}

diesel::table! {
    revoked_tokens (jti) {
        jti -> Text,
        user_id -> Text,
        expires_at -> TimestamptzSqlite,
    }
}

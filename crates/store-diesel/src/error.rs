use std::fmt::Display;

use diesel::result::{DatabaseErrorKind, Error};
use portcullis_domain::StoreError;

/// Maps a diesel error onto the port's error: a unique violation is a
/// `Conflict` naming the column when it can be told (`email`), "no row" is
/// `NotFound`, and everything else (a lost connection, a locked SQLite file, a
/// server shutting down) is `Unavailable`, which the API answers with 503.
#[must_use]
pub fn query_error(error: Error) -> StoreError {
    match error {
        Error::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
            let names_email = info.constraint_name().is_some_and(|c| c.contains("email"))
                || info.message().contains("email");
            StoreError::Conflict(if names_email { "email" } else { "unique" })
        }
        Error::NotFound => StoreError::NotFound,
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// A connection could not be had from the pool (database down, pool exhausted).
#[must_use]
pub fn pool_error(error: impl Display) -> StoreError {
    StoreError::Unavailable(format!("no database connection: {error}"))
}

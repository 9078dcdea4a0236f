//! The code Portcullis's two diesel stores have in common.
//!
//! diesel-async has no `MultiConnection`, so `store-sqlite` and
//! `store-postgres` are separate crates with their own `schema.rs`, pools and
//! migrations. Their queries, though, are the same line for line: they live
//! here once, as [`diesel_repositories!`], expanded in each store against its
//! own schema and connection. Also here: a UUID column type that is native on
//! PostgreSQL and text on SQLite, and the mapping of diesel errors onto the
//! domain's `StoreError`.
//!
//! This crate depends on diesel and the domain only; no async runtime.

#![deny(clippy::unwrap_used, clippy::expect_used)]

mod error;
mod uuid_column;

pub use error::{pool_error, query_error};
pub use uuid_column::DbUuid;

use portcullis_domain::{Email, FullName, PasswordHash, Role, StoreError, User, UserId};
use time::OffsetDateTime;

/// A user row as both backends store it, before it is trusted as a [`User`].
#[derive(Debug, Clone)]
pub struct UserRecord {
    pub id: DbUuid,
    pub email: String,
    pub full_name: Option<String>,
    pub password_hash: Option<String>,
    pub role: String,
    pub is_active: bool,
    pub session_version: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl From<User> for UserRecord {
    fn from(user: User) -> Self {
        Self {
            id: DbUuid(user.id.as_uuid()),
            email: user.email.as_str().to_owned(),
            full_name: user.full_name.map(|n| n.as_str().to_owned()),
            password_hash: user.password_hash.map(|h| h.as_str().to_owned()),
            role: user.role.as_str().to_owned(),
            is_active: user.is_active,
            session_version: user.session_version,
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}

impl TryFrom<UserRecord> for User {
    type Error = StoreError;

    /// A row that breaks the model's rules was not written by us: it is
    /// reported as a store fault rather than trusted.
    fn try_from(row: UserRecord) -> Result<Self, StoreError> {
        let corrupt = |what: &str| StoreError::Unavailable(format!("corrupt user row {}: {what}", row.id.0));
        Ok(Self {
            id: UserId::from_uuid(row.id.0),
            email: Email::parse(&row.email).map_err(|_| corrupt("email"))?,
            full_name: match row.full_name.as_deref() {
                Some(name) => FullName::parse(name).map_err(|_| corrupt("full_name"))?,
                None => None,
            },
            password_hash: row.password_hash.clone().map(PasswordHash::new),
            role: row.role.parse::<Role>().map_err(|_| corrupt("role"))?,
            is_active: row.is_active,
            session_version: row.session_version,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// Implements every repository port for `$store`, a type with
/// `async fn conn(&self) -> Result<impl DerefMut<Target = C>, StoreError>`, over
/// the `users` and `revoked_tokens` tables of the invoking crate's `schema`
/// module. Expanded once per backend.
#[macro_export]
macro_rules! diesel_repositories {
    ($store:ident) => {
        mod repositories {
            use async_trait::async_trait;
            use diesel::prelude::*;
            use diesel_async::RunQueryDsl;
            use portcullis_domain::ports::{RevokedTokenRepository, StoreHealth, UserRepository};
            use portcullis_domain::{Email, NewUser, PasswordHash, Role, StoreError, User, UserId};
            use portcullis_store_diesel::{DbUuid, UserRecord, query_error};
            use time::OffsetDateTime;
            use uuid::Uuid;

            use super::schema::{revoked_tokens, users};
            use super::$store;

            #[derive(Queryable, Selectable, Insertable)]
            #[diesel(table_name = users)]
            struct UserRow {
                id: DbUuid,
                email: String,
                full_name: Option<String>,
                password_hash: Option<String>,
                role: String,
                is_active: bool,
                session_version: i64,
                created_at: OffsetDateTime,
                updated_at: OffsetDateTime,
            }

            impl From<User> for UserRow {
                fn from(user: User) -> Self {
                    let r = UserRecord::from(user);
                    Self {
                        id: r.id,
                        email: r.email,
                        full_name: r.full_name,
                        password_hash: r.password_hash,
                        role: r.role,
                        is_active: r.is_active,
                        session_version: r.session_version,
                        created_at: r.created_at,
                        updated_at: r.updated_at,
                    }
                }
            }

            impl TryFrom<UserRow> for User {
                type Error = StoreError;

                fn try_from(r: UserRow) -> Result<Self, StoreError> {
                    User::try_from(UserRecord {
                        id: r.id,
                        email: r.email,
                        full_name: r.full_name,
                        password_hash: r.password_hash,
                        role: r.role,
                        is_active: r.is_active,
                        session_version: r.session_version,
                        created_at: r.created_at,
                        updated_at: r.updated_at,
                    })
                }
            }

            fn found(row: Option<UserRow>) -> Result<User, StoreError> {
                row.ok_or(StoreError::NotFound)?.try_into()
            }

            #[async_trait]
            impl UserRepository for $store {
                async fn create(&self, user: NewUser) -> Result<User, StoreError> {
                    let mut conn = self.conn().await?;
                    diesel::insert_into(users::table)
                        .values(UserRow::from(user.into_user()))
                        .returning(UserRow::as_returning())
                        .get_result::<UserRow>(&mut *conn)
                        .await
                        .map_err(query_error)?
                        .try_into()
                }

                async fn find_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
                    let mut conn = self.conn().await?;
                    users::table
                        .find(DbUuid(id.as_uuid()))
                        .select(UserRow::as_select())
                        .first::<UserRow>(&mut *conn)
                        .await
                        .optional()
                        .map_err(query_error)?
                        .map(User::try_from)
                        .transpose()
                }

                async fn find_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
                    let mut conn = self.conn().await?;
                    users::table
                        .filter(users::email.eq(email.as_str()))
                        .select(UserRow::as_select())
                        .first::<UserRow>(&mut *conn)
                        .await
                        .optional()
                        .map_err(query_error)?
                        .map(User::try_from)
                        .transpose()
                }

                async fn set_role(
                    &self,
                    id: UserId,
                    role: Role,
                    now: OffsetDateTime,
                ) -> Result<User, StoreError> {
                    let mut conn = self.conn().await?;
                    let row = diesel::update(users::table.find(DbUuid(id.as_uuid())))
                        .set((users::role.eq(role.as_str()), users::updated_at.eq(now)))
                        .returning(UserRow::as_returning())
                        .get_result::<UserRow>(&mut *conn)
                        .await
                        .optional()
                        .map_err(query_error)?;
                    found(row)
                }

                async fn set_active(
                    &self,
                    id: UserId,
                    active: bool,
                    now: OffsetDateTime,
                ) -> Result<User, StoreError> {
                    let mut conn = self.conn().await?;
                    let row = diesel::update(users::table.find(DbUuid(id.as_uuid())))
                        .set((users::is_active.eq(active), users::updated_at.eq(now)))
                        .returning(UserRow::as_returning())
                        .get_result::<UserRow>(&mut *conn)
                        .await
                        .optional()
                        .map_err(query_error)?;
                    found(row)
                }

                async fn set_password(
                    &self,
                    id: UserId,
                    hash: PasswordHash,
                    now: OffsetDateTime,
                ) -> Result<User, StoreError> {
                    let mut conn = self.conn().await?;
                    let row = diesel::update(users::table.find(DbUuid(id.as_uuid())))
                        .set((
                            users::password_hash.eq(hash.as_str()),
                            users::session_version.eq(users::session_version + 1),
                            users::updated_at.eq(now),
                        ))
                        .returning(UserRow::as_returning())
                        .get_result::<UserRow>(&mut *conn)
                        .await
                        .optional()
                        .map_err(query_error)?;
                    found(row)
                }
            }

            #[async_trait]
            impl RevokedTokenRepository for $store {
                async fn revoke(
                    &self,
                    jti: Uuid,
                    user_id: UserId,
                    expires_at: OffsetDateTime,
                ) -> Result<bool, StoreError> {
                    let mut conn = self.conn().await?;
                    let inserted = diesel::insert_into(revoked_tokens::table)
                        .values((
                            revoked_tokens::jti.eq(DbUuid(jti)),
                            revoked_tokens::user_id.eq(DbUuid(user_id.as_uuid())),
                            revoked_tokens::expires_at.eq(portcullis_store_diesel::whole_seconds(expires_at)),
                        ))
                        .on_conflict(revoked_tokens::jti)
                        .do_nothing()
                        .execute(&mut *conn)
                        .await
                        .map_err(query_error)?;
                    Ok(inserted == 1)
                }

                async fn is_revoked(&self, jti: Uuid) -> Result<bool, StoreError> {
                    let mut conn = self.conn().await?;
                    diesel::select(diesel::dsl::exists(revoked_tokens::table.find(DbUuid(jti))))
                        .get_result::<bool>(&mut *conn)
                        .await
                        .map_err(query_error)
                }

                async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
                    let mut conn = self.conn().await?;
                    let deleted =
                        diesel::delete(revoked_tokens::table.filter(
                            revoked_tokens::expires_at.lt(portcullis_store_diesel::whole_seconds(now)),
                        ))
                        .execute(&mut *conn)
                        .await
                        .map_err(query_error)?;
                    Ok(deleted as u64)
                }
            }

            #[async_trait]
            impl StoreHealth for $store {
                async fn ping(&self) -> Result<(), StoreError> {
                    let mut conn = self.conn().await?;
                    diesel::sql_query("SELECT 1").execute(&mut *conn).await.map_err(query_error)?;
                    Ok(())
                }
            }
        }
    };
}

/// Drops sub-second precision. SQLite stores timestamps as text with a
/// variable number of decimals, so only whole seconds compare correctly as
/// text; both backends store comparable timestamps this way.
#[must_use]
pub fn whole_seconds(at: OffsetDateTime) -> OffsetDateTime {
    at.replace_nanosecond(0).unwrap_or(at)
}

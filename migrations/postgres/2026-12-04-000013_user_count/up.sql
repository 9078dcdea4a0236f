-- How many users there are, kept by the database itself, so that the admin
-- listing's `total` costs one row read instead of a count over every user.
-- Statement-level triggers keep it exact for any insert or delete, a bulk
-- import by SQL included (one update per statement, not per row).
CREATE TABLE user_count (
    single BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (single),
    n BIGINT NOT NULL
);

INSERT INTO user_count (n) SELECT count(*) FROM users;

CREATE FUNCTION user_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE user_count SET n = n + (SELECT count(*) FROM inserted_users);
    RETURN NULL;
END
$$;

CREATE FUNCTION user_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE user_count SET n = n - (SELECT count(*) FROM deleted_users);
    RETURN NULL;
END
$$;

CREATE TRIGGER users_counted_on_insert AFTER INSERT ON users
    REFERENCING NEW TABLE AS inserted_users FOR EACH STATEMENT EXECUTE FUNCTION user_count_inserted();
CREATE TRIGGER users_counted_on_delete AFTER DELETE ON users
    REFERENCING OLD TABLE AS deleted_users FOR EACH STATEMENT EXECUTE FUNCTION user_count_deleted();

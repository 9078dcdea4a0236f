-- How many users there are, kept by the database itself, so that the admin
-- listing's `total` costs one row read instead of a count over every user.
-- The triggers keep it exact for any insert or delete, a bulk import by SQL
-- included.
CREATE TABLE user_count (
    single INTEGER PRIMARY KEY NOT NULL CHECK (single = 1),
    n INTEGER NOT NULL
) STRICT;

INSERT INTO user_count (single, n) SELECT 1, count(*) FROM users;

CREATE TRIGGER users_counted_on_insert AFTER INSERT ON users
BEGIN
    UPDATE user_count SET n = n + 1;
END;

CREATE TRIGGER users_counted_on_delete AFTER DELETE ON users
BEGIN
    UPDATE user_count SET n = n - 1;
END;

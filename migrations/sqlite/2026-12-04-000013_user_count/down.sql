DROP TRIGGER users_counted_on_delete;
DROP TRIGGER users_counted_on_insert;
DROP TABLE user_count;

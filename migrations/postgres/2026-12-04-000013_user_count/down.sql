DROP TRIGGER users_counted_on_delete ON users;
DROP TRIGGER users_counted_on_insert ON users;
DROP FUNCTION user_count_deleted();
DROP FUNCTION user_count_inserted();
DROP TABLE user_count;

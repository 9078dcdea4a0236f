DROP TABLE outbox;
DROP TABLE password_resets;

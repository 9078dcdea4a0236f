DROP TABLE oauth_spent_states;
DROP INDEX password_resets_user_created_idx;
DROP TABLE password_reset_requests;

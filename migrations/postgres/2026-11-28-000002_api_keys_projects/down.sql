DROP INDEX users_created_at_idx;
DROP TABLE projects;
DROP TABLE api_keys;

-- The contract names an administrator's change to a user `admin_user_updated`;
-- releases before this one stored it as `user_updated`. One name for every row,
-- old and new, so a filter by type finds them all.
UPDATE audit_events SET kind = 'admin_user_updated' WHERE kind = 'user_updated';

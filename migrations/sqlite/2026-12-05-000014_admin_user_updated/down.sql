UPDATE audit_events SET kind = 'user_updated' WHERE kind = 'admin_user_updated';

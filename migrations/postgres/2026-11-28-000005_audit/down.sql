DROP TABLE api_key_addresses;
DROP TABLE audit_events;

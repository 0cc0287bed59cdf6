-- An API token may expire: tokens made before this have no end, as they were given.
ALTER TABLE api_tokens ADD COLUMN expires_ms INTEGER;

-- vigia schema 4: a per-user token generation. Tokens carry the generation they were issued
-- in; changing a password or ending a user's sessions moves it on, so every older token is
-- refused at its next request (checked in the read that each request already makes).

ALTER TABLE users ADD COLUMN token_generation BIGINT NOT NULL DEFAULT 0;

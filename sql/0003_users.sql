-- People and service accounts. Passwords are scrypt hashes (see server/auth/passwords.ts).
CREATE TABLE users (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  username      text        NOT NULL UNIQUE CHECK (username ~ '^[A-Za-z0-9_.@-]{1,64}$'),
  password_hash text        NOT NULL,
  role          text        NOT NULL CHECK (role IN ('admin', 'trader', 'analyst', 'service')),
  trader_id     text,
  disabled_at   timestamptz,
  created_at    timestamptz NOT NULL DEFAULT now(),
  CHECK (role <> 'trader' OR trader_id IS NOT NULL)
);

-- Browser sessions: only a hash of the cookie's token is stored.
CREATE TABLE sessions (
  token_hash text        PRIMARY KEY,
  user_id    bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL
);
CREATE INDEX sessions_expires ON sessions (expires_at);

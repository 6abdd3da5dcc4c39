-- API keys, the audit log and dead letters (malformed MQTT messages kept for inspection).

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    prefix       text NOT NULL UNIQUE CHECK (prefix ~ '^[A-Za-z0-9]{6,32}$'),  -- shown in lists
    secret_hash  text NOT NULL,
    name         text NOT NULL DEFAULT '',
    scope        text NOT NULL CHECK (scope IN ('admin', 'operator', 'viewer')),
    sites        text[] NOT NULL DEFAULT '{}' CHECK (array_position(sites, NULL) IS NULL),  -- {} = all
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);

CREATE TABLE audit_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ts           timestamptz NOT NULL DEFAULT now(),
    actor        text NOT NULL,           -- API key prefix, or 'system'
    action       text NOT NULL,           -- e.g. 'person.create'
    target_type  text NOT NULL DEFAULT '',
    target_id    text NOT NULL DEFAULT '',
    details      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(details) = 'object')
);
CREATE INDEX audit_log_ts ON audit_log (ts DESC);
CREATE INDEX audit_log_actor_ts ON audit_log (actor, ts DESC);

CREATE TABLE dead_letters (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at  timestamptz NOT NULL DEFAULT now(),
    topic        text NOT NULL,
    payload      bytea NOT NULL CHECK (octet_length(payload) <= 65536),  -- truncated by the writer
    payload_size integer NOT NULL CHECK (payload_size >= 0),             -- size before truncation
    reason       text NOT NULL
);
CREATE INDEX dead_letters_received ON dead_letters (received_at DESC);

-- Notifications (docs/notifications.md): sites get a time zone, watchlists of people, watch rules, and
-- the deliveries outbox written in the same transaction as the events that matched.

-- An IANA zone name (Europe/Paris); central checks it against the zone database before storing it.
ALTER TABLE sites ADD COLUMN time_zone text NOT NULL DEFAULT 'UTC'
    CHECK (time_zone ~ '^[A-Za-z0-9_+/-]{1,64}$');

CREATE TABLE watchlists (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL UNIQUE CHECK (octet_length(name) BETWEEN 1 AND 800),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER watchlists_updated_at BEFORE UPDATE ON watchlists
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE watchlist_members (
    watchlist_id uuid NOT NULL REFERENCES watchlists (id) ON DELETE CASCADE,
    person_id    uuid NOT NULL REFERENCES people (id) ON DELETE CASCADE,
    PRIMARY KEY (watchlist_id, person_id)
);
CREATE INDEX watchlist_members_person ON watchlist_members (person_id);

-- Who: `people` and members of `watchlists`, and unknown faces when `unknown`. Where: `sites` (every
-- site the rule may see when empty) and `cameras` (every camera when empty). When: ISO weekdays
-- (1 = Monday) and the minutes of the day [start_minute, end_minute) in each site's time zone; an end
-- before the start runs past midnight. How often: once per person (or unknown face) and camera per
-- `cooldown_s`. Channels: a webhook (admins only), e-mail addresses, and an MQTT topic of its own.
CREATE TABLE watch_rules (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name            text NOT NULL CHECK (octet_length(name) BETWEEN 1 AND 800),
    enabled         boolean NOT NULL DEFAULT true,
    people          uuid[] NOT NULL DEFAULT '{}' CHECK (cardinality(people) <= 1000),
    watchlists      uuid[] NOT NULL DEFAULT '{}' CHECK (cardinality(watchlists) <= 100),
    unknown         boolean NOT NULL DEFAULT false,
    sites           text[] NOT NULL DEFAULT '{}' CHECK (cardinality(sites) <= 1000),
    cameras         text[] NOT NULL DEFAULT '{}' CHECK (cardinality(cameras) <= 1000),
    days            smallint[] NOT NULL DEFAULT '{1,2,3,4,5,6,7}'
        CHECK (days <@ '{1,2,3,4,5,6,7}'::smallint[]),
    start_minute    integer NOT NULL DEFAULT 0 CHECK (start_minute BETWEEN 0 AND 1440),
    end_minute      integer NOT NULL DEFAULT 1440 CHECK (end_minute BETWEEN 0 AND 1440),
    cooldown_s      integer NOT NULL DEFAULT 60 CHECK (cooldown_s BETWEEN 0 AND 86400),
    webhook_url     text CHECK (octet_length(webhook_url) <= 2048),
    webhook_secret  text CHECK (octet_length(webhook_secret) <= 200),
    email_to        text[] NOT NULL DEFAULT '{}' CHECK (cardinality(email_to) <= 20),
    mqtt            boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((webhook_url IS NULL) = (webhook_secret IS NULL))
);
CREATE TRIGGER watch_rules_updated_at BEFORE UPDATE ON watch_rules
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- The last time each rule fired for one person (or the unknown face, person_id NULL -> the nil uuid)
-- on one camera: the cooldown is one conditional upsert, so replicas never fire twice inside it.
CREATE TABLE watch_cooldowns (
    rule_id     uuid NOT NULL REFERENCES watch_rules (id) ON DELETE CASCADE,
    person_id   uuid NOT NULL,
    site_id     text NOT NULL,
    camera      text NOT NULL,
    fired_at    timestamptz NOT NULL,
    PRIMARY KEY (rule_id, person_id, site_id, camera)
);

-- The outbox: one row per rule, channel and event, written with the event. `id` is the delivery id
-- receivers dedup on (the webhook-id header). Workers take due rows FOR UPDATE SKIP LOCKED.
CREATE TABLE deliveries (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    rule_id     uuid NOT NULL REFERENCES watch_rules (id) ON DELETE CASCADE,
    channel     text NOT NULL CHECK (channel IN ('webhook', 'email', 'mqtt')),
    event_id    uuid NOT NULL,
    event_ts    timestamptz NOT NULL,
    site_id     text NOT NULL,
    payload     jsonb NOT NULL CHECK (jsonb_typeof(payload) = 'object'),
    status      text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'dead')),
    attempts    integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_at     timestamptz NOT NULL DEFAULT now(),
    last_error  text CHECK (octet_length(last_error) <= 1000),
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz,
    UNIQUE (rule_id, channel, event_id)
);
CREATE INDEX deliveries_due ON deliveries (next_at) WHERE status = 'pending';
CREATE INDEX deliveries_rule ON deliveries (rule_id, created_at DESC, id DESC);
CREATE INDEX deliveries_created ON deliveries (created_at);

-- The delivery log: every attempt, its outcome and the reason of a failure.
CREATE TABLE delivery_attempts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id  uuid NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    at           timestamptz NOT NULL DEFAULT now(),
    outcome      text NOT NULL CHECK (outcome IN ('sent', 'failed', 'dead')),
    reason       text CHECK (octet_length(reason) <= 1000),
    duration_ms  integer NOT NULL CHECK (duration_ms >= 0)
);
CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id, id);

-- Distribution of galleries to the edges (central/distribution/, docs/central-distribution.md).

-- Transactional outbox: the last version of each gallery published over MQTT (delta + manifest).
-- The distributor publishes versions published_version+1 .. current_version in order, then advances it.
ALTER TABLE galleries ADD COLUMN published_version integer NOT NULL DEFAULT 0
    CHECK (published_version >= 0);
CREATE INDEX galleries_unpublished ON galleries (id) WHERE published_version <> current_version;

-- Commands to edges that must not be lost (erase_person): queued in the transaction of the change,
-- published and deleted by the distributor. `sites`: the edges of these sites get the command.
CREATE TABLE distribution_commands (
    id          bigserial PRIMARY KEY,
    action      text NOT NULL CHECK (action IN ('erase_person')),
    person_id   uuid NOT NULL,
    sites       text[] NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- When each edge last got resync commands (the resync check's rate limit).
CREATE TABLE edge_resyncs (
    site_id     slug NOT NULL,
    edge_id     slug NOT NULL,
    sent_at     timestamptz NOT NULL,
    PRIMARY KEY (site_id, edge_id),
    FOREIGN KEY (site_id, edge_id) REFERENCES edges (site_id, id) ON DELETE CASCADE
);

-- Wake the distributors of every replica at commit (NOTIFY is delivered when the transaction commits).
CREATE FUNCTION notify_distribution() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('facegate_distribution', TG_TABLE_NAME);
    RETURN NULL;
END
$$;
CREATE TRIGGER gallery_changes_distribute AFTER INSERT ON gallery_changes
    FOR EACH STATEMENT EXECUTE FUNCTION notify_distribution();
CREATE TRIGGER distribution_commands_distribute AFTER INSERT ON distribution_commands
    FOR EACH STATEMENT EXECUTE FUNCTION notify_distribution();

-- Retention policies (central/retention/, docs/retention.md): how long each kind of data is kept.
-- One row of defaults (id 1) and one optional row per site; a NULL column of a site takes the default.
-- Days; crops_days 0 keeps no crops (and tells the site's edges to send none).

CREATE TABLE retention_defaults (
    id                  smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    events_days         integer NOT NULL DEFAULT 365 CHECK (events_days BETWEEN 1 AND 36500),
    crops_days          integer NOT NULL DEFAULT 90 CHECK (crops_days BETWEEN 0 AND 36500),
    audit_days          integer NOT NULL DEFAULT 730 CHECK (audit_days BETWEEN 1 AND 36500),
    dead_letters_days   integer NOT NULL DEFAULT 7 CHECK (dead_letters_days BETWEEN 1 AND 36500),
    deliveries_days     integer NOT NULL DEFAULT 90 CHECK (deliveries_days BETWEEN 1 AND 36500),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (crops_days <= events_days)
);
INSERT INTO retention_defaults (id) VALUES (1);

CREATE TABLE retention_policies (
    site_id             slug PRIMARY KEY REFERENCES sites (id) ON DELETE CASCADE,
    events_days         integer CHECK (events_days BETWEEN 1 AND 36500),
    crops_days          integer CHECK (crops_days BETWEEN 0 AND 36500),
    dead_letters_days   integer CHECK (dead_letters_days BETWEEN 1 AND 36500),
    deliveries_days     integer CHECK (deliveries_days BETWEEN 1 AND 36500),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- Retention deletes events by site and time outside the partitions it can drop whole.
CREATE INDEX IF NOT EXISTS events_crop_site_ts ON events (site_id, ts) WHERE crop_key IS NOT NULL;
CREATE INDEX audit_log_ts_id ON audit_log (ts, id);

-- `reload_config` commands carrying a site's crop policy ('none': send no crops; 'device': the device
-- file's `crops.policy`), queued with the policy change and published by the distributor.
ALTER TABLE distribution_commands DROP CONSTRAINT distribution_commands_action_check;
ALTER TABLE distribution_commands ADD CONSTRAINT distribution_commands_action_check
    CHECK (action IN ('erase_person', 'reload_config'));
ALTER TABLE distribution_commands ALTER COLUMN person_id DROP NOT NULL;
ALTER TABLE distribution_commands ADD COLUMN crop_policy text CHECK (crop_policy IN ('none', 'device'));
ALTER TABLE distribution_commands ADD CHECK (action <> 'erase_person' OR person_id IS NOT NULL);

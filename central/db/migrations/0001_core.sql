-- Core: sites, edges, people, enrollment photos, templates.
-- Applied by central/db/migrations.py in one transaction; see docs/central-database.md.

-- A site, edge or gallery id is an MQTT topic segment (common/topics.py).
CREATE DOMAIN slug AS text CHECK (VALUE ~ '^[A-Za-z0-9_.-]{1,64}$');
CREATE DOMAIN sha256_hex AS text CHECK (VALUE ~ '^[0-9a-f]{64}$');

CREATE FUNCTION set_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

CREATE TABLE sites (
    id          slug PRIMARY KEY CHECK (id <> 'galleries'),  -- would clash with facegate/v1/galleries/...
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE edges (
    site_id          slug NOT NULL REFERENCES sites (id) ON DELETE RESTRICT,
    id               slug NOT NULL,
    name             text NOT NULL DEFAULT '',
    -- Mosquitto password-file hash: $7$<iterations>$<base64 salt>$<base64 PBKDF2-SHA512>
    broker_password_hash text
        CHECK (broker_password_hash ~ '^\$7\$[0-9]+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$'),
    -- The edge's HTTP credential (fg_<prefix>_<secret>, central/auth/keys.py): lookup prefix + hash.
    api_key_prefix   text UNIQUE CHECK (api_key_prefix ~ '^[A-Za-z0-9]{6,32}$'),
    api_secret_hash  text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_seen        timestamptz,
    status           text NOT NULL DEFAULT 'offline' CHECK (status IN ('online', 'offline')),
    software_version text,
    detector_model   text,
    recognizer_model text,
    gallery_versions jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(gallery_versions) = 'object'),
    stats            jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(stats) = 'object'),
    stats_at         timestamptz,
    PRIMARY KEY (site_id, id)
);

CREATE TABLE people (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    external_id  text UNIQUE,
    display_name text NOT NULL DEFAULT '',
    metadata     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    -- Tombstone of an erased person: personal fields are cleared, the id stays so events and
    -- gallery changes that name it still resolve to "erased".
    deleted_at   timestamptz,
    CHECK (deleted_at IS NULL OR (external_id IS NULL AND display_name = '' AND metadata = '{}'))
);
CREATE INDEX people_active_created ON people (created_at, id) WHERE deleted_at IS NULL;
CREATE TRIGGER people_updated_at BEFORE UPDATE ON people FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE enrollment_photos (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    person_id   uuid NOT NULL REFERENCES people (id) ON DELETE CASCADE,
    object_key  text NOT NULL UNIQUE,
    sha256      sha256_hex NOT NULL,
    width       integer NOT NULL CHECK (width > 0),
    height      integer NOT NULL CHECK (height > 0),
    quality     real CHECK (quality >= 0 AND quality <= 1),
    status      text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'accepted', 'rejected')),
    reason      text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (status <> 'rejected' OR reason IS NOT NULL),
    UNIQUE (person_id, sha256)  -- the same photo uploaded twice for one person
);

CREATE TABLE templates (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    person_id       uuid NOT NULL REFERENCES people (id) ON DELETE CASCADE,
    model_id        text NOT NULL,
    embedding_size  integer NOT NULL CHECK (embedding_size BETWEEN 1 AND 4096),
    embedding       bytea NOT NULL,  -- little-endian float32, L2-normalised
    -- NO ACTION (not CASCADE): deleting one photo must first delete its templates and log the
    -- gallery change; deleting a person cascades to both in one statement.
    source_photo_id uuid REFERENCES enrollment_photos (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (octet_length(embedding) = 4 * embedding_size)
);
CREATE INDEX templates_model_person ON templates (model_id, person_id);
CREATE INDEX templates_person ON templates (person_id);
CREATE INDEX templates_source_photo ON templates (source_photo_id) WHERE source_photo_id IS NOT NULL;

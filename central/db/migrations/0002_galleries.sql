-- Galleries, their scope and membership, the gap-free change log and snapshots.

CREATE TABLE galleries (
    id              slug PRIMARY KEY,
    name            text NOT NULL,
    model_id        text NOT NULL,
    -- The last version in gallery_changes (0: none yet). Bumped by append_gallery_change() in the
    -- same transaction as the change row, so the row lock serialises appenders (no gaps).
    current_version integer NOT NULL DEFAULT 0 CHECK (current_version >= 0),
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE gallery_sites (
    gallery_id  slug NOT NULL REFERENCES galleries (id) ON DELETE CASCADE,
    site_id     slug NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    PRIMARY KEY (gallery_id, site_id)
);
CREATE INDEX gallery_sites_site ON gallery_sites (site_id);

CREATE TABLE gallery_people (
    gallery_id  slug NOT NULL REFERENCES galleries (id) ON DELETE CASCADE,
    person_id   uuid NOT NULL REFERENCES people (id) ON DELETE CASCADE,
    added_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (gallery_id, person_id)
);
CREATE INDEX gallery_people_person ON gallery_people (person_id);

CREATE TABLE gallery_changes (
    gallery_id  slug NOT NULL REFERENCES galleries (id) ON DELETE CASCADE,
    version     integer NOT NULL CHECK (version >= 1),
    -- {"upserts": [template ids], "deleted_templates": [template ids], "deleted_people": [person ids]}
    change      jsonb NOT NULL CHECK (jsonb_typeof(change) = 'object'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (gallery_id, version)
);

-- The only way to add a gallery change: returns the new version, N+1 where N is the last one.
CREATE FUNCTION append_gallery_change(p_gallery text, p_change jsonb) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v integer;
BEGIN
    UPDATE galleries SET current_version = current_version + 1
        WHERE id = p_gallery RETURNING current_version INTO v;
    IF v IS NULL THEN
        RAISE EXCEPTION 'gallery % does not exist', p_gallery USING ERRCODE = 'no_data_found';
    END IF;
    INSERT INTO gallery_changes (gallery_id, version, change) VALUES (p_gallery, v, p_change);
    RETURN v;
END
$$;

CREATE TABLE snapshots (
    gallery_id      slug NOT NULL REFERENCES galleries (id) ON DELETE CASCADE,
    version         integer NOT NULL CHECK (version >= 0),
    object_key      text NOT NULL UNIQUE,
    sha256          sha256_hex NOT NULL,
    size_bytes      bigint NOT NULL CHECK (size_bytes >= 0),
    template_count  integer NOT NULL CHECK (template_count >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (gallery_id, version)
);

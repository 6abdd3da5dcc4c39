-- The operator loop (docs/operator-loop.md): corrections of events and negative examples of people.

-- A correction of one event: the event keeps its decision (`events` is never rewritten); this row says
-- what an operator said about it, who and when. `action`:
--   not_person  "this is not `wrong_person_id`" (and, when `person_id` is set, who it is instead);
--   is_person   "this is `person_id`";   new_person  "this is a new person", created as `person_id`.
CREATE TABLE event_corrections (
    id               bigserial PRIMARY KEY,
    event_id         uuid NOT NULL,           -- no FK: events is partitioned (its key includes ts)
    action           text NOT NULL CHECK (action IN ('not_person', 'is_person', 'new_person')),
    wrong_person_id  uuid,
    person_id        uuid,
    negative_id      uuid,
    template_id      uuid,
    template_status  text CHECK (char_length(template_status) <= 64),
    note             text NOT NULL DEFAULT '' CHECK (char_length(note) <= 500),
    created_by       text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (action <> 'not_person' OR wrong_person_id IS NOT NULL),
    CHECK (action = 'not_person' OR person_id IS NOT NULL)
);
CREATE INDEX event_corrections_event ON event_corrections (event_id, id);
CREATE INDEX event_corrections_people ON event_corrections (person_id) WHERE person_id IS NOT NULL;

-- Negative examples: faces an operator said are not this person. They travel to edges in gallery
-- changes (`negatives`, `deleted_negatives` in the change body) and snapshots; capped per person
-- (the oldest go first); deleted with the person (erase).
CREATE TABLE person_negatives (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    person_id   uuid NOT NULL REFERENCES people (id) ON DELETE CASCADE,
    model_id    text NOT NULL,
    embedding   bytea NOT NULL CHECK (octet_length(embedding) BETWEEN 4 AND 4096),  -- float32, unit length
    event_id    uuid,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX person_negatives_person ON person_negatives (person_id, created_at);

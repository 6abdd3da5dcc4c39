-- The broker login of integrations (home automation, alarm panels): it may only read the watch rules'
-- topics, facegate/notify/v1/# (central/broker/acl.py). Central keeps only its Mosquitto `$7$` hash.
CREATE TABLE broker_integrations (
    username       slug PRIMARY KEY,
    password_hash  text NOT NULL
        CHECK (password_hash ~ '^\$7\$[0-9]+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$'),
    created_at     timestamptz NOT NULL DEFAULT now()
);

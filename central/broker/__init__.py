"""The Mosquitto broker's password file, ACL file and mosquitto.conf, generated from central's edge registry.

`registry.py` holds the edges (with their stored `$7$` broker hashes) and the galleries scoped to each
site, which `repository.py` reads; `acl.py` renders the password and ACL files; `conf.py` renders
mosquitto.conf (TLS listener, persistence, in-flight window and queue limits sized for an outage);
`files.py` writes the three files atomically and signals the broker to reload. See
docs/central-broker.md.
"""

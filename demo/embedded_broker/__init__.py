"""A small MQTT broker in pure Python (asyncio + ssl) for `make demo` on a machine without Mosquitto.

It runs on the mosquitto.conf, password file and ACL file `facegate central broker-config` writes
(config.py says which options it reads) and does what the demo's traffic needs: MQTT 5.0 and 3.1.1
(edges speak 3.1.1, central 5.0), TLS, `$7$` password logins, the ACL, QoS 0 and 1, retained messages,
wills, `+`/`#` filters, `$share` subscriptions (round robin), persistent sessions with queued and
redelivered QoS 1 messages, keepalive, Receive Maximum and Maximum Packet Size.

What it lacks compared with Mosquitto (docs/demo.md): QoS 2, persistence (a restart loses sessions,
queues and retained messages), topic aliases, subscription identifiers, enhanced authentication, client
certificates, websockets, bridges, `$SYS` topics, plugins, and Mosquitto's speed (one Python thread).
Modules: codec.py and packets.py (the wire format), topics.py, config.py, auth.py, acl.py, sessions.py,
router.py (routing, retained, shared groups, wills), connection.py (one client), server.py (listeners,
reload), __main__.py.
"""

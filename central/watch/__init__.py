"""Watchlists and watch rules: who, where, when and how often central tells someone (docs/notifications.md).

`schemas` (API types), `repository` (SQL), `service` (roles, site scope, audit), `routes`, and `matching`
(pure: does a rule take an event, at what local time).
"""

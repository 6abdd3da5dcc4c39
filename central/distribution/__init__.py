"""Distribution of galleries to the edges over MQTT (docs/central-distribution.md).

A transactional outbox: every gallery version is committed with the change itself (central/galleries/);
a background distributor on every replica publishes the versions not yet published, in order, under a
per-gallery advisory lock, then advances `galleries.published_version`. Also here: the snapshot policy,
the erase-command outbox and the resync check.
"""

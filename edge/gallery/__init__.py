"""The local gallery: the cache of templates in SQLite searched through an index (`cache`, its on-disk
side in `store`, the exact and hnswlib indexes in `index`), who a face is (`matcher`), following central's
manifests and deltas (`sync`) and downloading snapshots (`snapshots`), and `facegate edge gallery` (`cli`)."""

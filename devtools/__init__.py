"""Developer tooling shared by the tests and the benchmarks (never imported by product code, never
shipped): `devtools.services` starts real PostgreSQL, Redis, Mosquitto and S3 servers for them."""

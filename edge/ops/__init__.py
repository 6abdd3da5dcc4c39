"""Operating the box: the local HTTP endpoint for /healthz, /readyz and /metrics (`health`), the Prometheus
metrics (`metrics`), and what the edge reports about itself: heartbeats and the gauges read at each scrape
(`stats`)."""

"""The edge box, by component: camera, inference, gallery, delivery, config, ops and bench; the daemon,
its settings wiring (assembly) and the `facegate edge` commands (cli) at the top (edge/README.md)."""

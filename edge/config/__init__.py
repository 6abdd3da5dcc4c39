"""The device file (one YAML file per edge box): its schema (`schema`), loading with profiles and camera
defaults (`loader`), checks across fields (`checks`), problems that name the field path (`errors`),
secrets from files or the environment (`secrets`), and `facegate edge config validate` (`cli`)."""

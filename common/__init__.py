"""Code that the edge and central both run: schemas, config, the face pipeline, embedding math."""

"""People: create, read, update, list, delete (erase); their photos and templates."""

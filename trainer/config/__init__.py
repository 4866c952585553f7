"""The trainer's configuration: its typed schema and hash, files and overrides, the errors a user reads."""

"""Transcript storage: one Protocol, SQLite and DynamoDB backends, one factory."""

"""Durable state: the retry log, the retry queue and the shared Partoo pace, in one SQL database."""

"""Shared ground: settings, the error tree, record schemas, URL keys, run counts, language tags and fsync.

Imports no other layer (docs/architecture.md).
"""

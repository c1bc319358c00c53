"""Shared ground: settings, the error tree, record schemas, URL keys and run counts. Imports no other layer."""

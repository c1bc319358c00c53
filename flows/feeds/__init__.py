"""Feeds: parsing RSS/Atom/RDF/JSON Feed into entries, and per-feed health and conditional-GET state."""

"""Stores: where bytes live. See ``base.py`` for the interface the tus layer relies on."""

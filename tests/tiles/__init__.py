"""Tiles as files: the writer publishing them to a folder, and nginx serving that folder."""

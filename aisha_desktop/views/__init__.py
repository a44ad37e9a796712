"""Widgets of the main window: navigation, entity views, record editor."""

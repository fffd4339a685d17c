"""Rendering with Rich: tables, progress, colours, charts and play's screen."""

"""Lesson-specific helpers: one module per lesson topic (what a notebook shows that no other lesson needs)."""

"""SQLite state shared by the engine (one writer) and the consoles (readers)."""

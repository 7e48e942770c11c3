"""sedmtui: the SEDM night console (Textual). Importing this package imports nothing heavy."""

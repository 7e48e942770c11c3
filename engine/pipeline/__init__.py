"""The night pipeline: ingest, stages, jobs and the engine loop."""

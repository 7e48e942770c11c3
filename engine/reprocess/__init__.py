"""Archive reprocessing on Dask distributed (``sedmtui reprocess FROM TO``).

The client process runs the engine's own stages (calibration with its fallback, standards
before science, re-calibration) over many nights at once and sends every job to a Dask
cluster instead of the engine's process pool; workers run the same recipes
(:mod:`engine.pipeline.recipes`) on the same typed tasks and write products into the
reduction root. Only the client writes the state database.

* :mod:`~engine.reprocess.cluster` -- the Dask client: an existing scheduler, a local
  cluster, or SLURM through dask-jobqueue (the ``[cluster]`` table); one BLAS thread per worker;
* :mod:`~engine.reprocess.ledger` -- the ``reprocess`` table: each task's fingerprint (inputs,
  calibration, configuration, engine version) and outcome; what a rerun may skip;
* :mod:`~engine.reprocess.stages` -- the calibration and science stages across nights
  (fallback to the nearest good night, a neighbour's standard);
* :mod:`~engine.reprocess.runner` -- the client loop (the engine loop with Dask futures);
* :mod:`~engine.reprocess.progress` -- progress lines or bar, and the summary table;
* :mod:`~engine.reprocess.cli` -- the command line.
"""

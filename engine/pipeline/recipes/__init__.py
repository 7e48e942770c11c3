"""The recipes: each job's steps, in order, in one short file.

* :mod:`~engine.pipeline.recipes.calibration` -- a night's calibration products;
* :mod:`~engine.pipeline.recipes.exposure` -- one standard or science exposure, a
  re-extraction from its cube, a re-calibration once a standard exists.

A recipe takes a typed task (:mod:`engine.pipeline.tasks`), calls thin steps
(:mod:`~engine.pipeline.recipes.steps`, :mod:`~engine.pipeline.recipes.products`) over the
pure algorithms of :mod:`engine.calib`, :mod:`engine.science`, :mod:`engine.astrometry`,
:mod:`engine.classify` and :mod:`engine.ccd`, reports its progress, and returns what its stage
records. Recipes never touch the state database.
"""

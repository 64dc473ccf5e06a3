"""QI-Box curation, by job: ``qibox`` (the maths), ``store`` (the resume sidecar),
``plot`` (the PNG) and ``report`` (kept rows, printed summary). The command that ties them
to sampling and scoring is ``python -m trainer.curate``."""

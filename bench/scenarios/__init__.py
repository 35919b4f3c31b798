"""One module per scenario; each has ``NAME``, ``DEFAULT_REPEATS`` and ``run(workdir, repeats, quick)``."""

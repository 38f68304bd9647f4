"""The command-line entry points of each subcommand, one module each (``cli.py`` dispatches here):
``stages`` (pretrain, distill, evaluate), ``demo``, ``ablate``, ``glue``. The command line, not the
teaching path: these may switch the fast layer on; what they run lives in ``train/``."""

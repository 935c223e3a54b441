"""The whole stack on one machine: ``taskcast up``, ``taskcast demo`` and the local edge.

Needs the parts it runs: ``pip install 'taskcast[local]'``. The SDK and CLI (``taskcast``) do
not import this package until one of its commands is run.
"""

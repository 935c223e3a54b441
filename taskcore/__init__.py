"""The contract between taskcast's parts: statuses, tasks, events, task types, config, tokens.

Standard library only, so the Lambda bundle stays small and every part speaks the same contract.
"""

__version__ = "0.1.0"

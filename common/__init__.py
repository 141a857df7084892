"""The base every other package stands on: the user-error type the CLI prints without a traceback, and
JSON-lines reading with errors that name the file and line. Standard library only, imports nothing of ours.

Imports follow the data, one way (tests/unit/test_import_direction.py keeps it so):
common <- sandbox <- rewards <- grpo <- pipelines (stages, the runner and the `grpo` command line).
"""

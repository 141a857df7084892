"""Tasks and data: synthetic verifiable tasks (tasks.py), prompt templates (templates.py), the dataset schema
a recipe uses (spec.py) and the loader that turns it into a `datasets.Dataset` (loading.py).

Nothing is imported here so that `grpo.data.tasks` stays cheap to import (no `datasets`, no pyarrow).
"""

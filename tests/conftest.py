"""Session-wide fixtures. Expensive things (tiny models, vLLM engines, the Ray cluster) are built once per
test session and shared; they live in the fixtures_*.py modules beside this file."""

from fixtures_models import *  # noqa: F401,F403  tiny model directories
from fixtures_engines import *  # noqa: F401,F403  shared vLLM engines

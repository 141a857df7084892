"""Code that runs inside the sandbox's fork server (started as `python -I -S -B runtime/zygote.py`).

Standard library only. The modules import each other as top-level modules (the fork server puts this
directory on sys.path); the grader imports only `codec` (wire formats) and `confine.CgroupV1` (to remove
a dead worker's cgroups) from here.
"""

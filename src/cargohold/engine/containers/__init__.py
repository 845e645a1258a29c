"""Containers: create/run/start/stop/rm, exec, attach, logs, cp, commit, stats, update (the
rooms behind the container verbs and the /containers and /exec routes)."""

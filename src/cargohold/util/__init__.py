"""Small shared helpers: locks, atomic writes, ids, processes."""

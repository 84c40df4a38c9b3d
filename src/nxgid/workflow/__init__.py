"""The workflow: database of scans and tasks, the task queue, sync from the tree."""

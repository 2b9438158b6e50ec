"""Jobs: thin RQ functions that run the domain's steps, report progress and hold the lock.

Job arguments are plain names (who asked, which file), never model objects or secrets.
"""

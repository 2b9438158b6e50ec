"""One contract suite for both storage adapters: a local folder and S3 on three real servers.

Every test that takes `storage` runs four times: on a local folder and on a fresh bucket of
each S3 server in tests/support/s3_servers.py (moto, SeaweedFS, the JuiceFS gateway). It asserts
only what a caller of the `Storage` interface (and so, in the end, a user) can see. The few checks
that need to peek behind the interface (hidden files, unfinished uploads, the bucket itself) go
through the helpers in stores.py, which know where each adapter keeps things.
"""

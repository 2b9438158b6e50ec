"""Bad input, found by hypothesis: hostile names, JSON bodies, path segments, form fields and headers.

Every answer is a 4xx with a clear message (or a normal page), never a 500, and nothing is ever
enqueued. Each test builds its app and clients once and reuses them across examples. The app is
told not to propagate exceptions, so a crash shows up as the 500 a production server would send
(its traceback is in the captured log). The tests named test_bug_* pin app bugs this suite found.
"""

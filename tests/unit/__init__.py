"""`pytest tests/unit/` runs every unit test of the suite (see tests/conftest.py: the layout).

The unit tests live next to the code area they test (tests/routing, tests/routing/core, ...); this
folder only gives the selection a path. Likewise `pytest tests/integration/` runs every test
marked integration or browser as well as the folder's own, and `pytest tests/performance/`
runs that folder.
"""

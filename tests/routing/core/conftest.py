"""The routing core's tests need no Django, database or network.

Property tests use ``tests.routing.core.fleets.PROPERTY_SETTINGS`` per test (not a global hypothesis
profile, which would leak into the rest of the suite).
"""

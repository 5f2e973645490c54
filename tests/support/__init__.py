"""Helpers shared by the test suite and the benchmarks: ports, processes, percentiles.

Nothing here imports Django, so the benchmarks' load generators can use it in a bare process.
"""

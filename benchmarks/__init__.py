"""Throughput, start-up and memory of batchtransform against baselines measured in the same run.

Run ``make bench`` or ``python -m benchmarks`` (``--smoke`` for a tiny, quick run).
"""

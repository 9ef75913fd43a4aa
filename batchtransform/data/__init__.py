"""The record pipeline: from an input object's bytes to requests, and responses to output.

Plain iterator functions, one stage per module, composed by ``transform_stream``:
``decompress`` (CompressionType), ``split_records`` (SplitType, with the framings in
``recordio`` and ``tfrecord``), ``processing`` (InputFilter, JoinSource, OutputFilter, with
``jsonpath`` and ``capture``'s inference ids), ``batch_records`` (BatchStrategy,
MaxPayloadInMB), ``ordered_map`` (MaxConcurrentTransforms, in order) and ``assemble``
(AssembleWith). Nothing here knows about jobs, storage or runtimes, so each stage can be
tested on bytes alone.
"""

from __future__ import annotations

from batchtransform.data.assemble import assemble
from batchtransform.data.batch import Batch, batch_records
from batchtransform.data.compression import decompress
from batchtransform.data.ordered import ordered_map
from batchtransform.data.pipeline import PipelineSettings, PipelineStats, transform_stream
from batchtransform.data.processing import RecordProcessing
from batchtransform.data.split import record_separator, split_records

__all__ = [
    "Batch",
    "PipelineSettings",
    "PipelineStats",
    "RecordProcessing",
    "assemble",
    "batch_records",
    "decompress",
    "ordered_map",
    "record_separator",
    "split_records",
    "transform_stream",
]

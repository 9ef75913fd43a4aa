"""The record pipeline: from an input object's bytes to requests, and responses to output.

Plain iterator functions, one stage per module, composed by ``transform_stream``:
``decompress`` (CompressionType), ``split_records`` (SplitType, with the framings in
``recordio`` and ``tfrecord``), ``processing`` (InputFilter, JoinSource, OutputFilter, with
``jsonpath`` and ``capture``'s inference ids), ``batch_records`` (BatchStrategy,
MaxPayloadInMB), ``ordered_map`` (MaxConcurrentTransforms, in order) and ``assemble``
(AssembleWith). Nothing here knows about jobs, storage or runtimes, so each stage can be
tested on bytes alone.

The package imports nothing itself: the service and the controller use a few of its
modules (JSONPath, record formats) without paying for the whole data plane and numpy.
"""

"""Refinement: the stored transcript re-decoded with the best settings the server has.

Live decoding trades accuracy for latency and shares the CPU with every other
stream; what people keep, search and export is the stored transcript. After a
stream ends its recording is decoded again, whole, with beam 5 and full context,
on a model instance whose threads run at the lowest CPU priority (so live streams
always go first), and the result replaces the live text segment by segment.
"""

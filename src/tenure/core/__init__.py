"""The pure core: records, lease rules, the holder lifecycle, classification, findings.

No I/O here: no files, sockets, processes, clocks or environment. Facts come in as arguments.
"""

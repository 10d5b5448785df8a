"""Host side of federated learning: the torch trainer for agents and experiment helpers.

The protocol, aggregator and agent live in ``edgefl.runtime`` (edge code); this package adds
what needs torch or the host toolkit.
"""

"""The Flower side of edgefl's bench/peer_flower.py."""

"""In-orbit federation simulation: orbits → contact windows → link figures → federated rounds."""

"""The dynipsec lab: topologies (data) turned into Mininet networks (this engine)."""

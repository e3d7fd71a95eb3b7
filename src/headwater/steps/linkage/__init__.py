"""Entity-resolution building blocks (normalise, block, score, cluster) used by ``id_merge``.

Each is a pure function of its arguments so a Beam pipeline can call it stage by stage.
"""

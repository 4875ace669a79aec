"""Running Prism's heavy steps beyond one process: Ray Data for encoding, Ray Tune for tuning trials.

Ray runs locally with no setup (the default) and on a cluster given an address ("auto", or
"ray://HOST:PORT" through Ray Client). Nothing here is imported unless an engine is asked for, so Prism
works without Ray installed.
"""

"""Encoders for text, images and audio, one per file, behind the protocol in core.encoders.base."""

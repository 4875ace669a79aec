"""Prism core: catalog, encoders, fusion models, evaluation and services. Never imports streamlit."""

"""Streamlit-side helpers of the Prism studio: cached loaders, session state, theme and components."""

"""The presenter tour: its file schema and its steps."""

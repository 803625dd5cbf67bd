"""Page-side helpers: session/URL state, cached resources, plot builders. Streamlit lives here and in pages/."""

"""The Gradio chat UI (`rag ui`); gradio is imported only when the app is built."""

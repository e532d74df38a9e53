"""The X (Twitter) channel plugin."""
